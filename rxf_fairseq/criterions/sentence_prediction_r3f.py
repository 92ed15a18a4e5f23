"""R3F for sentence classification and regression: fairseq's ``sentence_prediction`` + lambda * KL_S."""

from dataclasses import dataclass, field
from typing import Dict, Sequence, Tuple

from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import (
    SentencePredictionConfig,
    SentencePredictionCriterion,
)
from fairseq.tasks import TASK_REGISTRY

from rxf_fairseq.criterions.r3f_common import (OptionError, R3FConfig, add_consistency_term, check_r3f_args, log_noise_audit,
                                               log_task_loss, noised_forward, reduce_r3f_metrics,
                                               require_encoder_embedding, set_r3f_options, stock_forward)
from rxf.kl import squared_prediction_change, symmetric_kl

# The paper's lambda grids for this criterion (Tables 6 and 9), keyed by the configs/ folder that sweeps
# them; a test checks them against those configs' hydra.sweeper.params.
PAPER_LAMBDA_GRIDS: Dict[str, Tuple[str, Sequence[float]]] = {
    "glue": ("Table 6", (0.1, 0.5, 1.0, 5.0)),
    "xnli": ("Table 9", (0.5, 1.0, 3.0, 5.0)),
}


@dataclass
class RXFSentencePredictionOptions(SentencePredictionConfig):
    """fairseq's sentence_prediction options, unchanged, with the help text fairseq leaves out."""

    regression_target: bool = field(
        default=False,
        metadata={"help": "regression (STS-B): the head predicts one number, trained with mean squared "
                  "error, instead of classes"},
    )
    report_mcc: bool = field(
        default=False, metadata={"help": "also report Matthews correlation (CoLA's metric) on validation"}
    )
    report_acc_and_f1: bool = field(
        default=False, metadata={"help": "also report F1 and the mean of accuracy and F1 (MRPC, QQP) on validation"}
    )
    report_pearson_and_spearman: bool = field(
        default=False,
        metadata={"help": "also report Pearson and Spearman correlations (STS-B) on validation; needs "
                  "--regression-target"},
    )


@dataclass
class RXFSentencePredictionR3FConfig(RXFSentencePredictionOptions, R3FConfig):
    pass


def require_classification_task(task, criterion_name: str, head_name: str) -> None:
    """fairseq's sentence_prediction criterion reads ``task.label_dictionary`` on construction; a task
    without one (masked_lm, translation, ...) builds no classification head, so say that, naming the
    flags, instead of fairseq's AttributeError."""
    if hasattr(task, "label_dictionary"):
        return
    name = next((n for n, cls in TASK_REGISTRY.items() if cls is type(task)), type(task).__name__)
    raise OptionError(
        f"--criterion {criterion_name} trains the classification head --classification-head-name {head_name!r}, "
        f"but --task {name} builds models without classification heads; use --task sentence_prediction "
        f"(or sentence_prediction_r4f)"
    )


@register_criterion("sentence_prediction_r3f", dataclass=RXFSentencePredictionR3FConfig)
class RXFSentencePredictionR3FCriterion(SentencePredictionCriterion):
    """loss = fairseq's sentence_prediction loss + lambda * sum over sentences of
    KL_S(g.f(x) || g.f(x + z)), gradients through both passes. The trainer divides by the number of
    sentences, so lambda weighs the mean per-sentence symmetric KL, as in the reference.

    Regression heads (``--regression-target``) have no distribution to compare; they get
    lambda * sum of (y(x) - y(x + z))^2, logged as ``noise_sq_err``.
    """

    criterion_name = "sentence_prediction_r3f"

    def __init__(self, cfg: RXFSentencePredictionR3FConfig, task):
        require_classification_task(task, self.criterion_name, cfg.classification_head_name)
        super().__init__(cfg, task)
        set_r3f_options(self, cfg, RXFSentencePredictionR3FConfig.r3f_lambda, PAPER_LAMBDA_GRIDS)
        self._checked_model = None

    @classmethod
    def check_options(cls, cfg: RXFSentencePredictionR3FConfig) -> None:
        """The start-up checks of the options alone (no task, no model): ``rxf-run --dry-run`` runs them."""
        check_r3f_args(cfg.eps, cfg.r3f_lambda, cfg.noise_type)

    def _check_model(self, model) -> None:
        if self._checked_model is model:
            return
        heads = getattr(model, "classification_heads", None)
        if heads is None or self.classification_head_name not in heads:
            raise OptionError(
                f"--criterion {self.criterion_name} needs a model with the classification head "
                f"--classification-head-name {self.classification_head_name!r}; "
                f"{type(model).__name__} has {sorted(heads.keys()) if heads is not None else 'no heads'}"
            )
        require_encoder_embedding(model, self.criterion_name)
        self._checked_model = model

    def forward(self, model, sample, reduce=True):
        self._check_model(model)
        if self.r3f_lambda == 0:  # standard fine-tuning: no second pass at all
            loss, sample_size, logging_output = super().forward(model, sample, reduce)
            return loss, sample_size, log_task_loss(logging_output)
        loss, sample_size, logging_output, clean = stock_forward(super().forward, model, sample, reduce,
                                                                 self.criterion_name)
        log_task_loss(logging_output)
        if clean is None:
            return loss, sample_size, logging_output
        clean_logits = clean[0]

        (noised_logits, _), record = noised_forward(
            model,
            lambda: model(**sample["net_input"], features_only=True,
                          classification_head_name=self.classification_head_name),
            self.noise_eps, self.noise_type, self.fast_r3f,
        )
        log_noise_audit(logging_output, record)
        if self.regression_target:
            term, key = squared_prediction_change(clean_logits, noised_logits), "noise_sq_err"
        else:
            term, key = symmetric_kl(clean_logits, noised_logits), "symm_kl"
        loss = add_consistency_term(loss, logging_output, self.r3f_lambda, term, key)
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        reduce_r3f_metrics(logging_outputs)

    def logging_outputs_can_be_summed(self) -> bool:
        # Lists of predictions (MCC, F1, Pearson reporting) cannot be summed across workers.
        return not self.keep_pred_and_targ
