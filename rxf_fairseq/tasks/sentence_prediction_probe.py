"""Linear probing of a frozen encoder (the paper's Section 4): ``--task sentence_prediction_probe``.

Take a fine-tuned checkpoint (``--restore-file ... --reset-optimizer --reset-dataloader --reset-meters``),
freeze the whole encoder, remove the encoder's dropout (Appendix A.2), replace the classification head
with one linear layer on the sentence representation and train only that layer on another task. The
data, criterion (``sentence_prediction``) and every other option are the stock task's.
"""

import logging

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionTask

from rxf_fairseq.criterions.r3f_common import OptionError
from rxf.probing import LinearProbeHead, freeze_encoder
from rxf_fairseq.tasks.sentence_prediction_r4f import RXFSentencePredictionTaskConfig, require_classification_arch

logger = logging.getLogger(__name__)


@register_task("sentence_prediction_probe", dataclass=RXFSentencePredictionTaskConfig)
class RXFSentencePredictionProbeTask(SentencePredictionTask):
    def build_model(self, cfg, from_checkpoint=False):
        name = self.cfg.classification_head_name
        require_classification_arch(cfg, "sentence_prediction_probe", name)
        model = super().build_model(cfg, from_checkpoint)
        heads = getattr(model, "classification_heads", None)
        if heads is None or name not in heads:
            raise OptionError(f"--task sentence_prediction_probe: {type(model).__name__} has no classification "
                              f"head {name!r} (--classification-head-name) to replace with a linear probe")
        old = heads[name]
        heads[name] = LinearProbeHead(old.dense.in_features, self.cfg.num_classes)
        silenced = freeze_encoder(model, heads[name])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        logger.info("linear probe %r: %d trainable parameters, %d frozen; dropout off in %d modules",
                    name, trainable, frozen, len(silenced))
        return model
