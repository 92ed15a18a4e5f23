"""The report's figures (PNG): Figure 1 (time to the best checkpoint), Figure 2 (the primary metric over seeds) and
Figures 3-5 (probing), drawn with matplotlib's object API (no pyplot: no display, no global state).

Each ``*_writer`` returns a function that draws the figure into a path, so that ``rxf-report`` renders only once
every number has been checked. Each figure has a title (with the tiny label for tiny runs), a legend outside the
panels, and a caption that says what its marks are; ``finish`` re-wraps the texts and turns crowded tick labels until
nothing crosses the figure's edge. matplotlib is imported when a figure is drawn, never at import.
"""

import math
import textwrap
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog
from rxf_repro.catalog import method_name
from rxf_repro.selection import (
    TINY_LABEL,
    GlueEntry,
    ProbeEntry,
    ReportError,
    method_rank,
    name_records,
    ordered_methods,
    primary,
)

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
    palette = ("#7f7f7f", "#1f77b4", "#9467bd", "#d62728", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2")
    order = list(catalog.METHOD_ORDER)
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


def overlaps(a: Any, b: Any) -> bool:
    """Two window extents (matplotlib ``Bbox``) share more than their edges."""
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def finish(
    figure: Any, heading: str, caption: str, tiny: bool, legend: Optional[Tuple[List[Any], List[str]]] = None
) -> None:
    """Title (with the tiny label on a line of its own), a legend right of the panels, and a caption that explains
    the marks; then the layout is checked: texts re-wrapped and crowded tick labels turned until nothing
    crosses the figure's edge or another label."""
    texts = [
        FittedText(figure.suptitle("", fontsize=TITLE_SIZE), heading, TITLE_SIZE, TINY_LABEL if tiny else ""),
        FittedText(figure.supxlabel("", fontsize=CAPTION_SIZE, multialignment="left"), caption, CAPTION_SIZE),
    ]
    legends = (
        [
            figure.legend(
                *legend,
                loc="outside right upper",
                fontsize=LABEL_SIZE,
                title="method",
                title_fontsize=LABEL_SIZE,
                frameon=False,
            )
        ]
        if legend
        else []
    )
    title = texts[0].artist
    for _ in range(12):
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        box = figure.bbox
        changed = False
        beside = [item.get_window_extent(renderer) for item in legends]
        if any(overlaps(title.get_window_extent(renderer), other) for other in beside):
            # a long title (the tiny label) reaches into the legend's column: centre it over the panels instead
            panels = [ax.get_position() for ax in figure.axes]
            centre = (min(p.x0 for p in panels) + max(p.x1 for p in panels)) / 2
            if abs(title.get_position()[0] - centre) > 1e-3:
                title.set_x(centre)
                changed = True
            elif texts[0].chars > len(texts[0].keep):
                texts[0].narrower()
                changed = True
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
        parts = ax.violinplot(
            [v for _, v in shaped], positions=[x for x, _ in shaped], showmedians=True, showextrema=False
        )
        for body, (x, _) in zip(parts["bodies"], shaped):
            body.set_facecolor(method_colour(data[x - 1][0]))
            body.set_alpha(0.35)
        parts["cmedians"].set_color("black")
    elif shaped:
        ax.boxplot(
            [v for _, v in shaped],
            positions=[x for x, _ in shaped],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "black"},
        )
    for x, (method, values) in zip(positions, data):
        spread_points(ax, x, values, method_colour(method))
    ax.set_xticks(positions)
    ax.set_xticklabels([with_n(m, v) for m, v in data], fontsize=LABEL_SIZE)
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
        finish(
            figure, "Figure 2: the primary metric over seeds, best setting per (task, method)", FIGURE2_CAPTION, tiny
        )
        figure.savefig(path, format="png")

    return write


def legend_entries(methods: List[str], line: bool) -> Tuple[List[Any], List[str]]:
    from matplotlib.lines import Line2D

    return (
        [Line2D([], [], color=method_colour(m), marker="o", linestyle="-" if line else "none") for m in methods],
        [method_name(m) for m in methods],
    )


