"""R3F, R4F, SMART and R-Drop for Hugging Face transformers' ``Trainer`` on the core the fairseq plugin uses; the one
module of ``rxf`` that imports transformers. ``R3FTrainer``, ``SMARTTrainer``, ``RDropTrainer`` (the plugin's flags as
keyword options), ``apply_r4f`` and ``load_r4f``; what they compute and log: docs/transformers.md."""

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import typing
from collections.abc import Mapping
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type

import torch
from torch import Tensor, nn

from rxf.kl import rdrop_term, squared_prediction_change, symmetric_kl
from rxf.noise import DropoutReplay, NoiseRecord, check_noise_args, noised_token_embeddings
from rxf.smart import MomentumTeacher, SmartAscent, adversarial_forward, unwrapped
from rxf.spectral_norm import SpectralNormLinear, spectrally_normalised

try:
    from transformers import Trainer
except ImportError as error:  # pragma: no cover - the hf extra is not installed
    raise ImportError("rxf.hf needs transformers: pip install 'rxf-fairseq[hf]'") from error

logger = logging.getLogger(__name__)

R4F_CONFIG_KEY = "rxf_r4f_layers"
HEAD_NAMES = ("classifier", "classification_head")  # BERT/RoBERTa/XLM-R; BART


def input_embedding_and_scope(model: nn.Module) -> Tuple[nn.Module, nn.Module]:
    """The token-embedding layer R3F perturbs and the module whose forward scopes the noise: the encoder of an
    encoder-decoder model (its decoder shares the matrix), the model itself otherwise."""
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


def _is_regression(model: nn.Module, logits: Tensor, method: str = "R3F") -> bool:
    config = getattr(unwrapped(model), "config", None)
    problem = getattr(config, "problem_type", None)
    if problem == "multi_label_classification":
        raise ValueError(
            f"{method}: problem_type multi_label_classification has no softmax distribution to compare; {method} is "
            "defined for single-label classification, regression and generation"
        )
    return problem == "regression" or (logits.dim() == 2 and logits.shape[-1] == 1)


def consistency_term(model: nn.Module, clean: Tensor, noised: Tensor, labels: Optional[Tensor]) -> Tuple[Tensor, str]:
    """The R3F term summed over sentences (and target positions), and its log name."""
    if clean.dim() == 3:  # token logits (sequence-to-sequence, language modelling): target positions only
        return symmetric_kl(clean, noised, _target_mask(clean, labels)), "symm_kl"
    if _is_regression(model, clean):
        return squared_prediction_change(clean, noised), "noise_sq_err"
    return symmetric_kl(clean, noised), "symm_kl"


def _target_mask(logits: Tensor, labels: Optional[Tensor]) -> Optional[Tensor]:
    """The target positions (``labels != -100``) of token logits, or None where the labels are not per position."""
    return labels.ne(-100) if labels is not None and labels.shape == logits.shape[:2] else None


def _check_weight(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be >= 0 and finite, got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=None)  # once per model class, not at every training step
def _documented_output(model_class: type) -> Optional[type]:
    """The ``ModelOutput`` class of ``model_class.forward``'s return annotation (whose non-None fields, in order, are
    ``return_dict=False``'s tuple), or None."""
    from transformers.utils import ModelOutput

    forward = getattr(model_class, "forward", None)
    try:
        annotation = typing.get_type_hints(forward).get("return")
    except Exception:  # an annotation that does not resolve documents nothing
        return None
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, ModelOutput) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def model_logits(model: nn.Module, outputs: Any) -> Tensor:
    """A ``ModelOutput``'s (or a dict's) ``logits``, or, in the tuple of ``return_dict=False``, the position its
    documented output class gives them, after a loss at most (transformers leaves None out of the tuple)."""
    name = type(unwrapped(model)).__name__
    if isinstance(outputs, Mapping):
        logits = outputs.get("logits")
        where = "has no logits"
    elif isinstance(outputs, (tuple, list)):
        documented = _documented_output(type(unwrapped(model)))
        fields = [f.name for f in dataclasses.fields(documented)] if documented is not None else []
        if "logits" not in fields or set(fields[: fields.index("logits")]) - {"loss"}:
            raise ValueError(
                f"rxf.hf: {name} returned a tuple whose layout its forward does not document (its return annotation "
                f"names {documented.__name__ if documented else 'no ModelOutput'}, without (loss, logits, ...) "
                "first); run it with return_dict=True"
            )
        has_loss = fields[0] == "loss" and len(outputs) > 0 and isinstance(outputs[0], Tensor) and outputs[0].dim() == 0
        index = 1 if has_loss else 0
        logits = outputs[index] if index < len(outputs) else None
        where = f"has no logits at position {index} of its {documented.__name__} tuple"
    else:
        raise ValueError(f"rxf.hf: {name} returned a {type(outputs).__name__}, not a ModelOutput, a dict or a tuple")
    if not (isinstance(logits, Tensor) and logits.dim() >= 2):
        raise ValueError(
            f"rxf.hf: {name}'s output {where} (found {type(logits).__name__}); run it with return_dict=True"
        )
    return logits


