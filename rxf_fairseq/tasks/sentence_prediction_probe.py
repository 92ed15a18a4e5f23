"""Linear probing of a frozen encoder (the paper's Section 4): ``--task sentence_prediction_probe``.

Take a fine-tuned checkpoint (``--restore-file ... --reset-optimizer --reset-dataloader --reset-meters``),
freeze the whole encoder, remove the encoder's dropout (Appendix A.2), replace the classification head
with one linear layer on the sentence representation and train only that layer on another task. The
data, criterion (``sentence_prediction``) and every other option are the stock task's.
"""

import logging

from fairseq.modules import FairseqDropout
from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionTask
from torch import nn

from rxf.probing import LinearProbeHead, freeze_encoder
from rxf_fairseq.model_parts import classification_head, require_classification_arch
from rxf_fairseq.tasks.sentence_prediction_r4f import RXFSentencePredictionTaskConfig

logger = logging.getLogger(__name__)


@register_task("sentence_prediction_probe", dataclass=RXFSentencePredictionTaskConfig)
class RXFSentencePredictionProbeTask(SentencePredictionTask):
    def build_model(self, cfg, from_checkpoint=False):
        name = self.cfg.classification_head_name
        require_classification_arch(cfg, "sentence_prediction_probe", name)
        model = super().build_model(cfg, from_checkpoint)
        old = classification_head(model, name, "--task sentence_prediction_probe", "swaps a linear probe for")
        probe = model.classification_heads[name] = LinearProbeHead(old.dense.in_features, self.cfg.num_classes)
        silenced = freeze_encoder(model, probe, dropout_types=(nn.Dropout, FairseqDropout))
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        logger.info(
            "linear probe %r: %d trainable parameters, %d frozen; dropout off in %d modules",
            name,
            trainable,
            frozen,
            len(silenced),
        )
        return model
