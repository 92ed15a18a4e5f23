"""``--task sentence_prediction_probe``, the paper's linear probe (Section 4): the stock task on a fine-tuned
checkpoint whose encoder is frozen and without dropout (Appendix A.2), its classification head replaced by one linear
layer on the sentence representation (``rxf/probing.py``)."""

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
