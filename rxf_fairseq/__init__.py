"""rxf-fairseq: R3F/R4F fine-tuning as a fairseq plugin (docs/plugin.md).

``fairseq-train --user-dir rxf_fairseq`` registers the criteria, tasks and ``--arch`` imported below (each module is
named after what it registers) and makes fairseq's checkpoint loading work on torch >= 2.6 without code execution."""

from rxf_fairseq import checkpoint_compat
from rxf_fairseq.criterions import (  # noqa: F401
    label_smoothed_cross_entropy_r3f,
    label_smoothed_cross_entropy_rdrop,
    sentence_prediction_r3f,
    sentence_prediction_rdrop,
    sentence_prediction_smart,
)
from rxf_fairseq.models import rxf_roberta  # noqa: F401
from rxf_fairseq.tasks import sentence_prediction_probe, sentence_prediction_r4f  # noqa: F401

checkpoint_compat.install()

__version__ = "0.1.0"
