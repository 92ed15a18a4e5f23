"""R3F for sentence classification and regression: fairseq's ``sentence_prediction`` + lambda * KL_S."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion
from fairseq.criterions.sentence_prediction import (
    SentencePredictionConfig,
    SentencePredictionCriterion,
)

from rxf_fairseq.capture import captured_outputs, single_output
from rxf_fairseq.criterions.r3f_common import (R3FConfig, check_r3f_args, log_noise_audit, noised_forward,
                                               reduce_r3f_metrics)
from rxf_fairseq.kl import squared_prediction_change, symmetric_kl
from rxf_fairseq.noise import find_encoder_token_embedding


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

    def __init__(self, cfg: RXFSentencePredictionR3FConfig, task):
        super().__init__(cfg, task)
        check_r3f_args(cfg.eps, cfg.r3f_lambda, cfg.noise_type)
        self.noise_eps = cfg.eps  # not self.eps: fairseq's label-smoothed CE uses that name
        self.r3f_lambda = cfg.r3f_lambda
        self.noise_type = str(cfg.noise_type)
        self.fast_r3f = cfg.fast_r3f
        self._checked_model = None

    def _check_model(self, model) -> None:
        if self._checked_model is model:
            return
        heads = getattr(model, "classification_heads", None)
        if heads is None or self.classification_head_name not in heads:
            raise ValueError(
                f"--criterion sentence_prediction_r3f needs a model with the classification head "
                f"--classification-head-name {self.classification_head_name!r}; "
                f"{type(model).__name__} has {sorted(heads.keys()) if heads is not None else 'no heads'}"
            )
        try:
            find_encoder_token_embedding(model)
        except ValueError as error:
            raise ValueError(f"--criterion sentence_prediction_r3f: {error}") from None
        self._checked_model = model

    def forward(self, model, sample, reduce=True):
        self._check_model(model)
        with captured_outputs(model) as outputs:
            loss, sample_size, logging_output = super().forward(model, sample, reduce)
        if not (model.training and self.r3f_lambda > 0):
            return loss, sample_size, logging_output
        clean_logits = single_output(outputs, "sentence_prediction_r3f")[0]

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
        loss = loss + self.r3f_lambda * term
        logging_output["loss"] = loss.data
        logging_output[key] = term.data
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        reduce_r3f_metrics(logging_outputs)

    def logging_outputs_can_be_summed(self) -> bool:
        # Lists of predictions (MCC, F1, Pearson reporting) cannot be summed across workers.
        return not self.keep_pred_and_targ
