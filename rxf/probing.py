"""The linear probe of the paper's Section 4 (Appendix A.2): a frozen encoder without dropout and one linear layer on
the ``<s>`` token's final hidden state, trained on another task. The model surgery (``--task
sentence_prediction_probe``) and the same layer fit on cached features (``fit_linear_probe``)."""

from typing import List, Sequence, Tuple, Type

import torch
from torch import nn


class NoHiddenLayer(nn.Module):
    """Stands for the head's hidden ``dense`` layer, which fairseq's checkpoint upgrade reads: a width of 0 drops a
    fine-tuned head of the same name instead of loading it into the probe."""

    out_features = 0

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.zeros(0))


class LinearProbeHead(nn.Module):
    """One linear layer on the ``<s>`` representation: no hidden layer, no tanh, no dropout."""

    def __init__(self, input_dim: int, num_classes: int):
        super().__init__()
        self.dense = NoHiddenLayer()
        self.out_proj = nn.Linear(input_dim, num_classes)

    def forward(self, features: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.out_proj(features[:, 0, :])


def freeze_encoder(
    model: nn.Module, head: nn.Module, dropout_types: Tuple[Type[nn.Module], ...] = (nn.Dropout,)
) -> List[str]:
    """Every parameter but the head's stops training; every dropout (``dropout_types``) and float ``layerdrop``
    outside the head is switched off. Returns the names of the dropout modules switched off."""
    head_params = {id(p) for p in head.parameters()}
    for param in model.parameters():
        param.requires_grad = id(param) in head_params
    head_modules = {id(m) for m in head.modules()}
    silenced = []
    for name, module in model.named_modules():
        if id(module) in head_modules:
            continue
        if isinstance(module, dropout_types):
            module.p = 0.0
            silenced.append(name)
        if isinstance(getattr(module, "layerdrop", None), float):
            module.layerdrop = 0.0
    return silenced


L2_GRID: Tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float) -> nn.Linear:
    """The probe trained to convergence on fixed features (a frozen encoder without dropout gives the same ones every
    epoch): multinomial logistic regression + ``l2`` * squared weights by full-batch L-BFGS on standardised features,
    the standardisation folded back into the returned layer."""
    features = features.double()
    mean, std = features.mean(0), features.std(0) + 1e-6
    standard = (features - mean) / std
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(num_classes, features.shape[1], generator=generator, dtype=torch.float64) * 0.01
    weight.requires_grad_()
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = standard @ weight.T + bias
        loss = nn.functional.cross_entropy(logits, labels) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    layer = nn.Linear(features.shape[1], num_classes)
    with torch.no_grad():
        folded = weight.detach() / std
        layer.weight.copy_(folded.float())
        layer.bias.copy_((bias.detach() - folded @ mean).float())
    return layer


def accuracy(layer: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> float:
    """Percent of ``labels`` the probe's argmax gets right."""
    with torch.no_grad():
        return 100.0 * (layer(features.float()).argmax(1) == labels).double().mean().item()


def choose_l2(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, grid: Sequence[float] = L2_GRID, seed: int = 1
) -> Tuple[float, List[Tuple[float, float]]]:
    """(the L2 weight of ``grid`` best on a held-out fifth of the training features when fit on the rest, ties to the
    stronger, [(l2, held-out accuracy)...]): the validation split only measures the final probe."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    held, kept = order[: len(order) // 5], order[len(order) // 5 :]
    scores = []
    for l2 in grid:
        layer = fit_linear_probe(features[kept], labels[kept], num_classes, l2)
        scores.append((l2, accuracy(layer, features[held], labels[held])))
    best = max(score for _, score in scores)
    return max(l2 for l2, score in scores if score == best), scores
