"""The report's tables, Markdown and CSV, as ``{file name: text}``: Tables 2-4 beside the paper's numbers, and the
three probing tables. Every heading names the data, the model and the metric with its unit; the paper's data and model
only for full runs shown next to the paper's numbers (whose rows keep the paper's labels, e.g. ``BART+R3F``).
"""

import csv
import io
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog
from rxf_repro import paper_results as paper
from rxf_repro.catalog import method_name
from rxf_repro.commands import last_value
from rxf_repro.records import Record
from rxf_repro.selection import (
    TABLE2_METRICS,
    TINY_LABEL,
    Entry,
    GlueEntry,
    ProbeEntry,
    SummarizationEntry,
    XnliEntry,
    method_rank,
    ordered_methods,
    rounded,
    setting_label,
)

PAPER_LEFT_OUT = "The paper's numbers are left out (--no-paper): these runs are not on the paper's data."
NO_MODEL = "model not named in the records"
# Table 2's column headers, where they are not the task's name
TABLE2_HEADERS = {"MNLI": "MNLI m/mm", "QQP": "QQP acc/F1", "CoLA": "CoLA (MCC)", "STS-B": "STS-B (Pearson)*"}
GLUE_UNITS = (
    "in %: accuracy (MNLI: matched/mismatched; QQP: accuracy/F1), CoLA: Matthews correlation × 100, "
    "STS-B: Pearson r × 100"
)
TABLE2_PAPER = (
    f"Paper: Aghajanyan et al. 2020, Table 2, GLUE dev, RoBERTa-large (max: best of 10 seeds; the "
    f"{method_name('std')} row is RoBERTa's published numbers and SMART's max row the number published by its "
    "authors; FreeLB, which the paper also lists, has no run script here)."
)
SIZE_FLAGS = ("--encoder-layers", "--encoder-embed-dim", "--decoder-layers", "--decoder-embed-dim")
PAPERLESS = "†"  # marks a row of ours that the paper has no row for
PROBE_FIGURE = {"generalisation": 3, "degradation": 4, "retention": 5}
PROBE_TEXT = {
    "generalisation": "Fine-tune on the source, freeze the encoder, train a linear probe on each other task.",
    "degradation": (
        "Fine-tune along the chain, each step from the previous best checkpoint; probe the probed "
        "task after every step (step 0: after fine-tuning the source)."
    ),
    "retention": "Cyclic chain; each task is probed before it is fine-tuned again, in every cycle.",
}
# A probing table's columns before the methods': (field of ProbeEntry, header)
PROBE_POINTS = {
    "generalisation": (("source", "source"), ("task", "probed task")),
    "degradation": (("source", "source"), ("task", "probed task"), ("step", "step"), ("finetuned_on", "fine-tuned on")),
    "retention": (("source", "source"), ("task", "probed task"), ("cycle", "cycle")),
}


