"""R4F's model side: fairseq's ``sentence_prediction`` task with a 1-Lipschitz classification head.

Spectral normalisation changes the head's parameters (``weight`` -> ``weight_orig`` + power-iteration
buffers), so it must be in place when the model is built, before checkpoints are loaded and the
optimizer is created; that is the task's ``build_model``, not the criterion.
"""

import logging

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from rxf_fairseq.spectral_norm import effective_spectral_norms, spectrally_normalise_head

logger = logging.getLogger(__name__)


def spectrally_normalise_classification_head(model, head_name: str) -> None:
    heads = getattr(model, "classification_heads", None)
    if heads is None or head_name not in heads:
        raise ValueError(
            f"--task sentence_prediction_r4f spectrally normalises the classification head "
            f"{head_name!r} (--classification-head-name), but {type(model).__name__} has "
            f"{'no classification heads' if heads is None else 'only ' + str(sorted(heads.keys()))}"
        )
    layers = spectrally_normalise_head(heads[head_name])
    norms = effective_spectral_norms(heads[head_name])
    logger.info(
        "R4F: spectrally normalised %s of head %r; largest singular values %s",
        ", ".join(layers), head_name, {k: round(v, 4) for k, v in norms.items()},
    )


@register_task("sentence_prediction_r4f", dataclass=SentencePredictionConfig)
class RXFSentencePredictionR4FTask(SentencePredictionTask):
    """``--task sentence_prediction`` whose classification head has every linear layer spectrally
    normalised (fairseq's ``--spectral-norm-classification-head`` only does ``out_proj``)."""

    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        spectrally_normalise_classification_head(model, self.cfg.classification_head_name)
        return model
