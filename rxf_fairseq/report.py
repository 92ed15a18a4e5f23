"""rxf-report: run records -> the paper's tables and figures, side by side with the published numbers.

    rxf-report RECORDS [RECORDS ...] --out DIR [--figure1-task SST-2] [--figure2-tasks RTE MRPC ...]

RECORDS are run folders (every ``record.json`` under them, see ``rxf_fairseq/records.py``) or record files.
DIR gets only what the records support: ``table2.{md,csv}`` (GLUE), ``table3.{md,csv}`` (XNLI),
``table4.{md,csv}`` (summarisation), ``figure1_walltime.png``, ``figure2_seeds.png`` (GLUE),
``probing_{generalisation,degradation,retention}.{md,csv}`` with ``figure{3,4,5}_*.png`` (probes), and always
``summary.json`` (every aggregated number, the selected settings and the records behind them). The report is
built in a temporary folder beside DIR and renamed into place, so a failure never leaves half a report; an
existing DIR is replaced only if it is empty or an earlier rxf-report output.

Selection rule (the paper's Section 3.1: search the grid, then run the best setting over 10 seeds; LM-BFF's
``tools/gather_result.py`` applies the same rule):

1. The records of one (task, method) are grouped by hyper-parameter setting: the record's ``hparams``,
   compared as canonical JSON. Runs in one setting differ only by seed; each record already describes the
   run's best validation checkpoint (``runs.py``).
2. Only the settings run with the most seeds compete (a grid searched on 3 seeds whose best setting was then
   run on 10 is reported with those 10; the others are counted as "with fewer seeds, not compared"), and
   the one with the best *selection score* wins:
   - GLUE: the median over seeds of the task's primary metric (MNLI matched accuracy, QQP accuracy, CoLA
     MCC, STS-B Pearson, otherwise accuracy). GLUE numbers are dev-set numbers, as in the paper's Table 2.
   - XNLI: the mean over seeds of ``valid_accuracy`` (the validation accuracy of the checkpoint that was
     tested) when every record of the (task, method) has it, else the mean of the per-run test average
     over languages.
   - Summarisation: the lowest mean ``valid_loss`` when every record of the (task, method) has it, else the
     highest mean test ROUGE-L.
   A validation number is preferred so that the test sets of Tables 3 and 4 do not choose the setting;
   each table says which score chose. Ties go to the setting whose canonical JSON sorts first.
3. Over the chosen setting's seeds: Table 2 reports the max and the median of each metric (each column on
   its own; the median of an even count is the mean of the two middle values), Tables 3 and 4 the mean.
   Figures 1 and 2 show the same seeds. The number of seeds is always printed.

Probes (kind ``probe``) are not selected: mean and sample standard deviation over seeds per (protocol,
source, probed task, step or cycle, method); the records of one such group must share one setting.

Records made by tests or miniature presets (``tiny: true``) are labelled "tiny runs (tests, make demo) — not paper results"
in every table and figure; mixing them with full runs is an error.
"""

import argparse
import csv
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_fairseq import paper_results as paper
from rxf_fairseq import records as run_records

Record = Dict[str, Any]
Writer = Callable[[str], None]

GENERATOR = "rxf-report"
TINY_LABEL = "tiny runs (tests, make demo) — not paper results"
PAPER_LEFT_OUT = "The paper's numbers are left out (--no-paper): these runs are not on the paper's data."
METHOD_ORDER = ("none", "std", "std++", "smart", "r3f", "r4f", "fast-r3f")
# Table 2's columns: (task, metrics shown as "a/b", header). The first metric is the task's primary one.
GLUE_COLUMNS: Tuple[Tuple[str, Tuple[str, ...], str], ...] = (
    ("MNLI", ("accuracy", "accuracy_mm"), "MNLI m/mm"),
    ("QQP", ("accuracy", "f1"), "QQP acc/F1"),
    ("RTE", ("accuracy",), "RTE"),
    ("QNLI", ("accuracy",), "QNLI"),
    ("MRPC", ("accuracy",), "MRPC"),
    ("CoLA", ("mcc",), "CoLA (MCC)"),
    ("SST-2", ("accuracy",), "SST-2"),
    ("STS-B", ("pearson",), "STS-B (Pearson)*"),  # not in the paper: KL is undefined for regression
)
GLUE_METRICS = {task: metrics for task, metrics, _ in GLUE_COLUMNS}
PRIMARY = {task: metrics[0] for task, metrics, _ in GLUE_COLUMNS}
ROUGE = ("rouge1", "rouge2", "rougeL")
PROTOCOLS = ("generalisation", "degradation", "retention")
PROBE_FIGURES = {"generalisation": ("figure3_generalisation.png", "Figure 3: probing, generalisation"),
                 "degradation": ("figure4_degradation.png", "Figure 4: probing, degradation along the chain"),
                 "retention": ("figure5_retention.png", "Figure 5: probing, retention over cycles")}


SELECTION_RULE = "1." + __doc__.split("\n1.", 1)[1].split("Probes (kind", 1)[0].rstrip()  # for summary.json


class ReportError(Exception):
    """Records that cannot make a report; the message names the file and how to fix it."""


# ------------------------------------------------------------------------------------------ helpers

