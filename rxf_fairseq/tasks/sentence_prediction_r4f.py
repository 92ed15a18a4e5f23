"""R4F's model side: fairseq's ``sentence_prediction`` task with a 1-Lipschitz classification head.

Spectral normalisation changes the head's parameters (``weight`` -> ``weight_orig`` + power-iteration
buffers), so it must be in place when the model is built, before checkpoints are loaded and the
optimizer is created; that is the task's ``build_model``, not the criterion.
"""

import logging
from dataclasses import dataclass, field

from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from rxf_fairseq.criterions.r3f_common import OptionError
from rxf.spectral_norm import effective_spectral_norms, spectrally_normalise_head

logger = logging.getLogger(__name__)


@dataclass
class RXFSentencePredictionTaskConfig(SentencePredictionConfig):
    """fairseq's sentence_prediction task options, unchanged, with the help text fairseq leaves out."""

    no_shuffle: bool = field(
        default=False,
        metadata={"help": "keep the examples in file order instead of one seeded permutation at load "
                  "time (batches are still shuffled every epoch)"},
    )


def require_classification_arch(model_cfg, task_name: str, head_name: str) -> None:
    """fairseq's sentence_prediction ``build_model`` calls ``model.register_classification_head``; an
    --arch without it (lstm_lm, transformer, ...) fails there with an AttributeError. Say so first,
    naming the flags."""
    arch = getattr(model_cfg, "_name", None) or getattr(model_cfg, "arch", None)
    model_class = ARCH_MODEL_REGISTRY.get(arch) or MODEL_REGISTRY.get(arch)
    if model_class is not None and not hasattr(model_class, "register_classification_head"):
        raise OptionError(
            f"--task {task_name} needs the classification head --classification-head-name {head_name!r}, but "
            f"--arch {arch} ({model_class.__name__}) has no classification heads; use an --arch that has them, "
            f"e.g. roberta_large (RoBERTa and XLM-R) or bart_large"
        )


def spectrally_normalise_classification_head(model, head_name: str) -> None:
    heads = getattr(model, "classification_heads", None)
    if heads is None or head_name not in heads:
        raise OptionError(
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


@register_task("sentence_prediction_r4f", dataclass=RXFSentencePredictionTaskConfig)
class RXFSentencePredictionR4FTask(SentencePredictionTask):
    """``--task sentence_prediction`` whose classification head has every linear layer spectrally
    normalised (fairseq's ``--spectral-norm-classification-head`` only does ``out_proj``)."""

    def build_model(self, cfg, from_checkpoint=False):
        require_classification_arch(cfg, "sentence_prediction_r4f", self.cfg.classification_head_name)
        model = super().build_model(cfg, from_checkpoint)
        spectrally_normalise_classification_head(model, self.cfg.classification_head_name)
        return model
