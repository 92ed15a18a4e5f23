"""Where fairseq's models keep what rxf acts on, and the one-line errors when a task, an ``--arch`` or a model
lacks it: the encoder's token embedding (R3F's noise, SMART's perturbation) and the classification heads
(the sentence-prediction criteria, R4F's spectral norm, the linear probe)."""

from typing import Tuple

from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
from fairseq.tasks import TASK_REGISTRY
from torch import nn

from rxf_fairseq.errors import OptionError


def find_encoder_token_embedding(model: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """``(embed_tokens, encoder)``: the encoder's token-embedding layer and the module whose forward scopes the noise
    (a decoder sharing the matrix stays clean): RoBERTa's ``model.encoder.sentence_encoder``, else ``model.encoder``."""
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"R3F needs a model with an encoder (model.encoder); {type(model).__name__} has none")
    scope = getattr(encoder, "sentence_encoder", None)
    if not isinstance(scope, nn.Module):
        scope = encoder
    embed_tokens = getattr(scope, "embed_tokens", None)
    if not isinstance(embed_tokens, nn.Module):
        raise ValueError(
            f"R3F perturbs the encoder's token embeddings, but {type(model).__name__}'s encoder "
            f"({type(scope).__name__}) has no embed_tokens module"
        )
    return embed_tokens, scope


def require_encoder_embedding(model: nn.Module, criterion_name: str) -> None:
    """The R3F/SMART criterions perturb the encoder's token embeddings: refuse models without them."""
    try:
        find_encoder_token_embedding(model)
    except ValueError as error:
        raise OptionError(f"--criterion {criterion_name}: {error}") from None


def missing_head(who: str, verb: str, head_name: str, lacking: str, fix: str = "") -> OptionError:
    """The one-line error for a classification head that a task, an --arch or a model lacks."""
    return OptionError(
        f"{who} {verb} the classification head --classification-head-name {head_name!r}, "
        f"but {lacking}{'; ' + fix if fix else ''}"
    )


def classification_head(model: nn.Module, head_name: str, who: str, verb: str = "needs") -> nn.Module:
    """The model's classification head ``head_name`` (fairseq's ``model.classification_heads``)."""
    heads = getattr(model, "classification_heads", None)
    if heads is None or head_name not in heads:
        has = f"only {sorted(heads.keys())}" if heads else "no classification heads"
        raise missing_head(who, verb, head_name, f"{type(model).__name__} has {has}")
    return heads[head_name]


def require_classification_task(task, criterion_name: str, head_name: str) -> None:
    """A task without ``label_dictionary`` (masked_lm, ...) builds no classification head: say so, naming the flags,
    instead of the AttributeError of fairseq's sentence_prediction criterion."""
    if hasattr(task, "label_dictionary"):
        return
    name = next((n for n, cls in TASK_REGISTRY.items() if cls is type(task)), type(task).__name__)
    raise missing_head(
        f"--criterion {criterion_name}",
        "trains",
        head_name,
        f"--task {name} builds models without classification heads",
        "use --task sentence_prediction (or sentence_prediction_r4f)",
    )


def require_classification_arch(model_cfg, task_name: str, head_name: str) -> None:
    """An --arch without ``register_classification_head`` (lstm_lm, ...) fails in sentence_prediction's
    ``build_model`` with an AttributeError: say so first, naming the flags."""
    arch = getattr(model_cfg, "_name", None) or getattr(model_cfg, "arch", None)
    model_class = ARCH_MODEL_REGISTRY.get(arch) or MODEL_REGISTRY.get(arch)
    if model_class is not None and not hasattr(model_class, "register_classification_head"):
        raise missing_head(
            f"--task {task_name}",
            "needs",
            head_name,
            f"--arch {arch} ({model_class.__name__}) has no classification heads",
            "use an --arch that has them, e.g. roberta_large (RoBERTa and XLM-R) or bart_large",
        )