def setting_key(hparams: Dict[str, Any]) -> str:
    return json.dumps(hparams, sort_keys=True)


def setting_label(hparams: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(hparams.items())) or "default"


def method_name(method: str) -> str:
    return paper.METHOD_NAMES.get(method, method)


def method_rank(method: str) -> Tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def ordered_methods(methods: Sequence[str]) -> List[str]:
    return sorted(set(methods), key=method_rank)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sample_std(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation (n - 1); None for a single run, where it is undefined."""
    return statistics.stdev(values) if len(values) > 1 else None


def ours(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def published(value: Optional[float]) -> str:
    """The paper's number, shortest form (its 91.10 shows as 91.1): its precision, not ours."""
    return "-" if value is None else str(value)


def rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def title(text: str, tiny: bool) -> str:
    return f"{text} — {TINY_LABEL}" if tiny else text


def check_duplicates(recs: Sequence[Record]) -> None:
    """Two records of the same run would be counted twice in every statistic."""
    seen: Dict[Tuple, str] = {}
    for r in recs:
        key = (r["kind"], r["task"], r["method"], setting_key(r["hparams"]), r["seed"],
               json.dumps(r.get("probe"), sort_keys=True))
        if key in seen:
            raise ReportError(f"{r['path']}: the same run as {seen[key]} ({r['kind']} {r['task']} {r['method']} "
                              f"{setting_label(r['hparams'])} seed {r['seed']}); keep one of them")
        seen[key] = r["path"]


# ------------------------------------------------------------------------------------------ selection

@dataclass
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
        return [r["seed"] for r in self.runs]

    def describe(self) -> Dict[str, Any]:
        return {"task": self.task, "method": self.method, "setting": self.hparams,
                "selected_by": self.selected_by, "selection_score": rounded(self.score),
                "settings_compared": self.settings_compared,
                "settings_with_fewer_seeds": self.settings_with_fewer_seeds, "seeds": self.seeds, "n": len(self.runs),
                "records": [r["path"] for r in self.runs]}


def select_setting(recs: Sequence[Record], value: Callable[[Record], float],
                   aggregate: Callable[[List[float]], float], maximize: bool, selected_by: str) -> Selection:
    """The setting with the best ``aggregate`` of ``value`` over its seeds (ties: first canonical JSON), among
    the settings run with the most seeds: a grid searched on a few seeds whose best setting was then run on 10
    is reported with those 10 (the paper's procedure), never with a luckier 3-seed grid point."""
    groups: Dict[str, List[Record]] = {}
    for r in recs:
        groups.setdefault(setting_key(r["hparams"]), []).append(r)
    most = max(len(group) for group in groups.values())
    scored = []
    for key in sorted(groups):
        if len(groups[key]) == most:
            score = aggregate([value(r) for r in groups[key]])
            scored.append((-score if maximize else score, key))
    best_score, best_key = min(scored)  # min over (score, key): ties go to the first key
    runs = sorted(groups[best_key], key=lambda r: r["seed"])
    return Selection(recs[0]["task"], recs[0]["method"], runs[0]["hparams"], runs, selected_by,
                     -best_score if maximize else best_score, len(scored), len(groups) - len(scored))


def compared(e: Dict[str, Any]) -> str:
    """The "settings compared" cell: how many settings competed, and how many were left out for fewer seeds."""
    fewer = e.get("settings_with_fewer_seeds") or 0
    return str(e["settings_compared"]) + (f" (+{fewer} with fewer seeds, not compared)" if fewer else "")


def by_task_method(recs: Sequence[Record]) -> Dict[Tuple[str, str], List[Record]]:
    groups: Dict[Tuple[str, str], List[Record]] = {}
    for r in recs:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    return groups


def metric(r: Record, name: str) -> float:
    if name not in r["metrics"]:
        raise ReportError(f"{r['path']}: no metric {name!r} (has {sorted(r['metrics'])}); "
                          f"the report needs it for {r['kind']} {r['task']}")
    if not is_number(r["metrics"][name]):
        raise ReportError(f"{r['path']}: metric {name!r} is {r['metrics'][name]!r}, not a finite number")
    return float(r["metrics"][name])


def validation_or(recs: Sequence[Record], field: str) -> bool:
    """Whether every record carries the validation number ``field`` (then it, not the test, selects)."""
    return all(is_number(r.get(field)) for r in recs)


# ------------------------------------------------------------------------------------------ Table 2

def glue_results(recs: Sequence[Record]) -> List[Dict[str, Any]]:
    """One entry per (task, method): the selected setting, per-seed values, max and median per metric."""
    for r in recs:
        if r["task"] not in GLUE_METRICS:
            raise ReportError(f"{r['path']}: GLUE task {r['task']!r} is not one of {', '.join(GLUE_METRICS)}")
    results = []
    for (task, method), group in sorted(by_task_method(recs).items()):
        primary = PRIMARY[task]
        for r in group:
            metric(r, primary)
        chosen = select_setting(group, lambda r: metric(r, primary), statistics.median, True,
                                f"median {primary} over seeds")
        entry = chosen.describe()
        entry["values"], entry["max"], entry["median"] = {}, {}, {}
        for name in GLUE_METRICS[task]:
            values = [float(r["metrics"][name]) for r in chosen.runs if name in r["metrics"]]
            entry["values"][name] = values
            entry["max"][name] = max(values) if values else None
            entry["median"][name] = statistics.median(values) if values else None
        entry["paper_max"] = paper.TABLE2_MAX.get(method, {}).get(task)
        entry["paper_median"] = paper.TABLE2_MEDIAN.get(method, {}).get(task)
        entry["_selection"] = chosen
        results.append(entry)
    return results


def table2_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True) -> Dict[str, str]:
    tasks = {e["task"] for e in results}
    columns = [(task, metrics, header) for task, metrics, header in GLUE_COLUMNS if task in tasks]
    cells = {(e["method"], e["task"]): e for e in results}
    methods = ordered_methods([e["method"] for e in results])
    parts = [f"# {title('Table 2 — GLUE dev, RoBERTa', tiny)}", "",
             "Ours: the best hyper-parameter setting per (task, method) (highest median of the task's primary "
             "metric over seeds), then the max and the median over that setting's seeds, each metric on its "
             "own. " + ("Paper: Aghajanyan et al. 2020, Table 2 (max: best of 10 seeds; the STD row is RoBERTa's "
                        "published numbers and SMART's max row the number published by its authors; FreeLB, which "
                        "the paper also lists, has no run script here)." if with_paper else PAPER_LEFT_OUT)]
    for stat, table, label in (("max", paper.TABLE2_MAX if with_paper else {}, "left: max over seeds"),
                               ("median", paper.TABLE2_MEDIAN if with_paper else {}, "right: median over seeds")):
        rows = []
        for method in methods:
            rows.append([f"{method_name(method)} (ours)"] + [
                "/".join(ours(cells[(method, task)][stat][m]) for m in metrics) if (method, task) in cells else "-"
                for task, metrics, _ in columns])
            if method in table:
                rows.append([f"{method_name(method)} (paper)"] + [
                    "/".join(published(table[method].get(task, {}).get(m)) for m in metrics)
                    for task, metrics, _ in columns])
        parts += ["", f"## {title(f'Table 2 ({label})', tiny)}", "",
                  md_table(["method"] + [h for _, _, h in columns], rows)]
    parts += ["", "## Selected settings and seeds", "", md_table(
        ["task", "method", "setting", "selected by", "score", "settings compared", "seeds (n)"],
        [[e["task"], method_name(e["method"]), setting_label(e["setting"]), e["selected_by"],
          ours(e["selection_score"]), compared(e), f"{', '.join(map(str, e['seeds']))} ({e['n']})"]
         for e in sorted(results, key=lambda e: (list(GLUE_METRICS).index(e["task"]), method_rank(e["method"])))])]
    notes = []
    if "STS-B" in tasks:
        notes.append("\\* STS-B is not in the paper's Table 2 (their KL term is not defined for regression).")
    missing = [method_name(m) for m in methods if m not in paper.TABLE2_MAX]
    if missing and with_paper:
        notes.append(f"{', '.join(missing)}: not in the paper, no paper row.")
    for note in notes:
        parts += ["", note]
    rows = []
    for e in results:
        for stat in ("max", "median"):
            published_row = e[f"paper_{stat}"] or {}  # None under --no-paper (build blanks it)
            for m in GLUE_METRICS[e["task"]]:
                rows.append([stat, e["method"], e["task"], m, rounded(e[stat][m]), published_row.get(m),
                             len(e["values"][m]), setting_label(e["setting"]), tiny])
    return {"table2.md": "\n".join(parts) + "\n",
            "table2.csv": csv_text(["statistic", "method", "task", "metric", "ours", "paper", "seeds", "setting",
                                    "tiny"], rows)}


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row])
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ Table 3

