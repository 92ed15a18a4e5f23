"""The paper's claims tested on a few seeds, judged from a 95% interval, never from means alone: "supported" when the
interval lies on the side the paper claims, "not supported" on the other side, "not distinguishable at this size" when
it holds both. Differences are paired by seed (the same seed shares the data order and the head's initialisation),
their interval Student's t; a ratio of variances gets the F interval. SciPy is imported only when first needed.
"""

import dataclasses
import math
import operator
import statistics
from typing import Dict, Optional, Sequence

SUPPORTED, NOT_SUPPORTED, UNDECIDED = "supported", "not supported", "not distinguishable at this size"
LEVEL = 0.95


@dataclasses.dataclass
class Interval:
    """A mean (or ratio) and its 95% interval over ``n`` values; ``low``/``high`` None when n < 2."""

    value: float
    low: Optional[float]
    high: Optional[float]
    n: int


def text(interval: Optional[Interval], digits: int = 1, signed: bool = True) -> str:
    """``+1.2 [-0.3, +2.7]`` (a difference; ``signed=False``: ``1.2 [0.3, 2.7]``), ``1.2 (n=1)``, or ``-`` for None."""
    if interval is None:
        return "-"
    if interval.low is None or interval.high is None:
        return f"{interval.value:.{digits}f} (n={interval.n})"
    sign = "+" if signed else ""
    return f"{interval.value:{sign}.{digits}f} [{interval.low:{sign}.{digits}f}, {interval.high:{sign}.{digits}f}]"


def as_dict(interval: Optional[Interval]) -> Optional[Dict[str, Optional[float]]]:
    """An interval as summary.json holds it; None where there was nothing to compare."""
    return dataclasses.asdict(interval) if interval else None


def mean_interval(values: Sequence[float]) -> Interval:
    """Mean of ``values`` with its two-sided 95% Student's t interval."""
    from scipy import stats

    mean, n = statistics.fmean(values), len(values)
    if n < 2:
        return Interval(mean, None, None, n)
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired(values: Dict[int, float], reference: Dict[int, float], combine=operator.sub) -> Optional[Interval]:
    """Mean of value - reference (or ``combine``'s) over the seeds both have, its t interval; None if none is shared."""
    seeds = sorted(set(values) & set(reference))
    return mean_interval([combine(values[s], reference[s]) for s in seeds]) if seeds else None


def variance_ratio(values: Sequence[float], reference: Sequence[float]) -> Optional[Interval]:
    """var(values) / var(reference), 95% F interval (normal samples); None without 2 of each or a constant reference."""
    from scipy import stats

    if len(values) < 2 or len(reference) < 2 or statistics.variance(reference) == 0:
        return None
    ratio = statistics.variance(values) / statistics.variance(reference)
    df = (len(values) - 1, len(reference) - 1)
    low, high = ratio / stats.f.ppf(0.5 + LEVEL / 2, *df), ratio / stats.f.ppf(0.5 - LEVEL / 2, *df)
    return Interval(ratio, low, high, len(values))


def verdict(interval: Optional[Interval], claimed_above: float = 0.0, higher_is_claimed: bool = True) -> str:
    """The verdict of a claim that the quantity is above ``claimed_above`` (below, if not ``higher_is_claimed``)."""
    if interval is None or interval.low is None or interval.high is None:
        return UNDECIDED
    if interval.low > claimed_above:
        return SUPPORTED if higher_is_claimed else NOT_SUPPORTED
    if interval.high < claimed_above:
        return NOT_SUPPORTED if higher_is_claimed else SUPPORTED
    return UNDECIDED


def unanimous(verdicts: Sequence[str]) -> str:
    """The verdict of a claim made of several comparisons (e.g. less collapse on every probe task): theirs when all
    agree; one contrary or undecided comparison leaves the claim open."""
    return verdicts[0] if len(set(verdicts)) == 1 else UNDECIDED
