"""R3F for sentence classification and regression: fairseq's ``sentence_prediction`` + lambda * KL_S."""

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

from fairseq.criterions import register_criterion

from rxf_fairseq.criterions.r3f_common import R3FConfig, R3FCriterion
from rxf_fairseq.criterions.sentence_prediction_consistency import (
    RXFSentencePredictionConsistency,
    RXFSentencePredictionOptions,
)

# The paper's lambda grids for this criterion (Tables 6 and 9), keyed by the configs/ folder that sweeps
# them; a test checks them against those configs' hydra.sweeper.params.
PAPER_LAMBDA_GRIDS: Dict[str, Tuple[str, Sequence[float]]] = {
    "glue": ("Table 6", (0.1, 0.5, 1.0, 5.0)),
    "xnli": ("Table 9", (0.5, 1.0, 3.0, 5.0)),
}


@dataclass
class RXFSentencePredictionR3FConfig(RXFSentencePredictionOptions, R3FConfig):
    pass


@register_criterion("sentence_prediction_r3f", dataclass=RXFSentencePredictionR3FConfig)
class RXFSentencePredictionR3FCriterion(R3FCriterion, RXFSentencePredictionConsistency):
    """loss = fairseq's sentence_prediction loss + lambda * sum over sentences of KL_S(g.f(x) || g.f(x + z)), the
    trainer's division by the sentences making lambda weigh the mean per-sentence KL, as in the reference. Regression
    heads (``--regression-target``) get lambda * sum of (y(x) - y(x + z))^2, logged as ``noise_sq_err``."""

    criterion_name = "sentence_prediction_r3f"
    consistency_keys = ("symm_kl", "noise_sq_err")

    def __init__(self, cfg: RXFSentencePredictionR3FConfig, task):
        super().__init__(cfg, task)
        self.set_r3f_options(cfg, PAPER_LAMBDA_GRIDS)
