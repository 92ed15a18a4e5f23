"""What the R3F, SMART and R-Drop criteria share: ``ConsistencyCriterion`` (a stock fairseq criterion + lambda * a
consistency term, the one ``forward`` of them all), ``R3FCriterion`` (the R3F options, their checks and the noised
pass), ``RDropCriterion`` (R-Drop's option and its second dropout pass) and the metrics they add to fairseq's.

Units: ``loss`` (as optimised) and ``task_loss`` in fairseq's bits per ``sample_size``; the consistency terms
(``symm_kl``, ``noise_sq_err``, SMART's ``smart_*``, R-Drop's ``rdrop_kl``) per ``sample_size`` (a sentence for
classification), unweighted, in nats, so ``loss = task_loss + lambda * symm_kl / ln 2`` (+ R-Drop's 2nd task loss)."""

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import torch
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from rxf.capture import captured_outputs
from rxf.noise import NOISE_TYPES, DropoutReplay, both_passes_in_one_forward, check_noise_args, noised_token_embeddings
from rxf_fairseq.errors import OptionError
from rxf_fairseq.model_parts import find_encoder_token_embedding

logger = logging.getLogger(__name__)

CONSISTENCY_KEYS = ("symm_kl", "noise_sq_err", "smart_symm_kl", "smart_sq_err", "smart_bregman", "rdrop_kl")


@dataclass
class R3FConfig(FairseqDataclass):
    eps: float = field(
        default=1e-5,
        metadata={
            "help": "noise scale: z ~ U(-eps, eps) or N(0, eps^2) is added to the encoder's "
            "token embeddings (never the decoder's) in the second forward pass; 0 = no noise"
        },
    )
    r3f_lambda: float = field(
        default=1.0,
        metadata={
            "help": "weight of the symmetric-KL term, scaled as fairseq's examples/rxf; "
            "0 = standard fine-tuning (no second forward pass)"
        },
    )
    noise_type: ChoiceEnum(list(NOISE_TYPES)) = field(
        default="uniform", metadata={"help": "distribution of the embedding noise"}
    )
    fast_r3f: bool = field(
        default=False,
        metadata={
            "help": "run the noised forward pass without gradient (2 forwards + 1 backward per "
            "update, the paper's Table 1 count). This optimises a one-sided consistency term "
            "(the clean prediction is pulled towards the noised one), not the paper's objective"
        },
    )
    r3f_one_forward: bool = field(
        default=False,
        metadata={
            "help": "run the clean and the noised pass as one forward of the batch concatenated with itself (the "
            "noise on the second copy only; the same objective, dropout masks independent as in two passes): "
            "fewer, larger kernels; see docs/cost.md for when it is faster"
        },
    )
    r3f_same_dropout: bool = field(
        default=False,
        metadata={"help": "the noised pass replays the clean pass's dropout masks: the term is the noise's alone"},
    )


def check_nonnegative_finite(flag: str, value: float, hint: str = "") -> None:
    """Reject a negative, NaN or infinite option (``not value >= 0`` alone lets ``inf`` through)."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise OptionError(f"{flag} must be >= 0 and finite, got {value!r}{'; ' + hint if hint else ''}")


def stock_forward(stock_forward_fn: Callable, model, sample, reduce: bool, criterion_name: str):
    """fairseq's own criterion forward, unchanged, plus the clean model output it computed (None in evaluation,
    where no term is due)."""
    with captured_outputs(model) as outputs:
        loss, sample_size, logging_output = stock_forward_fn(model, sample, reduce)
    if not model.training:
        return loss, sample_size, logging_output, None
    if len(outputs) != 1:
        raise RuntimeError(
            f"{criterion_name}: expected the model to be called once, it was called {len(outputs)} times"
        )
    return loss, sample_size, logging_output, outputs[0]


def log_task_loss(logging_output: Dict) -> Dict:
    """The stock criterion's loss as ``task_loss``, before any term is added, on every path."""
    logging_output["task_loss"] = logging_output["loss"]
    return logging_output


def check_one_forward(model) -> None:
    """--r3f-one-forward keeps the two copies' randomness independent only where it is drawn per element (dropout);
    LayerDrop and quant-noise draw once per forward for the whole batch: refused, naming the flag."""
    from fairseq.modules import LayerDropModuleList

    for name, module in model.named_modules():
        if isinstance(module, LayerDropModuleList) and module.p > 0:
            flag = "--decoder-layerdrop" if "decoder" in name else "--encoder-layerdrop"
            raise OptionError(
                f"--r3f-one-forward with {flag} {module.p:g}: LayerDrop drops the same layers for the whole doubled "
                "batch, so the clean and noised copies would share them; use two passes (leave --r3f-one-forward out)"
            )
    for holder in (getattr(model, "args", None), getattr(model, "cfg", None)):
        pq = getattr(holder, "quant_noise_pq", 0) or 0
        if pq > 0:
            raise OptionError(
                f"--r3f-one-forward with --quant-noise-pq {pq:g}: its masks are drawn once per forward for the whole "
                "doubled batch; use two passes (leave --r3f-one-forward out)"
            )


