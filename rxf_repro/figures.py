"""The report's figures (PNG): Figure 1 (time to the best checkpoint), Figure 2 (the primary metric over seeds) and
Figures 3-5 (probing), drawn with matplotlib's object API (no pyplot: no display, no global state), imported only when
a figure is drawn. Each ``*_writer`` returns a function that draws into a path: ``rxf-report`` renders only once every
number has been checked.
"""

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog
from rxf_repro.catalog import method_name
from rxf_repro.cli import UserError
from rxf_repro.selection import TINY_LABEL, GlueEntry, ProbeEntry, group_by, method_rank, name_records, ordered_methods

Writer = Callable[[str], None]

METRIC_LABELS = {
    "accuracy": "accuracy (%)",
    "accuracy_mm": "mismatched accuracy (%)",
    "f1": "F1 (%)",
    "mcc": "MCC × 100",
    "pearson": "Pearson r × 100",
    "pearson_and_spearman": "mean of Pearson and Spearman r × 100",
}
PROBE_FIGURES = {
    "generalisation": ("figure3_generalisation.png", "Figure 3: probing, generalisation"),
    "degradation": ("figure4_degradation.png", "Figure 4: probing, degradation along the chain"),
    "retention": ("figure5_retention.png", "Figure 5: probing, retention over cycles"),
}
TIME_MEASURE = (
    "time_to_best_s: wall-clock seconds of training, from the first training step until the validation "
    "of the best checkpoint was logged (the paper's 'training time in seconds to best checkpoint': start-up, "
    "imports and checkpoint loading excluded, training after the best checkpoint too; a resumed run adds up "
    "its attempts). It is not fairseq's train_wall_s ('done training in X seconds': the whole training loop "
    "to max_update), which rxf-demo's cost ratios use, so the two give different ratios."
)
TITLE_SIZE, CAPTION_SIZE, LABEL_SIZE = 10, 8, 8


def method_colour(method: str) -> str:
    palette = (
        "#7f7f7f",
        "#1f77b4",
        "#9467bd",
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#8c564b",
        "#e377c2",
        "#bcbd22",
        "#17becf",
    )
    order = catalog.METHOD_ORDER
    return palette[order.index(method) % len(palette)] if method in order else palette[-1]


