"""SMART (Jiang et al., 2019) as a baseline: the perturbation of R3F's consistency term is pushed towards the
largest term by gradient ascent first (``rxf/smart.py``: mt-dnn's ``SmartPerturbation``); the final term is
the full symmetric KL with gradients through both passes, as our R3F's.
"""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from rxf.smart import SMART_NORMS, SmartAscent, adversarial_forward
from rxf_fairseq.criterions.r3f_common import check_nonnegative_finite
from rxf_fairseq.criterions.sentence_prediction_consistency import (
    RXFSentencePredictionConsistency,
    RXFSentencePredictionOptions,
)
from rxf_fairseq.model_parts import find_encoder_token_embedding


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


@register_criterion("sentence_prediction_smart", dataclass=RXFSentencePredictionSMARTConfig)
class RXFSentencePredictionSMARTCriterion(RXFSentencePredictionConsistency):
    """fairseq's sentence_prediction loss + lambda * sum over sentences of KL_S(g.f(x) || g.f(x + delta_S)),
    delta_0 ~ N(0, sigma^2), delta_s = delta_(s-1) + eta * direction(grad KL_S at delta_(s-1)).
    Cost: 1 + S + 1 forwards and S + 1 backwards per update.

    The term is logged as ``smart_symm_kl`` (``smart_sq_err`` for regression), per sentence in nats like
    R3F's ``symm_kl``, so a log never mixes up the two methods' terms."""

    criterion_name = "sentence_prediction_smart"
    consistency_keys = ("smart_symm_kl", "smart_sq_err")

    def __init__(self, cfg: RXFSentencePredictionSMARTConfig, task):
        super().__init__(cfg, task)
        self.check_options(cfg)
        self.consistency_weight = cfg.smart_lambda
        self.ascent = SmartAscent(
            noise_var=cfg.smart_noise_var,
            steps=cfg.smart_steps,
            step_size=cfg.smart_step_size,
            norm=str(cfg.smart_norm),
            epsilon=cfg.smart_epsilon,
        )

    @classmethod
    def check_options(cls, cfg: RXFSentencePredictionSMARTConfig) -> None:
        """The start-up checks of the options alone (no task, no model): ``rxf-run --dry-run`` runs them."""
        for flag, value in (
            ("--smart-lambda", cfg.smart_lambda),
            ("--smart-noise-var", cfg.smart_noise_var),
            ("--smart-steps", cfg.smart_steps),
            ("--smart-step-size", cfg.smart_step_size),
            ("--smart-epsilon", cfg.smart_epsilon),
        ):
            check_nonnegative_finite(flag, value)

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
