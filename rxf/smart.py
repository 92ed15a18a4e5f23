"""SMART's adversarial perturbation (Jiang et al., 2019), as namisan/mt-dnn's ``SmartPerturbation``: noise
delta_0 ~ N(0, sigma^2) on the token embeddings, then S steps of gradient ascent on the consistency term,
delta_s = delta_(s-1) + eta * direction(grad at delta_(s-1)), the direction normalised per token.

Differences from mt-dnn, all deliberate: the steps accumulate onto the initial noise, so S = 0 is exactly
R3F with normal noise of scale sigma, and S > 1 is supported; the ascent increases whatever term the caller
trains on (our criterion: the symmetric KL; mt-dnn: a one-sided KL). Neither the projection onto an
eps-ball nor the Bregman proximal term of SMART (2020) is here yet; both belong in this module.
"""

from dataclasses import dataclass
from typing import Callable, Tuple

import torch
from torch import Tensor, nn

from rxf.noise import NoiseRecord, perturbed_token_embeddings, sample_embedding_noise

SMART_NORMS = ("inf", "l2", "l1")


def ascent_direction(grad: Tensor, norm: str, epsilon: float) -> Tensor:
    """The per-token steepest-ascent direction under ``norm`` (mt-dnn's ``_norm_grad``)."""
    if norm == "l2":
        return grad / (grad.norm(dim=-1, keepdim=True) + epsilon)
    if norm == "l1":
        return grad.sign()
    return grad / (grad.abs().amax(dim=-1, keepdim=True) + epsilon)


@dataclass(frozen=True)
class SmartAscent:
    """How delta is found (mt-dnn's names in brackets): sigma of delta_0 (``noise_var``), S steps, step size
    eta (``adv_step_size``), the per-token ``norm`` of the direction (``norm_p``: one of ``SMART_NORMS``) and
    the ``epsilon`` added to it."""

    noise_var: float
    steps: int
    step_size: float
    norm: str
    epsilon: float

    def step(self, delta: Tensor, grad: Tensor) -> Tensor:
        """delta_s from delta_(s-1) and the gradient of the term there, detached (each pass is a new graph);
        the direction is computed in fp32."""
        direction = ascent_direction(grad.float(), self.norm, self.epsilon)
        return delta.detach() + (self.step_size * direction).to(delta.dtype)


def _unwrapped(model: nn.Module) -> nn.Module:
    """The module inside DDP-style wrappers (``.module``: torch's DistributedDataParallel and the proxies
    around it)."""
    while hasattr(model, "module"):
        model = model.module
    return model


def adversarial_forward(
    model: nn.Module,
    run: Callable[[nn.Module], Tensor],
    embedding: nn.Module,
    scope: nn.Module,
    objective: Callable[[Tensor], Tensor],
    ascent: SmartAscent,
) -> Tuple[Tensor, NoiseRecord]:
    """``run(model)`` with the token embeddings (``embedding`` called inside ``scope``, as
    ``perturbed_token_embeddings``) perturbed by delta_S; returns that output and the final pass's record.

    ``objective(output)`` is the term the ascent increases (the consistency term against the clean output,
    detached). The ascent passes run on the model inside any DDP wrapper: only delta needs their gradients,
    and a wrapper must see exactly the forward passes whose parameter gradients it will reduce. The final
    pass runs on ``model`` itself and keeps its graph, so the term trains through it.
    """
    delta = None

    def add_delta(embeddings: Tensor) -> Tensor:
        nonlocal delta
        if delta is None:  # delta_0, drawn exactly as R3F's normal noise
            delta = sample_embedding_noise(embeddings, ascent.noise_var, "normal").requires_grad_()
        return embeddings + delta

    bare = _unwrapped(model)
    for _ in range(ascent.steps):
        with torch.enable_grad(), perturbed_token_embeddings(embedding, scope, add_delta):
            output = run(bare)
        (grad,) = torch.autograd.grad(objective(output), delta)
        delta = ascent.step(delta, grad).requires_grad_()
    if delta is not None:
        delta = delta.detach()
    with perturbed_token_embeddings(embedding, scope, add_delta) as record:
        output = run(model)
    return output, record
