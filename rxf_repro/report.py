"""rxf-report: run records -> the paper's tables and figures, side by side with the published numbers.

    rxf-report RECORDS [RECORDS ...] --out DIR [--overwrite] [--figure1-task SST-2] [--figure2-tasks RTE MRPC ...]

RECORDS are run folders (every ``record.json`` under them, see ``rxf_repro/records.py``) or record files.
DIR gets only what the records support: ``table2.{md,csv}`` (GLUE), ``table3.{md,csv}`` (XNLI),
``table4.{md,csv}`` (summarisation), ``figure1_walltime.png``, ``figure2_seeds.png`` (GLUE),
``probing_{generalisation,degradation,retention}.{md,csv}`` with ``figure{3,4,5}_*.png`` (probes), and always
``summary.json`` (every aggregated number, the selected settings and the records behind them, their paths
relative to DIR). The report is built in a temporary folder beside DIR and renamed into place with a marker file
(``.rxf-output.json``), so a failure, Ctrl-C or SIGTERM never leaves half a report; an existing DIR is replaced
only if it is empty or an earlier rxf-report output (its marker says so; a report written before markers existed
is recognised by its ``summary.json``, which lists every file in it), or with ``--overwrite``.

Every number printed is checked first: each metric a table or figure shows must be present, and a finite number,
in every record it counts; otherwise the report stops with one line naming the records and the metric.

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

Records made by tests or miniature presets (``tiny: true``) are labelled "tiny runs (tests, make demo) — not paper
results" in every table and figure, and their headings do not name the paper's data or model; mixing them with
full runs is an error.
"""

import argparse
import csv
import io
import json
import logging
import math
import os
import statistics
import sys
import textwrap
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_repro import paper_results as paper
from rxf_repro import outputs, process
from rxf_repro import records as run_records

Record = Dict[str, Any]
Writer = Callable[[str], None]

GENERATOR = "rxf-report"
OUTPUT_KIND = "report"  # the marker's kind: rxf-report writes one kind of folder
TINY_LABEL = "tiny runs (tests, make demo) — not paper results"
PAPER_LEFT_OUT = "The paper's numbers are left out (--no-paper): these runs are not on the paper's data."
PATHS_NOTE = "record paths are relative to the report folder (the folder holding this summary.json)"
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
METRIC_LABELS = {"accuracy": "accuracy (%)", "accuracy_mm": "mismatched accuracy (%)", "f1": "F1 (%)",
                 "mcc": "MCC × 100", "pearson": "Pearson r × 100"}
GLUE_UNITS = ("in %: accuracy (MNLI: matched/mismatched; QQP: accuracy/F1), CoLA: Matthews correlation × 100, "
              "STS-B: Pearson r × 100")
ROUGE = ("rouge1", "rouge2", "rougeL")
PROTOCOLS = ("generalisation", "degradation", "retention")
PROBE_FIGURES = {"generalisation": ("figure3_generalisation.png", "Figure 3: probing, generalisation"),
                 "degradation": ("figure4_degradation.png", "Figure 4: probing, degradation along the chain"),
                 "retention": ("figure5_retention.png", "Figure 5: probing, retention over cycles")}
TIME_MEASURE = ("time_to_best_s: wall-clock seconds from the start of fairseq-train until the validation of the "
                "best checkpoint was logged (start-up and data loading included, training after the best "
                "checkpoint not; a resumed run adds up its attempts). It is not fairseq's train_wall_s ('done "
                "training in X seconds': the whole training loop to max_update, start-up excluded), which "
                "rxf-demo's cost ratios use, so the two give different ratios.")

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
    """The paper's number with the paper's digits (``paper_results.Published``: its 40.90 stays 40.90)."""
    return "-" if value is None else str(value)


def rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def title(text: str, tiny: bool) -> str:
    return f"{text} — {TINY_LABEL}" if tiny else text


def name_records(recs: Sequence[Record], most: int = 3) -> str:
    """The files of some records, for an error line: the first few, then how many more."""
    paths = [r["path"] for r in recs]
    return ", ".join(paths[:most]) + (f" and {len(paths) - most} more" if len(paths) > most else "")


SIZE_FLAGS = ("--encoder-layers", "--encoder-embed-dim", "--decoder-layers", "--decoder-embed-dim")


def last_value(command: List[Any], flag: str) -> Optional[str]:
    """The value fairseq uses for ``flag``: its last occurrence (a later ``--arch`` overrides an earlier one)."""
    found = [i for i, item in enumerate(command[:-1]) if item == flag]
    return str(command[found[-1] + 1]) if found else None


def models_of(recs: Sequence[Record]) -> str:
    """The models named in the records' fairseq commands (``--arch``, with any size flags that shrink it: a tiny
    run's roberta_base with 2 layers is not RoBERTa), for a table's heading."""
    models = set()
    for r in recs:
        command = r.get("command")
        arch = last_value(command, "--arch") if isinstance(command, list) else None
        if arch:
            sizes = [f"{flag} {last_value(command, flag)}" for flag in SIZE_FLAGS if last_value(command, flag)]
            models.add(arch + (f" with {' '.join(sizes)}" if sizes else ""))
    if not models:
        return "model not named in the records"
    return ("model " if len(models) == 1 else "models ") + "; ".join(sorted(models)) + " (the records' commands)"


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