@contextlib.contextmanager
def _extra_passes_without_buffer_sync(model: nn.Module) -> Iterator[None]:
    """The terms' passes without DDP's in-place buffer broadcast (done before the clean pass), which bumps the version
    of buffers the clean pass's graph saved (BERT's ``position_ids``) and fails its backward on torch before 2.13. DDP's
    ``require_forward_param_sync``, which a no-grad pass would turn off, is restored."""
    if not isinstance(model, nn.parallel.DistributedDataParallel):
        yield
        return
    sync = model.require_forward_param_sync
    model.require_forward_param_sync = False  # checked by will_sync_module_buffers() before and after each forward
    try:
        yield
    finally:
        model.require_forward_param_sync = sync


class ConsistencyTrainer(Trainer):
    """``transformers.Trainer`` + the weighted consistency terms of the model's logits that ``terms`` gives, each a
    mean per sentence, logged unweighted as the mean since the last log (+ the task loss of any further pass
    ``terms`` runs through ``further_task_loss``, as ``Trainer`` computes it)."""

    perturbs_embeddings = True  # R3F and SMART: a model without input embeddings is refused at construction
    same_dropout = False  # R3FTrainer(same_dropout=True): the noised pass replays the clean pass's dropout masks
    _replay: Optional[DropoutReplay] = None  # taken by compute_loss before the clean pass, used by the noised pass

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.perturbs_embeddings:
            input_embedding_and_scope(self.model)  # refuse a model the noise cannot reach, before training
        # A forward with **kwargs would be taken to normalise by num_items_in_batch and not be divided by the
        # accumulation steps; BERT's, RoBERTa's and BART's losses are per-batch means: divide all alike.
        self.model_accepts_loss_kwargs = False
        # detached tensors, read by the host only when logged (a float() per step would synchronise with a GPU)
        self._terms_log: Dict[str, List[Tensor]] = {}
        self._num_items_in_batch: Any = None  # this step's, for further_task_loss
        self._task_losses: List[Tensor] = []  # this step's further passes' task losses

    def regularised(self) -> bool:
        """Whether the terms are computed at all (a weight of 0 trains as transformers' own Trainer)."""
        raise NotImplementedError

    def terms(
        self, model: nn.Module, inputs: Dict[str, Any], clean: Tensor, labels: Optional[Tensor]
    ) -> List[Tuple[float, Tensor, str]]:
        """(weight, term summed over the batch's sentences, log name) of each term; ``inputs`` lack the labels when
        ``Trainer`` smooths them."""
        raise NotImplementedError

    def further_task_loss(
        self, model: nn.Module, inputs: Dict[str, Any], labels: Optional[Tensor]
    ) -> Tuple[Tensor, Any]:
        """Another forward pass of ``inputs`` and its task loss as ``Trainer`` computes the first pass's, which joins
        this step's loss as it is: R-Drop's second cross-entropy."""
        if labels is not None and "labels" not in inputs:  # taken away for Trainer's label smoothing: given back
            inputs = {**inputs, "labels": labels}
        loss, outputs = super().compute_loss(
            model, dict(inputs), return_outputs=True, num_items_in_batch=self._num_items_in_batch
        )
        self._task_losses.append(loss)
        return loss, outputs

    def _scale_for_accumulation(self) -> float:
        """1 / the accumulation steps when ``Trainer`` takes the loss as already scaled for them (and does not divide)."""
        scaled = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled is None:  # Trainer's own rule, model_accepts_loss_kwargs being False (__init__)
            scaled = self.compute_loss_func is not None
        steps = getattr(self, "current_gradient_accumulation_steps", None) or self.args.gradient_accumulation_steps
        return 1.0 / steps if scaled else 1.0

    def note_noise(self, record: NoiseRecord) -> None:
        """Log how much of the perturbation survived rounding (fp16/bf16 embeddings only)."""
        if record.changed is not None and record.elements:
            self._terms_log.setdefault("noise_changed_pct", []).append(
                100.0 * record.changed.double() / record.elements
            )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training or not self.regularised():
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        labels = inputs.get("labels")
        self._num_items_in_batch, self._task_losses = num_items_in_batch, []
        # the same inputs as the clean pass: Trainer's label smoothing takes the labels away from the model
        further_inputs = {k: v for k, v in inputs.items() if not (k == "labels" and self.label_smoother is not None)}
        # before the clean pass draws its masks
        self._replay = DropoutReplay(next(model.parameters()).device) if self.same_dropout else None
        loss, outputs = super().compute_loss(
            model, dict(inputs), return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        clean = model_logits(model, outputs)
        sentences = clean.shape[0]
        scale = self._scale_for_accumulation() / sentences
        with _extra_passes_without_buffer_sync(model):
            terms = self.terms(model, further_inputs, clean, labels)
        for weight, term, key in terms:
            loss = loss + weight * scale * term
            self._terms_log.setdefault(key, []).append(term.detach().double() / sentences)
        loss = loss + sum(self._task_losses)
        self._task_losses = []
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: Dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Training logs get each term's mean since the last log; the last, partial window gets an entry of its own
        just before ``Trainer``'s summary."""
        if "loss" in logs:
            logs.update(self._reduced_terms())
        elif "train_loss" in logs and self._terms_log:  # the end of train(): the last, partial window
            super().log(self._reduced_terms())
        super().log(logs, *args, **kwargs)

    def _reduced_terms(self) -> Dict[str, float]:
        """The mean of each term since the last log, over every process; the record emptied."""
        if not self._terms_log:
            return {}
        keys = sorted(self._terms_log)
        totals = torch.stack(
            [
                torch.stack([torch.stack(self._terms_log[k]).sum().cpu(), torch.tensor(len(self._terms_log[k]))])
                for k in keys
            ]
        ).to(dtype=torch.float64, device=self.args.device)
        if self.args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(totals)
        self._terms_log = {}
        return {key: float(f"{total / count:.3g}") for key, (total, count) in zip(keys, totals.tolist())}


class R3FTrainer(ConsistencyTrainer):
    """``transformers.Trainer`` + lambda * R3F's consistency term (see the module docstring)."""

    def __init__(
        self,
        *args: Any,
        r3f_lambda: float = 1.0,
        eps: float = 1e-5,
        noise_type: str = "uniform",
        fast_r3f: bool = False,
        same_dropout: bool = False,
        **kwargs: Any,
    ):
        check_noise_args(eps, noise_type)
        self.r3f_lambda = _check_weight("r3f_lambda", r3f_lambda)
        self.eps, self.noise_type, self.fast_r3f, self.same_dropout = eps, noise_type, bool(fast_r3f), same_dropout
        super().__init__(*args, **kwargs)

    def regularised(self) -> bool:
        return self.r3f_lambda > 0

    def noised_outputs(self, model: nn.Module, inputs: Dict[str, Any]):
        """The second forward pass, with R3F noise on the encoder's token embeddings (without gradient if fast)."""
        embedding, scope = input_embedding_and_scope(model)
        replay, self._replay = self._replay, None  # this step's only
        generator = replay.replay() if replay is not None else None
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fast_r3f):
            with noised_token_embeddings(embedding, scope, self.eps, self.noise_type, generator) as record:
                outputs = model(**inputs)
        return outputs, record

    def terms(self, model, inputs, clean, labels):
        noised_out, record = self.noised_outputs(model, inputs)
        self.note_noise(record)
        term, key = consistency_term(model, clean, model_logits(model, noised_out), labels)
        return [(self.r3f_lambda, term, key)]