def new_figure(panels: int, width: float = 4.2, height: float = 3.2) -> Tuple[Any, List[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = min(4, max(1, panels))
    rows = math.ceil(max(1, panels) / columns)
    figure = Figure(figsize=(max(6.0, width * columns), height * rows + 1.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(panels)]


def set_x_ticks(ax: Any, ticks: Sequence[float], labels: Sequence[str]) -> None:
    """Tick labels, turned upright where they would not fit side by side (a character is about 0.6 em)."""
    ax.set_xticks(ticks, labels, fontsize=LABEL_SIZE)
    longest = max(len(line) for label in labels for line in label.split("\n"))
    room = ax.get_position().width * ax.figure.get_figwidth() * 72 / len(labels)  # points per label
    if longest * LABEL_SIZE * 0.6 > room:
        ax.tick_params(axis="x", labelrotation=90)


def save(
    figure: Any, path: str, heading: str, caption: str, tiny: bool, legend: Optional[Tuple[List[Any], List[str]]] = None
) -> None:
    """Title (the tiny label on its own line), caption and legend right of the panels, as matplotlib lays them out."""
    figure.suptitle(heading + (f"\n{TINY_LABEL}" if tiny else ""), fontsize=TITLE_SIZE, wrap=True)
    figure.supxlabel(caption, fontsize=CAPTION_SIZE, multialignment="left", wrap=True)
    if legend:
        style = dict(fontsize=LABEL_SIZE, title="method", title_fontsize=LABEL_SIZE, frameon=False)
        figure.legend(*legend, loc="outside right center", **style)
    figure.savefig(path, format="png")


def distribution_panel(ax: Any, data: List[Tuple[str, List[float]]], violin: bool) -> None:
    """The seeds as dots over a violin (Figure 1) or a box (Figure 2) per method."""
    positions = list(range(1, len(data) + 1))
    spread = [x for x, (_, values) in zip(positions, data) if len(set(values)) > 1]
    shapes = [data[x - 1][1] for x in spread]
    if spread and violin:
        parts = ax.violinplot(shapes, spread, showmedians=True, showextrema=False)
        for body, x in zip(parts["bodies"], spread):
            body.set_facecolor(method_colour(data[x - 1][0]))
            body.set_alpha(0.35)
        parts["cmedians"].set_color("black")
    elif spread:
        ax.boxplot(shapes, positions=spread, widths=0.5, showfliers=False, medianprops={"color": "black"})
    for x, (method, values) in zip(positions, data):
        n = len(values)
        xs = [x - 0.12 + 0.24 * i / (n - 1) if n > 1 else x for i in range(n)]  # the seeds side by side
        ax.scatter(xs, values, s=18, color=method_colour(method), edgecolor="black", linewidth=0.4, zorder=3)
    set_x_ticks(ax, positions, [f"{method_name(m)}\nn={len(v)}" for m, v in data])
    ax.set_xlim(0.4, len(data) + 0.6)
    ax.grid(axis="y", alpha=0.3)


FIGURE1_CAPTION = (
    "Dots: the seeds of the selected setting (those of Table 2; n under each method). Shaded "
    "violin: the density of their times, drawn where a method has 2 or more different values; "
    "black line: the median. Time: the records' " + TIME_MEASURE
)
FIGURE2_CAPTION = (
    "Dots: the seeds of the selected setting of each method (those of Table 2; n under each "
    "method), dev-set metric of each run's best checkpoint. Box: the middle half of the seeds "
    "(first to third quartile), black line: the median, whiskers: the furthest seed within 1.5 box "
    "heights; drawn where a method has 2 or more different values. The y-axis spans the values, "
    "not 0 to 100."
)
PROBE_CAPTION = (
    "Marker: the mean probe accuracy over seeds (best validation accuracy of the linear probe); "
    "error bar: ± one sample standard deviation (n−1), absent for a single seed. {extra}The y-axis "
    "spans the values, not 0 to 100. n per point: probing_{protocol}.md."
)


def figure1_writer(task: str, data: List[Tuple[str, List[float]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, (ax,) = new_figure(1, width=6.0, height=3.6)
        distribution_panel(ax, data, violin=True)
        ax.set_ylabel("time to the best checkpoint (s)", fontsize=LABEL_SIZE)
        save(figure, path, f"Figure 1: wall time to the best checkpoint, {task}", FIGURE1_CAPTION, tiny)

    return write


def figure2_writer(panels: List[Tuple[str, str, List[Tuple[str, List[float]]]]], tiny: bool) -> Writer:
    def write(path: str) -> None:
        figure, axes = new_figure(len(panels))
        for ax, (task, metric_name, data) in zip(axes, panels):
            distribution_panel(ax, data, violin=False)
            ax.set_title(task, fontsize=TITLE_SIZE - 1)
            ax.set_ylabel(f"dev {METRIC_LABELS.get(metric_name, metric_name)}", fontsize=LABEL_SIZE)
        heading = "Figure 2: the primary metric over seeds, best setting per (task, method)"
        save(figure, path, heading, FIGURE2_CAPTION, tiny)

    return write


def mean_marker(ax: Any, x: float, e: ProbeEntry, colour: str, seeds: bool) -> None:
    """One point of Figures 3-5: the mean, its error bar (none for one seed), and the single seeds."""
    if e.sample_std is not None:
        ax.errorbar([x], [e.mean], yerr=[e.sample_std], fmt="none", ecolor=colour, capsize=3, zorder=2)
    ax.plot([x], [e.mean], "o", markersize=7, color=colour, markeredgecolor="black", markeredgewidth=0.5, zorder=3)
    if seeds and len(e.values) > 1:
        ax.scatter([x + 0.06] * len(e.values), e.values, s=8, color=colour, alpha=0.6, zorder=2, linewidth=0)


def probe_figure_writer(protocol: str, entries: List[ProbeEntry], tiny: bool) -> Writer:
    methods = ordered_methods([e.method for e in entries])

    def points(ax: Any) -> None:
        tasks = list(dict.fromkeys((e.source, e.task) for e in entries))
        width = 0.7 / len(methods)
        for i, method in enumerate(methods):
            cells = {(e.source, e.task): e for e in entries if e.method == method}
            for t, key in enumerate(tasks):
                if key in cells:
                    x = t + (i - (len(methods) - 1) / 2) * width
                    mean_marker(ax, x, cells[key], method_colour(method), seeds=True)
        for t in range(1, len(tasks)):
            ax.axvline(t - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
        sources = {s for s, _ in tasks}
        set_x_ticks(ax, range(len(tasks)), [t if len(sources) == 1 else f"{t}\n(from {s})" for s, t in tasks])
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.set_xlabel("probed task", fontsize=LABEL_SIZE)
        ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
        title = f"linear probes of the frozen encoder (source task: {'/'.join(sorted(sources))})"
        ax.set_title(title, fontsize=TITLE_SIZE - 1)
        ax.grid(axis="y", alpha=0.3)

    def lines(axes: List[Any], keys: List[Tuple[str, str]], x_field: str) -> None:
        for ax, (source, task) in zip(axes, keys):
            mine = [e for e in entries if (e.source, e.task) == (source, task)]
            for i, method in enumerate(methods):
                found = sorted((e for e in mine if e.method == method), key=lambda e: getattr(e, x_field))
                shift = (i - (len(methods) - 1) / 2) * 0.06  # error bars of different methods side by side
                xs = [getattr(e, x_field) + shift for e in found]
                ax.plot(xs, [e.mean for e in found], color=method_colour(method), linewidth=1.2, zorder=2)
                for x, e in zip(xs, found):
                    mean_marker(ax, x, e, method_colour(method), seeds=False)
            ticks = sorted({getattr(e, x_field) for e in mine})
            names = {getattr(e, x_field): e.finetuned_on if x_field == "step" else "" for e in mine}
            set_x_ticks(ax, ticks, [f"{t}\n{names[t]}" if names[t] else str(t) for t in ticks])
            ax.set_xlabel("step along the chain (fine-tuned on)" if x_field == "step" else "cycle", fontsize=LABEL_SIZE)
            ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
            ax.set_title(f"{task} probe (source {source})", fontsize=TITLE_SIZE - 1)
            ax.grid(alpha=0.3)

    def write(path: str) -> None:
        from matplotlib.lines import Line2D

        if protocol == "generalisation":
            figure, (ax,) = new_figure(1, width=max(6.0, 1.1 * len({e.task for e in entries})), height=3.6)
            points(ax)
            extra = "Small dots: the single seeds. "
        else:
            keys = list(dict.fromkeys((e.source, e.task) for e in entries))
            figure, axes = new_figure(len(keys))
            lines(axes, keys, "step" if protocol == "degradation" else "cycle")
            extra = ""
        style = "none" if protocol == "generalisation" else "-"
        handles = [Line2D([], [], color=method_colour(m), marker="o", linestyle=style) for m in methods]
        caption = PROBE_CAPTION.format(extra=extra, protocol=protocol)
        save(figure, path, PROBE_FIGURES[protocol][1], caption, tiny, (handles, [method_name(m) for m in methods]))

    return write


def glue_figures(
    glue: List[GlueEntry], figure1_task: Optional[str], figure2_tasks: Optional[List[str]], tiny: bool, notes: List[str]
) -> Tuple[List[Tuple[str, Writer]], Dict[str, Any]]:
    """Figures 1 and 2 of Table 2's entries, as (name, writer), and their part of summary.json; a figure the
    records cannot give is a note (or an error, if its option asked for it)."""
    by_task = group_by(sorted(glue, key=lambda e: method_rank(e.method)), lambda e: e.task)
    task_order = [t for t in catalog.TASKS.values() if t in by_task]
    files: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {}

    # Figure 1: time to the best checkpoint of the selected setting's seeds
    task = figure1_task or ("SST-2" if "SST-2" in by_task else task_order[0] if len(task_order) == 1 else None)
    runs = [r for e in by_task.get(task, []) for r in e.selection.runs]
    missing = [r for r in runs if r.time_to_best_s is None]  # records.py checked that the others are seconds
    if task is None:
        notes.append(
            f"figure 1 skipped: no SST-2 records and several tasks ({', '.join(task_order)}); "
            f"choose one with --figure1-task"
        )
    elif task not in by_task:
        raise UserError(f"--figure1-task {task}: no GLUE records of that task (present: {', '.join(task_order)})")
    elif missing and len(missing) < len(runs):
        raise UserError(
            f"{name_records(missing)}: no time_to_best_s (Figure 1, {task}: {len(runs) - len(missing)} "
            f"of the {len(runs)} runs it shows have it); rerun those runs, or choose another task "
            f"with --figure1-task"
        )
    elif missing and figure1_task is not None:
        raise UserError(f"--figure1-task {task}: its records have no time_to_best_s")
    elif missing:
        notes.append(f"figure 1 skipped: the {task} records have no time_to_best_s")
    else:
        data = [(e.method, [float(r.time_to_best_s) for r in e.selection.runs]) for e in by_task[task]]
        files.append(("figure1_walltime.png", figure1_writer(task, data, tiny)))
        summary["figure1"] = {"task": task, "time_to_best_s": dict(data), "measure": TIME_MEASURE}

    # Figure 2: the primary metric over the selected setting's seeds, one panel per task
    tasks = figure2_tasks or task_order
    unknown = [t for t in tasks if t not in by_task]
    if unknown:
        raise UserError(f"--figure2-tasks: no GLUE records of {', '.join(unknown)} (present: {', '.join(task_order)})")
    panels = []
    for t in tasks:
        metric = catalog.primary_metric(t)
        panels.append(
            (t, metric, [(e.method, [float(r.metrics[metric]) for r in e.selection.runs]) for e in by_task[t]])
        )
    files.append(("figure2_seeds.png", figure2_writer(panels, tiny)))
    summary["figure2"] = {t: {"metric": m, "values": dict(d)} for t, m, d in panels}
    return files, summary
