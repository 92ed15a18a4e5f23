"""SMART (Jiang et al., 2020) as published (``rxf/smart.py``; options: docs/plugin.md), the paper's baseline.
The teacher lives in the criterion, so fairseq saves it in every checkpoint and restores it on resume."""

import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II
from torch import nn

from rxf.smart import ASCENT_STYLES, MTDNN_NORMS, MomentumTeacher, SmartAscent, adversarial_forward
from rxf_fairseq.criterions.r3f_common import check_nonnegative_finite
from rxf_fairseq.criterions.sentence_prediction_consistency import (
    RXFSentencePredictionConsistency,
    RXFSentencePredictionOptions,
)
from rxf_fairseq.errors import OptionError
from rxf_fairseq.model_parts import find_encoder_token_embedding

logger = logging.getLogger(__name__)

# torch's DistributedDataParallel refuses a module without trainable parameters, which the teacher is; fairseq
# wraps a criterion that has parameters in its data-parallel wrapper of the chosen backend.
BACKENDS_WITHOUT_FROZEN_CRITERION = ("c10d", "pytorch_ddp", "fully_sharded")


@dataclass
class SMARTOptions(FairseqDataclass):
    """SMART's options; the defaults are the values of Jiang et al. (2020), "Implementation Details"."""

    smart_lambda: float = field(
        default=1.0, metadata={"help": "lambda_s, weight of the adversarial symmetric KL (SMART searched 1, 3, 5)"}
    )
    smart_ascent: ChoiceEnum(list(ASCENT_STYLES)) = field(
        default="smart",
        metadata={
            "help": "smart: SMART's Algorithm 1 (direction normalised per example, delta projected onto the "
            "--smart-eps ball); mt-dnn: namisan/mt-dnn's SmartPerturbation (direction normalised per token, "
            "no projection)"
        },
    )
    smart_sigma: float = field(
        default=1e-5, metadata={"help": "sigma of the initial noise delta_0 ~ N(0, sigma^2) (SMART: 1e-5)"}
    )
    smart_steps: int = field(
        default=1, metadata={"help": "ascent steps (the paper's S, SMART's T_x~; SMART: 1); 0 = R3F with normal noise"}
    )
    smart_step_size: float = field(default=1e-3, metadata={"help": "eta, the ascent step size (SMART: 1e-3)"})
    smart_eps: float = field(
        default=1e-5, metadata={"help": "eps, radius of the ball delta is projected onto (SMART: 1e-5)"}
    )
    smart_norm: ChoiceEnum(list(MTDNN_NORMS)) = field(
        default="inf",
        metadata={"help": "p of the ball and of the direction's normalisation (SMART: inf; l1: mt-dnn only)"},
    )
    smart_grad_eps: float = field(
        default=1e-6, metadata={"help": "added to the gradient's norm when normalising it (mt-dnn's adv_epsilon)"}
    )
    smart_mu: float = field(
        default=1.0,
        metadata={
            "help": "mu, weight of the Bregman proximal term KL_S(f(x; theta) || f(x; teacher)) (SMART: 1); "
            "0 = no teacher"
        },
    )
    smart_beta: float = field(
        default=0.999, metadata={"help": "momentum of the teacher after the first --smart-beta-warmup (SMART: 0.999)"}
    )
    smart_beta_start: float = field(
        default=0.99, metadata={"help": "momentum of the teacher during the first --smart-beta-warmup (SMART: 0.99)"}
    )
    smart_beta_warmup: float = field(
        default=0.1, metadata={"help": "fraction of --max-update that uses --smart-beta-start (SMART: 0.1)"}
    )
    smart_total_updates: Optional[int] = field(
        default=None,
        metadata={
            "help": "T, the updates the momentum schedule counts (default --max-update; set it when training "
            "by --max-epoch)"
        },
    )
    max_update: int = II("optimization.max_update")
    reset_optimizer: bool = II("checkpoint.reset_optimizer")
    ddp_backend: str = II("distributed_training.ddp_backend")
    distributed_world_size: int = II("distributed_training.distributed_world_size")


@dataclass
class RXFSentencePredictionSMARTConfig(RXFSentencePredictionOptions, SMARTOptions):
    pass


