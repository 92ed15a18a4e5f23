"""What the sentence-prediction criteria (R3F, SMART, R-Drop) share: fairseq's sentence_prediction options with
the help text fairseq leaves out, the checks of the task and the model, the classifier's forward pass and the
consistency term per sentence."""

from dataclasses import dataclass, field
from typing import Tuple

from fairseq.criterions.sentence_prediction import SentencePredictionConfig, SentencePredictionCriterion
from torch import Tensor

from rxf.kl import squared_prediction_change, symmetric_kl
from rxf_fairseq.criterions.r3f_common import ConsistencyCriterion
from rxf_fairseq.model_parts import classification_head, require_classification_task, require_encoder_embedding


@dataclass
class RXFSentencePredictionOptions(SentencePredictionConfig):
    regression_target: bool = field(
        default=False,
        metadata={
            "help": "regression (STS-B): the head predicts one number, trained with mean squared "
            "error, instead of classes"
        },
    )
    report_mcc: bool = field(
        default=False, metadata={"help": "also report Matthews correlation (CoLA's metric) on validation"}
    )
    report_acc_and_f1: bool = field(
        default=False, metadata={"help": "also report F1 and the mean of accuracy and F1 (MRPC, QQP) on validation"}
    )
    report_pearson_and_spearman: bool = field(
        default=False,
        metadata={
            "help": "also report Pearson and Spearman correlations (STS-B) on validation; needs --regression-target"
        },
    )


class RXFSentencePredictionConsistency(ConsistencyCriterion, SentencePredictionCriterion):
    """fairseq's sentence_prediction loss + lambda * a consistency term summed over sentences: the symmetric KL of the
    head's distributions, or the squared change of a regression head's prediction, logged as ``consistency_keys``."""

    consistency_keys: Tuple[str, str]  # (classification, regression)

    def __init__(self, cfg: RXFSentencePredictionOptions, task):
        require_classification_task(task, self.criterion_name, cfg.classification_head_name)
        super().__init__(cfg, task)

    def check_model(self, model) -> None:
        classification_head(model, self.classification_head_name, f"--criterion {self.criterion_name}")
        require_encoder_embedding(model, self.criterion_name)

    def logits(self, net, sample) -> Tensor:
        """The classifier's forward pass, as fairseq's sentence_prediction runs it."""
        return net(**sample["net_input"], features_only=True, classification_head_name=self.classification_head_name)[0]

    def consistency(self, clean: Tensor, perturbed: Tensor) -> Tuple[Tensor, str]:
        if self.regression_target:
            return squared_prediction_change(clean, perturbed), self.consistency_keys[1]
        return symmetric_kl(clean, perturbed), self.consistency_keys[0]

    def consistency_term(self, model, sample, sample_size, clean_logits, perturbed_logits) -> Tuple[Tensor, str]:
        return self.consistency(clean_logits, perturbed_logits)

    def logging_outputs_can_be_summed(self) -> bool:
        # Lists of predictions (MCC, F1, Pearson reporting) cannot be summed across workers.
        return not self.keep_pred_and_targ
