"""rxf-fairseq: R3F/R4F fine-tuning as a fairseq plugin.

``fairseq-train --user-dir rxf_fairseq`` imports this package, which registers
- ``--criterion sentence_prediction_r3f`` (classification/regression, RoBERTa, XLM-R, BART),
- ``--criterion label_smoothed_cross_entropy_r3f`` (seq2seq: BART, ``transformer``),
- ``--criterion sentence_prediction_smart`` (the SMART baseline, Jiang et al. 2019),
- ``--task sentence_prediction_r4f`` (every linear layer of the classification head spectrally
  normalised; with the R3F criterion this is R4F),
- ``--task sentence_prediction_probe`` (the paper's linear probe: frozen encoder, no encoder dropout,
  one linear layer on the sentence representation),
- ``--arch rxf_roberta`` (RoBERTa with the LayerNorm eps of an imported Hugging Face checkpoint, ``rxf-import-hf``),
and makes fairseq's checkpoint loading work on torch >= 2.6 without allowing code execution.
"""

from rxf_fairseq import checkpoint_compat
from rxf_fairseq.criterions import label_smoothed_cross_entropy_r3f, sentence_prediction_r3f, sentence_prediction_smart  # noqa: F401
from rxf_fairseq.models import rxf_roberta  # noqa: F401
from rxf_fairseq.tasks import sentence_prediction_probe, sentence_prediction_r4f  # noqa: F401

checkpoint_compat.install()

__version__ = "0.1.0"
