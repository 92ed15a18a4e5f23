"""``--arch rxf_roberta``: fairseq's RoBERTa (same modules and checkpoints) with ``--layernorm-eps``.

Hugging Face BERT checkpoints use LayerNorm eps 1e-12 where fairseq's RoBERTa hard-codes 1e-5 (for all-MiniLM-L6-v2
that alone moves the last hidden states by up to 2.7e-3). Sizes not given on the command line come from an
``rxf_roberta`` checkpoint in ``--restore-file``, so ``--arch rxf_roberta --restore-file IMPORTED/model.pt`` builds
the model the checkpoint holds."""

import os
from typing import Any, Optional

from fairseq.models import register_model, register_model_architecture
from fairseq.models.roberta.model import RobertaModel, base_architecture
from fairseq.utils import safe_getattr
from torch import nn

FAIRSEQ_LAYERNORM_EPS = 1e-5  # torch's default, which fairseq's LayerNorm uses
# what an rxf_roberta checkpoint tells a command line that does not say
ARCH_KEYS = (
    "encoder_layers encoder_embed_dim encoder_ffn_embed_dim encoder_attention_heads max_positions layernorm_eps "
    "activation_fn encoder_normalize_before layernorm_embedding untie_weights_roberta"
).split()


def set_layernorm_eps(model: nn.Module, eps: float) -> None:
    """Every LayerNorm of ``model`` (torch's, or apex's fused one on a GPU) computes with ``eps``."""
    for module in model.modules():
        if type(module).__name__ in ("LayerNorm", "FusedLayerNorm") and hasattr(module, "eps"):
            module.eps = eps


@register_model("rxf_roberta")
class RXFRobertaModel(RobertaModel):
    @staticmethod
    def add_args(parser):
        RobertaModel.add_args(parser)
        parser.add_argument(
            "--layernorm-eps",
            type=float,
            metavar="EPS",
            help="epsilon of every LayerNorm (fairseq's RoBERTa: 1e-5; Hugging Face BERT: 1e-12); "
            "default: the --restore-file checkpoint's, else 1e-5",
        )

    @classmethod
    def build_model(cls, args, task):
        model = super().build_model(args, task)
        set_layernorm_eps(model, safe_getattr(args, "layernorm_eps", FAIRSEQ_LAYERNORM_EPS))
        return model


def _checkpoint_model_cfg(path: str) -> Optional[Any]:
    """The model config of an ``rxf_roberta`` checkpoint, read without its tensors; None for anything else."""
    import torch

    from rxf_fairseq import checkpoint_compat

    checkpoint_compat.install()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not ours to judge here: fairseq's own loading reports an unreadable restore file
        return None
    cfg = state.get("cfg") if isinstance(state, dict) else None
    model = cfg.get("model") if cfg is not None and hasattr(cfg, "get") else None
    name = getattr(model, "_name", None) or getattr(model, "arch", None)
    return model if name == "rxf_roberta" else None


@register_model_architecture("rxf_roberta", "rxf_roberta")
def rxf_roberta_architecture(args):
    restore = safe_getattr(args, "restore_file", None)
    if restore and os.path.isfile(restore) and any(safe_getattr(args, k, None) is None for k in ARCH_KEYS):
        source = _checkpoint_model_cfg(restore)
        if source is not None:
            for key in ARCH_KEYS:
                if safe_getattr(args, key, None) is None and safe_getattr(source, key, None) is not None:
                    setattr(args, key, safe_getattr(source, key))
    args.layernorm_eps = safe_getattr(args, "layernorm_eps", FAIRSEQ_LAYERNORM_EPS)
    base_architecture(args)
