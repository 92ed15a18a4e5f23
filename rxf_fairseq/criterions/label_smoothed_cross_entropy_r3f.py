"""R3F for sequence-to-sequence models (BART summarisation): label-smoothed CE + lambda * KL_S."""

from dataclasses import dataclass, field

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)
from fairseq.dataclass import ChoiceEnum

from rxf_fairseq.capture import captured_outputs, single_output
from rxf_fairseq.criterions.r3f_common import (R3FConfig, check_r3f_args, log_noise_audit, noised_forward,
                                               reduce_r3f_metrics)
from rxf_fairseq.kl import symmetric_kl
from rxf_fairseq.noise import NOISE_TYPES, find_encoder_token_embedding


@dataclass
class RXFLabelSmoothedCrossEntropyR3FConfig(LabelSmoothedCrossEntropyCriterionConfig, R3FConfig):
    noise_type: ChoiceEnum(list(NOISE_TYPES)) = field(
        default="normal", metadata={"help": "distribution of the embedding noise"}
    )


@register_criterion(
    "label_smoothed_cross_entropy_r3f", dataclass=RXFLabelSmoothedCrossEntropyR3FConfig
)
class RXFLabelSmoothedCrossEntropyR3FCriterion(LabelSmoothedCrossEntropyCriterion):
    """loss = fairseq's label_smoothed_cross_entropy + lambda * sample_size * KL_S / nsentences,
    where KL_S sums the symmetric KL of the decoder's output distributions over every non-padding
    target position. Without padding this is exactly the reference's term; the reference also sums
    over padding positions, whose distributions carry no training signal.
    """

    def __init__(self, cfg: RXFLabelSmoothedCrossEntropyR3FConfig, task):
        super().__init__(
            task,
            cfg.sentence_avg,
            cfg.label_smoothing,
            ignore_prefix_size=cfg.ignore_prefix_size,
            report_accuracy=cfg.report_accuracy,
        )
        check_r3f_args(cfg.eps, cfg.r3f_lambda, cfg.noise_type)
        self.noise_eps = cfg.eps  # not self.eps: fairseq's label-smoothed CE uses that name
        self.r3f_lambda = cfg.r3f_lambda
        self.noise_type = str(cfg.noise_type)
        self.fast_r3f = cfg.fast_r3f
        self._checked_model = None

    def forward(self, model, sample, reduce=True):
        if self._checked_model is not model:
            try:
                find_encoder_token_embedding(model)
            except ValueError as error:
                raise ValueError(f"--criterion label_smoothed_cross_entropy_r3f: {error}") from None
            self._checked_model = model
        with captured_outputs(model) as outputs:
            loss, sample_size, logging_output = super().forward(model, sample, reduce)
        if not (model.training and self.r3f_lambda > 0):
            return loss, sample_size, logging_output
        clean_logits = single_output(outputs, "label_smoothed_cross_entropy_r3f")[0]

        (noised_logits, _), record = noised_forward(
            model, lambda: model(**sample["net_input"]), self.noise_eps, self.noise_type, self.fast_r3f
        )
        log_noise_audit(logging_output, record)
        target = model.get_targets(sample, None)
        symm_kl = symmetric_kl(clean_logits, noised_logits, mask=target.ne(self.padding_idx))
        symm_kl = symm_kl * sample_size / target.size(0)
        loss = loss + self.r3f_lambda * symm_kl
        logging_output["loss"] = loss.data
        logging_output["symm_kl"] = symm_kl.data
        return loss, sample_size, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        reduce_r3f_metrics(logging_outputs)
