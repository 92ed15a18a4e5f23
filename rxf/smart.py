"""SMART (Jiang et al., 2020, arXiv 1911.03437), the adversarial baseline of the paper's Table 2, as published:

1. smoothness-inducing adversarial regularisation: lambda_s * l_s(f(x), f(x + delta)), delta_0 ~ N(0, sigma^2), then
   T_x~ steps of ``delta <- Proj_{||delta||_p <= eps}(delta + eta * g / ||g||_p)``, norms per example
   (``SmartAscent``, ``adversarial_forward``);
2. Bregman proximal point: + mu * l_s(f(x; theta), f(x; theta~)), theta~ a momentum teacher (``MomentumTeacher``).

namisan/mt-dnn's ``SmartPerturbation`` (direction per token, no projection) is ``style="mt-dnn"``, for comparison.
delta_0 is drawn exactly as R3F's normal noise, so T_x~ = 0 is R3F with normal noise of scale sigma (docs/plugin.md)."""

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn

from rxf.noise import NoiseRecord, perturbed_token_embeddings, sample_embedding_noise

ASCENT_STYLES = ("smart", "mt-dnn")
SMART_NORMS = ("inf", "l2")  # the balls the published ascent projects onto
MTDNN_NORMS = ("inf", "l2", "l1")  # mt-dnn's norm_p


def example_norm(t: Tensor, norm: str) -> Tensor:
    """The ``norm`` ("inf" or "l2") of each example's slice of ``t``, shaped ``(batch, 1, ..., 1)`` to broadcast
    back onto ``t``."""
    flat = t.reshape(t.shape[0], -1)  # one row per example (the first dimension)
    value = flat.abs().amax(dim=1) if norm == "inf" else flat.norm(dim=1)
    return value.reshape(-1, *([1] * (t.dim() - 1)))


def project(delta: Tensor, norm: str, radius: float) -> Tensor:
    """Each example's delta projected onto the ``norm`` ball of ``radius`` (inf: clamped element-wise; l2:
    scaled down to the sphere when outside)."""
    if norm == "inf":
        return delta.clamp(-radius, radius)
    length = example_norm(delta, "l2")
    return delta * torch.clamp(radius / length.clamp_min(torch.finfo(delta.dtype).tiny), max=1.0)


def ascent_direction(grad: Tensor, norm: str, epsilon: float, per: str = "example") -> Tensor:
    """The steepest-ascent direction under ``norm``: the gradient divided by its norm (plus ``epsilon``), per
    example (SMART) or per token (mt-dnn's ``_norm_grad``; its l1 is the sign)."""
    if per == "token":
        if norm == "l2":
            return grad / (grad.norm(dim=-1, keepdim=True) + epsilon)
        if norm == "l1":
            return grad.sign()
        return grad / (grad.abs().amax(dim=-1, keepdim=True) + epsilon)
    return grad / (example_norm(grad, norm) + epsilon)


@dataclass(frozen=True)
class SmartAscent:
    """How delta is found: ``sigma`` of delta_0, ``steps`` (T_x~) of size ``step_size`` (eta), the ``norm`` of the
    direction and of the ball of ``radius`` (eps), the ``epsilon`` added to the gradient's norm, and the ``style``
    ("smart" as published, or "mt-dnn": per-token direction, no projection)."""

    sigma: float
    steps: int
    step_size: float
    norm: str
    radius: float = 1e-5
    epsilon: float = 1e-6
    style: str = "smart"

    def __post_init__(self) -> None:
        if self.style not in ASCENT_STYLES:
            raise ValueError(f"SMART ascent style {self.style!r}: expected one of {', '.join(ASCENT_STYLES)}")
        norms = SMART_NORMS if self.style == "smart" else MTDNN_NORMS
        if self.norm not in norms:
            raise ValueError(
                f"SMART norm {self.norm!r} with the {self.style} ascent: expected one of {', '.join(norms)}"
                + (" (l1 is mt-dnn's only)" if self.norm == "l1" else "")
            )

    def step(self, delta: Tensor, grad: Tensor) -> Tensor:
        """delta_s from delta_(s-1) and the term's gradient there, in fp32, detached (each pass is a new graph)."""
        per = "token" if self.style == "mt-dnn" else "example"
        moved = delta.detach().float() + self.step_size * ascent_direction(grad.float(), self.norm, self.epsilon, per)
        if self.style == "smart":
            moved = project(moved, self.norm, self.radius)
        return moved.to(delta.dtype)


def unwrapped(model: nn.Module) -> nn.Module:
    """The module inside DDP-style wrappers (``.module``: torch's DistributedDataParallel and proxies around it)."""
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
    """``run(model)`` with the token embeddings perturbed by delta_S, and the final pass's noise record; the ascent
    increases ``objective(output)``. The ascent passes run on the model inside any DDP wrapper (only delta needs their
    gradients, and DDP must see exactly the passes whose gradients it reduces); the final pass keeps its graph."""
    delta = None

    def add_delta(embeddings: Tensor) -> Tensor:
        nonlocal delta
        if delta is None:  # delta_0, drawn exactly as R3F's normal noise
            delta = sample_embedding_noise(embeddings, ascent.sigma, "normal").requires_grad_()
        return embeddings + delta

    bare = unwrapped(model)
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