@register_criterion("sentence_prediction_smart", dataclass=RXFSentencePredictionSMARTConfig)
class RXFSentencePredictionSMARTCriterion(RXFSentencePredictionConsistency):
    """fairseq's sentence_prediction loss + lambda * sum over sentences of KL_S(g.f(x) || g.f(x + delta_S))
    + mu * sum over sentences of KL_S(g.f(x; theta) || g.f(x; theta~)), logged as ``smart_symm_kl``
    (``smart_sq_err`` for regression) and ``smart_bregman``. The teacher absorbs the model at the first forward after
    ``train()``, which fairseq's trainer calls once per update, however many micro-batches ``--update-freq`` gives."""

    criterion_name = "sentence_prediction_smart"
    consistency_keys = ("smart_symm_kl", "smart_sq_err")

    def __init__(self, cfg: RXFSentencePredictionSMARTConfig, task):
        super().__init__(cfg, task)
        self.check_options(cfg)
        self.consistency_weight = cfg.smart_lambda
        self.proximal_weight = cfg.smart_mu
        self.ascent = SmartAscent(
            sigma=cfg.smart_sigma,
            steps=cfg.smart_steps,
            step_size=cfg.smart_step_size,
            norm=str(cfg.smart_norm),
            radius=cfg.smart_eps,
            epsilon=cfg.smart_grad_eps,
            style=str(cfg.smart_ascent),
        )
        self.teacher = None
        if self.proximal_weight > 0:
            total = int(cfg.smart_total_updates or cfg.max_update or 0)
            if total <= 0:
                logger.warning(
                    "--criterion sentence_prediction_smart: no --max-update (or --smart-total-updates), so the "
                    "teacher's momentum is --smart-beta %g from the first update (SMART uses --smart-beta-start for "
                    "the first --smart-beta-warmup of the updates)",
                    cfg.smart_beta,
                )
            self.teacher = MomentumTeacher(cfg.smart_beta, cfg.smart_beta_start, cfg.smart_beta_warmup, total)
        self.new_run = bool(cfg.reset_optimizer)
        self._update_started = True

    @classmethod
    def check_options(cls, cfg: RXFSentencePredictionSMARTConfig) -> None:
        for flag, value in (
            ("--smart-lambda", cfg.smart_lambda),
            ("--smart-sigma", cfg.smart_sigma),
            ("--smart-steps", cfg.smart_steps),
            ("--smart-step-size", cfg.smart_step_size),
            ("--smart-eps", cfg.smart_eps),
            ("--smart-grad-eps", cfg.smart_grad_eps),
            ("--smart-mu", cfg.smart_mu),
        ):
            check_nonnegative_finite(flag, value)
        for flag, value in (("--smart-beta", cfg.smart_beta), ("--smart-beta-start", cfg.smart_beta_start)):
            if not (0 <= value < 1):
                raise OptionError(f"{flag} must be in [0, 1), got {value!r}")
        if not (0 <= cfg.smart_beta_warmup <= 1):
            raise OptionError(f"--smart-beta-warmup must be in [0, 1], got {cfg.smart_beta_warmup!r}")
        if str(cfg.smart_ascent) == "smart" and str(cfg.smart_norm) == "l1":
            raise OptionError(
                "--smart-norm l1 is mt-dnn's (--smart-ascent mt-dnn); SMART projects onto inf or l2 balls"
            )
        world = int(cfg.distributed_world_size or 1)
        if cfg.smart_mu > 0 and world > 1 and str(cfg.ddp_backend) in BACKENDS_WITHOUT_FROZEN_CRITERION:
            raise OptionError(
                f"--criterion sentence_prediction_smart keeps its teacher (--smart-mu {cfg.smart_mu:g}) in the "
                f"criterion, which --ddp-backend {cfg.ddp_backend} cannot wrap with {world} workers: use "
                "--ddp-backend legacy_ddp (or no_c10d), or --smart-mu 0"
            )

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        """A run resumed from its own checkpoint continues with the teacher saved there; a new run (--reset-optimizer)
        and a checkpoint without a teacher start the teacher from the model as loaded, at the first update."""
        saved = {k: v for k, v in (state_dict or {}).items() if k.startswith("teacher.")}
        if self.teacher is None or not saved or self.new_run:
            if saved and self.teacher is not None:
                logger.info(
                    "--reset-optimizer: the checkpoint's SMART teacher is not used; the teacher starts from "
                    "the model loaded, at the first update"
                )
            return nn.modules.module._IncompatibleKeys([], [])
        return super().load_state_dict(state_dict, strict=strict, **kwargs)

    def train(self, mode: bool = True):
        if mode:
            self._update_started = True  # the trainer's once-per-update call: the teacher absorbs at the next forward
        return super().train(mode)

    def perturbed_logits(self, model, sample, clean_logits):
        embedding, scope = find_encoder_token_embedding(model)
        return adversarial_forward(
            model,
            lambda net: self.logits(net, sample),
            embedding,
            scope,
            lambda logits: self.consistency(clean_logits.detach(), logits)[0],
            self.ascent,
        )

    def further_terms_due(self) -> bool:
        return self.teacher is not None

    def further_terms(self, model, sample, clean_logits):
        if self.teacher is None:
            return []
        if self._update_started:
            self.teacher.absorb(model)
            self._update_started = False
        teacher_logits = self.teacher.outputs(model, lambda net: self.logits(net, sample))
        term, key = self.consistency(teacher_logits.detach(), clean_logits)
        return [(self.proximal_weight, term, "smart_bregman")]