def xnli_languages(r: Record) -> List[str]:
    found = [lang for lang in paper.XNLI_LANGUAGES if lang in r["metrics"]]
    if not found:
        raise ReportError(f"{r['path']}: an XNLI record needs per-language accuracies "
                          f"({' '.join(paper.XNLI_LANGUAGES)}), has {sorted(r['metrics'])}")
    return found


def xnli_average(r: Record) -> float:
    return statistics.fmean(float(r["metrics"][lang]) for lang in xnli_languages(r))


def xnli_results(recs: Sequence[Record]) -> List[Dict[str, Any]]:
    results = []
    for (task, method), group in sorted(by_task_method(recs).items()):
        if task != "XNLI":
            raise ReportError(f"{group[0]['path']}: an xnli record has task 'XNLI', not {task!r}")
        languages = xnli_languages(group[0])
        for r in group:
            if xnli_languages(r) != languages:
                raise ReportError(f"{r['path']}: tested on {' '.join(xnli_languages(r))} but "
                                  f"{group[0]['path']} on {' '.join(languages)}; their averages are not comparable")
        if validation_or(group, "valid_accuracy"):
            chosen = select_setting(group, lambda r: float(r["valid_accuracy"]), statistics.fmean, True,
                                    "mean valid_accuracy over seeds")
        else:
            chosen = select_setting(group, xnli_average, statistics.fmean, True,
                                    "mean test average over languages (no valid_accuracy in the records)")
        entry = chosen.describe()
        entry["languages"] = {lang: statistics.fmean(float(r["metrics"][lang]) for r in chosen.runs)
                              for lang in languages}
        entry["avg"] = statistics.fmean(entry["languages"].values())
        entry["paper_row"] = paper.TABLE3_ROW_FOR_METHOD.get(method)
        entry["paper"] = paper.TABLE3.get(entry["paper_row"] or "")
        results.append(entry)
    return results