def add_consistency_term(loss, logging_output: Dict, weight: float, term, key: str):
    """loss + weight * term, with the total and the term logged (as tensors: no synchronisation)."""
    loss = loss + weight * term
    logging_output["loss"] = loss.data
    logging_output[key] = term.data
    return loss


def reduce_r3f_metrics(logging_outputs: List[Dict]) -> None:
    """``task_loss`` as fairseq's ``loss``; the terms to 3 significant digits (a KL of 1e-7 would round to 0 at
    fairseq's 3 decimals); ``noise_changed_pct`` in percent. Every input is a sum, so workers' logs can be summed."""
    sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
    if sample_size > 0 and any("task_loss" in log for log in logging_outputs):
        task_loss = sum(log.get("task_loss", 0) for log in logging_outputs)
        metrics.log_scalar("task_loss", float(task_loss) / sample_size / math.log(2), sample_size, round=3)
    for key in CONSISTENCY_KEYS:
        if sample_size > 0 and any(key in log for log in logging_outputs):
            total = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(f"_{key}", float(total) / sample_size, sample_size)
            metrics.log_derived(key, lambda meters, key=key: float(f"{meters[f'_{key}'].avg:.3g}"))
    elements = sum(log.get("noise_elements", 0) for log in logging_outputs)
    if elements > 0:
        changed = sum(float(log.get("noise_changed", 0)) for log in logging_outputs)
        metrics.log_scalar("noise_changed_pct", 100.0 * changed / elements, elements, round=2)


class ConsistencyCriterion:
    """loss = a stock fairseq criterion's loss + lambda * a consistency term between the model's output on the clean
    input and on perturbed token embeddings. Mixed in before the stock criterion, whose ``forward`` runs unchanged
    (the task loss and its metrics are fairseq's) and whose clean output is captured, not recomputed. A criterion
    sets ``criterion_name`` and ``consistency_weight`` (lambda) and defines ``check_model``, ``perturbed_logits`` and
    ``consistency_term``; ``further_terms`` adds terms of its own (SMART's proximal term, R-Drop's two)."""

    criterion_name: str
    consistency_weight: float
    one_forward = False
    same_dropout, _replay = False, None
    _checked_model = None

    def forward(self, model, sample, reduce=True):
        if self._checked_model is not model:
            self.check_model(model)
            if self.one_forward:
                check_one_forward(model)
            # Not as a submodule: the model's parameters would become the criterion's, and fairseq saves a
            # criterion with parameters in every checkpoint (a second copy of the model on GPU).
            object.__setattr__(self, "_checked_model", model)
        stock = super().forward
        if self.consistency_weight == 0 and not self.further_terms_due():  # standard fine-tuning: one pass
            loss, sample_size, logging_output = stock(model, sample, reduce)
            return loss, sample_size, log_task_loss(logging_output)
        if self.one_forward and model.training and not self.further_terms_due():
            embedding, scope = find_encoder_token_embedding(model)
            with both_passes_in_one_forward(model, embedding, scope, self.noise_eps, self.noise_type) as both:
                loss, sample_size, logging_output = stock(model, sample, reduce)
            clean_logits, perturbed_logits, record = both.clean, both.noised, both.record
        else:
            if self.same_dropout and model.training:  # before the clean pass draws its masks
                self._replay = DropoutReplay(next(model.parameters()).device)
            loss, sample_size, logging_output, clean = stock_forward(stock, model, sample, reduce, self.criterion_name)
            if clean is None:
                return loss, sample_size, log_task_loss(logging_output)
            clean_logits, perturbed_logits = clean[0], None
            if self.consistency_weight != 0:
                perturbed_logits, record = self.perturbed_logits(model, sample, clean_logits)
        log_task_loss(logging_output)
        if perturbed_logits is not None:
            if record.changed is not None:  # fp16/bf16: how many embedding entries the noise changed
                logging_output.update(noise_changed=record.changed, noise_elements=record.elements)
            term, key = self.consistency_term(model, sample, sample_size, clean_logits, perturbed_logits)
            loss = add_consistency_term(loss, logging_output, self.consistency_weight, term, key)
        for weight, term, key in self.further_terms(model, sample, clean_logits):
            loss = add_consistency_term(loss, logging_output, weight, term, key)
        return loss, sample_size, logging_output

    def further_terms_due(self) -> bool:
        """Whether ``further_terms`` are due even when lambda is 0."""
        return False

    def further_terms(self, model, sample, clean_logits) -> List[Tuple[float, Any, str]]:
        return []

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        super().reduce_metrics(logging_outputs)
        reduce_r3f_metrics(logging_outputs)