class RDropTrainer(ConsistencyTrainer):
    """``transformers.Trainer`` + R-Drop as published (Liang et al., 2021): a second forward pass of the same inputs in
    training mode (dropout masks of its own), its task loss as ``Trainer``'s, + alpha * ``rxf.kl.rdrop_term`` between
    the two passes' logits, a mean per sentence (per target token for token logits; docs/transformers.md)."""

    perturbs_embeddings = False  # two dropout passes: any model with logits

    def __init__(self, *args: Any, rdrop_alpha: float = 1.0, **kwargs: Any):
        self.rdrop_alpha = _check_weight("rdrop_alpha", rdrop_alpha)
        super().__init__(*args, **kwargs)

    def regularised(self) -> bool:
        return self.rdrop_alpha > 0

    def terms(self, model, inputs, clean, labels):
        second_loss, outputs = self.further_task_loss(model, inputs, labels)
        self._terms_log.setdefault("rdrop_second_loss", []).append(second_loss.detach().double())
        second = model_logits(model, outputs)
        if clean.dim() == 3:  # token logits: a mean per target token, as the plugin's and R-Drop's own fairseq code
            mask = _target_mask(clean, labels)
            tokens = mask.sum() if mask is not None else clean.shape[0] * clean.shape[1]
            term = rdrop_term(clean, second, mask) * clean.shape[0] / tokens
        else:
            term = rdrop_term(clean, second, regression=_is_regression(model, clean, "R-Drop"))
        return [(self.rdrop_alpha, term, "rdrop_kl")]


