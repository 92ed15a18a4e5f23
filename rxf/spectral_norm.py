"""R4F's reparameterisation of the classification head g: every weight matrix W becomes W / sigma(W), so Lip(g) <= 1.

fairseq's ``--spectral-norm-classification-head`` wraps only ``out_proj`` with ``torch.nn.utils.spectral_norm``, which
renames the parameter ``weight_orig``: fairseq cannot reload the model (KeyError). ``SpectralNormLinear`` keeps the raw
parameter as ``weight`` and the power-iteration vectors as extra buffers, so checkpoints load in both directions."""

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.spectral_norm import SpectralNorm

WARMUP_POWER_ITERATIONS = 100


class SpectralNormLinear(nn.Linear):
    """``nn.Linear`` applying W / sigma_hat(W), sigma_hat by power iteration: one step per training forward,
    ``WARMUP_POWER_ITERATIONS`` when created or loaded without the vectors, so that sigma_hat, which can only
    under-estimate sigma, starts at sigma. Loaded vectors are used as they are: a resumed run continues exactly."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-12):
        super().__init__(in_features, out_features, bias)
        self.eps = eps
        self.register_buffer("sn_u", F.normalize(torch.randn(out_features), dim=0, eps=eps))
        self.register_buffer("sn_v", F.normalize(torch.randn(in_features), dim=0, eps=eps))
        self._warm = False

    @torch.no_grad()
    def power_iteration(self, steps: int) -> None:
        weight = self.weight.detach().float()
        u, v = self.sn_u.float(), self.sn_v.float()
        for _ in range(steps):
            v = F.normalize(weight.t() @ u, dim=0, eps=self.eps)
            u = F.normalize(weight @ v, dim=0, eps=self.eps)
        self.sn_u.copy_(u)
        self.sn_v.copy_(v)
        self._warm = True

    def normalised_weight(self) -> Tensor:
        # Copies: R3F's second pass updates the buffers in place while the first pass's graph still needs them.
        u = self.sn_u.to(self.weight.dtype, copy=True)
        v = self.sn_v.to(self.weight.dtype, copy=True)
        return self.weight / torch.dot(u, self.weight @ v)

    def forward(self, x: Tensor) -> Tensor:
        if not self._warm:
            self.power_iteration(WARMUP_POWER_ITERATIONS)
        elif self.training:
            self.power_iteration(1)
        return F.linear(x, self.normalised_weight(), self.bias)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # A head trained without R4F has no power-iteration vectors: start them afresh (warmed at first use).
        saved = all(prefix + name in state_dict for name in ("sn_u", "sn_v"))
        for name in ("sn_u", "sn_v"):
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone())
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._warm = saved


def spectrally_normalised(linear: nn.Linear) -> SpectralNormLinear:
    """``linear`` as a ``SpectralNormLinear`` sharing its parameters (an optimizer holding them keeps working);
    fairseq's torch spectral norm is undone first, baking W / sigma into ``weight``."""
    if any(isinstance(hook, SpectralNorm) for hook in linear._forward_pre_hooks.values()):
        nn.utils.remove_spectral_norm(linear)
    new = SpectralNormLinear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    new = new.to(linear.weight.device)
    new.weight, new.bias = linear.weight, linear.bias
    new.train(linear.training)  # a model in eval mode runs no power iteration at inference
    new.power_iteration(WARMUP_POWER_ITERATIONS)
    return new


def spectrally_normalise_head(head: nn.Module) -> List[str]:
    """Every ``nn.Linear`` of ``head`` made a ``SpectralNormLinear``, in place; returns the names of all normalised
    layers (those converted before included) and raises if there are none."""
    names = []
    for name, module in list(head.named_modules()):
        if isinstance(module, nn.Linear):
            if not isinstance(module, SpectralNormLinear):
                head.set_submodule(name, spectrally_normalised(module))
            names.append(name)
    if not names:
        raise ValueError(f"{type(head).__name__} has no linear layer to spectrally normalise")
    return names


@torch.no_grad()
def effective_spectral_norms(head: nn.Module) -> Dict[str, float]:
    """The exact largest singular value (via SVD) of the weight each linear layer of ``head`` applies."""
    norms = {}
    for name, module in head.named_modules():
        if isinstance(module, nn.Linear):
            weight = module.normalised_weight() if isinstance(module, SpectralNormLinear) else module.weight
            norms[name] = torch.linalg.matrix_norm(weight.detach().double(), ord=2).item()
    return norms
