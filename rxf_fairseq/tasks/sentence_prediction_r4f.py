"""R4F's model side: fairseq's ``sentence_prediction`` task with every linear layer of the classification head
spectrally normalised (``rxf.spectral_norm``). The task's ``build_model``, not the criterion, makes the swap: it runs
before a checkpoint is loaded, so a resumed or evaluated model reads back the power-iteration vectors it trained with.
"""

import logging
from dataclasses import dataclass, field

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from rxf.spectral_norm import effective_spectral_norms, spectrally_normalise_head
from rxf_fairseq.model_parts import classification_head, require_classification_arch

logger = logging.getLogger(__name__)


@dataclass
class RXFSentencePredictionTaskConfig(SentencePredictionConfig):
    """fairseq's sentence_prediction task options, unchanged, with the help text fairseq leaves out."""

    no_shuffle: bool = field(
        default=False,
        metadata={
            "help": "keep the examples in file order instead of one seeded permutation at load "
            "time (batches are still shuffled every epoch)"
        },
    )


def spectrally_normalise_classification_head(model, head_name: str) -> None:
    head = classification_head(model, head_name, "--task sentence_prediction_r4f", "spectrally normalises")
    layers = spectrally_normalise_head(head)
    logger.info(
        "R4F: spectrally normalised %s of head %r; largest singular values %s",
        ", ".join(layers),
        head_name,
        {k: round(v, 4) for k, v in effective_spectral_norms(head).items()},
    )


@register_task("sentence_prediction_r4f", dataclass=RXFSentencePredictionTaskConfig)
class RXFSentencePredictionR4FTask(SentencePredictionTask):
    """``--task sentence_prediction`` whose classification head has every linear layer spectrally
    normalised (fairseq's ``--spectral-norm-classification-head`` only does ``out_proj``)."""

    def build_model(self, cfg, from_checkpoint=False):
        require_classification_arch(cfg, "sentence_prediction_r4f", self.cfg.classification_head_name)
        model = super().build_model(cfg, from_checkpoint)
        spectrally_normalise_classification_head(model, self.cfg.classification_head_name)
        return model