def _key(name: str) -> str:
    return name.replace(".", "__")  # a parameter's name may not hold a dot


class MomentumTeacher(nn.Module):
    """theta~: fp32 copies of a model's parameters and the count of updates absorbed, frozen parameters so that they
    are saved in the state_dict (fairseq saves a criterion's) and a resumed run continues exactly. ``absorb`` once
    per update: first theta_0, then theta~ <- beta_t theta~ + (1 - beta_t) theta_t, beta_t = ``beta_start`` for the
    first ``start_fraction`` of ``total_updates`` (0: ``beta`` always)."""

    def __init__(
        self, beta: float = 0.999, beta_start: float = 0.99, start_fraction: float = 0.1, total_updates: int = 0
    ):
        super().__init__()
        for name, value in (("beta", beta), ("beta_start", beta_start)):
            if not (math.isfinite(value) and 0 <= value < 1):
                raise ValueError(f"SMART momentum {name} must be in [0, 1), got {value!r}")
        if not (math.isfinite(start_fraction) and 0 <= start_fraction <= 1):
            raise ValueError(f"SMART momentum start fraction must be in [0, 1], got {start_fraction!r}")
        self.beta, self.beta_start, self.start_fraction = beta, beta_start, start_fraction
        self.total_updates = max(0, int(total_updates))
        self.copies = nn.ParameterDict()
        self.absorbed = nn.Parameter(torch.zeros((), dtype=torch.long), requires_grad=False)
        self._count = 0  # ``absorbed`` on the host: reading the tensor every update would synchronise with a GPU
        self._matched = None  # the model the copies were last checked against (checked once per model)

    def beta_at(self, t: int) -> float:
        """beta for the t-th update absorbed after theta_0 (t >= 1)."""
        if self.total_updates and t <= self.start_fraction * self.total_updates:
            return self.beta_start
        return self.beta

    def _check_matches(self, model: nn.Module, params: List[Tuple[str, nn.Parameter]]) -> None:
        """Copies loaded from a state_dict are checked against the model's parameters once per model."""
        if self._matched is model:
            return
        have = {key: tuple(value.shape) for key, value in self.copies.items()}
        want = {_key(name): tuple(p.shape) for name, p in params}
        if have != want:
            differ = sorted(key for key in have.keys() | want.keys() if have.get(key) != want.get(key))
            raise ValueError(
                "the SMART teacher restored from the checkpoint does not match the model "
                f"(missing, extra or another shape: {differ[:3]})"
            )
        object.__setattr__(self, "_matched", model)  # not as a submodule: the model is not the teacher's

    @torch.no_grad()
    def absorb(self, model: nn.Module) -> None:
        bare = unwrapped(model)
        params = list(bare.named_parameters())
        if self._count == 0 and not len(self.copies):
            for name, p in params:
                self.copies[_key(name)] = nn.Parameter(p.detach().float().clone(), requires_grad=False)
            self.absorbed.fill_(1)
            self._count = 1
            object.__setattr__(self, "_matched", bare)
            return
        self._check_matches(bare, params)
        beta = self.beta_at(self._count)
        for name, p in params:
            copy = self.copies[_key(name)]
            copy.mul_(beta).add_(p.detach().float(), alpha=1.0 - beta)
        self.absorbed.add_(1)
        self._count += 1

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """The model's parameters hold theta~ (cast to their dtype) inside the block, their own values after."""
        bare = unwrapped(model)
        params = list(bare.named_parameters())
        self._check_matches(bare, params)
        saved: Dict[str, Tensor] = {}
        try:
            for name, p in params:
                saved[name] = p.data
                p.data = self.copies[_key(name)].detach().to(device=p.device, dtype=p.dtype)
            yield
        finally:
            for name, p in params:
                if name in saved:
                    p.data = saved[name]

    @torch.no_grad()
    def outputs(self, model: nn.Module, run: Callable[[nn.Module], Tensor]) -> Tensor:
        """``run(model)`` with theta~ in place of the parameters, in evaluation mode (no dropout)."""
        bare = unwrapped(model)
        was_training = bare.training
        bare.eval()
        try:
            with self.swapped_in(bare):
                return run(bare)
        finally:
            bare.train(was_training)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # Copies exist only once a model is absorbed: make them from the checkpoint's, so that a fresh teacher loads.
        start = prefix + "copies."
        for key in [k for k in state_dict if k.startswith(start)]:
            name = key[len(start) :]
            if name not in self.copies:
                value = state_dict[key]
                self.copies[name] = nn.Parameter(
                    torch.empty(value.shape, dtype=torch.float32, device=self.absorbed.device), requires_grad=False
                )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._matched = None  # new copies: check them against the next model seen
        self._count = int(self.absorbed)  # one read, at loading
