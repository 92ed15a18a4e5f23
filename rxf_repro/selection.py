"""What the tables and figures show: the setting selected per (task, method) by the rule of ``rxf_repro/report.py``'s
docstring, and the numbers over its seeds (probes: only aggregated over seeds). Every number an entry holds is present,
and finite, in every record it counts; otherwise a ``UserError`` names the records.
"""

import json
import math
import operator
import statistics
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

from rxf_repro import catalog, records
from rxf_repro import paper_results as paper
from rxf_repro.catalog import method_name
from rxf_repro.cli import UserError
from rxf_repro.records import Record

T = TypeVar("T")
TINY_LABEL = "tiny runs (tests, make demo) — not paper results"
# Table 2's columns: the paper's (task -> the metrics of its "a/b" cell), then STS-B, which the paper leaves out (its
# KL term is not defined for regression): Pearson r, as RoBERTa reports it. make demo's WordNet tasks come last.
TABLE2_METRICS: Dict[str, Tuple[str, ...]] = {
    **dict(paper.TABLE2_COLUMNS),
    "STS-B": ("pearson",),
    **{task: ("accuracy",) for task in catalog.DEMO_TASKS.values()},
}


def setting_key(hparams: Dict[str, Any]) -> str:
    return json.dumps(hparams, sort_keys=True)


def setting_label(hparams: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(hparams.items())) or "default"


def method_rank(method: str) -> Tuple[int, str]:
    order = catalog.METHOD_ORDER
    return (order.index(method), "") if method in order else (len(order), method)


def ordered_methods(methods: Sequence[str]) -> List[str]:
    return sorted(set(methods), key=method_rank)


def is_finite_number(value: Any) -> bool:
    return records.is_number(value) and math.isfinite(value)


def rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def name_records(recs: Sequence[Record], most: int = 3) -> str:
    paths = [r.path for r in recs]
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


