"""The python backend, Google's rouge-score (``rougeLsum`` over the EOS-split sentences for ROUGE-L): close to, not
equal to, the perl numbers (docs/rouge.md: how close); and ROUGE-1.5.5's report, written and read."""

from typing import Dict, Sequence, Tuple

from rxf_repro.rouge.documents import split_sentences
from rxf_repro.rouge.perl import DEFAULT_ROUGE_N

Scores = Dict[str, Dict[str, Tuple[float, float, float]]]  # {"ROUGE-1": {"R": (mid, low, high), "P": ..., "F": ...}}


def python_rouge(
    documents: Sequence[Tuple[int, str, str]],
    eos: str,
    *,
    stemming: bool = True,
    n_samples: int = 1000,
    rouge_n: int = DEFAULT_ROUGE_N,
    rouge_l: bool = True,
) -> Scores:
    import numpy as np
    from rouge_score import rouge_scorer, scoring

    # (ROUGE-1.5.5's name, rouge-score's key) in ROUGE-1.5.5's printing order
    wanted = [(f"ROUGE-{n}", f"rouge{n}") for n in range(1, rouge_n + 1)]
    wanted += [("ROUGE-L", "rougeLsum")] if rouge_l else []
    scorer = rouge_scorer.RougeScorer([key for _, key in wanted], use_stemmer=stemming)
    aggregator = scoring.BootstrapAggregator(confidence_interval=0.95, n_samples=n_samples)
    state = np.random.get_state()
    np.random.seed(1)  # rouge-score resamples with numpy's global generator
    try:
        for _, ref, summ in documents:
            # rougeLsum reads sentences from newlines; ROUGE-1/2 ignore them
            target, prediction = ("\n".join(s for s in split_sentences(text, eos) if s.strip()) for text in (ref, summ))
            aggregator.add_scores(scorer.score(target, prediction))
        result = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    fields = (("R", "recall"), ("P", "precision"), ("F", "fmeasure"))
    return {
        name: {
            short: tuple(getattr(getattr(result[key], end), field) for end in ("mid", "low", "high"))
            for short, field in fields
        }
        for name, key in wanted
    }


def format_report(scores: Scores) -> str:
    """ROUGE-1.5.5's (and so files2rouge's) report layout."""
    lines = []
    for name, by_kind in scores.items():
        lines.append("---------------------------------------------")
        for short in ("R", "P", "F"):
            mid, low, high = by_kind[short]
            lines.append(f"1 {name} Average_{short}: {mid:.5f} (95%-conf.int. {low:.5f} - {high:.5f})")
    return "\n".join(lines) + "\n"


def parse_report(report: str) -> Scores:
    """The numbers of a ROUGE-1.5.5 report (perl or python backend)."""
    scores: Scores = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[2].startswith("Average_"):
            kind = parts[2].rstrip(":")[-1]  # "Average_R:" -> "R"
            scores.setdefault(parts[1], {})[kind] = (float(parts[3]), float(parts[5]), float(parts[7].rstrip(")")))
    return scores
