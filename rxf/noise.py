"""The noise z of R3F and the one place it enters a model: the encoder's token embeddings.

The paper's objective is KL_S(g.f(x) || g.f(x + z)) with x the *token embeddings*. fairseq's
examples/rxf passes ``token_embeddings=`` through ``model(...)``, which RoBERTa's encoder silently
drops, so its noised pass sees clean embeddings. Here the noise is added by a forward hook on the
encoder's token-embedding module itself, which no forward signature can bypass, and the hook counts
its applications so a model that never calls the layer fails loudly instead of training without noise.
The caller names the two modules (the embedding and the encoder around it); the fairseq plugin finds
them in fairseq's models (``rxf_fairseq/model_parts.py``).
"""

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

NOISE_TYPES = ("uniform", "normal")


def check_noise_args(eps: float, noise_type: str) -> None:
    """Reject settings the noise cannot honour, naming the flag at fault (criteria call it at start-up)."""
    if not (math.isfinite(eps) and eps >= 0):  # also rejects NaN and inf
        raise ValueError(f"--eps must be >= 0 and finite (the noise scale; the paper's is 1e-5), got {eps!r}")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"--noise-type must be one of {', '.join(NOISE_TYPES)}, got {noise_type!r}")


def sample_embedding_noise(like: Tensor, eps: float, noise_type: str) -> Tensor:
    """z ~ U(-eps, eps) or N(0, eps^2), shaped like ``like`` and on its device and dtype.

    Drawn in fp32 from torch's default generator of ``like.device`` (fairseq reseeds it with
    ``seed + num_updates`` before every update, so a resumed run draws the same noise), then cast.
    eps = 0 gives exact zeros (the reference crashes on ``Uniform(-0, 0)``).
    """
    if eps == 0:
        return torch.zeros_like(like)
    noise = torch.empty(like.shape, device=like.device, dtype=torch.float32)
    if noise_type == "uniform":
        noise.uniform_(-eps, eps)
    elif noise_type == "normal":
        noise.normal_(0.0, eps)
    else:
        check_noise_args(eps, noise_type)  # raises, naming the flag
    return noise.to(like.dtype)


@dataclass
class NoiseRecord:
    """What the hook did during one perturbed forward pass.

    ``changed``/``elements`` count the embedding entries the perturbation actually altered; only
    kept for fp16/bf16 embeddings, where a 1e-5 perturbation often rounds away (tensors, so reading
    them costs no host-device synchronisation in the training step).
    """

    applications: int = 0
    changed: Optional[Tensor] = None
    elements: int = 0


LOW_PRECISION = (torch.float16, torch.bfloat16)


@contextlib.contextmanager
def perturbed_token_embeddings(
    embedding: nn.Module, scope: nn.Module, perturb: Callable[[Tensor], Tensor]
) -> Iterator[NoiseRecord]:
    """Within the block, every call of ``embedding`` made inside a forward pass of ``scope`` returns
    ``perturb(embeddings)``; gradients flow through it as through the clean output. ``scope`` is the
    module whose forward calls ``embedding`` (the encoder): when a decoder shares the embedding matrix,
    its calls stay clean. On exit, raises if the perturbation never reached the model.
    """
    record = NoiseRecord()
    inside_scope = [False]

    def enter_scope(module, args):
        inside_scope[0] = True

    def leave_scope(module, args, output):
        inside_scope[0] = False

    def apply(module, args, output):
        if not inside_scope[0]:
            return None
        perturbed = perturb(output)
        record.applications += 1
        if output.dtype in LOW_PRECISION:
            changed = (perturbed != output).sum()
            record.changed = changed if record.changed is None else record.changed + changed
            record.elements += output.numel()
        return perturbed

    handles = [
        scope.register_forward_pre_hook(enter_scope),
        scope.register_forward_hook(leave_scope),
        embedding.register_forward_hook(apply),
    ]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()
    if record.applications == 0:
        raise RuntimeError(
            f"the embedding perturbation never reached the model: {type(scope).__name__}.forward did "
            f"not call its token-embedding layer ({type(embedding).__name__})"
        )


def noised_token_embeddings(embedding: nn.Module, scope: nn.Module, eps: float, noise_type: str):
    """``perturbed_token_embeddings`` with fresh R3F noise z at every call: x -> x + z."""
    return perturbed_token_embeddings(
        embedding, scope, lambda embeddings: embeddings + sample_embedding_noise(embeddings, eps, noise_type)
    )
