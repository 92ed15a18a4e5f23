"""The paper's claims tested on a few seeds: intervals, paired comparisons and the verdict they allow.

A claim is judged from a 95% interval, never from means alone: "supported" when the interval lies on the side the
paper claims, "not supported" when it lies on the other side, "not distinguishable at this size" when it holds
both. Differences are paired by seed (a method and Standard fine-tuned from the same seed share the data order and
the head's initialisation), their interval Student's t; a ratio of variances gets the F interval. SciPy (a
dependency of fairseq's scikit-learn) gives the quantiles; nothing here imports fairseq or torch.
"""

import math
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

SUPPORTED, NOT_SUPPORTED, UNDECIDED = "supported", "not supported", "not distinguishable at this size"
LEVEL = 0.95


@dataclass
class Interval:
    """A mean (or ratio) and its 95% interval over ``n`` values; ``low``/``high`` None when n < 2."""

    value: float
    low: Optional[float]
    high: Optional[float]
    n: int

    def text(self, digits: int = 1, signed: bool = True) -> str:
        """``+1.2 [-0.3, +2.7]`` (a difference; ``signed=False``: ``1.2 [0.3, 2.7]``), or ``1.2 (n=1)``."""
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f} (n={self.n})"
        sign = "+" if signed else ""
        return f"{self.value:{sign}.{digits}f} [{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}]"

    def to_dict(self) -> Dict[str, Optional[float]]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean of ``values`` with its two-sided 95% Student's t interval."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired(values: Dict[int, float], reference: Dict[int, float]) -> Optional[Interval]:
    """Mean of (value - reference) over the seeds both have, with its t interval; None if no seed is shared."""
    seeds = sorted(set(values) & set(reference))
    if not seeds:
        return None
    return mean_interval([values[s] - reference[s] for s in seeds])


def variance_ratio(values: Sequence[float], reference: Sequence[float]) -> Optional[Interval]:
    """var(values) / var(reference) with its 95% F interval (normal samples); None without two of each or with a
    reference that did not vary."""
    from scipy import stats

    if len(values) < 2 or len(reference) < 2:
        return None
    denominator = statistics.variance(reference)
    if denominator == 0:
        return None
    ratio = statistics.variance(values) / denominator
    df = (len(values) - 1, len(reference) - 1)
    return Interval(
        ratio, ratio / stats.f.ppf(0.5 + LEVEL / 2, *df), ratio / stats.f.ppf(0.5 - LEVEL / 2, *df), len(values)
    )


def verdict(interval: Optional[Interval], claimed_above: float = 0.0, higher_is_claimed: bool = True) -> str:
    """The verdict of a claim that the quantity is above ``claimed_above`` (below, if not ``higher_is_claimed``)."""
    if interval is None or interval.low is None or interval.high is None:
        return UNDECIDED
    above, below = interval.low > claimed_above, interval.high < claimed_above
    if above:
        return SUPPORTED if higher_is_claimed else NOT_SUPPORTED
    if below:
        return NOT_SUPPORTED if higher_is_claimed else SUPPORTED
    return UNDECIDED


def unanimous(verdicts: Sequence[str]) -> str:
    """The verdict of a claim made of several comparisons (e.g. less collapse on every probe task): theirs when all
    agree, otherwise not distinguishable at this size (one contrary or undecided comparison leaves the claim open)."""
    kinds: List[str] = sorted(set(verdicts))
    return kinds[0] if len(kinds) == 1 else UNDECIDED
