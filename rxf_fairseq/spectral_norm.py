"""R4F's reparameterisation of the classification head g: every weight matrix W becomes W / sigma(W).

The paper normalises *all* weight matrices of g so that Lip(g) <= 1 (with 1-Lipschitz activations);
fairseq's ``--spectral-norm-classification-head`` only wraps ``out_proj``. We use the same
``torch.nn.utils.spectral_norm`` as fairseq (so ``out_proj``'s state-dict keys stay compatible) on
every ``nn.Linear`` of the head, and warm the power iteration up front: sigma is estimated by power
iteration, and an estimate below the true sigma would leave ||W / sigma_hat|| slightly above 1.
"""

import warnings
from typing import Dict, List

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

WARMUP_POWER_ITERATIONS = 100


def _spectral_norm_hook(module: nn.Module):
    for hook in module._forward_pre_hooks.values():
        if isinstance(hook, SpectralNorm) and hook.name == "weight":
            return hook
    return None


def spectrally_normalise_head(
    head: nn.Module, warmup_iterations: int = WARMUP_POWER_ITERATIONS
) -> List[str]:
    """Spectrally normalise every ``nn.Linear`` of ``head`` in place (already normalised ones are
    kept as they are). Returns the names of all normalised layers. Raises if the head has none."""
    normalised = []
    for name, module in head.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        hook = _spectral_norm_hook(module)
        if hook is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch suggests the parametrization API
                nn.utils.spectral_norm(module)
            hook = _spectral_norm_hook(module)
        _warm_up(module, hook, warmup_iterations)
        normalised.append(name)
    if not normalised:
        raise ValueError(f"{type(head).__name__} has no linear layer to spectrally normalise")
    return normalised


@torch.no_grad()
def _warm_up(module: nn.Module, hook: SpectralNorm, iterations: int) -> None:
    """Run extra power iterations so sigma_hat starts at the true largest singular value."""
    if iterations <= 0:
        return
    per_call = hook.n_power_iterations
    try:
        hook.n_power_iterations = iterations
        weight = hook.compute_weight(module, do_power_iteration=True)
    finally:
        hook.n_power_iterations = per_call
    setattr(module, hook.name, weight)


@torch.no_grad()
def effective_spectral_norms(head: nn.Module) -> Dict[str, float]:
    """The exact largest singular value (via SVD) of the weight each linear layer of ``head`` applies:
    W / sigma_hat for spectrally normalised layers, W itself for the others."""
    norms = {}
    for name, module in head.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        hook = _spectral_norm_hook(module)
        weight = (
            hook.compute_weight(module, do_power_iteration=False) if hook is not None else module.weight
        )
        norms[name] = torch.linalg.matrix_norm(weight.detach().float(), ord=2).item()
    return norms


def is_spectrally_normalised(module: nn.Module) -> bool:
    return _spectral_norm_hook(module) is not None