def mean_marker(ax: Any, x: float, e: ProbeEntry, colour: str, seeds: bool) -> None:
    """One point of Figures 3-5: the mean, its error bar (none for one seed), and the single seeds."""
    if e.sample_std is not None:
        ax.errorbar([x], [e.mean], yerr=[e.sample_std], fmt="none", ecolor=colour, capsize=3, zorder=2)
    ax.plot(
        [x],
        [e.mean],
        marker="o",
        markersize=7,
        color=colour,
        markeredgecolor="black",
        markeredgewidth=0.5,
        linestyle="none",
        zorder=3,
    )
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
                    mean_marker(
                        ax, t + (i - (len(methods) - 1) / 2) * width, cells[key], method_colour(method), seeds=True
                    )
        for t in range(1, len(tasks)):
            ax.axvline(t - 0.5, color="#dddddd", linewidth=0.8, zorder=0)
        sources = {s for s, _ in tasks}
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([t if len(sources) == 1 else f"{t}\n(from {s})" for s, t in tasks], fontsize=LABEL_SIZE)
        ax.set_xlim(-0.5, len(tasks) - 0.5)
        ax.set_xlabel("probed task", fontsize=LABEL_SIZE)
        ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
        ax.set_title(
            f"linear probes of the frozen encoder (source task: {'/'.join(sorted(sources))})", fontsize=TITLE_SIZE - 1
        )
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
            ax.set_xticks(ticks)
            if x_field == "step":
                names = {e.step: e.finetuned_on for e in mine}
                ax.set_xticklabels([f"{t}\n{names[t]}" if names[t] else str(t) for t in ticks], fontsize=LABEL_SIZE)
                ax.set_xlabel("step along the chain (fine-tuned on)", fontsize=LABEL_SIZE)
            else:
                ax.set_xlabel("cycle", fontsize=LABEL_SIZE)
            ax.set_ylabel("probe accuracy (%)", fontsize=LABEL_SIZE)
            ax.set_title(f"{task} probe (source {source})", fontsize=TITLE_SIZE - 1)
            ax.grid(alpha=0.3)

    def write(path: str) -> None:
        if protocol == "generalisation":
            figure, (ax,) = new_figure(1, width=max(6.0, 1.1 * len({e.task for e in entries})), height=3.6)
            points(ax)
            extra = "Small dots: the single seeds. "
        else:
            keys = list(dict.fromkeys((e.source, e.task) for e in entries))
            figure, axes = new_figure(len(keys))
            lines(axes, keys, "step" if protocol == "degradation" else "cycle")
            extra = ""
        finish(
            figure,
            PROBE_FIGURES[protocol][1],
            PROBE_CAPTION.format(extra=extra, protocol=protocol),
            tiny,
            legend=legend_entries(methods, line=protocol != "generalisation"),
        )
        figure.savefig(path, format="png")

    return write


# ------------------------------------------------------------------------------------------ Figures 1 and 2


def figure1_times(task: str, entries: List[GlueEntry]) -> List[Tuple[str, List[float]]]:
    """Each method's time_to_best_s over the seeds it counts; every one of them must have it (or none)."""
    runs = [r for e in entries for r in e.selection.runs]
    missing = [r for r in runs if r.time_to_best_s is None]  # records.py checked that the others are seconds
    if missing and len(missing) < len(runs):
        raise ReportError(
            f"{name_records(missing)}: no time_to_best_s (Figure 1, {task}: {len(runs) - len(missing)} "
            f"of the {len(runs)} runs it shows have it); rerun those runs, or choose another task "
            f"with --figure1-task"
        )
    if missing:
        return []
    return [(e.method, [float(r.time_to_best_s) for r in e.selection.runs]) for e in entries]


def glue_figures(
    glue: List[GlueEntry], figure1_task: Optional[str], figure2_tasks: Optional[List[str]], tiny: bool, notes: List[str]
) -> Tuple[List[Tuple[str, Writer]], Dict[str, Any]]:
    """Figures 1 and 2 of Table 2's entries, as (name, writer), and their part of summary.json; a figure the
    records cannot give is a note (or an error, if its option asked for it)."""
    by_task: Dict[str, List[GlueEntry]] = {}
    for e in glue:
        by_task.setdefault(e.task, []).append(e)
    task_order = [t for t in catalog.TASKS.values() if t in by_task]
    files: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {}

    def methods_of(task: str) -> List[GlueEntry]:
        return sorted(by_task[task], key=lambda e: method_rank(e.method))

    # Figure 1: time to the best checkpoint of the selected setting's seeds
    task = figure1_task
    if task is None:
        task = "SST-2" if "SST-2" in by_task else task_order[0] if len(task_order) == 1 else None
        if task is None:
            notes.append(
                f"figure 1 skipped: no SST-2 records and several tasks ({', '.join(task_order)}); "
                f"choose one with --figure1-task"
            )
    elif task not in by_task:
        raise ReportError(f"--figure1-task {task}: no GLUE records of that task (present: {', '.join(task_order)})")
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
        raise ReportError(
            f"--figure2-tasks: no GLUE records of {', '.join(unknown)} (present: {', '.join(task_order)})"
        )
    panels = [
        (t, primary(t), [(e.method, [float(r.metrics[primary(t)]) for r in e.selection.runs]) for e in methods_of(t)])
        for t in tasks
    ]
    files.append(("figure2_seeds.png", figure2_writer(panels, tiny)))
    summary["figure2"] = {t: {"metric": m, "values": dict(d)} for t, m, d in panels}
    return files, summary
