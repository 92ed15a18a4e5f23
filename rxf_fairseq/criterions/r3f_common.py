"""What the R3F criterions share: their options (the reference's flag names and defaults), the
noised forward pass, and the metrics they add to fairseq's."""

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Tuple

import torch
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.logging import metrics

from rxf_fairseq.capture import captured_outputs, single_output
from rxf_fairseq.noise import (NOISE_TYPES, NoiseRecord, check_noise_args, find_encoder_token_embedding,
                               noised_token_embeddings)


@dataclass
class R3FConfig(FairseqDataclass):
    eps: float = field(
        default=1e-5,
        metadata={"help": "noise scale: z ~ U(-eps, eps) or N(0, eps^2) is added to the encoder's "
                  "token embeddings (never the decoder's) in the second forward pass; 0 = no noise"},
    )
    r3f_lambda: float = field(
        default=1.0,
        metadata={"help": "weight of the symmetric-KL term, scaled as fairseq's examples/rxf; "
                  "0 = standard fine-tuning (no second forward pass)"},
    )
    noise_type: ChoiceEnum(list(NOISE_TYPES)) = field(
        default="uniform", metadata={"help": "distribution of the embedding noise"}
    )
    fast_r3f: bool = field(
        default=False,
        metadata={"help": "run the noised forward pass without gradient (2 forwards + 1 backward per "
                  "update, the paper's Table 1 count). This optimises a one-sided consistency term "
                  "(the clean prediction is pulled towards the noised one), not the paper's objective"},
    )


def check_r3f_args(eps: float, r3f_lambda: float, noise_type: str) -> None:
    """Start-up validation, naming the flag at fault."""
    check_noise_args(eps, noise_type)
    if not r3f_lambda >= 0:
        raise ValueError(f"--r3f-lambda must be >= 0, got {r3f_lambda!r}")


def set_r3f_options(criterion, cfg: R3FConfig) -> None:
    """Validate the R3F options and keep them on the criterion (``noise_eps``, not ``eps``: fairseq's
    label-smoothed cross entropy already uses that name for the smoothing)."""
    check_r3f_args(cfg.eps, cfg.r3f_lambda, cfg.noise_type)
    criterion.noise_eps = cfg.eps
    criterion.r3f_lambda = cfg.r3f_lambda
    criterion.noise_type = str(cfg.noise_type)
    criterion.fast_r3f = cfg.fast_r3f


def require_encoder_embedding(model, criterion_name: str) -> None:
    """The R3F/SMART criterions perturb the encoder's token embeddings: refuse models without them."""
    try:
        find_encoder_token_embedding(model)
    except ValueError as error:
        raise ValueError(f"--criterion {criterion_name}: {error}") from None


def stock_forward(stock_forward_fn: Callable, model, sample, reduce: bool, criterion_name: str):
    """fairseq's own criterion forward, unchanged, plus the clean model output it computed.

    Returns ``(loss, sample_size, logging_output, clean_output)``; ``clean_output`` is None when no
    consistency term is due (evaluation), so no second pass is run then.
    """
    with captured_outputs(model) as outputs:
        loss, sample_size, logging_output = stock_forward_fn(model, sample, reduce)
    clean_output = single_output(outputs, criterion_name) if model.training else None
    return loss, sample_size, logging_output, clean_output


def add_consistency_term(loss, logging_output: Dict, weight: float, term, key: str):
    """loss + weight * term, with the total and the term logged (as tensors: no synchronisation)."""
    loss = loss + weight * term
    logging_output["loss"] = loss.data
    logging_output[key] = term.data
    return loss


def noised_forward(model, run: Callable[[], Any], eps: float, noise_type: str, fast: bool) -> Tuple[Any, NoiseRecord]:
    """``run()`` (a forward pass of ``model``) with R3F noise on the encoder's token embeddings;
    without gradient for ``--fast-r3f``."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and not fast):
        with noised_token_embeddings(model, eps, noise_type) as record:
            output = run()
    return output, record


def log_noise_audit(logging_output: Dict, record: NoiseRecord) -> None:
    """Under fp16/bf16: how many embedding entries the noise changed (most of a 1e-5 noise rounds away)."""
    if record.changed is not None:
        logging_output["noise_changed"] = record.changed
        logging_output["noise_elements"] = record.elements


def reduce_r3f_metrics(logging_outputs: List[Dict]) -> None:
    """``symm_kl`` / ``noise_sq_err`` per sentence (as the reference), ``noise_changed_pct`` in percent."""
    sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
    for key in ("symm_kl", "noise_sq_err"):
        if sample_size > 0 and any(key in log for log in logging_outputs):
            total = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, float(total) / sample_size, sample_size)
    elements = sum(log.get("noise_elements", 0) for log in logging_outputs)
    if elements > 0:
        changed = sum(float(log.get("noise_changed", 0)) for log in logging_outputs)
        metrics.log_scalar("noise_changed_pct", 100.0 * changed / elements, elements, round=2)
