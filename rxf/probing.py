"""The linear probe of the paper's Section 4 (Appendix A.2): a frozen encoder without dropout, and a
single linear layer on the sentence representation (the ``<s>`` token's final hidden state, which
RoBERTa's own head reads) trained on another task. Model surgery, used by
``--task sentence_prediction_probe`` (``rxf_fairseq/tasks/sentence_prediction_probe.py``), and the same layer fit
on cached features (``fit_linear_probe``, used by ``python -m rxf_repro.probe_features``)."""

from typing import List, Sequence, Tuple, Type

import torch
from torch import nn


class NoHiddenLayer(nn.Module):
    """Stands where RoBERTa's classification head has its hidden ``dense`` layer. fairseq's checkpoint
    upgrade reads ``dense.weight.size(0)`` and ``dense.out_features`` of every head; a width of 0 marks a
    linear probe, so a fine-tuned head of the same name is dropped rather than loaded into the probe,
    and the probe's own checkpoints load back."""

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
    """Every parameter but the head's stops training; every dropout outside the head (a module of
    ``dropout_types``, each with a probability ``p``) is switched off, and so is layer drop (a float
    ``layerdrop``). Returns the names of the dropout modules switched off (for the log)."""
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
        if hasattr(module, "layerdrop") and isinstance(getattr(module, "layerdrop"), float):
            module.layerdrop = 0.0
    return silenced


# ----------------------------------------------------------------------------- the probe on cached features

L2_GRID: Tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)


def fit_linear_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, l2: float) -> nn.Linear:
    """The linear probe trained to convergence on fixed features: multinomial logistic regression (mean cross
    entropy + ``l2`` * squared weights, the bias free) by full-batch L-BFGS, features standardised with the
    training set's mean and deviation (folded back into the returned layer, which reads raw features). The
    encoder of a probe is frozen and without dropout, so its features are fixed: fitting them once is the
    same probe as training the layer by SGD, without a forward pass of the encoder per step."""
    features = features.double()
    mean, std = features.mean(0), features.std(0) + 1e-6
    standard = (features - mean) / std
    generator = torch.Generator().manual_seed(1)
    weight = torch.randn(num_classes, features.shape[1], generator=generator, dtype=torch.float64) * 0.01
    bias = torch.zeros(num_classes, dtype=torch.float64)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
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
    """(the L2 weight of ``grid`` with the best accuracy on a held-out fifth of the training features when fit on
    the other four fifths, [(l2, held-out accuracy)...]); ties go to the stronger L2. The validation split is
    never seen: it measures the probe that is then fit on the whole training set."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    held, kept = order[: len(order) // 5], order[len(order) // 5 :]
    scores = []
    for l2 in grid:
        layer = fit_linear_probe(features[kept], labels[kept], num_classes, l2)
        scores.append((l2, accuracy(layer, features[held], labels[held])))
    best = max(score for _, score in scores)
    return max(l2 for l2, score in scores if score == best), scores