SMART_TEACHER_FILE = "smart_teacher.pt"


class SMARTTrainer(ConsistencyTrainer):
    """``transformers.Trainer`` + SMART as published (``rxf.smart``): the adversarial term and the proximal term
    against a momentum teacher, absorbed once per optimizer update and saved beside the optimizer's state in every
    checkpoint (``smart_teacher.pt``); every ``train()`` not resuming one starts a new teacher."""

    def __init__(
        self,
        *args: Any,
        smart_lambda: float = 1.0,
        smart_ascent: str = "smart",
        smart_sigma: float = 1e-5,
        smart_steps: int = 1,
        smart_step_size: float = 1e-3,
        smart_eps: float = 1e-5,
        smart_norm: str = "inf",
        smart_grad_eps: float = 1e-6,
        smart_mu: float = 1.0,
        smart_beta: float = 0.999,
        smart_beta_start: float = 0.99,
        smart_beta_warmup: float = 0.1,
        smart_total_updates: Optional[int] = None,
        **kwargs: Any,
    ):
        self.smart_lambda = _check_weight("smart_lambda", smart_lambda)
        self.smart_mu = _check_weight("smart_mu", smart_mu)
        for name, value in (
            ("smart_sigma", smart_sigma),
            ("smart_step_size", smart_step_size),
            ("smart_eps", smart_eps),
            ("smart_grad_eps", smart_grad_eps),
        ):
            _check_weight(name, value)
        if not (isinstance(smart_steps, int) and smart_steps >= 0):
            raise ValueError(f"smart_steps must be an integer >= 0, got {smart_steps!r}")
        if smart_total_updates is not None and not (isinstance(smart_total_updates, int) and smart_total_updates > 0):
            raise ValueError(f"smart_total_updates must be a positive integer or None, got {smart_total_updates!r}")
        self.ascent = SmartAscent(
            smart_sigma, smart_steps, smart_step_size, smart_norm, smart_eps, smart_grad_eps, smart_ascent
        )
        self.teacher = None
        if self.smart_mu > 0:
            self.teacher = MomentumTeacher(smart_beta, smart_beta_start, smart_beta_warmup, smart_total_updates or 0)
        self._total_given = smart_total_updates is not None
        self._absorbed_at: Optional[int] = None  # the global step whose update the teacher has absorbed
        super().__init__(*args, **kwargs)

    def regularised(self) -> bool:
        return self.smart_lambda > 0 or self.teacher is not None

    def train(self, resume_from_checkpoint=None, *args: Any, **kwargs: Any):
        if self.teacher is not None:  # theta~ = theta_0 of this run (a resumed one loads the checkpoint's)
            t = self.teacher
            self.teacher = MomentumTeacher(
                t.beta, t.beta_start, t.start_fraction, t.total_updates if self._total_given else 0
            )
            self._absorbed_at = None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def terms(self, model, inputs, clean, labels):
        embedding, scope = input_embedding_and_scope(model)

        def run(net: nn.Module) -> Tensor:
            return model_logits(net, net(**inputs))

        found: List[Tuple[float, Tensor, str]] = []
        if self.smart_lambda > 0:
            perturbed, record = adversarial_forward(
                model,
                run,
                embedding,
                scope,
                lambda logits: consistency_term(model, clean.detach(), logits, labels)[0],
                self.ascent,
            )
            self.note_noise(record)
            term, key = consistency_term(model, clean, perturbed, labels)
            found.append((self.smart_lambda, term, f"smart_{'symm_kl' if key == 'symm_kl' else 'sq_err'}"))
        if self.teacher is not None:
            self._absorb_once_per_update(model)
            teacher_logits = self.teacher.outputs(model, run)
            term, _ = consistency_term(model, teacher_logits.detach(), clean, labels)
            found.append((self.smart_mu, term, "smart_bregman"))
        return found

    def _absorb_once_per_update(self, model: nn.Module) -> None:
        step = self.state.global_step
        if self._absorbed_at == step:
            return
        if not self._total_given and self.state.max_steps:
            self.teacher.total_updates = int(self.state.max_steps)
        self.teacher.absorb(model)
        self._absorbed_at = step

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.teacher is not None and len(self.teacher.copies) and self.args.should_save:
            torch.save(self.teacher.state_dict(), os.path.join(output_dir, SMART_TEACHER_FILE))

    def _load_optimizer_and_scheduler(self, checkpoint: Optional[str]) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is None or self.teacher is None:
            return
        path = os.path.join(checkpoint, SMART_TEACHER_FILE)
        if not os.path.isfile(path):
            logger.warning(
                "%s: no %s; the SMART teacher starts from the model at the first update", checkpoint, SMART_TEACHER_FILE
            )
            return
        self.teacher.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.teacher.to(next(unwrapped(self.model).parameters()).device)


