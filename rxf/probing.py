"""The linear probe of the paper's Section 4 (Appendix A.2): a frozen encoder without dropout, and a
single linear layer on the sentence representation (the ``<s>`` token's final hidden state, which
RoBERTa's own head reads) trained on another task. Pure model surgery, used by
``--task sentence_prediction_probe`` (``rxf_fairseq/tasks/sentence_prediction_probe.py``)."""

from typing import List, Tuple, Type

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
