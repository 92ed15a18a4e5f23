"""R3F and R4F for Hugging Face transformers' ``Trainer``, on the core the fairseq plugin uses (``rxf.noise``,
``rxf.kl``, ``rxf.spectral_norm``). transformers is imported here only; nothing in the fairseq plugin imports this.

- ``R3FTrainer(model=..., args=..., r3f_lambda=1.0, eps=1e-5, noise_type="uniform", fast_r3f=False)``: a
  ``transformers.Trainer`` whose loss is the model's own (with ``Trainer``'s label smoothing when
  ``label_smoothing_factor`` is set) + lambda * the R3F term. The noise z ~ U(-eps, eps) or N(0, eps^2) is added by a
  hook to the output of ``model.get_input_embeddings()`` in the second forward pass, and only to the calls made inside
  the encoder (``get_encoder()`` for encoder-decoder models, whose decoder shares the matrix); the hook counts its
  applications and a pass it never reached is an error. The term is the symmetric KL of the two passes' logits in
  fp32: per sentence for sequence classification, the squared change of the prediction for regression
  (``num_labels == 1``), summed over the target positions (``labels != -100``, padding masked) per sentence for
  sequence-to-sequence models; the mean over the batch's sentences is weighted by lambda, as the plugin's. Logged as
  ``symm_kl`` (``noise_sq_err`` for regression), with ``noise_changed_pct`` under fp16/bf16 (most of a 1e-5 noise
  rounds away there). ``fast_r3f=True``: the noised pass without gradient (the plugin's ``--fast-r3f``).
- ``apply_r4f(model)``: every linear layer of the classification head spectrally normalised (BERT's ``classifier``
  and pooler, RoBERTa's ``classifier.dense``/``out_proj``, BART's ``classification_head``), recorded in
  ``model.config.rxf_r4f_layers``; ``load_r4f(model_class, folder)`` reloads what ``save_pretrained`` wrote, the
  power-iteration vectors included, so the outputs are the same.
"""

import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor, nn

from rxf.kl import squared_prediction_change, symmetric_kl
from rxf.noise import check_noise_args, noised_token_embeddings
from rxf.smart import unwrapped
from rxf.spectral_norm import SpectralNormLinear, spectrally_normalised

try:
    from transformers import Trainer
except ImportError as error:  # pragma: no cover - the hf extra is not installed
    raise ImportError("rxf.hf needs transformers: pip install 'rxf-fairseq[hf]'") from error

R4F_CONFIG_KEY = "rxf_r4f_layers"
HEAD_NAMES = ("classifier", "classification_head")  # BERT/RoBERTa/XLM-R; BART


