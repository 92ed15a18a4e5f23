"""SMART (Jiang et al., 2019) as a baseline: the perturbation is pushed towards the largest KL by
projected gradient ascent before the consistency term is taken, as in namisan/mt-dnn's
``SmartPerturbation`` (noise N(0, sigma^2) on the token embeddings, per-token normalised ascent
direction, step size eta, symmetric KL weighted by lambda).

Differences from mt-dnn, all deliberate: the ascent maximises the symmetric KL (mt-dnn: one-sided
KL); steps accumulate onto the initial noise (delta <- delta + eta * direction), so ``--smart-steps 0``
is exactly R3F with normal noise of scale sigma, and S > 1 is supported; the final term is the full
symmetric KL with gradients through both passes, as our R3F.
"""

from dataclasses import dataclass, field

import torch
from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import SentencePredictionCriterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from rxf_fairseq.criterions.r3f_common import (add_consistency_term, check_nonnegative_finite, log_noise_audit,
                                               log_task_loss, stock_forward)
from rxf_fairseq.criterions.sentence_prediction_r3f import (RXFSentencePredictionOptions,
                                                            RXFSentencePredictionR3FCriterion,
                                                            require_classification_task)
from rxf.kl import squared_prediction_change, symmetric_kl
from rxf.noise import perturbed_token_embeddings, sample_embedding_noise

SMART_NORMS = ("inf", "l2", "l1")


@dataclass
class SMARTOptions(FairseqDataclass):
    smart_lambda: float = field(default=1.0, metadata={"help": "weight of the adversarial symmetric KL"})
    smart_noise_var: float = field(
        default=1e-5, metadata={"help": "sigma of the initial noise N(0, sigma^2) (mt-dnn's noise_var)"}
    )
    smart_steps: int = field(default=1, metadata={"help": "S, projected gradient-ascent steps; 0 = R3F-style"})
    smart_step_size: float = field(default=1e-3, metadata={"help": "eta, the ascent step size"})
    smart_norm: ChoiceEnum(list(SMART_NORMS)) = field(
        default="inf", metadata={"help": "norm whose unit ball the per-token ascent direction is projected on"}
    )
    smart_epsilon: float = field(default=1e-6, metadata={"help": "added to the norm when normalising"})


@dataclass
class RXFSentencePredictionSMARTConfig(RXFSentencePredictionOptions, SMARTOptions):
    pass


def ascent_direction(grad: torch.Tensor, norm: str, epsilon: float) -> torch.Tensor:
    """The per-token steepest-ascent direction under ``norm`` (mt-dnn's ``_norm_grad``)."""
    if norm == "l2":
        return grad / (grad.norm(dim=-1, keepdim=True) + epsilon)
    if norm == "l1":
        return grad.sign()
    return grad / (grad.abs().amax(dim=-1, keepdim=True) + epsilon)


@register_criterion("sentence_prediction_smart", dataclass=RXFSentencePredictionSMARTConfig)
class RXFSentencePredictionSMARTCriterion(RXFSentencePredictionR3FCriterion):
    """fairseq's sentence_prediction loss + lambda * sum over sentences of KL_S(g.f(x) || g.f(x + delta_S)),
    delta_0 ~ N(0, sigma^2), delta_s = delta_(s-1) + eta * direction(grad KL_S at delta_(s-1)).
    Cost: 1 + S + 1 forwards and S + 1 backwards per update.

    The term is logged as ``smart_symm_kl`` (``smart_sq_err`` for regression), per sentence in nats like
    R3F's ``symm_kl``, so a log never mixes up the two methods' terms."""

    criterion_name = "sentence_prediction_smart"

    def __init__(self, cfg: RXFSentencePredictionSMARTConfig, task):
        require_classification_task(task, self.criterion_name, cfg.classification_head_name)
        SentencePredictionCriterion.__init__(self, cfg, task)
        self.check_options(cfg)
        self.smart_lambda = cfg.smart_lambda
        self.noise_var = cfg.smart_noise_var
        self.steps = cfg.smart_steps
        self.step_size = cfg.smart_step_size
        self.norm = str(cfg.smart_norm)
        self.norm_epsilon = cfg.smart_epsilon
        self._checked_model = None

    @classmethod
    def check_options(cls, cfg: RXFSentencePredictionSMARTConfig) -> None:
        """The start-up checks of the options alone (no task, no model): ``rxf-run --dry-run`` runs them."""
        for flag, value in (("--smart-lambda", cfg.smart_lambda), ("--smart-noise-var", cfg.smart_noise_var),
                            ("--smart-steps", cfg.smart_steps), ("--smart-step-size", cfg.smart_step_size),
                            ("--smart-epsilon", cfg.smart_epsilon)):
            check_nonnegative_finite(flag, value)

    def _consistency(self, clean, perturbed):
        if self.regression_target:
            return squared_prediction_change(clean, perturbed), "smart_sq_err"
        return symmetric_kl(clean, perturbed), "smart_symm_kl"

    def forward(self, model, sample, reduce=True):
        self._check_model(model)
        stock = lambda *args: SentencePredictionCriterion.forward(self, *args)  # noqa: E731
        if self.smart_lambda == 0:
            loss, sample_size, logging_output = stock(model, sample, reduce)
            return loss, sample_size, log_task_loss(logging_output)
        loss, sample_size, logging_output, clean = stock_forward(stock, model, sample, reduce, self.criterion_name)
        log_task_loss(logging_output)
        if clean is None:
            return loss, sample_size, logging_output
        clean_logits = clean[0]

        delta = [None]

        def add_delta(embeddings):
            if delta[0] is None:  # delta_0, drawn exactly as R3F's normal noise
                delta[0] = sample_embedding_noise(embeddings, self.noise_var, "normal").requires_grad_()
            return embeddings + delta[0]

        def run(net):
            return net(**sample["net_input"], features_only=True, classification_head_name=self.classification_head_name)[0]

        # The ascent runs on the bare model: only delta needs gradients, and a DDP wrapper must
        # see exactly the forward passes whose parameter gradients it will reduce.
        bare = model
        while hasattr(bare, "module"):
            bare = bare.module
        for _ in range(self.steps):
            with torch.enable_grad(), perturbed_token_embeddings(bare, add_delta):
                adversarial = run(bare)
            kl, _ = self._consistency(clean_logits.detach(), adversarial)
            (grad,) = torch.autograd.grad(kl, delta[0])
            step = self.step_size * ascent_direction(grad.float(), self.norm, self.norm_epsilon)
            delta[0] = (delta[0].detach() + step.to(delta[0].dtype)).requires_grad_()

        if delta[0] is not None:
            delta[0] = delta[0].detach()
        with perturbed_token_embeddings(model, add_delta) as record:
            adversarial = run(model)
        log_noise_audit(logging_output, record)
        term, key = self._consistency(clean_logits, adversarial)
        loss = add_consistency_term(loss, logging_output, self.smart_lambda, term, key)
        return loss, sample_size, logging_output
