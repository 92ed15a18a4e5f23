"""Linear probing of a frozen encoder (the paper's Section 4): ``--task sentence_prediction_probe``.

Take a fine-tuned checkpoint (``--restore-file ... --reset-optimizer --reset-dataloader --reset-meters``),
freeze the whole encoder, remove the encoder's dropout (Appendix A.2), replace the classification head
with one linear layer on the sentence representation and train only that layer on another task. The
data, criterion (``sentence_prediction``) and every other option are the stock task's.
"""

import logging

from fairseq.tasks import register_task
from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

from rxf_fairseq.probing import LinearProbeHead, freeze_encoder

logger = logging.getLogger(__name__)


@register_task("sentence_prediction_probe", dataclass=SentencePredictionConfig)
class RXFSentencePredictionProbeTask(SentencePredictionTask):
    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        name = self.cfg.classification_head_name
        heads = getattr(model, "classification_heads", None)
        if heads is None or name not in heads:
            raise ValueError(f"--task sentence_prediction_probe: {type(model).__name__} has no classification "
                             f"head {name!r} (--classification-head-name) to replace with a linear probe")
        old = heads[name]
        heads[name] = LinearProbeHead(old.dense.in_features, self.cfg.num_classes)
        silenced = freeze_encoder(model, heads[name])
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        logger.info("linear probe %r: %d trainable parameters, %d frozen; dropout off in %d modules",
                    name, trainable, frozen, len(silenced))
        return model
