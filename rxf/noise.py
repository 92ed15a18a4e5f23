"""The noise z of R3F and the one place it enters a model: the encoder's token embeddings.

The paper's objective is KL_S(g.f(x) || g.f(x + z)) with x the *token embeddings*. fairseq's
examples/rxf passes ``token_embeddings=`` through ``model(...)``, which RoBERTa's encoder silently
drops, so its noised pass sees clean embeddings. Here the noise is added by a forward hook on the
encoder's token-embedding module itself, which no forward signature can bypass, and the hook counts
its applications so a model that never calls the layer fails loudly instead of training without noise.
"""

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

import torch
from torch import Tensor, nn

NOISE_TYPES = ("uniform", "normal")


def check_noise_args(eps: float, noise_type: str) -> None:
    """Reject settings the noise cannot honour, naming the flag at fault (criteria call it at start-up)."""
    if not (math.isfinite(eps) and eps >= 0):  # also rejects NaN and inf
        raise ValueError(f"--eps must be >= 0 and finite (the noise scale; the paper's is 1e-5), got {eps!r}")
    if noise_type not in NOISE_TYPES:
        raise ValueError(
            f"--noise-type must be one of {', '.join(NOISE_TYPES)}, got {noise_type!r}"
        )


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


def find_encoder_token_embedding(model: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """Return ``(embed_tokens, encoder)``: the encoder's token-embedding layer and the module
    whose forward pass scopes the noise.

    RoBERTa/XLM-R keep a TransformerEncoder in ``model.encoder.sentence_encoder``; BART and
    fairseq ``transformer`` models have ``model.encoder.embed_tokens`` directly. The encoder scope
    matters when the embedding matrix is shared with the decoder: only encoder calls are noised.
    """
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(
            f"R3F needs a model with an encoder (model.encoder); {type(model).__name__} has none"
        )
    scope = getattr(encoder, "sentence_encoder", None)
    if not isinstance(scope, nn.Module):
        scope = encoder
    embed_tokens = getattr(scope, "embed_tokens", None)
    if not isinstance(embed_tokens, nn.Module):
        raise ValueError(
            f"R3F perturbs the encoder's token embeddings, but {type(model).__name__}'s encoder "
            f"({type(scope).__name__}) has no embed_tokens module"
        )
    return embed_tokens, scope


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
    model: nn.Module, perturb: Callable[[Tensor], Tensor]
) -> Iterator[NoiseRecord]:
    """Within the block, every call of the encoder's token-embedding layer *made by the encoder*
    returns ``perturb(embeddings)``. Gradients flow through it as through the clean output. On exit,
    raises if the perturbation never reached the model.
    """
    embed_tokens, encoder = find_encoder_token_embedding(model)
    record = NoiseRecord()
    inside_encoder = [False]

    def enter_encoder(module, args):
        inside_encoder[0] = True

    def leave_encoder(module, args, output):
        inside_encoder[0] = False

    def apply(module, args, output):
        if not inside_encoder[0]:
            return None
        perturbed = perturb(output)
        record.applications += 1
        if output.dtype in LOW_PRECISION:
            changed = (perturbed != output).sum()
            record.changed = changed if record.changed is None else record.changed + changed
            record.elements += output.numel()
        return perturbed

    handles = [
        encoder.register_forward_pre_hook(enter_encoder),
        encoder.register_forward_hook(leave_encoder),
        embed_tokens.register_forward_hook(apply),
    ]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()
    if record.applications == 0:
        raise RuntimeError(
            f"the embedding perturbation never reached the model: {type(encoder).__name__}.forward did "
            f"not call its token-embedding layer ({type(embed_tokens).__name__})"
        )


def noised_token_embeddings(model: nn.Module, eps: float, noise_type: str):
    """``perturbed_token_embeddings`` with fresh R3F noise z at every call: x -> x + z."""
    return perturbed_token_embeddings(
        model, lambda embeddings: embeddings + sample_embedding_noise(embeddings, eps, noise_type)
    )