def table3_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True) -> Dict[str, str]:
    langs = list(paper.XNLI_LANGUAGES)
    results = sorted(results, key=lambda e: method_rank(e["method"]))
    rows = []
    for e in results:
        avg = ours(e["avg"]) + ("" if len(e["languages"]) == len(langs) else f" ({len(e['languages'])} langs)")
        rows.append([f"{method_name(e['method'])} (ours)", str(e["n"])]
                    + [ours(e["languages"].get(lang)) for lang in langs] + [avg])
        if e["paper"]:
            rows.append([f"{e['paper_row']} (paper)", "5"] + [published(e["paper"][k]) for k in langs + ["avg"]])
    parts = [f"# {title('Table 3 — XNLI test, zero-shot', tiny)}", "",
             "Ours: mean over the seeds of the best setting (chosen as the 'selected by' column says); avg: the "
             "mean of the per-language means. " + ("Paper: Table 3 (XLM-R large, average of 5 runs)." if with_paper
                                                   else PAPER_LEFT_OUT), "",
             md_table(["model", "runs"] + langs + ["avg"], rows), "", "## Selected settings and seeds", "",
             md_table(["method", "setting", "selected by", "score", "settings compared", "seeds (n)"],
                      [[method_name(e["method"]), setting_label(e["setting"]), e["selected_by"],
                        ours(e["selection_score"]), compared(e),
                        f"{', '.join(map(str, e['seeds']))} ({e['n']})"] for e in results])]
    csv_rows = []
    for e in results:
        for lang in langs + ["avg"]:
            value = e["avg"] if lang == "avg" else e["languages"].get(lang)
            csv_rows.append([e["method"], lang, rounded(value), (e["paper"] or {}).get(lang), e["paper_row"] or "",
                             e["n"], setting_label(e["setting"]), e["selected_by"], tiny])
    return {"table3.md": "\n".join(parts) + "\n",
            "table3.csv": csv_text(["method", "language", "ours", "paper", "paper_row", "runs", "setting",
                                    "selected_by", "tiny"], csv_rows)}


# ------------------------------------------------------------------------------------------ Table 4

def summarization_results(recs: Sequence[Record]) -> List[Dict[str, Any]]:
    results = []
    for (task, method), group in sorted(by_task_method(recs).items()):
        if task not in paper.SUMMARIZATION_DATASETS:
            raise ReportError(f"{group[0]['path']}: summarisation dataset {task!r} is not one of "
                              f"{', '.join(paper.SUMMARIZATION_DATASETS)}")
        for r in group:
            for name in ROUGE:
                metric(r, name)
        if validation_or(group, "valid_loss"):
            chosen = select_setting(group, lambda r: float(r["valid_loss"]), statistics.fmean, False,
                                    "lowest mean valid_loss over seeds")
        else:
            chosen = select_setting(group, lambda r: metric(r, "rougeL"), statistics.fmean, True,
                                    "mean test rougeL over seeds (no valid_loss in the records)")
        entry = chosen.describe()
        entry.update({name: statistics.fmean(metric(r, name) for r in chosen.runs) for name in ROUGE})
        entry["paper_row"] = paper.TABLE4_ROW_FOR_METHOD.get(method)
        entry["paper"] = paper.TABLE4[entry["paper_row"]][task] if entry["paper_row"] else None
        results.append(entry)
    return results


def rouge_cell(values: Optional[Dict[str, Optional[float]]], fmt: Callable[[Optional[float]], str]) -> str:
    return "-" if not values else "/".join(fmt(values.get(name)) for name in ROUGE)


def table4_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True) -> Dict[str, str]:
    datasets = [d for d in paper.SUMMARIZATION_DATASETS if any(e["task"] == d for e in results)]
    methods = ordered_methods([e["method"] for e in results])
    cells = {(e["method"], e["task"]): e for e in results}
    rows = []
    for method in methods:
        rows.append([f"{method_name(method)} (ours)"] + [
            rouge_cell(cells[(method, d)], ours) if (method, d) in cells else "-" for d in datasets])
        row_name = paper.TABLE4_ROW_FOR_METHOD.get(method) if with_paper else None
        if row_name:
            rows.append([f"{row_name} (paper)"] + [rouge_cell(paper.TABLE4[row_name][d], published)
                                                   for d in datasets])
    ordered = sorted(results, key=lambda e: (datasets.index(e["task"]), methods.index(e["method"])))
    parts = [f"# {title('Table 4 — summarisation, ROUGE-1/2/L (F1 x 100)', tiny)}", "",
             "Ours: mean over the seeds of the best setting (chosen as the 'selected by' column says). " +
             ("Paper: Table 4 (STD is BART, R3F is BART+R3F)." if with_paper else PAPER_LEFT_OUT), "",
             md_table(["model"] + [paper.SUMMARIZATION_DATASETS[d] for d in datasets], rows), "",
             "## Selected settings and seeds", "",
             md_table(["dataset", "method", "setting", "selected by", "score", "settings compared", "seeds (n)"],
                      [[e["task"], method_name(e["method"]), setting_label(e["setting"]), e["selected_by"],
                        ours(e["selection_score"]), compared(e),
                        f"{', '.join(map(str, e['seeds']))} ({e['n']})"] for e in ordered])]
    csv_rows = [[e["task"], e["method"], name, rounded(e[name]), (e["paper"] or {}).get(name), e["paper_row"] or "",
                 e["n"], setting_label(e["setting"]), e["selected_by"], tiny] for e in ordered for name in ROUGE]
    return {"table4.md": "\n".join(parts) + "\n",
            "table4.csv": csv_text(["dataset", "method", "metric", "ours", "paper", "paper_row", "seeds", "setting",
                                    "selected_by", "tiny"], csv_rows)}


