"""Symmetric KL divergence between the clean and the noised predictive distributions."""

import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def symmetric_kl(logits_p: Tensor, logits_q: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """KL(P||Q) + KL(Q||P) summed over every position kept by ``mask`` (shape ``logits.shape[:-1]``), the softmax in
    fp32 (fp16 loses a 1e-5 perturbation's differences); fairseq examples/rxf's terms, with log-probability
    targets so that identical inputs give exactly 0."""
    if logits_p.shape != logits_q.shape:
        raise ValueError(f"logit shapes differ: {tuple(logits_p.shape)} vs {tuple(logits_q.shape)}")
    log_p = F.log_softmax(logits_p, dim=-1, dtype=torch.float32)
    log_q = F.log_softmax(logits_q, dim=-1, dtype=torch.float32)
    kl = functools.partial(F.kl_div, log_target=True)  # kl(log_a, log_b) = KL(B||A)
    if mask is None:
        return kl(log_q, log_p, reduction="sum") + kl(log_p, log_q, reduction="sum")
    if mask.shape != logits_p.shape[:-1]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match logits {tuple(logits_p.shape[:-1])}")
    per_position = (kl(log_q, log_p, reduction="none") + kl(log_p, log_q, reduction="none")).sum(dim=-1)
    return per_position.masked_fill(~mask, 0.0).sum()


def squared_prediction_change(pred_clean: Tensor, pred_noised: Tensor) -> Tensor:
    """The consistency term for regression heads, where a KL is undefined: sum of (y - y~)^2 in fp32."""
    return (pred_clean.float() - pred_noised.float()).pow(2).sum()


def rdrop_term(logits_1: Tensor, logits_2: Tensor, mask: Optional[Tensor] = None, regression: bool = False) -> Tensor:
    """R-Drop's consistency term (Liang et al., 2021) between two dropout passes: 1/2 (KL(P1||P2) + KL(P2||P1))
    summed as ``symmetric_kl`` sums; for a regression head, where a KL is undefined, the squared difference."""
    if regression:
        return squared_prediction_change(logits_1, logits_2)
    return 0.5 * symmetric_kl(logits_1, logits_2, mask)