def group_by(items: Sequence[T], key: Callable[[T], Any]) -> Dict[Any, List[T]]:
    groups: Dict[Any, List[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def check_tiny(recs: Sequence[Record]) -> bool:
    tiny = [r for r in recs if r.tiny]
    full = [r for r in recs if not r.tiny]
    if tiny and full:
        raise UserError(
            f"the records mix tiny test runs ({len(tiny)}, e.g. {tiny[0].path}) and full runs "
            f"({len(full)}, e.g. {full[0].path}); report them separately"
        )
    return bool(tiny)


def check_duplicates(recs: Sequence[Record]) -> None:
    """Two records of the same run would be counted twice in every statistic."""
    seen: Dict[Tuple, str] = {}
    for r in recs:
        probe = setting_key(r.probe.to_dict()) if r.probe else None
        key = (r.kind, r.task, r.method, setting_key(r.hparams), r.seed, probe)
        if key in seen:
            raise UserError(
                f"{r.path}: the same run as {seen[key]} ({r.kind} {r.task} {r.method} "
                f"{setting_label(r.hparams)} seed {r.seed}); keep one of them"
            )
        seen[key] = r.path


def require_metrics(recs: Sequence[Record], names: Sequence[str], what: str) -> None:
    """Each metric the report prints from ``recs``: present, and finite, in every one of them (a mean over the seeds
    that have it would be labelled with the wrong n)."""
    for name in names:
        bad = [r for r in recs if name in r.metrics and not is_finite_number(r.metrics[name])]
        if bad:
            raise UserError(
                f"{name_records(bad)}: metric {name!r} is {bad[0].metrics[name]!r}, not a finite number ({what}); "
                "the run's evaluation failed or diverged: rerun it or remove its record"
            )
        missing = [r for r in recs if name not in r.metrics]
        if missing:
            raise UserError(
                f"{name_records(missing)}: no metric {name!r} ({what}; {len(recs) - len(missing)} of {len(recs)} "
                "records have it); every record counted needs it: rerun those runs or remove their records"
            )


@dataclass(frozen=True)
class Selection:
    """The winning setting of one (task, method) and the seeds it was run with."""

    task: str
    method: str
    hparams: Dict[str, Any]
    runs: List[Record]  # sorted by seed
    selected_by: str
    score: float
    settings_compared: int
    settings_with_fewer_seeds: int = 0

    @property
    def seeds(self) -> List[int]:
        return [r.seed for r in self.runs]

    def summary(self) -> Dict[str, Any]:
        return {
            "task": self.task,
            "method": self.method,
            "setting": self.hparams,
            "selected_by": self.selected_by,
            "selection_score": rounded(self.score),
            "settings_compared": self.settings_compared,
            "settings_with_fewer_seeds": self.settings_with_fewer_seeds,
            "seeds": self.seeds,
            "n": len(self.runs),
            "records": [r.path for r in self.runs],
        }


def select_setting(
    recs: Sequence[Record],
    value: Callable[[Record], float],
    aggregate: Callable[[List[float]], float],
    *,
    maximize: bool,
    selected_by: str,
) -> Selection:
    """The setting with the best ``aggregate`` of ``value`` over its seeds (ties: first canonical JSON) among those
    run with the most seeds: the best setting rerun on 10 seeds, never a grid point luckier on 3 (the paper's way)."""
    groups = group_by(recs, lambda r: setting_key(r.hparams))
    most = max(len(group) for group in groups.values())
    scores = {key: aggregate([value(r) for r in group]) for key, group in groups.items() if len(group) == most}
    best = (max if maximize else min)(sorted(scores), key=scores.__getitem__)  # ties go to the first key
    runs = sorted(groups[best], key=lambda r: r.seed)
    fewer = len(groups) - len(scores)
    return Selection(recs[0].task, recs[0].method, runs[0].hparams, runs, selected_by, scores[best], len(scores), fewer)


def select_on_validation(
    recs: Sequence[Record], valid: str, *, maximize: bool, test: Callable[[Record], float], test_by: str
) -> Selection:
    """The best mean of the validation number ``valid`` when every record has it (one not finite is an error), else
    the highest mean of ``test(record)``: the test sets of Tables 3 and 4 choose only when they must."""
    bad = [r for r in recs if getattr(r, valid) is not None and not is_finite_number(getattr(r, valid))]
    if bad:
        raise UserError(
            f"{name_records(bad)}: {valid} is {getattr(bad[0], valid)!r}, not a finite number (it "
            f"selects the setting); rerun the run or remove its record"
        )
    if all(getattr(r, valid) is not None for r in recs):
        by = f"{'mean' if maximize else 'lowest mean'} {valid} over seeds"
        return select_setting(recs, operator.attrgetter(valid), statistics.fmean, maximize=maximize, selected_by=by)
    by = f"{test_by} (no {valid} in every record)"
    return select_setting(recs, test, statistics.fmean, maximize=True, selected_by=by)


def by_task_method(recs: Sequence[Record]) -> List[Tuple[Tuple[str, str], List[Record]]]:
    return sorted(group_by(recs, lambda r: (r.task, r.method)).items())


@dataclass
class Entry:
    """One (task, method) of Tables 2-4: its selection, and what the table shows of the selected seeds."""

    selection: Selection

    @property
    def task(self) -> str:
        return self.selection.task

    @property
    def method(self) -> str:
        return self.selection.method

    @property
    def n(self) -> int:
        return len(self.selection.runs)

    def summary(self) -> Dict[str, Any]:
        entry = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "selection"}
        return dict(self.selection.summary(), **entry)


@dataclass
class GlueEntry(Entry):
    values: Dict[str, List[float]]  # per metric, over the selected seeds ([]: no seed has it, the paper's "-")
    max: Dict[str, Optional[float]]
    median: Dict[str, Optional[float]]
    paper_max: Optional[Dict[str, paper.Number]]  # None: not in the paper, or --no-paper
    paper_median: Optional[Dict[str, paper.Number]]


def glue_results(recs: Sequence[Record], *, with_paper: bool = True) -> List[GlueEntry]:
    results = []
    for (task, method), group in by_task_method(recs):
        first = catalog.primary_metric(task)
        require_metrics(group, [first], f"{task} {method_name(method)}: its primary metric, which selects the setting")
        by = f"median {first} over seeds"
        chosen = select_setting(
            group, lambda r: float(r.metrics[first]), statistics.median, maximize=True, selected_by=by
        )
        # a second metric (MNLI mismatched, QQP F1) that no seed has is the paper's "-"; one that only some seeds
        # have would be a max/median over fewer seeds than the n printed
        shown = [m for m in TABLE2_METRICS[task] if m == first or any(m in r.metrics for r in chosen.runs)]
        where = f"{task} {method_name(method)}, setting {setting_label(chosen.hparams)}: Table 2 shows it"
        require_metrics(chosen.runs, shown, where)
        values = {m: [float(r.metrics[m]) for r in chosen.runs] if m in shown else [] for m in TABLE2_METRICS[task]}
        results.append(
            GlueEntry(
                chosen,
                values,
                {name: max(v) if v else None for name, v in values.items()},
                {name: statistics.median(v) if v else None for name, v in values.items()},
                paper.TABLE2_MAX.get(method, {}).get(task) if with_paper else None,
                paper.TABLE2_MEDIAN.get(method, {}).get(task) if with_paper else None,
            )
        )
    return results


@dataclass
class XnliEntry(Entry):
    languages: Dict[str, float]  # mean test accuracy over the selected seeds, per language tested
    avg: float  # the mean of the per-language means
    paper_row: Optional[str]  # the paper's row this method reproduces (None: none, or --no-paper)
    paper: Optional[Dict[str, paper.Number]]


def xnli_results(recs: Sequence[Record], *, with_paper: bool = True) -> List[XnliEntry]:
    results = []
    for (task, method), group in by_task_method(recs):
        # every language any record has: one missing from a seed would make a mean over fewer seeds than n
        languages = [lang for lang in catalog.XNLI_LANGUAGES if any(lang in r.metrics for r in group)]
        if not languages:
            raise UserError(
                f"{group[0].path}: an XNLI record needs per-language accuracies "
                f"({' '.join(catalog.XNLI_LANGUAGES)}), has {sorted(group[0].metrics)}"
            )
        why = (
            "other records of it were tested on that language, and averages over different languages are not comparable"
        )
        require_metrics(group, languages, f"XNLI {method_name(method)}: {why}")
        chosen = select_on_validation(
            group,
            "valid_accuracy",
            maximize=True,
            test=lambda r: statistics.fmean(float(r.metrics[lang]) for lang in languages),
            test_by="mean test average over languages",
        )
        means = {lang: statistics.fmean(float(r.metrics[lang]) for r in chosen.runs) for lang in languages}
        row = paper.TABLE3_ROW_FOR_METHOD.get(method) if with_paper else None
        results.append(
            XnliEntry(chosen, means, statistics.fmean(means.values()), row, paper.TABLE3.get(row) if row else None)
        )
    return results


@dataclass
class SummarizationEntry(Entry):
    rouge: Dict[str, float]  # mean over the selected seeds: rouge1, rouge2, rougeL
    paper_row: Optional[str]
    paper: Optional[Dict[str, paper.Number]]

    def summary(self) -> Dict[str, Any]:
        entry = super().summary()
        entry.update(entry.pop("rouge"))  # summary.json has rouge1, rouge2, rougeL beside the selection
        return entry


def summarization_results(recs: Sequence[Record], *, with_paper: bool = True) -> List[SummarizationEntry]:
    results = []
    for (task, method), group in by_task_method(recs):
        require_metrics(group, catalog.ROUGE, f"{task} {method_name(method)}: Table 4 shows it")
        chosen = select_on_validation(
            group,
            "valid_loss",
            maximize=False,
            test=lambda r: float(r.metrics["rougeL"]),
            test_by="mean test rougeL over seeds",
        )
        row = paper.TABLE4_ROW_FOR_METHOD.get(method) if with_paper else None
        rouge = {name: statistics.fmean(float(r.metrics[name]) for r in chosen.runs) for name in catalog.ROUGE}
        results.append(SummarizationEntry(chosen, rouge, row, paper.TABLE4[row][task] if row else None))
    return results


@dataclass
class ProbeEntry:
    """One (point, method) of a probing protocol: the probe accuracy over seeds."""

    source: str
    task: str
    step: Optional[int]  # degradation only
    cycle: Optional[int]  # retention only
    finetuned_on: str  # what the probed encoder was last fine-tuned on ("none": the pretrained model)
    method: str
    mean: float
    sample_std: Optional[float]  # None for one seed
    n: int
    seeds: List[int]
    values: List[float]
    setting: Dict[str, Any]
    records: List[str]

    def summary(self) -> Dict[str, Any]:
        return asdict(self)


def probe_point(r: Record) -> Tuple[str, str, str, Optional[int], Optional[int], str]:
    """(protocol, source, probed task, step, cycle, method): one marker of Figures 3-5."""
    probe = r.probe
    step = probe.step if probe.protocol == "degradation" else None
    cycle = probe.cycle if probe.protocol == "retention" else None
    return probe.protocol, probe.source, r.task, step, cycle, r.method


def probe_results(recs: Sequence[Record]) -> Dict[str, List[ProbeEntry]]:
    """protocol -> one entry per (point, method): mean, sample std and n of the probe accuracy."""
    out: Dict[str, List[ProbeEntry]] = {}
    for (protocol, source, task, step, cycle, method), group in group_by(recs, probe_point).items():
        if len({setting_key(r.hparams) for r in group}) > 1:
            raise UserError(
                f"{group[0].path} and {group[-1].path}: {protocol} probes of {task} ({method_name(method)}) with "
                f"different fine-tuning settings; probes are only aggregated over seeds, so give rxf-report one "
                f"setting's folder per method (e.g. runs/probing/{protocol}/{method}/SETTING)"
            )
        group = sorted(group, key=lambda r: r.seed)
        where = ("" if step is None else f" step {step}") + ("" if cycle is None else f" cycle {cycle}")
        require_metrics(
            group, ["accuracy"], f"{protocol} probe of {task}{where} (source {source}), {method_name(method)}"
        )
        values = [float(r.metrics["accuracy"]) for r in group]
        entry = ProbeEntry(
            source,
            task,
            step,
            cycle,
            group[0].probe.finetuned_on or "",
            method,
            statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else None,  # sample (n - 1): undefined for one seed
            len(values),
            [r.seed for r in group],
            values,
            group[0].hparams,
            [r.path for r in group],
        )
        out.setdefault(protocol, []).append(entry)
    # tasks in chain order where the protocol's records give a chain (Figures 4 and 5), else in Table 2's order
    for protocol, entries in out.items():
        order = {task: len(TABLE2_METRICS) + i for i, task in enumerate(TABLE2_METRICS)}
        for r in recs:
            if r.probe.protocol == protocol and r.probe.chain is not None:
                for i, task in enumerate(r.probe.chain):
                    order[task] = min(i, order[task])
        entries.sort(key=lambda e: (e.source, order[e.task], e.task, e.step or 0, e.cycle or 0, method_rank(e.method)))
    return out