# ------------------------------------------------------------------------------------------ probing

@dataclass(frozen=True)
class ProbePoint:
    """Where a probe was taken: one bar or one point of Figures 3-5."""
    source: str
    task: str
    step: Optional[int]
    cycle: Optional[int]


def probe_point(r: Record) -> Tuple[str, ProbePoint, str]:
    """(protocol, point, fine-tuned-on label), validated."""
    probe = r["probe"]
    protocol = probe.get("protocol")
    if protocol not in PROTOCOLS:
        raise ReportError(f"{r['path']}: probe protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not isinstance(probe.get("source"), str):
        raise ReportError(f"{r['path']}: a probe record needs probe.source (the task fine-tuned first)")
    needed = {"degradation": "step", "retention": "cycle"}.get(protocol)
    for field in ("step", "cycle"):
        value = probe.get(field)
        if (field == needed or value is not None) and (not isinstance(value, int) or isinstance(value, bool)):
            raise ReportError(f"{r['path']}: probe.{field} should be an integer, got {value!r}")
    metric(r, "accuracy")
    step = probe.get("step") if protocol == "degradation" else None
    cycle = probe.get("cycle") if protocol == "retention" else None
    label = probe.get("finetuned_on")
    chain = probe.get("chain")
    if not isinstance(label, str) and isinstance(chain, list) and step is not None and 0 <= step < len(chain):
        label = chain[step]
    return protocol, ProbePoint(probe["source"], r["task"], step, cycle), label if isinstance(label, str) else ""


def probe_results(recs: Sequence[Record]) -> Dict[str, List[Dict[str, Any]]]:
    """protocol -> one entry per (point, method): mean, sample std and n of the probe accuracy."""
    groups: Dict[Tuple[str, ProbePoint, str], List[Record]] = {}
    labels: Dict[Tuple[str, ProbePoint, str], str] = {}  # per method: a point's probe of the pretrained model
    for r in recs:                                            # (method none) was fine-tuned on nothing
        protocol, point, label = probe_point(r)
        groups.setdefault((protocol, point, r["method"]), []).append(r)
        labels.setdefault((protocol, point, r["method"]), label)
    out: Dict[str, List[Dict[str, Any]]] = {}
    for (protocol, point, method), group in groups.items():
        settings = {setting_key(r["hparams"]) for r in group}
        if len(settings) > 1:
            raise ReportError(f"{group[0]['path']} and {group[-1]['path']}: {protocol} probes of {point.task} "
                              f"({method_name(method)}) with different fine-tuning settings; probes are only "
                              f"aggregated over seeds, so give rxf-report one setting's folder per method "
                              f"(e.g. runs/probing/{protocol}/{method}/SETTING)")
        group = sorted(group, key=lambda r: r["seed"])
        values = [metric(r, "accuracy") for r in group]
        out.setdefault(protocol, []).append({
            "source": point.source, "task": point.task, "step": point.step, "cycle": point.cycle,
            "finetuned_on": labels[(protocol, point, method)], "method": method, "mean": statistics.fmean(values),
            "std": sample_std(values), "n": len(values), "seeds": [r["seed"] for r in group], "values": values,
            "setting": group[0]["hparams"], "records": [r["path"] for r in group]})
    # tasks in chain order where the records give a chain (Figures 4 and 5), else in Table 2's order
    task_order = {task: len(GLUE_COLUMNS) + i for i, (task, _, _) in enumerate(GLUE_COLUMNS)}
    for r in recs:
        chain = r["probe"].get("chain")
        for i, task in enumerate(chain if isinstance(chain, list) else []):
            if isinstance(task, str):
                task_order[task] = min(i, task_order.get(task, i))
    for entries in out.values():
        entries.sort(key=lambda e: (e["source"], task_order.get(e["task"], 2 * len(GLUE_COLUMNS)), e["task"],
                                    e["step"] or 0, e["cycle"] or 0, method_rank(e["method"])))
    return out


def mean_std(e: Dict[str, Any]) -> str:
    spread = "" if e["std"] is None else f" ± {e['std']:.2f}"
    return f"{e['mean']:.2f}{spread} (n={e['n']})"


PROBE_TEXT = {
    "generalisation": ("Probing: generalisation (Figure 3)",
                       "Fine-tune on the source, freeze the encoder, train a linear probe on each other task."),
    "degradation": ("Probing: degradation (Figure 4)",
                    "Fine-tune along the chain, each step from the previous best checkpoint; probe the probed "
                    "task after every step (step 0: after fine-tuning the source)."),
    "retention": ("Probing: retention (Figure 5)",
                  "Cyclic chain; each task is probed before it is fine-tuned again, in every cycle."),
}


def probe_files(protocol: str, entries: List[Dict[str, Any]], tiny: bool) -> Dict[str, str]:
    methods = ordered_methods([e["method"] for e in entries])
    point_fields = {"generalisation": ("source", "task"), "degradation": ("source", "task", "step", "finetuned_on"),
                    "retention": ("source", "task", "cycle")}[protocol]
    headers = {"source": "source", "task": "probed task", "step": "step", "finetuned_on": "fine-tuned on",
               "cycle": "cycle"}
    rows: Dict[Tuple, Dict[str, Dict[str, Any]]] = {}
    for e in entries:
        rows.setdefault(tuple(e[f] for f in point_fields), {})[e["method"]] = e
    heading, explanation = PROBE_TEXT[protocol]
    table = md_table([headers[f] for f in point_fields] + [method_name(m) for m in methods],
                     [[str(v) for v in point] + [mean_std(cells[m]) if m in cells else "-" for m in methods]
                      for point, cells in rows.items()])
    parts = [f"# {title(heading, tiny)}", "", explanation + " Probe accuracy (%): mean ± sample standard "
             "deviation over seeds (n seeds).", "", table]
    csv_rows = [[protocol, e["source"], e["task"], e["step"], e["cycle"], e["finetuned_on"], e["method"],
                 rounded(e["mean"]), rounded(e["std"]), e["n"], " ".join(map(str, e["seeds"])),
                 setting_label(e["setting"]), tiny] for e in entries]
    return {f"probing_{protocol}.md": "\n".join(parts) + "\n",
            f"probing_{protocol}.csv": csv_text(["protocol", "source", "task", "step", "cycle", "finetuned_on",
                                                 "method", "mean", "std", "n", "seeds", "setting", "tiny"],
                                                csv_rows)}


# ------------------------------------------------------------------------------------------ figures

def method_colour(method: str) -> str:
    palette = ("#7f7f7f", "#1f77b4", "#9467bd", "#d62728", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2")
    order = list(METHOD_ORDER)
    return palette[order.index(method) % len(palette)] if method in order else palette[-1]


def new_figure(panels: int, width: float = 4.2, height: float = 3.6) -> Tuple[Any, List[Any]]:
    """A figure with one axis per panel (at most 4 per row); no pyplot, so no display or global state."""
    from matplotlib.figure import Figure

    columns = min(4, max(1, panels))
    rows = math.ceil(max(1, panels) / columns)
    figure = Figure(figsize=(max(5.0, width * columns), height * rows), dpi=100, layout="constrained")
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]


def spread_points(ax: Any, x: float, values: Sequence[float], colour: str) -> None:
    offsets = [0.0] if len(values) == 1 else [-0.12 + 0.24 * i / (len(values) - 1) for i in range(len(values))]
    ax.scatter([x + o for o in offsets], values, s=18, color=colour, edgecolor="black", linewidth=0.4, zorder=3)


def distribution_panel(ax: Any, data: List[Tuple[str, List[float]]], violin: bool) -> None:
    """Points over a violin (Figure 1) or a box (Figure 2) per method."""
    positions = list(range(1, len(data) + 1))
    shaped = [(x, values) for x, (_, values) in zip(positions, data) if len(set(values)) > 1]
    if shaped and violin:
        parts = ax.violinplot([v for _, v in shaped], positions=[x for x, _ in shaped], showmedians=True)
        for body, (x, _) in zip(parts["bodies"], shaped):
            body.set_facecolor(method_colour(data[x - 1][0]))
            body.set_alpha(0.35)
    elif shaped:
        ax.boxplot([v for _, v in shaped], positions=[x for x, _ in shaped], widths=0.5, showfliers=False)
    for x, (method, values) in zip(positions, data):
        spread_points(ax, x, values, method_colour(method))
    ax.set_xticks(positions)
    ax.set_xticklabels([method_name(m) for m, _ in data])
    ax.grid(axis="y", alpha=0.3)


def figure1_writer(task: str, data: List[Tuple[str, List[float]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, (ax,) = new_figure(1, width=6.0, height=4.0)
        distribution_panel(ax, data, violin=True)
        ax.set_ylabel("training time to best checkpoint (s)")
        seeds = "/".join(str(len(v)) for _, v in data)
        ax.set_title(title(f"Figure 1: wall time to best checkpoint, {task} (seeds: {seeds})", tiny), fontsize=9)
        figure.savefig(path, format="png")
    return write


def figure2_writer(panels: List[Tuple[str, str, List[Tuple[str, List[float]]]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, axes = new_figure(len(panels))
        for ax, (task, metric_name, data) in zip(axes, panels):
            distribution_panel(ax, data, violin=False)
            ax.set_title(f"{task}: {metric_name} over seeds", fontsize=9)
            ax.set_ylabel(f"{metric_name} (%)")
        figure.suptitle(title("Figure 2: distribution over seeds of the best setting", tiny), fontsize=10)
        figure.savefig(path, format="png")
    return write


def probe_figure_writer(protocol: str, entries: List[Dict[str, Any]], tiny: bool) -> Writer:
    methods = ordered_methods([e["method"] for e in entries])

    def bars(ax: Any) -> None:
        tasks = list(dict.fromkeys((e["source"], e["task"]) for e in entries))
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            cells = {(e["source"], e["task"]): e for e in entries if e["method"] == method}
            xs = [t + (i - (len(methods) - 1) / 2) * width for t, key in enumerate(tasks) if key in cells]
            found = [cells[key] for key in tasks if key in cells]
            ax.bar(xs, [e["mean"] for e in found], width, yerr=[e["std"] or 0.0 for e in found], capsize=3,
                   color=method_colour(method), label=method_name(method))
        sources = {s for s, _ in tasks}
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([t if len(sources) == 1 else f"{t}\n(from {s})" for s, t in tasks])
        ax.set_ylabel("probe accuracy (%)")
        ax.set_title(f"linear probes on the frozen {'/'.join(sorted(sources))} model", fontsize=9)
        ax.legend(fontsize=8)

    def lines(axes: List[Any], keys: List[Tuple[str, str]], x_field: str) -> None:
        for ax, (source, task) in zip(axes, keys):
            mine = [e for e in entries if (e["source"], e["task"]) == (source, task)]
            for method in methods:
                found = sorted((e for e in mine if e["method"] == method), key=lambda e: e[x_field])
                ax.errorbar([e[x_field] for e in found], [e["mean"] for e in found],
                            yerr=[e["std"] or 0.0 for e in found], marker="o", capsize=3,
                            color=method_colour(method), label=method_name(method))
            ticks = sorted({e[x_field] for e in mine})
            ax.set_xticks(ticks)
            if x_field == "step":
                names = {e["step"]: e["finetuned_on"] for e in mine}
                ax.set_xticklabels([f"{t}\n{names[t]}" if names[t] else str(t) for t in ticks])
                ax.set_xlabel("step along the chain (fine-tuned on)")
            else:
                ax.set_xlabel("cycle")
            ax.set_ylabel("probe accuracy (%)")
            ax.set_title(f"{task} probe (source {source})", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)

    def write(path: str) -> None:
        if protocol == "generalisation":
            figure, (ax,) = new_figure(1, width=max(6.0, 1.2 * len({e["task"] for e in entries})))
            bars(ax)
        else:
            keys = list(dict.fromkeys((e["source"], e["task"]) for e in entries))
            figure, axes = new_figure(len(keys))
            lines(axes, keys, "step" if protocol == "degradation" else "cycle")
        figure.suptitle(title(PROBE_FIGURES[protocol][1], tiny), fontsize=10)
        figure.savefig(path, format="png")
    return write


# ------------------------------------------------------------------------------------------ the report

def text_writer(text: str) -> Writer:
    def write(path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return write


def check_tiny(recs: Sequence[Record]) -> bool:
    tiny = [r for r in recs if r.get("tiny", False) is True]
    full = [r for r in recs if r.get("tiny", False) is not True]
    if tiny and full:
        raise ReportError(f"the records mix tiny test runs ({len(tiny)}, e.g. {tiny[0]['path']}) and full runs "
                          f"({len(full)}, e.g. {full[0]['path']}); report them separately")
    return bool(tiny)


def build(recs: List[Record], figure1_task: Optional[str], figure2_tasks: Optional[List[str]],
          notes: List[str], with_paper: bool = True) -> Tuple[List[Tuple[str, Writer]], Dict[str, Any]]:
    """Every output file as (name, writer), and summary.json's content; raises ReportError on bad input."""
    tiny = check_tiny(recs)
    check_duplicates(recs)
    kinds: Dict[str, List[Record]] = {kind: [r for r in recs if r["kind"] == kind] for kind in run_records.KINDS}
    outputs: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {"generator": GENERATOR, "format": 1, "tiny": tiny,
                               "note": TINY_LABEL if tiny else None, "records": len(recs),
                               "selection_rule": SELECTION_RULE}

    def add_text(files: Dict[str, str]) -> None:
        outputs.extend((name, text_writer(text)) for name, text in files.items())

    glue = glue_results(kinds["glue"]) if kinds["glue"] else []
    for e in glue if not with_paper else []:
        e["paper_max"] = e["paper_median"] = None
    if glue:
        add_text(table2_files(glue, tiny, with_paper))
        summary["table2"] = [{k: v for k, v in e.items() if not k.startswith("_")} for e in glue]
        by_task: Dict[str, List[Dict[str, Any]]] = {}
        for e in glue:
            by_task.setdefault(e["task"], []).append(e)
        task_order = [t for t in GLUE_METRICS if t in by_task]

        def methods_of(task: str) -> List[Dict[str, Any]]:
            return sorted(by_task[task], key=lambda e: method_rank(e["method"]))

        # Figure 1: time to the best checkpoint of the selected setting's seeds
        task = figure1_task
        if task is None:
            task = "SST-2" if "SST-2" in by_task else task_order[0] if len(task_order) == 1 else None
            if task is None:
                notes.append(f"figure 1 skipped: no SST-2 records and several tasks ({', '.join(task_order)}); "
                             f"choose one with --figure1-task")
        elif task not in by_task:
            raise ReportError(f"--figure1-task {task}: no GLUE records of that task (present: "
                              f"{', '.join(task_order)})")
        if task is not None:
            data = [(e["method"], [float(r["time_to_best_s"]) for r in e["_selection"].runs
                                   if is_number(r.get("time_to_best_s"))]) for e in methods_of(task)]
            data = [(m, v) for m, v in data if v]
            if data:
                outputs.append(("figure1_walltime.png", figure1_writer(task, data, tiny)))
                summary["figure1"] = {"task": task, "time_to_best_s": dict(data)}
            elif figure1_task is not None:
                raise ReportError(f"--figure1-task {task}: its records have no time_to_best_s")
            else:
                notes.append(f"figure 1 skipped: the {task} records have no time_to_best_s")

        # Figure 2: the primary metric over the selected setting's seeds, one panel per task
        tasks = figure2_tasks or task_order
        unknown = [t for t in tasks if t not in by_task]
        if unknown:
            raise ReportError(f"--figure2-tasks: no GLUE records of {', '.join(unknown)} (present: "
                              f"{', '.join(task_order)})")
        panels = [(t, PRIMARY[t], [(e["method"], e["values"][PRIMARY[t]]) for e in methods_of(t)]) for t in tasks]
        outputs.append(("figure2_seeds.png", figure2_writer(panels, tiny)))
        summary["figure2"] = {t: {"metric": m, "values": dict(d)} for t, m, d in panels}
    elif figure1_task or figure2_tasks:
        raise ReportError("--figure1-task/--figure2-tasks: there are no GLUE records")

    if kinds["xnli"]:
        xnli = xnli_results(kinds["xnli"])
        xnli = xnli if with_paper else [dict(e, paper=None, paper_row=None) for e in xnli]
        add_text(table3_files(xnli, tiny, with_paper))
        summary["table3"] = xnli
    if kinds["summarization"]:
        summ = summarization_results(kinds["summarization"])
        summ = summ if with_paper else [dict(e, paper=None, paper_row=None) for e in summ]
        add_text(table4_files(summ, tiny, with_paper))
        summary["table4"] = summ
    if kinds["probe"]:
        probes = probe_results(kinds["probe"])
        summary["probing"] = probes
        for protocol in PROTOCOLS:
            if protocol in probes:
                add_text(probe_files(protocol, probes[protocol], tiny))
                outputs.append((PROBE_FIGURES[protocol][0], probe_figure_writer(protocol, probes[protocol], tiny)))
    summary["notes"] = notes
    summary["files"] = [name for name, _ in outputs] + ["summary.json"]
    outputs.append(("summary.json", text_writer(json.dumps(summary, indent=2, sort_keys=True) + "\n")))
    return outputs, summary


def is_previous_report(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
            return json.load(f).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def check_out(out: str) -> None:
    """Refuse to replace anything that is not an empty folder or an earlier report."""
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ReportError(f"--out {out}: exists and is not a folder")
    if os.path.isdir(out) and os.listdir(out) and not is_previous_report(out):
        raise ReportError(f"--out {out}: a folder with other content (not an {GENERATOR} output); "
                          f"choose a new folder or empty it")


def write_atomically(out: str, outputs: List[Tuple[str, Writer]]) -> List[str]:
    """Write every file into a temporary folder beside ``out``, then rename it into place."""
    out = os.path.abspath(out)
    check_out(out)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.rxf-report-", dir=parent)
    old = tmp + ".old"
    try:
        for name, write in outputs:
            write(os.path.join(tmp, name))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the report from the group
        if os.path.isdir(out):
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except OSError:
                os.rename(old, out)
                raise
            shutil.rmtree(old)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [os.path.join(out, name) for name, _ in outputs]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rxf-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", metavar="RECORDS",
                        help="run folders (searched for record.json) or record files")
    parser.add_argument("--out", required=True, metavar="DIR", help="the report folder (replaced as a whole)")
    parser.add_argument("--figure1-task", metavar="TASK",
                        help="GLUE task of Figure 1 (default: SST-2, or the only GLUE task present)")
    parser.add_argument("--figure2-tasks", nargs="+", metavar="TASK",
                        help="GLUE tasks of Figure 2, one panel each (default: every GLUE task present)")
    parser.add_argument("--no-paper", dest="with_paper", action="store_false",
                        help="leave the paper's published numbers out (for runs on other data, e.g. make demo's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # importing fairseq (via rxf_fairseq) sets the root logger to DEBUG (fairseq/tasks/text_to_speech.py);
    # keep matplotlib's font-search chatter out of the report's stderr
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    notes: List[str] = []
    try:
        recs = run_records.load_records(args.records)
        if not recs:
            raise ReportError(f"no {run_records.RECORD_NAME} under {' '.join(args.records)}; "
                              f"the run scripts write one per finished run")
        outputs, _ = build(recs, args.figure1_task, args.figure2_tasks, notes, args.with_paper)
        paths = write_atomically(args.out, outputs)
    except (ReportError, run_records.RecordError) as error:
        print(f"rxf-report: error: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"rxf-report: {note}", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