def ours(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def published(value: Optional[float]) -> str:
    """The paper's number with the paper's digits (``paper_results.Published``: its 40.90 stays 40.90)."""
    return "-" if value is None else str(value)


def ours_label(method: str, in_paper: bool) -> str:
    """Our row's label, marked when the table shows the paper's rows and has none for this method."""
    return f"{method_name(method)} (ours)" + ("" if in_paper else PAPERLESS)


def paperless_note(methods: Sequence[str]) -> List[str]:
    names = ", ".join(method_name(m) for m in ordered_methods(methods))
    return ["", f"{PAPERLESS} Not in the paper, so no paper row: {names}."] if names else []


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(rows: Sequence[Dict[str, Any]]) -> str:
    """CSV of rows that share their keys (the header); None is empty, booleans are true/false."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()})
    return buffer.getvalue()


def title(text: str, tiny: bool) -> str:
    return f"{text} — {TINY_LABEL}" if tiny else text


def models_of(recs: Sequence[Record]) -> str:
    """The models named in the records' fairseq commands (``--arch``, with any size flags that shrink it: a tiny
    run's roberta_base with 2 layers is not RoBERTa), for a table's heading."""
    models = set()
    for r in recs:
        arch = last_value(r.command, "--arch") if r.command is not None else None
        if arch:
            given = {flag: last_value(r.command, flag) for flag in SIZE_FLAGS}
            sizes = [f"{flag} {value}" for flag, value in given.items() if value]
            models.add(arch + (f" with {' '.join(sizes)}" if sizes else ""))
    if not models:
        return NO_MODEL
    return ("model " if len(models) == 1 else "models ") + "; ".join(sorted(models)) + " (the records' commands)"


def data_of(tiny: bool, with_paper: bool, paper_data: str, sets: str, named: str, models: str) -> str:
    """A heading's data: ``paper_data`` only for full runs next to the paper's numbers, else the runs' own ``sets``."""
    if with_paper and not tiny:
        return f"{paper_data}, {models}"
    other = "" if with_paper else "; not the paper's data: --no-paper"
    return f"{sets} of the runs' own data ({named} in the records{other}), {models}"


def budget(entries: Sequence[Entry]) -> str:
    """The "settings searched" cell of a method's row: how many settings its records hold per task (the paper's
    "hyper-parameter search with equivalent fixed budgets per method"), one number if every task had the same."""
    counts = sorted({e.selection.settings_compared + e.selection.settings_with_fewer_seeds for e in entries})
    return "-" if not counts else str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def selections_table(entries: Sequence[Entry], task_header: Optional[str]) -> List[str]:
    header = ["method", "setting", "selected by", "score", "settings compared", "seeds (n)"]
    rows = []
    for e in entries:
        chosen = e.selection
        fewer = chosen.settings_with_fewer_seeds
        compared = str(chosen.settings_compared) + (f" (+{fewer} with fewer seeds, not compared)" if fewer else "")
        row = [
            method_name(e.method),
            setting_label(chosen.hparams),
            chosen.selected_by,
            ours(rounded(chosen.score)),  # the score as summary.json holds it
            compared,
            f"{', '.join(map(str, chosen.seeds))} ({e.n})",
        ]
        rows.append(([e.task] if task_header else []) + row)
    return ["## Selected settings and seeds", "", md_table(([task_header] if task_header else []) + header, rows)]


def selection_columns(e: Entry, tiny: bool) -> Dict[str, Any]:
    """The columns every table's CSV ends with."""
    return {"setting": setting_label(e.selection.hparams), "selected_by": e.selection.selected_by, "tiny": tiny}


def table2_files(results: List[GlueEntry], *, tiny: bool, with_paper: bool, models: str) -> Dict[str, str]:
    tasks = {e.task for e in results}
    columns = [(task, metrics) for task, metrics in TABLE2_METRICS.items() if task in tasks]
    cells = {(e.method, e.task): e for e in results}
    methods = ordered_methods([e.method for e in results])
    task_list = ", ".join(task for task, _ in columns)
    data = data_of(
        tiny, with_paper, f"GLUE dev sets ({task_list})", "validation sets", f"tasks named {task_list}", models
    )
    parts = [
        f"# {title(f'Table 2 — {data}', tiny)}",
        "",
        f"Metric: the score of each run's best validation checkpoint on the validation set, {GLUE_UNITS}. "
        "Ours: the best hyper-parameter setting per (task, method) (highest median of the task's primary "
        "metric over seeds), then the max and the median over that setting's seeds, each metric on its "
        "own. " + (TABLE2_PAPER if with_paper else PAPER_LEFT_OUT),
    ]
    for stat, table, label in (
        ("max", paper.TABLE2_MAX if with_paper else {}, "left: max over seeds"),
        ("median", paper.TABLE2_MEDIAN if with_paper else {}, "right: median over seeds"),
    ):
        rows = []
        for method in methods:
            row = [ours_label(method, method in table or not with_paper)]
            for task, metrics in columns:
                entry = cells.get((method, task))
                row.append("/".join(ours(getattr(entry, stat)[m]) for m in metrics) if entry else "-")
            rows.append(row + [budget([e for e in results if e.method == method])])
            if method in table:
                theirs = ["/".join(published(table[method].get(t, {}).get(m)) for m in names) for t, names in columns]
                rows.append([f"{method_name(method)} (paper)", *theirs, ""])
        header = ["method"] + [TABLE2_HEADERS.get(task, task) for task, _ in columns] + ["settings searched"]
        parts += ["", f"## {title(f'Table 2 ({label}, %)', tiny)}", "", md_table(header, rows)]
    order = list(TABLE2_METRICS)
    parts += [""] + selections_table(
        sorted(results, key=lambda e: (order.index(e.task), method_rank(e.method))), "task"
    )
    notes = [
        "-: not reported (ours: no record of the selected setting has that metric). Settings searched: the "
        "hyper-parameter settings each method's records hold per task, its search budget (the paper: "
        '"equivalent fixed budgets per method"; configs/ gives every method 8 for GLUE but the noise-free '
        "control of R3F, 4: R3F's lambdas alone, docs/reproduction.md)."
    ]
    if "STS-B" in tasks:
        notes.append(
            "\\* STS-B is not in the paper's Table 2 (their KL term is not defined for regression). Its "
            f"setting is chosen by {catalog.primary_metric('STS-B')}, the metric its config chooses the best "
            "checkpoint by (the mean of Pearson and Spearman r); the column shows Pearson r."
        )
    for note in notes:
        parts += ["", note]
    parts += paperless_note([m for m in methods if m not in paper.TABLE2_MAX] if with_paper else [])
    rows = [
        {
            "statistic": stat,
            "method": e.method,
            "task": e.task,
            "metric": m,
            "ours": rounded(getattr(e, stat)[m]),
            "paper": (getattr(e, f"paper_{stat}") or {}).get(m),  # None: not in the paper, or --no-paper
            "seeds": len(e.values[m]),
            **selection_columns(e, tiny),
        }
        for e in results
        for stat in ("max", "median")
        for m in TABLE2_METRICS[e.task]
    ]
    return {"table2.md": "\n".join(parts) + "\n", "table2.csv": csv_text(rows)}


def table3_files(results: List[XnliEntry], *, tiny: bool, with_paper: bool, models: str) -> Dict[str, str]:
    langs = list(catalog.XNLI_LANGUAGES)
    results = sorted(results, key=lambda e: method_rank(e.method))
    rows = []
    for e in results:
        avg = ours(e.avg) + ("" if len(e.languages) == len(langs) else f" ({len(e.languages)} langs)")
        row = [ours_label(e.method, bool(e.paper) or not with_paper), str(e.n)]
        rows.append(row + [ours(e.languages.get(lang)) for lang in langs] + [avg])
        if e.paper:
            rows.append([f"{e.paper_row} (paper)", "5"] + [published(e.paper[k]) for k in langs + ["avg"]])
    paper_data = "XNLI test sets, zero-shot (trained on English MNLI)"
    data = data_of(tiny, with_paper, paper_data, "test sets", "languages as named", models)
    parts = [
        f"# {title(f'Table 3 — {data}', tiny)}",
        "",
        "Metric: test accuracy (%) per language of each run's best validation checkpoint. "
        "Ours: mean over the seeds of the best setting (chosen as the 'selected by' column says); avg: the "
        "mean of the per-language means. "
        + ("Paper: Table 3 (XLM-R large, average of 5 runs)." if with_paper else PAPER_LEFT_OUT),
        "",
        md_table(["model", "runs"] + langs + ["avg"], rows),
        "",
    ] + selections_table(results, None)
    parts += paperless_note([e.method for e in results if not e.paper] if with_paper else [])
    csv_rows = [
        {
            "method": e.method,
            "language": lang,
            "ours": rounded(e.avg if lang == "avg" else e.languages.get(lang)),
            "paper": (e.paper or {}).get(lang),
            "paper_row": e.paper_row or "",
            "runs": e.n,
            **selection_columns(e, tiny),
        }
        for e in results
        for lang in langs + ["avg"]
    ]
    return {"table3.md": "\n".join(parts) + "\n", "table3.csv": csv_text(csv_rows)}


def rouge_cell(values: Optional[Dict[str, Optional[float]]], fmt: Callable[[Optional[float]], str]) -> str:
    return "-" if not values else "/".join(fmt(values.get(name)) for name in catalog.ROUGE)


def table4_files(results: List[SummarizationEntry], *, tiny: bool, with_paper: bool, models: str) -> Dict[str, str]:
    datasets = [d for d in catalog.SUMMARIZATION if any(e.task == d for e in results)]
    methods = ordered_methods([e.method for e in results])
    cells = {(e.method, e.task): e for e in results}
    rows = []
    for method in methods:
        row_name = paper.TABLE4_ROW_FOR_METHOD.get(method) if with_paper else None
        row = [ours_label(method, bool(row_name) or not with_paper)]
        rows.append(row + [rouge_cell(cells[method, d].rouge, ours) if (method, d) in cells else "-" for d in datasets])
        if row_name:
            rows.append([f"{row_name} (paper)"] + [rouge_cell(paper.TABLE4[row_name][d], published) for d in datasets])
    data = data_of(tiny, with_paper, "summarisation test sets", "test sets", "datasets as named", models)
    rows_for = ", ".join(f"{method_name(m)} is {row}" for m, row in paper.TABLE4_ROW_FOR_METHOD.items())
    ordered = sorted(results, key=lambda e: (datasets.index(e.task), methods.index(e.method)))
    parts = [
        f"# {title(f'Table 4 — {data}', tiny)}",
        "",
        "Metric: ROUGE-1/ROUGE-2/ROUGE-L F-measure × 100 on the test set, of each run's best validation "
        "checkpoint. Ours: mean over the seeds of the best setting (chosen as the 'selected by' column says). "
        + (f"Paper: Table 4 ({rows_for})." if with_paper else PAPER_LEFT_OUT),
        "",
        md_table(["model"] + [catalog.SUMMARIZATION[d] if with_paper and not tiny else d for d in datasets], rows),
        "",
    ] + selections_table(ordered, "dataset")
    parts += paperless_note([m for m in methods if m not in paper.TABLE4_ROW_FOR_METHOD] if with_paper else [])
    csv_rows = [
        {
            "dataset": e.task,
            "method": e.method,
            "metric": name,
            "ours": rounded(e.rouge[name]),
            "paper": (e.paper or {}).get(name),
            "paper_row": e.paper_row or "",
            "seeds": e.n,
            **selection_columns(e, tiny),
        }
        for e in ordered
        for name in catalog.ROUGE
    ]
    return {"table4.md": "\n".join(parts) + "\n", "table4.csv": csv_text(csv_rows)}


def mean_std(e: ProbeEntry) -> str:
    spread = "" if e.sample_std is None else f" ± {e.sample_std:.2f}"
    return f"{e.mean:.2f}{spread} (n={e.n})"


def probe_files(protocol: str, entries: List[ProbeEntry], *, tiny: bool, models: str) -> Dict[str, str]:
    methods = ordered_methods([e.method for e in entries])
    point_fields = [name for name, _ in PROBE_POINTS[protocol]]
    rows: Dict[Tuple, Dict[str, ProbeEntry]] = {}
    for e in entries:
        rows.setdefault(tuple(getattr(e, f) for f in point_fields), {})[e.method] = e
    heading = f"Probing: {protocol} (Figure {PROBE_FIGURE[protocol]})"
    table = md_table(
        [header for _, header in PROBE_POINTS[protocol]] + [method_name(m) for m in methods],
        [
            [str(v) for v in point] + [mean_std(cells[m]) if m in cells else "-" for m in methods]
            for point, cells in rows.items()
        ],
    )
    parts = [
        f"# {title(f'{heading} — linear-probe accuracy (%), {models}', tiny)}",
        "",
        PROBE_TEXT[protocol] + " Metric: the probe's best validation accuracy (%) on the probed task's validation "
        "set, as mean ± sample standard deviation (n−1) over seeds (n seeds; no ± for one seed). The "
        "columns are the fine-tuning methods.",
        "",
        table,
    ]
    csv_rows = [
        {
            "protocol": protocol,
            **{name: getattr(e, name) for name in ("source", "task", "step", "cycle", "finetuned_on", "method")},
            "mean": rounded(e.mean),
            "sample_std": rounded(e.sample_std),
            "n": e.n,
            "seeds": " ".join(map(str, e.seeds)),
            "setting": setting_label(e.setting),
            "tiny": tiny,
        }
        for e in entries
    ]
    return {f"probing_{protocol}.md": "\n".join(parts) + "\n", f"probing_{protocol}.csv": csv_text(csv_rows)}
