"""The noise z of R3F and the one place it enters a model: the encoder's token embeddings.

fairseq's examples/rxf passes ``token_embeddings=`` through ``model(...)``, which RoBERTa's encoder silently drops,
so its noised pass sees clean embeddings. Here a forward hook on the token-embedding module itself adds the noise
(no forward signature can bypass it) and counts its applications, so a model that never calls the layer fails loudly."""

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional

import torch
from torch import Tensor, nn

NOISE_TYPES = ("uniform", "normal")


def check_noise_args(eps: float, noise_type: str) -> None:
    """Reject settings the noise cannot honour, naming the flag at fault (criteria call it at start-up)."""
    if not (math.isfinite(eps) and eps >= 0):  # also rejects NaN and inf
        raise ValueError(f"--eps must be >= 0 and finite (the noise scale; the paper's is 1e-5), got {eps!r}")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"--noise-type must be one of {', '.join(NOISE_TYPES)}, got {noise_type!r}")


def sample_embedding_noise(
    like: Tensor, eps: float, noise_type: str, generator: Optional[torch.Generator] = None
) -> Tensor:
    """z ~ U(-eps, eps) or N(0, eps^2) like ``like``, drawn in fp32 from the default generator of its device
    (fairseq reseeds it every update, so a resumed run draws the same noise); eps = 0 gives exact zeros."""
    if eps == 0:
        return torch.zeros_like(like)
    noise = torch.empty(like.shape, device=like.device, dtype=torch.float32)
    if noise_type == "uniform":
        noise.uniform_(-eps, eps, generator=generator)
    elif noise_type == "normal":
        noise.normal_(0.0, eps, generator=generator)
    else:
        check_noise_args(eps, noise_type)  # raises, naming the flag
    return noise.to(like.dtype)


@dataclass
class NoiseRecord:
    """What the hook did in one perturbed pass. ``changed``/``elements`` count the entries the perturbation altered,
    for fp16/bf16 embeddings only, where a 1e-5 noise often rounds away (a tensor: no host-device synchronisation)."""

    applications: int = 0
    changed: Optional[Tensor] = None
    elements: int = 0


@contextlib.contextmanager
def perturbed_token_embeddings(
    embedding: nn.Module,
    scope: nn.Module,
    perturb: Callable[[Tensor], Tensor],
    rows: Optional[Callable[[], slice]] = None,
) -> Iterator[NoiseRecord]:
    """Within the block, every call of ``embedding`` inside a forward of ``scope`` (the encoder: a decoder sharing the
    matrix stays clean) returns ``perturb(embeddings)``, only on the batch ``rows()`` if given. On exit, raises if
    the perturbation never reached the model."""
    record = NoiseRecord()
    inside_scope = [False]

    def enter_scope(module, args):
        inside_scope[0] = True

    def leave_scope(module, args, output):
        inside_scope[0] = False

    def apply(module, args, output):
        if not inside_scope[0]:
            return None
        chosen = rows() if rows is not None else slice(None)
        original = output[chosen]
        changed_part = perturbed = perturb(original)
        if rows is not None:  # the other rows unchanged
            perturbed = torch.cat([output[: chosen.start], changed_part, output[chosen.stop :]], dim=0)
        record.applications += 1
        if output.dtype in (torch.float16, torch.bfloat16):
            changed = (changed_part != original).sum()
            record.changed = changed if record.changed is None else record.changed + changed
            record.elements += original.numel()
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


def _add_noise(eps: float, noise_type: str, generator: Optional[torch.Generator] = None) -> Callable[[Tensor], Tensor]:
    return lambda embeddings: embeddings + sample_embedding_noise(embeddings, eps, noise_type, generator)


def noised_token_embeddings(
    embedding: nn.Module, scope: nn.Module, eps: float, noise_type: str, generator: Optional[torch.Generator] = None
):
    """``perturbed_token_embeddings`` with fresh R3F noise z at every call: x -> x + z."""
    return perturbed_token_embeddings(embedding, scope, _add_noise(eps, noise_type, generator))


class DropoutReplay:
    """The same dropout masks in a second forward pass: the CPU and the CUDA ``device``'s random states, taken before
    the first pass, restored before the second, whose noise comes from a generator of its own (seeded from the stream
    before the first pass) so that drawing it does not shift the masks, and a reseeded run draws it again."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.noise_seed = device, int(torch.randint(2**62, ()))
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def replay(self) -> torch.Generator:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
        return torch.Generator(device=self.device).manual_seed(self.noise_seed)


@dataclass
class BothPasses:
    """The clean and the noised copy's first output (logits) and the noised copy's noise record."""

    clean: Optional[Tensor] = None
    noised: Optional[Tensor] = None
    record: Optional[NoiseRecord] = None


@contextlib.contextmanager
def both_passes_in_one_forward(
    model: nn.Module, embedding: nn.Module, scope: nn.Module, eps: float, noise_type: str
) -> Iterator[BothPasses]:
    """R3F's two passes as one call of ``model`` on its batched arguments concatenated with themselves, the noise on
    the second copy only; the caller gets the first copy's output (its loss is the clean pass's). The objective is
    the two-pass form's only where randomness is drawn per element (dropout): the caller must refuse LayerDrop and
    quant-noise, drawn once per forward. A second call of ``model`` inside the block is an error."""
    both = BothPasses()
    batch: List[int] = []

    def before(module, args, kwargs):
        if batch:
            raise RuntimeError("both_passes_in_one_forward: the model was called more than once inside the block")
        first = next((v for v in list(args) + list(kwargs.values()) if torch.is_tensor(v) and v.dim()), None)
        if first is None:
            raise ValueError("both_passes_in_one_forward: the model was called without a batched tensor argument")
        size = first.shape[0]
        batch.append(size)

        def twice(value):
            batched = torch.is_tensor(value) and value.dim() and value.shape[0] == size
            return torch.cat([value, value], dim=0) if batched else value

        return tuple(twice(a) for a in args), {k: twice(v) for k, v in kwargs.items()}

    def after(module, args, kwargs, output):
        first = output[0] if isinstance(output, (tuple, list)) else output
        size = batch[0]
        both.clean, both.noised = first[:size], first[size:]
        if isinstance(output, (tuple, list)):
            return type(output)([both.clean, *output[1:]])
        return both.clean

    handles = [
        model.register_forward_pre_hook(before, with_kwargs=True),
        model.register_forward_hook(after, with_kwargs=True),
    ]
    try:
        with perturbed_token_embeddings(
            embedding, scope, _add_noise(eps, noise_type), rows=lambda: slice(batch[0], 2 * batch[0])
        ) as rec:
            yield both
    finally:
        for handle in handles:
            handle.remove()
    both.record = rec