def require_metrics(recs: Sequence[Record], names: Sequence[str], what: str) -> None:
    """Each metric the report prints from ``recs``: present, and a finite number, in every one of them; else one
    line naming the records at fault (a mean over the seeds that have it would be labelled with the wrong n)."""
    for name in names:
        bad = [r for r in recs if name in r["metrics"] and not is_number(r["metrics"][name])]
        if bad:
            raise ReportError(f"{name_records(bad)}: metric {name!r} is {bad[0]['metrics'][name]!r}, not a finite "
                              f"number ({what}); the run's evaluation failed or diverged: rerun it or remove "
                              f"its record")
        missing = [r for r in recs if name not in r["metrics"]]
        if missing:
            raise ReportError(f"{name_records(missing)}: no metric {name!r} ({what}; {len(recs) - len(missing)} "
                              f"of {len(recs)} records have it); every record counted needs it: rerun those runs "
                              f"or remove their records")


def validation_or(recs: Sequence[Record], field: str) -> bool:
    """Whether every record carries the validation number ``field`` (then it, not the test, selects); a value
    that is there but not a finite number is an error, never a silent switch to the test score."""
    bad = [r for r in recs if r.get(field) is not None and not is_number(r[field])]
    if bad:
        raise ReportError(f"{name_records(bad)}: {field} is {bad[0][field]!r}, not a finite number (it selects the "
                          f"setting); rerun the run or remove its record")
    return all(r.get(field) is not None for r in recs)


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

    def where(self) -> str:
        """The runs counted, for an error line."""
        return f"{self.task} {method_name(self.method)}, setting {setting_label(self.hparams)}"


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


# ------------------------------------------------------------------------------------------ Table 2

def glue_results(recs: Sequence[Record]) -> List[Dict[str, Any]]:
    """One entry per (task, method): the selected setting, per-seed values, max and median per metric."""
    for r in recs:
        if r["task"] not in GLUE_METRICS:
            raise ReportError(f"{r['path']}: GLUE task {r['task']!r} is not one of {', '.join(GLUE_METRICS)}")
    results = []
    for (task, method), group in sorted(by_task_method(recs).items()):
        primary = PRIMARY[task]
        require_metrics(group, [primary], f"{task} {method_name(method)}: its primary metric, which selects the "
                                          f"setting")
        chosen = select_setting(group, lambda r: float(r["metrics"][primary]), statistics.median, True,
                                f"median {primary} over seeds")
        entry = chosen.describe()
        entry["values"], entry["max"], entry["median"] = {}, {}, {}
        for name in GLUE_METRICS[task]:
            # a second metric (MNLI mismatched, QQP F1) that no seed has is the paper's "-"; one that only some
            # seeds have would be a max/median over fewer seeds than the n printed
            if name != primary and not any(name in r["metrics"] for r in chosen.runs):
                values: List[float] = []
            else:
                require_metrics(chosen.runs, [name], f"{chosen.where()}: Table 2 shows it")
                values = [float(r["metrics"][name]) for r in chosen.runs]
            entry["values"][name] = values
            entry["max"][name] = max(values) if values else None
            entry["median"][name] = statistics.median(values) if values else None
        entry["paper_max"] = paper.TABLE2_MAX.get(method, {}).get(task)
        entry["paper_median"] = paper.TABLE2_MEDIAN.get(method, {}).get(task)
        entry["_selection"] = chosen
        results.append(entry)
    return results


def claims_paper_data(tiny: bool, with_paper: bool) -> bool:
    """Whether a heading may name the paper's data and model: full runs reported next to the paper's numbers."""
    return with_paper and not tiny


