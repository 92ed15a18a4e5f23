"""R-Drop (Liang et al., 2021) for sentence classification and regression: fairseq's ``sentence_prediction`` run
twice, each pass with its own dropout masks, + alpha * R-Drop's term (``rxf.kl.rdrop_term``), logged unweighted per
sentence as ``rdrop_kl`` (in nats; in label units squared with ``--regression-target``)."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion

from rxf.kl import rdrop_term
from rxf_fairseq.criterions.r3f_common import RDropConfig, RDropCriterion
from rxf_fairseq.criterions.sentence_prediction_consistency import (
    RXFSentencePredictionConsistency,
    RXFSentencePredictionOptions,
)
from rxf_fairseq.model_parts import classification_head


@dataclass
class RXFSentencePredictionRDropConfig(RXFSentencePredictionOptions, RDropConfig):
    pass


@register_criterion("sentence_prediction_rdrop", dataclass=RXFSentencePredictionRDropConfig)
class RXFSentencePredictionRDropCriterion(RDropCriterion, RXFSentencePredictionConsistency):
    """loss = CE(P1) + CE(P2) + alpha * sum over sentences of 1/2 (KL(P1||P2) + KL(P2||P1)), P1 and P2 the head's
    distributions in two dropout passes, the trainer's division by the sentences of one pass making it R-Drop's
    per-sentence mean. Regression heads: the two passes' squared errors + alpha * sum of (y1 - y2)^2."""

    criterion_name = "sentence_prediction_rdrop"

    def __init__(self, cfg: RXFSentencePredictionRDropConfig, task):
        super().__init__(cfg, task)
        self.set_rdrop_options(cfg)

    def check_model(self, model) -> None:
        """The classification head alone: no noise, so any encoder will do."""
        classification_head(model, self.classification_head_name, f"--criterion {self.criterion_name}")

    def consistency_term(self, model, sample, sample_size, logits_1, logits_2):
        return rdrop_term(logits_1, logits_2, regression=self.regression_target), "rdrop_kl"