def input_embedding_and_scope(model: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """The token-embedding layer R3F perturbs and the module inside whose forward its calls are perturbed: the
    encoder for an encoder-decoder model, the model itself otherwise. ValueError naming what is missing."""
    bare = unwrapped(model)
    get = getattr(bare, "get_input_embeddings", None)
    embedding = get() if callable(get) else None
    if not isinstance(embedding, nn.Module):
        raise ValueError(
            f"R3F: {type(bare).__name__} has no input embeddings (get_input_embeddings() gave {embedding!r}); the "
            "noise is added to their output"
        )
    if getattr(getattr(bare, "config", None), "is_encoder_decoder", False):
        get_encoder = getattr(bare, "get_encoder", None)
        encoder = get_encoder() if callable(get_encoder) else None
        if not isinstance(encoder, nn.Module):
            raise ValueError(f"R3F: {type(bare).__name__} is an encoder-decoder model without get_encoder()")
        # the encoder's own embedding module (BART's shares the matrix with the model's but is another module)
        get_own = getattr(encoder, "get_input_embeddings", None)
        own = get_own() if callable(get_own) else getattr(encoder, "embed_tokens", None)
        return (own if isinstance(own, nn.Module) else embedding), encoder
    return embedding, bare


def _is_regression(model: nn.Module, logits: Tensor) -> bool:
    config = getattr(unwrapped(model), "config", None)
    problem = getattr(config, "problem_type", None)
    if problem == "multi_label_classification":
        raise ValueError(
            "R3F: problem_type multi_label_classification has no softmax distribution to compare; R3F is defined "
            "for single-label classification, regression and generation"
        )
    return problem == "regression" or (logits.dim() == 2 and logits.shape[-1] == 1)


def consistency_term(model: nn.Module, clean: Tensor, noised: Tensor, labels: Optional[Tensor]) -> Tuple[Tensor, str]:
    """The R3F term summed over sentences (and target positions), and its log name."""
    if clean.dim() == 3:  # token logits (sequence-to-sequence, language modelling): target positions only
        mask = labels.ne(-100) if labels is not None and labels.shape == clean.shape[:2] else None
        return symmetric_kl(clean, noised, mask), "symm_kl"
    if _is_regression(model, clean):
        return squared_prediction_change(clean, noised), "noise_sq_err"
    return symmetric_kl(clean, noised), "symm_kl"


class R3FTrainer(Trainer):
    """``transformers.Trainer`` + lambda * R3F's consistency term (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        r3f_lambda: float = 1.0,
        eps: float = 1e-5,
        noise_type: str = "uniform",
        fast_r3f: bool = False,
        **kwargs: Any,
    ):
        check_noise_args(eps, noise_type)
        if not (isinstance(r3f_lambda, (int, float)) and math.isfinite(r3f_lambda) and r3f_lambda >= 0):
            raise ValueError(f"r3f_lambda must be >= 0 and finite, got {r3f_lambda!r}")
        super().__init__(*args, **kwargs)
        self.r3f_lambda, self.eps, self.noise_type, self.fast_r3f = float(r3f_lambda), eps, noise_type, fast_r3f
        input_embedding_and_scope(self.model)  # refuse a model R3F cannot perturb, before training
        self._r3f_log: Dict[str, List[float]] = {}

    def _scale_for_accumulation(self, num_items_in_batch) -> float:
        """1 / the accumulation steps when ``Trainer`` takes the loss as already scaled for them (it then does not
        divide it), so that the term is the mean per sentence of each micro-batch either way."""
        scaled = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled is None:
            scaled = (
                bool(getattr(self, "model_accepts_loss_kwargs", False)) and num_items_in_batch is not None
            ) or getattr(self, "compute_loss_func", None) is not None
        steps = getattr(self, "current_gradient_accumulation_steps", None) or self.args.gradient_accumulation_steps
        return 1.0 / steps if scaled else 1.0

    def noised_outputs(self, model: nn.Module, inputs: Dict[str, Any]):
        """The second forward pass, with R3F noise on the encoder's token embeddings (without gradient if fast)."""
        embedding, scope = input_embedding_and_scope(model)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fast_r3f):
            with noised_token_embeddings(embedding, scope, self.eps, self.noise_type) as record:
                outputs = model(**inputs)
        return outputs, record

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training or self.r3f_lambda == 0:
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        labels = inputs.get("labels")
        # the same inputs as the clean pass: Trainer's label smoothing takes the labels away from the model
        noised_inputs = {k: v for k, v in inputs.items() if not (k == "labels" and self.label_smoother is not None)}
        loss, outputs = super().compute_loss(
            model, dict(inputs), return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        clean = outputs["logits"] if isinstance(outputs, dict) else outputs[1]
        noised_out, record = self.noised_outputs(model, noised_inputs)
        noised = noised_out["logits"] if isinstance(noised_out, dict) else noised_out[1]
        term, key = consistency_term(model, clean, noised, labels)
        sentences = clean.shape[0]
        loss = loss + self.r3f_lambda * self._scale_for_accumulation(num_items_in_batch) * term / sentences
        self._r3f_log.setdefault(key, []).append(float(term.detach()) / sentences)
        if record.changed is not None and record.elements:
            self._r3f_log.setdefault("noise_changed_pct", []).append(100.0 * float(record.changed) / record.elements)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: Dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Training logs get the mean R3F term (per sentence, in nats, not weighted by lambda) since the last log."""
        if "loss" in logs and self._r3f_log:
            for key, values in self._r3f_log.items():
                logs[key] = float(f"{sum(values) / len(values):.3g}")
            self._r3f_log = {}
        super().log(logs, *args, **kwargs)


# ------------------------------------------------------------------------------------------------ R4F


def head_linear_layers(model: nn.Module) -> List[str]:
    """The dotted names of the classification head's linear layers: the head's (``classifier`` or
    ``classification_head``) and, for BERT-like models, the pooler's, which feeds the classifier."""
    bare = unwrapped(model)
    names = []
    for head in HEAD_NAMES:
        module = getattr(bare, head, None)
        if isinstance(module, nn.Module):
            names += [f"{head}.{n}" if n else head for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if names:
        prefix = getattr(bare, "base_model_prefix", "")
        pooler = getattr(getattr(bare, prefix, None), "pooler", None) if prefix else None
        if isinstance(pooler, nn.Module):
            names += [f"{prefix}.pooler.{n}" for n, m in pooler.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(
            f"R4F: {type(bare).__name__} has no classification head ({' or '.join(HEAD_NAMES)}) with a linear layer"
        )
    return names


def apply_r4f(model: nn.Module, layers: Optional[Sequence[str]] = None) -> List[str]:
    """Spectrally normalise every linear layer of the classification head (or the ``layers`` named), in place,
    sharing the parameters (an optimizer holding them keeps working); returns the names, also kept in
    ``model.config.rxf_r4f_layers`` for ``load_r4f``."""
    bare = unwrapped(model)
    names = list(layers) if layers is not None else head_linear_layers(bare)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = bare.get_submodule(parent_name) if parent_name else bare
        module = getattr(parent, child)
        if isinstance(module, SpectralNormLinear):
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"R4F: {name} is a {type(module).__name__}, not a linear layer")
        setattr(parent, child, spectrally_normalised(module))
    if getattr(bare, "config", None) is not None:
        setattr(bare.config, R4F_CONFIG_KEY, names)
    return names


def load_r4f(model_class: Type, folder: str, **kwargs: Any) -> nn.Module:
    """``model_class.from_pretrained(folder)`` of a model saved with R4F applied: R4F applied again to the layers
    its config names, and their power-iteration vectors read back from the saved weights, so the reloaded model gives
    the outputs the saved one gave."""
    model = model_class.from_pretrained(folder, **kwargs)
    layers = getattr(model.config, R4F_CONFIG_KEY, None)
    if not layers:
        raise ValueError(f"{folder}: config.json has no {R4F_CONFIG_KEY}: the model was not saved with R4F applied")
    apply_r4f(model, layers)
    vectors = {k: v for k, v in _saved_weights(folder).items() if k.endswith((".sn_u", ".sn_v"))}
    expected = {f"{n}.{b}" for n in layers for b in ("sn_u", "sn_v")}
    missing = sorted(expected - set(vectors))
    if missing:
        raise ValueError(f"{folder}: the saved weights lack R4F's power-iteration vectors {missing[:2]}")
    model.load_state_dict(vectors, strict=False)  # loaded vectors are used as they are (no re-warm)
    return model


def _saved_weights(folder: str) -> Dict[str, Tensor]:
    """Every tensor ``save_pretrained`` wrote (safetensors, sharded or not, or pytorch_model.bin)."""
    from safetensors.torch import load_file

    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        return load_file(single)
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        weights: Dict[str, Tensor] = {}
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            weights.update(load_file(os.path.join(folder, shard)))
        return weights
    return torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)