def table2_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True,
                 models: str = "model not named in the records") -> Dict[str, str]:
    tasks = {e["task"] for e in results}
    columns = [(task, metrics, header) for task, metrics, header in GLUE_COLUMNS if task in tasks]
    cells = {(e["method"], e["task"]): e for e in results}
    methods = ordered_methods([e["method"] for e in results])
    task_list = ", ".join(task for task, _, _ in columns)
    if claims_paper_data(tiny, with_paper):
        data = f"GLUE dev sets ({task_list}), {models}"
    else:
        other = "" if with_paper else "; not the paper's data: --no-paper"
        data = f"validation sets of the runs' own data (tasks named {task_list} in the records{other}), {models}"
    parts = [f"# {title(f'Table 2 — {data}', tiny)}", "",
             f"Metric: the score of each run's best validation checkpoint on the validation set, {GLUE_UNITS}. "
             "Ours: the best hyper-parameter setting per (task, method) (highest median of the task's primary "
             "metric over seeds), then the max and the median over that setting's seeds, each metric on its "
             "own. " + ("Paper: Aghajanyan et al. 2020, Table 2, GLUE dev, RoBERTa-large (max: best of 10 seeds; "
                        "the STD row is RoBERTa's published numbers and SMART's max row the number published by "
                        "its authors; FreeLB, which the paper also lists, has no run script here)."
                        if with_paper else PAPER_LEFT_OUT)]
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
        parts += ["", f"## {title(f'Table 2 ({label}, %)', tiny)}", "",
                  md_table(["method"] + [h for _, _, h in columns], rows)]
    parts += ["", "## Selected settings and seeds", "", md_table(
        ["task", "method", "setting", "selected by", "score", "settings compared", "seeds (n)"],
        [[e["task"], method_name(e["method"]), setting_label(e["setting"]), e["selected_by"],
          ours(e["selection_score"]), compared(e), f"{', '.join(map(str, e['seeds']))} ({e['n']})"]
         for e in sorted(results, key=lambda e: (list(GLUE_METRICS).index(e["task"]), method_rank(e["method"])))])]
    notes = ["-: not reported (ours: no record of the selected setting has that metric)."]
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
                             len(e["values"][m]), setting_label(e["setting"]), e["selected_by"], tiny])
    return {"table2.md": "\n".join(parts) + "\n",
            "table2.csv": csv_text(["statistic", "method", "task", "metric", "ours", "paper", "seeds", "setting",
                                    "selected_by", "tiny"], rows)}


def csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row])
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ Table 3

def xnli_languages(group: Sequence[Record]) -> List[str]:
    """The languages the (task, method) was tested on: every one that any of its records has, so that a
    language missing from one seed is an error (its mean would be over fewer seeds than the n printed)."""
    found = [lang for lang in paper.XNLI_LANGUAGES if any(lang in r["metrics"] for r in group)]
    if not found:
        raise ReportError(f"{group[0]['path']}: an XNLI record needs per-language accuracies "
                          f"({' '.join(paper.XNLI_LANGUAGES)}), has {sorted(group[0]['metrics'])}")
    return found


def xnli_results(recs: Sequence[Record]) -> List[Dict[str, Any]]:
    results = []
    for (task, method), group in sorted(by_task_method(recs).items()):
        if task != "XNLI":
            raise ReportError(f"{group[0]['path']}: an xnli record has task 'XNLI', not {task!r}")
        languages = xnli_languages(group)
        # every record: the test average of each may select the setting
        require_metrics(group, languages, f"XNLI {method_name(method)}: other records of it were tested on "
                                          f"that language, and averages over different languages are not "
                                          f"comparable")
        if validation_or(group, "valid_accuracy"):
            chosen = select_setting(group, lambda r: float(r["valid_accuracy"]), statistics.fmean, True,
                                    "mean valid_accuracy over seeds")
        else:
            chosen = select_setting(group, lambda r: statistics.fmean(float(r["metrics"][lang])
                                                                      for lang in languages),
                                    statistics.fmean, True,
                                    "mean test average over languages (no valid_accuracy in every record)")
        entry = chosen.describe()
        entry["languages"] = {lang: statistics.fmean(float(r["metrics"][lang]) for r in chosen.runs)
                              for lang in languages}
        entry["avg"] = statistics.fmean(entry["languages"].values())
        entry["paper_row"] = paper.TABLE3_ROW_FOR_METHOD.get(method)
        entry["paper"] = paper.TABLE3.get(entry["paper_row"] or "")
        results.append(entry)
    return results


