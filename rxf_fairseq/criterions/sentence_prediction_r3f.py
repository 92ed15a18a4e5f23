"""R3F for sentence classification and regression: fairseq's ``sentence_prediction`` + lambda * KL_S."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import (
    SentencePredictionConfig,
    SentencePredictionCriterion,
)

from rxf_fairseq.criterions.r3f_common import (R3FConfig, add_consistency_term, log_noise_audit,
                                               noised_forward, reduce_r3f_metrics, require_encoder_embedding,
                                               set_r3f_options, stock_forward)
from rxf_fairseq.kl import squared_prediction_change, symmetric_kl


@dataclass
class RXFSentencePredictionR3FConfig(SentencePredictionConfig, R3FConfig):
    pass


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
        super().__init__(cfg, task)
        set_r3f_options(self, cfg)
        self._checked_model = None

    def _check_model(self, model) -> None:
        if self._checked_model is model:
            return
        heads = getattr(model, "classification_heads", None)
        if heads is None or self.classification_head_name not in heads:
            raise ValueError(
                f"--criterion {self.criterion_name} needs a model with the classification head "
                f"--classification-head-name {self.classification_head_name!r}; "
                f"{type(model).__name__} has {sorted(heads.keys()) if heads is not None else 'no heads'}"
            )
        require_encoder_embedding(model, self.criterion_name)
        self._checked_model = model

    def forward(self, model, sample, reduce=True):
        self._check_model(model)
        if self.r3f_lambda == 0:  # standard fine-tuning: no second pass at all
            return super().forward(model, sample, reduce)
        loss, sample_size, logging_output, clean = stock_forward(super().forward, model, sample, reduce,
                                                                 self.criterion_name)
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