# ------------------------------------------------------------------------------------------------ R4F


def head_linear_layers(model: nn.Module) -> List[str]:
    """The dotted names of the classification head's linear layers, BERT's pooler (which feeds it) included."""
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
    sharing the parameters; returns the names, also kept in ``model.config.rxf_r4f_layers`` for ``load_r4f``."""
    bare = unwrapped(model)
    names = list(layers) if layers is not None else head_linear_layers(bare)
    for name in names:
        module = bare.get_submodule(name)
        if isinstance(module, SpectralNormLinear):
            continue
        if not isinstance(module, nn.Linear):
            raise ValueError(f"R4F: {name} is a {type(module).__name__}, not a linear layer")
        bare.set_submodule(name, spectrally_normalised(module))
    if getattr(bare, "config", None) is not None:
        setattr(bare.config, R4F_CONFIG_KEY, names)
    return names


def load_r4f(model_class: Type, folder: str, **kwargs: Any) -> nn.Module:
    """``model_class.from_pretrained(folder)`` of a model saved with R4F applied, R4F applied again and the saved
    power-iteration vectors read back, so the reloaded model gives the outputs the saved one gave."""
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
    if kwargs.get("ignore_mismatched_sizes"):
        # a new head (another label count): its layers start afresh, the saved head's vectors are not theirs
        own = model.state_dict()
        fresh = {k[: -len(".sn_u")] for k, v in vectors.items() if k in own and own[k].shape != v.shape}
        vectors = {k: v for k, v in vectors.items() if k.rsplit(".", 1)[0] not in fresh}
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
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        weights: Dict[str, Tensor] = {}
        for shard in shards:
            weights.update(load_file(os.path.join(folder, shard)))
        return weights
    return torch.load(os.path.join(folder, "pytorch_model.bin"), map_location="cpu", weights_only=True)
