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
   - GLUE: the median over seeds of the task's primary metric, the one its config chooses each run's best
     checkpoint by (``checkpoint.best_checkpoint_metric`` of ``configs/glue/TASK.yaml``): MNLI matched
     accuracy, QQP accuracy, CoLA MCC, STS-B ``pearson_and_spearman`` (the mean of Pearson and Spearman r;
     Table 2 shows its Pearson r), otherwise accuracy. GLUE numbers are dev-set numbers, as in the paper's
     Table 2.
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

The rule is applied by ``rxf_repro/selection.py``; ``rxf_repro/tables.py`` writes the tables and
``rxf_repro/figures.py`` the figures.
"""

import argparse
import json
import logging
import os
import sys
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog, figures, outputs, process, records, selection, tables
from rxf_repro.figures import Writer
from rxf_repro.records import Record
from rxf_repro.selection import TINY_LABEL, ReportError

GENERATOR = "rxf-report"
OUTPUT_KIND = "report"  # the marker's kind: rxf-report writes one kind of folder
PATHS_NOTE = "record paths are relative to the report folder (the folder holding this summary.json)"
SELECTION_RULE = "1." + __doc__.split("\n1.", 1)[1].split("Probes (kind", 1)[0].rstrip()  # for summary.json


# ------------------------------------------------------------------------------------------ the report


def text_writer(text: str) -> Writer:
    def write(path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    return write


def relative_paths(value: Any, base: str) -> Any:
    """``value`` with every record path (the lists under "records") relative to ``base``."""
    if isinstance(value, dict):
        return {
            k: [os.path.relpath(os.path.abspath(p), base) for p in v]
            if k == "records" and isinstance(v, list)
            else relative_paths(v, base)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [relative_paths(v, base) for v in value]
    return value


def build(
    recs: List[Record],
    figure1_task: Optional[str],
    figure2_tasks: Optional[List[str]],
    notes: List[str],
    with_paper: bool = True,
    out: str = ".",
    inputs: Sequence[str] = (),
) -> Tuple[List[Tuple[str, Writer]], Dict[str, Any]]:
    """Every output file as (name, writer), and summary.json's content; raises ReportError on bad input.
    ``out`` is where the report will be: summary.json's record paths are relative to it."""
    tiny = selection.check_tiny(recs)
    selection.check_duplicates(recs)
    base = os.path.abspath(out)
    kinds: Dict[str, List[Record]] = {kind: [r for r in recs if r.kind == kind] for kind in records.KINDS}
    files: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {
        "generator": GENERATOR,
        "format": 2,
        "tiny": tiny,
        "note": TINY_LABEL if tiny else None,
        "records": len(recs),
        "paths": PATHS_NOTE,
        "inputs": [os.path.relpath(os.path.abspath(p), base) for p in inputs],
        "selection_rule": SELECTION_RULE,
    }

    def add_text(texts: Dict[str, str]) -> None:
        files.extend((name, text_writer(text)) for name, text in texts.items())

    if kinds["glue"]:
        glue = selection.glue_results(kinds["glue"], with_paper)
        add_text(tables.table2_files(glue, tiny, with_paper, tables.models_of(kinds["glue"])))
        summary["table2"] = [e.summary() for e in glue]
        drawn, described = figures.glue_figures(glue, figure1_task, figure2_tasks, tiny, notes)
        files += drawn
        summary.update(described)
    elif figure1_task or figure2_tasks:
        raise ReportError("--figure1-task/--figure2-tasks: there are no GLUE records")
    if kinds["xnli"]:
        xnli = selection.xnli_results(kinds["xnli"], with_paper)
        add_text(tables.table3_files(xnli, tiny, with_paper, tables.models_of(kinds["xnli"])))
        summary["table3"] = [e.summary() for e in xnli]
    if kinds["summarization"]:
        summ = selection.summarization_results(kinds["summarization"], with_paper)
        add_text(tables.table4_files(summ, tiny, with_paper, tables.models_of(kinds["summarization"])))
        summary["table4"] = [e.summary() for e in summ]
    if kinds["probe"]:
        probes = selection.probe_results(kinds["probe"])
        summary["probing"] = {protocol: [e.summary() for e in entries] for protocol, entries in probes.items()}
        for protocol in catalog.PROTOCOLS:
            if protocol in probes:
                add_text(tables.probe_files(protocol, probes[protocol], tiny, tables.models_of(kinds["probe"])))
                files.append(
                    (figures.PROBE_FIGURES[protocol][0], figures.probe_figure_writer(protocol, probes[protocol], tiny))
                )
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
    return all(
        name in listed and os.path.isfile(os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name))
        for name in names
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxf-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "records", nargs="+", metavar="RECORDS", help="run folders (searched for record.json) or record files"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the report folder, built beside it and renamed into place; an existing DIR is "
        "replaced only if it is empty or an earlier rxf-report output (else see --overwrite)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR even if it is not an earlier rxf-report output: everything in it is "
        "deleted (a symbolic link, a file, or a folder holding RECORDS is still refused)",
    )
    parser.add_argument(
        "--figure1-task", metavar="TASK", help="GLUE task of Figure 1 (default: SST-2, or the only GLUE task present)"
    )
    parser.add_argument(
        "--figure2-tasks",
        nargs="+",
        metavar="TASK",
        help="GLUE tasks of Figure 2, one panel each (default: every GLUE task present)",
    )
    parser.add_argument(
        "--no-paper",
        dest="with_paper",
        action="store_false",
        help="leave the paper's published numbers out, and do not name the paper's data in the "
        "headings (for runs on other data, e.g. make demo's)",
    )
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
        outputs.check_destination(out, GENERATOR, OUTPUT_KIND, inputs=args.records, overwrite=overwrite, flag="--out")
        recs = records.read_records(args.records)
        if not recs:
            raise ReportError(
                f"no {records.RECORD_NAME} under {' '.join(args.records)}; the run scripts write one per finished run"
            )
        files, _ = build(recs, args.figure1_task, args.figure2_tasks, notes, args.with_paper, out, args.records)
        try:
            with outputs.output_folder(
                out,
                GENERATOR,
                OUTPUT_KIND,
                inputs=args.records,
                overwrite=overwrite,
                flag="--out",
                info={"summary": "summary.json"},
            ) as folder:
                for name, write in files:
                    write(os.path.join(folder, name))
        except OSError as error:  # disk full, a permission changed meanwhile: nothing was replaced
            raise ReportError(
                f"--out {out}: cannot write the report ({error.strerror or error}); nothing was replaced"
            ) from None
    except (ReportError, records.RecordError, outputs.OutputError) as error:
        print(f"rxf-report: error: {error}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"rxf-report: {note}", file=sys.stderr)
    for name, _ in files:
        print(os.path.join(os.path.abspath(out), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
