"""R-Drop (Liang et al., 2021) for sequence-to-sequence models: fairseq's ``label_smoothed_cross_entropy`` run twice,
each pass with its own dropout masks, + alpha * R-Drop's term over the non-padding target positions, logged unweighted
per ``sample_size`` (a target token; a sentence with ``--sentence-avg``) as ``rdrop_kl``, in nats."""

from dataclasses import dataclass

from fairseq.criterions import register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import (
    LabelSmoothedCrossEntropyCriterion,
    LabelSmoothedCrossEntropyCriterionConfig,
)

from rxf.kl import rdrop_term
from rxf_fairseq.criterions.r3f_common import RDropConfig, RDropCriterion


@dataclass
class RXFLabelSmoothedCrossEntropyRDropConfig(LabelSmoothedCrossEntropyCriterionConfig, RDropConfig):
    pass


@register_criterion("label_smoothed_cross_entropy_rdrop", dataclass=RXFLabelSmoothedCrossEntropyRDropConfig)
class RXFLabelSmoothedCrossEntropyRDropCriterion(RDropCriterion, LabelSmoothedCrossEntropyCriterion):
    """loss = LS-CE(P1) + LS-CE(P2) + alpha * sum over non-padding target tokens of 1/2 (KL(P1||P2) + KL(P2||P1)),
    as R-Drop's fairseq code (``compute_kl_loss`` with weight ``reg_alpha``): the term is not rescaled by
    ``sample_size / nsentences`` as R3F's sequence-to-sequence term is."""

    criterion_name = "label_smoothed_cross_entropy_rdrop"

    def __init__(self, cfg: RXFLabelSmoothedCrossEntropyRDropConfig, task):
        super().__init__(
            task,
            cfg.sentence_avg,
            cfg.label_smoothing,
            ignore_prefix_size=cfg.ignore_prefix_size,
            report_accuracy=cfg.report_accuracy,
        )
        self.set_rdrop_options(cfg)

    def check_model(self, model) -> None:
        """No noise to place: any model fairseq's criterion takes will do."""

    def consistency_term(self, model, sample, sample_size, logits_1, logits_2):
        prefix = self.ignore_prefix_size
        target = model.get_targets(sample, None)[:, prefix:]
        return rdrop_term(logits_1[:, prefix:], logits_2[:, prefix:], mask=target.ne(self.padding_idx)), "rdrop_kl"