class R3FCriterion(ConsistencyCriterion):
    """R3F's consistency criterion: its options and the noised pass of the criterion's ``logits(model, sample)``."""

    @classmethod
    def check_options(cls, cfg: R3FConfig) -> None:
        """The start-up checks of the options alone (no task, no model): ``rxf-run --dry-run`` runs them."""
        try:
            check_noise_args(cfg.eps, str(cfg.noise_type))
        except ValueError as error:
            raise OptionError(str(error)) from None
        check_nonnegative_finite("--r3f-lambda", cfg.r3f_lambda, "0 = standard fine-tuning, the paper searches 0.001-5")
        if cfg.fast_r3f and cfg.r3f_one_forward:
            raise OptionError(
                "--r3f-one-forward runs the noised copy in the clean pass's graph, with gradient; --fast-r3f runs it "
                "without: choose one"
            )
        if cfg.r3f_same_dropout and cfg.r3f_one_forward:
            raise OptionError(
                "--r3f-same-dropout replays the clean pass's masks; --r3f-one-forward draws each copy's own"
            )

    def set_r3f_options(self, cfg: R3FConfig, paper_grids: Mapping[str, Tuple[str, Sequence[float]]]) -> None:
        """Check the options and keep them (``noise_eps``: label smoothing has ``eps``); warn once when lambda (not 0,
        standard fine-tuning) is outside the range the paper searched."""
        self.check_options(cfg)
        values = [v for _, grid in paper_grids.values() for v in grid]
        if cfg.r3f_lambda != 0 and not min(values) <= cfg.r3f_lambda <= max(values):
            logger.warning(
                "--criterion %s: --r3f-lambda %g%s is outside the paper's grid (%s); results are not comparable "
                "with the paper's. Set --r3f-lambda (the configs/*/method/r3f.yaml files do) to silence this.",
                self.criterion_name,
                cfg.r3f_lambda,
                " (the default)" if cfg.r3f_lambda == R3FConfig.r3f_lambda else "",
                "; ".join(
                    f"{bench}, {table}: {', '.join(f'{v:g}' for v in vs)}" for bench, (table, vs) in paper_grids.items()
                ),
            )
        self.noise_eps = cfg.eps
        self.consistency_weight = cfg.r3f_lambda
        self.noise_type = str(cfg.noise_type)
        self.fast_r3f = cfg.fast_r3f
        self.one_forward = cfg.r3f_one_forward
        self.same_dropout = cfg.r3f_same_dropout

    def perturbed_logits(self, model, sample, clean_logits):
        """The noised pass; without gradient for ``--fast-r3f``."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.fast_r3f):
            embedding, scope = find_encoder_token_embedding(model)
            generator, self._replay = (self._replay.replay() if self._replay is not None else None), None
            with noised_token_embeddings(embedding, scope, self.noise_eps, self.noise_type, generator) as record:
                logits = self.logits(model, sample)
        return logits, record


@dataclass
class RDropConfig(FairseqDataclass):
    rdrop_alpha: float = field(
        default=1.0,
        metadata={
            "help": "alpha, weight of R-Drop's term between two dropout passes: 1/2 (KL(P1||P2) + KL(P2||P1)), or "
            "the squared difference of the two predictions with --regression-target; 0 = standard fine-tuning (one "
            "pass, the stock loss)"
        },
    )


class RDropCriterion(ConsistencyCriterion):
    """R-Drop (Liang et al., 2021): the stock criterion's ``forward`` run twice, each pass drawing its own dropout
    masks, loss = CE(P1) + CE(P2) + alpha * term, with the sums, ``sample_size`` and metrics of the first pass (R-Drop's
    fairseq code: the doubled batch's summed loss over the undoubled ``sample_size``). In evaluation, one stock pass."""

    @classmethod
    def check_options(cls, cfg: RDropConfig) -> None:
        check_nonnegative_finite("--rdrop-alpha", cfg.rdrop_alpha, "0 = standard fine-tuning")

    def set_rdrop_options(self, cfg: RDropConfig) -> None:
        self.check_options(cfg)
        # both terms are further terms: no noised pass, and the second cross-entropy joins the loss unweighted
        self.consistency_weight, self.rdrop_alpha = 0.0, cfg.rdrop_alpha

    def further_terms_due(self) -> bool:
        return self.rdrop_alpha != 0

    def further_terms(self, model, sample, logits_1):
        """The second pass: the stock ``forward`` again (fairseq's task loss, label smoothing included), no noise; its
        loss as it is, and alpha * the term between the two passes' logits."""
        stock = super(ConsistencyCriterion, self).forward
        loss_2, sample_size, _, output = stock_forward(stock, model, sample, True, self.criterion_name)
        term, key = self.consistency_term(model, sample, sample_size, logits_1, output[0])
        return [(1.0, loss_2, "rdrop_second_loss"), (self.rdrop_alpha, term, key)]