def table3_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True,
                 models: str = "model not named in the records") -> Dict[str, str]:
    langs = list(paper.XNLI_LANGUAGES)
    results = sorted(results, key=lambda e: method_rank(e["method"]))
    rows = []
    for e in results:
        avg = ours(e["avg"]) + ("" if len(e["languages"]) == len(langs) else f" ({len(e['languages'])} langs)")
        rows.append([f"{method_name(e['method'])} (ours)", str(e["n"])]
                    + [ours(e["languages"].get(lang)) for lang in langs] + [avg])
        if e["paper"]:
            rows.append([f"{e['paper_row']} (paper)", "5"] + [published(e["paper"][k]) for k in langs + ["avg"]])
    if claims_paper_data(tiny, with_paper):
        data = f"XNLI test sets, zero-shot (trained on English MNLI), {models}"
    else:
        other = "" if with_paper else "; not the paper's data: --no-paper"
        data = f"test sets of the runs' own data (languages as named in the records{other}), {models}"
    parts = [f"# {title(f'Table 3 — {data}', tiny)}", "",
             "Metric: test accuracy (%) per language of each run's best validation checkpoint. "
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
        require_metrics(group, ROUGE, f"{task} {method_name(method)}: Table 4 shows it")
        if validation_or(group, "valid_loss"):
            chosen = select_setting(group, lambda r: float(r["valid_loss"]), statistics.fmean, False,
                                    "lowest mean valid_loss over seeds")
        else:
            chosen = select_setting(group, lambda r: float(r["metrics"]["rougeL"]), statistics.fmean, True,
                                    "mean test rougeL over seeds (no valid_loss in every record)")
        entry = chosen.describe()
        entry.update({name: statistics.fmean(float(r["metrics"][name]) for r in chosen.runs) for name in ROUGE})
        entry["paper_row"] = paper.TABLE4_ROW_FOR_METHOD.get(method)
        entry["paper"] = paper.TABLE4[entry["paper_row"]][task] if entry["paper_row"] else None
        results.append(entry)
    return results


def rouge_cell(values: Optional[Dict[str, Optional[float]]], fmt: Callable[[Optional[float]], str]) -> str:
    return "-" if not values else "/".join(fmt(values.get(name)) for name in ROUGE)


def table4_files(results: List[Dict[str, Any]], tiny: bool, with_paper: bool = True,
                 models: str = "model not named in the records") -> Dict[str, str]:
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
    claims = claims_paper_data(tiny, with_paper)
    if claims:
        data = f"summarisation test sets, {models}"
    else:
        other = "" if with_paper else "; not the paper's data: --no-paper"
        data = f"test sets of the runs' own data (datasets as named in the records{other}), {models}"
    ordered = sorted(results, key=lambda e: (datasets.index(e["task"]), methods.index(e["method"])))
    parts = [f"# {title(f'Table 4 — {data}', tiny)}", "",
             "Metric: ROUGE-1/ROUGE-2/ROUGE-L F-measure × 100 on the test set, of each run's best validation "
             "checkpoint. Ours: mean over the seeds of the best setting (chosen as the 'selected by' column says). "
             + ("Paper: Table 4 (STD is BART, R3F is BART+R3F)." if with_paper else PAPER_LEFT_OUT), "",
             md_table(["model"] + [paper.SUMMARIZATION_DATASETS[d] if claims else d for d in datasets], rows), "",
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
    """Where a probe was taken: one marker of Figures 3-5."""
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
        where = "" if point.step is None else f" step {point.step}"
        where += "" if point.cycle is None else f" cycle {point.cycle}"
        require_metrics(group, ["accuracy"], f"{protocol} probe of {point.task}{where} (source {point.source}), "
                                             f"{method_name(method)}")
        values = [float(r["metrics"]["accuracy"]) for r in group]
        out.setdefault(protocol, []).append({
            "source": point.source, "task": point.task, "step": point.step, "cycle": point.cycle,
            "finetuned_on": labels[(protocol, point, method)], "method": method, "mean": statistics.fmean(values),
            "sample_std": sample_std(values), "n": len(values), "seeds": [r["seed"] for r in group],
            "values": values, "setting": group[0]["hparams"], "records": [r["path"] for r in group]})
    # tasks in chain order where the protocol's records give a chain (Figures 4 and 5), else in Table 2's order
    for protocol, entries in out.items():
        task_order = {task: len(GLUE_COLUMNS) + i for i, (task, _, _) in enumerate(GLUE_COLUMNS)}
        for r in recs:
            chain = r["probe"].get("chain")
            if r["probe"].get("protocol") == protocol and isinstance(chain, list):
                for i, task in enumerate(chain):
                    if isinstance(task, str):
                        task_order[task] = min(i, task_order.get(task, i))
        entries.sort(key=lambda e: (e["source"], task_order.get(e["task"], 2 * len(GLUE_COLUMNS)), e["task"],
                                    e["step"] or 0, e["cycle"] or 0, method_rank(e["method"])))
    return out


def mean_std(e: Dict[str, Any]) -> str:
    spread = "" if e["sample_std"] is None else f" ± {e['sample_std']:.2f}"
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


def probe_files(protocol: str, entries: List[Dict[str, Any]], tiny: bool,
                models: str = "model not named in the records") -> Dict[str, str]:
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
    parts = [f"# {title(f'{heading} — linear-probe accuracy (%), {models}', tiny)}", "",
             explanation + " Metric: the probe's best validation accuracy (%) on the probed task's validation "
             "set, as mean ± sample standard deviation (n−1) over seeds (n seeds; no ± for one seed). The "
             "columns are the fine-tuning methods.", "", table]
    csv_rows = [[protocol, e["source"], e["task"], e["step"], e["cycle"], e["finetuned_on"], e["method"],
                 rounded(e["mean"]), rounded(e["sample_std"]), e["n"], " ".join(map(str, e["seeds"])),
                 setting_label(e["setting"]), tiny] for e in entries]
    return {f"probing_{protocol}.md": "\n".join(parts) + "\n",
            f"probing_{protocol}.csv": csv_text(["protocol", "source", "task", "step", "cycle", "finetuned_on",
                                                 "method", "mean", "sample_std", "n", "seeds", "setting", "tiny"],
                                                csv_rows)}


# ------------------------------------------------------------------------------------------ figures

TITLE_SIZE, CAPTION_SIZE, LABEL_SIZE = 10, 8, 8


def method_colour(method: str) -> str:
    palette = ("#7f7f7f", "#1f77b4", "#9467bd", "#d62728", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2")
    order = list(METHOD_ORDER)
    return palette[order.index(method) % len(palette)] if method in order else palette[-1]


def new_figure(panels: int, width: float = 4.2, height: float = 3.2) -> Tuple[Any, List[Any]]:
    """A figure with one axis per panel (at most 4 per row) and room for a title, a legend and a caption;
    no pyplot, so no display or global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(4, max(1, panels))
    rows = math.ceil(max(1, panels) / columns)
    figure = Figure(figsize=(max(6.0, width * columns), height * rows + 1.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]


def wrapped(text: str, chars: int) -> str:
    """Each paragraph (line) of ``text`` wrapped to ``chars`` characters."""
    return "\n".join(textwrap.fill(line, max(20, chars)) for line in text.split("\n"))


class FittedText:
    """A figure-wide text (title, caption) that is re-wrapped until it fits the figure's width."""

    def __init__(self, artist: Any, raw: str, fontsize: float, keep: str = ""):
        self.artist, self.raw, self.keep = artist, raw, keep  # keep: a line never broken (the tiny label)
        self.chars = int(artist.figure.get_figwidth() * 72 / (fontsize * 0.55))
        self.apply()

    def apply(self) -> None:
        text = wrapped(self.raw, self.chars)
        self.artist.set_text(text + (f"\n{self.keep}" if self.keep else ""))

    def narrower(self) -> None:
        self.chars = max(len(self.keep), int(self.chars * 0.9))
        self.apply()


def finish(figure: Any, heading: str, caption: str, tiny: bool,
           legend: Optional[Tuple[List[Any], List[str]]] = None) -> None:
    """Title (with the tiny label on a line of its own), a legend right of the panels, and a caption that explains
    the marks; then the layout is checked: texts re-wrapped and crowded tick labels turned until nothing
    crosses the figure's edge or another label."""
    texts = [FittedText(figure.suptitle("", fontsize=TITLE_SIZE), heading, TITLE_SIZE, TINY_LABEL if tiny else ""),
             FittedText(figure.supxlabel("", fontsize=CAPTION_SIZE, multialignment="left"), caption, CAPTION_SIZE)]
    if legend:
        figure.legend(*legend, loc="outside right upper", fontsize=LABEL_SIZE, title="method",
                      title_fontsize=LABEL_SIZE, frameon=False)
    for _ in range(12):
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        box = figure.bbox
        changed = False
        for text in texts:
            extent = text.artist.get_window_extent(renderer)
            if (extent.x0 < box.x0 or extent.x1 > box.x1) and text.chars > len(text.keep) and text.chars > 20:
                text.narrower()
                changed = True
        for ax in figure.axes:
            changed = turn_crowded_ticks(ax, renderer) or changed
        if not changed:
            return


def turn_crowded_ticks(ax: Any, renderer: Any) -> bool:
    """Turn an axis' x tick labels (30, then 60, then 90 degrees) while neighbours overlap."""
    labels = [t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
    extents = sorted((t.get_window_extent(renderer) for t in labels), key=lambda e: e.x0)
    if not any(a.x1 + 2 > b.x0 for a, b in zip(extents, extents[1:])):
        return False
    rotation = labels[0].get_rotation() if labels else 90
    if rotation >= 90:
        return False
    for t in labels:
        t.set_rotation(rotation + 30)
        t.set_horizontalalignment("right" if rotation + 30 < 90 else "center")
        t.set_rotation_mode("anchor" if rotation + 30 < 90 else "default")
    return True


def with_n(method: str, values: Sequence[Any]) -> str:
    return f"{method_name(method)}\nn={len(values)}"


def spread_points(ax: Any, x: float, values: Sequence[float], colour: str, size: float = 18) -> None:
    offsets = [0.0] if len(values) == 1 else [-0.12 + 0.24 * i / (len(values) - 1) for i in range(len(values))]
    ax.scatter([x + o for o in offsets], values, s=size, color=colour, edgecolor="black", linewidth=0.4, zorder=3)


def distribution_panel(ax: Any, data: List[Tuple[str, List[float]]], violin: bool) -> None:
    """Points over a violin (Figure 1) or a box (Figure 2) per method."""
    positions = list(range(1, len(data) + 1))
    shaped = [(x, values) for x, (_, values) in zip(positions, data) if len(set(values)) > 1]
    if shaped and violin:
        parts = ax.violinplot([v for _, v in shaped], positions=[x for x, _ in shaped], showmedians=True,
                              showextrema=False)
        for body, (x, _) in zip(parts["bodies"], shaped):
            body.set_facecolor(method_colour(data[x - 1][0]))
            body.set_alpha(0.35)
        parts["cmedians"].set_color("black")
    elif shaped:
        ax.boxplot([v for _, v in shaped], positions=[x for x, _ in shaped], widths=0.5, showfliers=False,
                   medianprops={"color": "black"})
    for x, (method, values) in zip(positions, data):
        spread_points(ax, x, values, method_colour(method))
    ax.set_xticks(positions)
    ax.set_xticklabels([with_n(m, v) for m, v in data], fontsize=LABEL_SIZE)
    ax.set_xlim(0.4, len(data) + 0.6)
    ax.grid(axis="y", alpha=0.3)


FIGURE1_CAPTION = ("Dots: the seeds of the selected setting (those of Table 2; n under each method). Shaded "
                   "violin: the density of their times, drawn where a method has 2 or more different values; "
                   "black line: the median. Time: the records' " + TIME_MEASURE)
FIGURE2_CAPTION = ("Dots: the seeds of the selected setting of each method (those of Table 2; n under each "
                   "method), dev-set metric of each run's best checkpoint. Box: the middle half of the seeds "
                   "(first to third quartile), black line: the median, whiskers: the furthest seed within 1.5 box "
                   "heights; drawn where a method has 2 or more different values. The y-axis spans the values, "
                   "not 0 to 100.")
PROBE_CAPTION = ("Marker: the mean probe accuracy over seeds (best validation accuracy of the linear probe); "
                 "error bar: ± one sample standard deviation (n−1), absent for a single seed. {extra}The y-axis "
                 "spans the values, not 0 to 100. n per point: probing_{protocol}.md.")


def figure1_writer(task: str, data: List[Tuple[str, List[float]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, (ax,) = new_figure(1, width=6.0, height=3.6)
        distribution_panel(ax, data, violin=True)
        ax.set_ylabel("time to the best checkpoint (s)", fontsize=LABEL_SIZE)
        finish(figure, f"Figure 1: wall time to the best checkpoint, {task}", FIGURE1_CAPTION, tiny)
        figure.savefig(path, format="png")
    return write


def figure2_writer(panels: List[Tuple[str, str, List[Tuple[str, List[float]]]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, axes = new_figure(len(panels))
        for ax, (task, metric_name, data) in zip(axes, panels):
            distribution_panel(ax, data, violin=False)
            ax.set_title(task, fontsize=TITLE_SIZE - 1)
            ax.set_ylabel(f"dev {METRIC_LABELS.get(metric_name, metric_name)}", fontsize=LABEL_SIZE)
        finish(figure, "Figure 2: the primary metric over seeds, best setting per (task, method)",
               FIGURE2_CAPTION, tiny)
        figure.savefig(path, format="png")
    return write


def legend_entries(methods: List[str], line: bool) -> Tuple[List[Any], List[str]]:
    from matplotlib.lines import Line2D

    return ([Line2D([], [], color=method_colour(m), marker="o", linestyle="-" if line else "none") for m in methods],
            [method_name(m) for m in methods])


def mean_marker(ax: Any, x: float, e: Dict[str, Any], colour: str, seeds: bool) -> None:
    """One point of Figures 3-5: the mean, its error bar (none for one seed), and the single seeds."""
    if e["sample_std"] is not None:
        ax.errorbar([x], [e["mean"]], yerr=[e["sample_std"]], fmt="none", ecolor=colour, capsize=3, zorder=2)
    ax.plot([x], [e["mean"]], marker="o", markersize=7, color=colour, markeredgecolor="black",
            markeredgewidth=0.5, linestyle="none", zorder=3)
    if seeds and len(e["values"]) > 1:
        ax.scatter([x + 0.06] * len(e["values"]), e["values"], s=8, color=colour, alpha=0.6, zorder=2,
                   linewidth=0)


def probe_figure_writer(protocol: str, entries: List[Dict[str, Any]], tiny: bool) -> Writer:
    methods = ordered_methods([e["method"] for e in entries])

    def points(ax: Any) -> None:
        tasks = list(dict.fromkeys((e["source"], e["task"]) for e in entries))
        width = 0.7 / len(methods)
        for i, method in enumerate(methods):
            cells = {(e["source"], e["task"]): e for e in entries if e["method"] == method}
            for t, key in enumerate(tasks):
                if key in cells:
                    mean_marker(ax, t + (i - (len(methods) - 1) / 2) * width, cells[key], method_colour(method),
                                seeds=True)
        for t in range(1, len(tasks)):
            ax.axvline(t - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
        sources = {s for s, _ in tasks}
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([t if len(sources) == 1 else f"{t}\n(from {s})" for s, t in tasks], fontsize=LABEL_SIZE)
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.set_xlabel("probed task", fontsize=LABEL_SIZE)
        ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
        ax.set_title(f"linear probes of the frozen encoder (source task: {'/'.join(sorted(sources))})",
                     fontsize=TITLE_SIZE - 1)
        ax.grid(axis="y", alpha=0.3)

    def lines(axes: List[Any], keys: List[Tuple[str, str]], x_field: str) -> None:
        for ax, (source, task) in zip(axes, keys):
            mine = [e for e in entries if (e["source"], e["task"]) == (source, task)]
            for i, method in enumerate(methods):
                found = sorted((e for e in mine if e["method"] == method), key=lambda e: e[x_field])
                shift = (i - (len(methods) - 1) / 2) * 0.06  # error bars of different methods side by side
                xs = [e[x_field] + shift for e in found]
                ax.plot(xs, [e["mean"] for e in found], color=method_colour(method), linewidth=1.2, zorder=2)
                for x, e in zip(xs, found):
                    mean_marker(ax, x, e, method_colour(method), seeds=False)
            ticks = sorted({e[x_field] for e in mine})
            ax.set_xticks(ticks)
            if x_field == "step":
                names = {e["step"]: e["finetuned_on"] for e in mine}
                ax.set_xticklabels([f"{t}\n{names[t]}" if names[t] else str(t) for t in ticks], fontsize=LABEL_SIZE)
                ax.set_xlabel("step along the chain (fine-tuned on)", fontsize=LABEL_SIZE)
            else:
                ax.set_xlabel("cycle", fontsize=LABEL_SIZE)
            ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
            ax.set_title(f"{task} probe (source {source})", fontsize=TITLE_SIZE - 1)
            ax.grid(alpha=0.3)

    def write(path: str) -> None:
        if protocol == "generalisation":
            figure, (ax,) = new_figure(1, width=max(6.0, 1.1 * len({e["task"] for e in entries})), height=3.6)
            points(ax)
            extra = "Small dots: the single seeds. "
        else:
            keys = list(dict.fromkeys((e["source"], e["task"]) for e in entries))
            figure, axes = new_figure(len(keys))
            lines(axes, keys, "step" if protocol == "degradation" else "cycle")
            extra = ""
        finish(figure, PROBE_FIGURES[protocol][1], PROBE_CAPTION.format(extra=extra, protocol=protocol), tiny,
               legend=legend_entries(methods, line=protocol != "generalisation"))
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


def figure1_times(task: str, entries: List[Dict[str, Any]]) -> List[Tuple[str, List[float]]]:
    """Each method's time_to_best_s over the seeds it counts; every one of them must have it (or none)."""
    runs = [r for e in entries for r in e["_selection"].runs]
    bad = [r for r in runs if r.get("time_to_best_s") is not None and not is_number(r["time_to_best_s"])]
    if bad:
        raise ReportError(f"{name_records(bad)}: time_to_best_s is {bad[0]['time_to_best_s']!r}, not a finite "
                          f"number (Figure 1, {task}); rerun the run or remove its record")
    missing = [r for r in runs if r.get("time_to_best_s") is None]
    if missing and len(missing) < len(runs):
        raise ReportError(f"{name_records(missing)}: no time_to_best_s (Figure 1, {task}: {len(runs) - len(missing)} "
                          f"of the {len(runs)} runs it shows have it); rerun those runs, or choose another task "
                          f"with --figure1-task")
    if missing:
        return []
    return [(e["method"], [float(r["time_to_best_s"]) for r in e["_selection"].runs]) for e in entries]


def relative_paths(value: Any, base: str) -> Any:
    """``value`` with every record path (the lists under "records") relative to ``base``."""
    if isinstance(value, dict):
        return {k: [os.path.relpath(os.path.abspath(p), base) for p in v] if k == "records" and isinstance(v, list)
                else relative_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_paths(v, base) for v in value]
    return value


def build(recs: List[Record], figure1_task: Optional[str], figure2_tasks: Optional[List[str]],
          notes: List[str], with_paper: bool = True, out: str = ".", inputs: Sequence[str] = ()
          ) -> Tuple[List[Tuple[str, Writer]], Dict[str, Any]]:
    """Every output file as (name, writer), and summary.json's content; raises ReportError on bad input.
    ``out`` is where the report will be: summary.json's record paths are relative to it."""
    tiny = check_tiny(recs)
    check_duplicates(recs)
    base = os.path.abspath(out)
    kinds: Dict[str, List[Record]] = {kind: [r for r in recs if r["kind"] == kind] for kind in run_records.KINDS}
    files: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {"generator": GENERATOR, "format": 2, "tiny": tiny,
                               "note": TINY_LABEL if tiny else None, "records": len(recs),
                               "paths": PATHS_NOTE,
                               "inputs": [os.path.relpath(os.path.abspath(p), base) for p in inputs],
                               "selection_rule": SELECTION_RULE}

    def add_text(texts: Dict[str, str]) -> None:
        files.extend((name, text_writer(text)) for name, text in texts.items())

    glue = glue_results(kinds["glue"]) if kinds["glue"] else []
    for e in glue if not with_paper else []:
        e["paper_max"] = e["paper_median"] = None
    if glue:
        add_text(table2_files(glue, tiny, with_paper, models_of(kinds["glue"])))
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
            data = figure1_times(task, methods_of(task))
            if data:
                files.append(("figure1_walltime.png", figure1_writer(task, data, tiny)))
                summary["figure1"] = {"task": task, "time_to_best_s": dict(data), "measure": TIME_MEASURE}
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
        files.append(("figure2_seeds.png", figure2_writer(panels, tiny)))
        summary["figure2"] = {t: {"metric": m, "values": dict(d)} for t, m, d in panels}
    elif figure1_task or figure2_tasks:
        raise ReportError("--figure1-task/--figure2-tasks: there are no GLUE records")

    if kinds["xnli"]:
        xnli = xnli_results(kinds["xnli"])
        xnli = xnli if with_paper else [dict(e, paper=None, paper_row=None) for e in xnli]
        add_text(table3_files(xnli, tiny, with_paper, models_of(kinds["xnli"])))
        summary["table3"] = xnli
    if kinds["summarization"]:
        summ = summarization_results(kinds["summarization"])
        summ = summ if with_paper else [dict(e, paper=None, paper_row=None) for e in summ]
        add_text(table4_files(summ, tiny, with_paper, models_of(kinds["summarization"])))
        summary["table4"] = summ
    if kinds["probe"]:
        probes = probe_results(kinds["probe"])
        summary["probing"] = probes
        for protocol in PROTOCOLS:
            if protocol in probes:
                add_text(probe_files(protocol, probes[protocol], tiny, models_of(kinds["probe"])))
                files.append((PROBE_FIGURES[protocol][0], probe_figure_writer(protocol, probes[protocol], tiny)))
    summary["notes"] = notes
    summary["files"] = [name for name, _ in files] + ["summary.json"]
    summary = relative_paths(summary, base)
    files.append(("summary.json", text_writer(json.dumps(summary, indent=2, sort_keys=True) + "\n")))
    return files, summary


def is_report_without_marker(folder: str) -> bool:
    """A report written before reports had a marker file: its summary.json names rxf-report and lists every
    file in the folder, so replacing it deletes nothing but that report."""
    if os.path.islink(folder) or not os.path.isdir(folder) or os.path.lexists(os.path.join(folder, outputs.MARKER)):
        return False
    try:
        with open(os.path.join(folder, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        names = os.listdir(folder)
    except (OSError, ValueError):
        return False
    listed = summary.get("files") if isinstance(summary, dict) else None
    if summary.get("generator") != GENERATOR or not isinstance(listed, list):
        return False
    return all(name in listed and os.path.isfile(os.path.join(folder, name))
               and not os.path.islink(os.path.join(folder, name)) for name in names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rxf-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("records", nargs="+", metavar="RECORDS",
                        help="run folders (searched for record.json) or record files")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the report folder, built beside it and renamed into place; an existing DIR is "
                             "replaced only if it is empty or an earlier rxf-report output (else see --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace DIR even if it is not an earlier rxf-report output: everything in it is "
                             "deleted (a symbolic link, a file, or a folder holding RECORDS is still refused)")
    parser.add_argument("--figure1-task", metavar="TASK",
                        help="GLUE task of Figure 1 (default: SST-2, or the only GLUE task present)")
    parser.add_argument("--figure2-tasks", nargs="+", metavar="TASK",
                        help="GLUE tasks of Figure 2, one panel each (default: every GLUE task present)")
    parser.add_argument("--no-paper", dest="with_paper", action="store_false",
                        help="leave the paper's published numbers out, and do not name the paper's data in the "
                             "headings (for runs on other data, e.g. make demo's)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        process.exit_on_sigterm()
    # importing fairseq (via rxf_fairseq) sets the root logger to DEBUG (fairseq/tasks/text_to_speech.py);
    # keep matplotlib's font-search chatter out of the report's stderr
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    notes: List[str] = []
    out = args.out
    try:
        unmarked = not args.overwrite and is_report_without_marker(out)
        if unmarked:
            notes.append(f"replaced {out}, a report written before reports had a {outputs.MARKER} marker")
        overwrite = args.overwrite or unmarked
        # before any work: a destination we would refuse at the end must fail now, not after the figures
        outputs.check_destination(out, GENERATOR, OUTPUT_KIND, inputs=args.records, overwrite=overwrite,
                                  flag="--out")
        recs = run_records.load_records(args.records)
        if not recs:
            raise ReportError(f"no {run_records.RECORD_NAME} under {' '.join(args.records)}; "
                              f"the run scripts write one per finished run")
        files, _ = build(recs, args.figure1_task, args.figure2_tasks, notes, args.with_paper, out, args.records)
        try:
            with outputs.output_folder(out, GENERATOR, OUTPUT_KIND, inputs=args.records, overwrite=overwrite,
                                       flag="--out", info={"summary": "summary.json"}) as folder:
                for name, write in files:
                    write(os.path.join(folder, name))
        except OSError as error:  # disk full, a permission changed meanwhile: nothing was replaced
            raise ReportError(f"--out {out}: cannot write the report ({error.strerror or error}); nothing was "
                              f"replaced") from None
    except (ReportError, run_records.RecordError, outputs.OutputError) as error:
        print(f"rxf-report: error: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"rxf-report: {note}", file=sys.stderr)
    for name, _ in files:
        print(os.path.join(os.path.abspath(out), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
