"""rxf-report: run records -> the paper's tables and figures, side by side with the published numbers.

RECORDS are run folders (every ``record.json`` under them, see ``rxf_repro/records.py``) or record files.
DIR gets only what the records support: ``table2.{md,csv}`` (GLUE), ``table3.{md,csv}`` (XNLI),
``table4.{md,csv}`` (summarisation), ``figure1_walltime.png``, ``figure2_seeds.png`` (GLUE),
``probing_{generalisation,degradation,retention}.{md,csv}`` with ``figure{3,4,5}_*.png`` (probes), and always
``summary.json`` (every aggregated number, the selected settings and the records behind them, their paths
relative to DIR). The report is built in a temporary folder beside DIR and renamed into place with a marker file
(``.rxf-output.json``), so a failure, Ctrl-C or SIGTERM never leaves half a report; an existing DIR is replaced
only if it is empty or an earlier rxf-report output (its marker says so), or with ``--overwrite``.

Methods not in the paper (R-Drop, R3F's two controls, fast R3F) are rows of ours after the paper's, marked † where a
table shows the paper's rows: the paper has none for them.

Every number printed is checked first: each metric a table or figure shows must be present, and a finite number,
in every record it counts; otherwise the report stops with one line naming the records and the metric.

Selection rule (the paper's Section 3.1: search the grid, then run the best setting over 10 seeds; LM-BFF's
``tools/gather_result.py`` applies the same rule):

1. The records of one (task, method) are grouped by hyper-parameter setting: the record's ``hparams``,
   compared as canonical JSON. Runs in one setting differ only by seed; each record already describes the
   run's best validation checkpoint (``families.py``).
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

``rxf_repro/selection.py`` applies the rule, ``rxf_repro/tables.py`` and ``rxf_repro/figures.py`` draw the results.
"""

import argparse
import json
import logging
import os
import pathlib
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rxf_repro import catalog, cli, figures, outputs, records, selection, tables
from rxf_repro.cli import UserError
from rxf_repro.figures import Writer
from rxf_repro.records import Record
from rxf_repro.selection import TINY_LABEL

GENERATOR = "rxf-report"
OUTPUT_KIND = "report"  # the marker's kind: rxf-report writes one kind of folder
PATHS_NOTE = "record paths are relative to the report folder (the folder holding this summary.json)"
SELECTION_RULE = "1." + __doc__.split("\n1.", 1)[1].split("Probes (kind", 1)[0].rstrip()  # for summary.json


def text_writer(text: str) -> Writer:
    return lambda path: pathlib.Path(path).write_text(text, encoding="utf-8")


def relative_paths(value: Any, base: str) -> Any:
    """``value`` with every record path (the lists under "records") relative to ``base``."""
    if isinstance(value, dict):
        return {
            k: [os.path.relpath(p, base) for p in v]
            if k == "records" and isinstance(v, list)
            else relative_paths(v, base)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [relative_paths(v, base) for v in value]
    return value


def build(recs: List[Record], args: argparse.Namespace, notes: List[str]) -> List[Tuple[str, Writer]]:
    """Every output file as (name, writer), summary.json last (its record paths relative to ``args.out``)."""
    tiny = selection.check_tiny(recs)
    selection.check_duplicates(recs)
    base = os.path.abspath(args.out)
    kinds: Dict[str, List[Record]] = {kind: [r for r in recs if r.kind == kind] for kind in records.KINDS}
    files: List[Tuple[str, Writer]] = []
    summary: Dict[str, Any] = {
        "generator": GENERATOR,
        "format": 2,
        "tiny": tiny,
        "note": TINY_LABEL if tiny else None,
        "records": len(recs),
        "paths": PATHS_NOTE,
        "inputs": [os.path.relpath(p, base) for p in args.records],
        "selection_rule": SELECTION_RULE,
    }
    if not kinds["glue"] and (args.figure1_task or args.figure2_tasks):
        raise UserError("--figure1-task/--figure2-tasks: there are no GLUE records")
    for kind, key, results, write in (
        ("glue", "table2", selection.glue_results, tables.table2_files),
        ("xnli", "table3", selection.xnli_results, tables.table3_files),
        ("summarization", "table4", selection.summarization_results, tables.table4_files),
    ):
        if kinds[kind]:
            entries = results(kinds[kind], with_paper=args.with_paper)
            texts = write(entries, tiny=tiny, with_paper=args.with_paper, models=tables.models_of(kinds[kind]))
            files += [(name, text_writer(text)) for name, text in texts.items()]
            summary[key] = [e.summary() for e in entries]
            if kind == "glue":  # Figures 1 and 2 show Table 2's seeds
                drawn, described = figures.glue_figures(entries, args.figure1_task, args.figure2_tasks, tiny, notes)
                files += drawn
                summary.update(described)
    if kinds["probe"]:
        probes = selection.probe_results(kinds["probe"])
        summary["probing"] = {protocol: [e.summary() for e in entries] for protocol, entries in probes.items()}
        models = tables.models_of(kinds["probe"])
        for protocol in [p for p in catalog.PROTOCOLS if p in probes]:
            texts = tables.probe_files(protocol, probes[protocol], tiny=tiny, models=models)
            files += [(name, text_writer(text)) for name, text in texts.items()]
            files.append(
                (figures.PROBE_FIGURES[protocol][0], figures.probe_figure_writer(protocol, probes[protocol], tiny))
            )
    summary["notes"] = notes
    summary["files"] = [name for name, _ in files] + ["summary.json"]
    summary = relative_paths(summary, base)
    return files + [("summary.json", text_writer(json.dumps(summary, indent=2, sort_keys=True) + "\n"))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rxf-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("records", nargs="+", metavar="RECORDS", help="run folders (searched for record.json) or record files")
    add(
        "--out",
        required=True,
        metavar="DIR",
        help="the report folder, built beside it and renamed into place; an existing DIR is "
        "replaced only if it is empty or an earlier rxf-report output (else see --overwrite)",
    )
    add(
        "--overwrite",
        action="store_true",
        help="replace DIR even if it is not an earlier rxf-report output: everything in it is "
        "deleted (a symbolic link, a file, or a folder holding RECORDS is still refused)",
    )
    add("--figure1-task", metavar="TASK", help="GLUE task of Figure 1 (default: SST-2, or the only GLUE task present)")
    add(
        "--figure2-tasks",
        nargs="+",
        metavar="TASK",
        help="GLUE tasks of Figure 2, one panel each (default: every GLUE task present)",
    )
    add(
        "--no-paper",
        dest="with_paper",
        action="store_false",
        help="leave the paper's published numbers out, and do not name the paper's data in the "
        "headings (for runs on other data, e.g. make demo's)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # importing fairseq (via rxf_fairseq) sets the root logger to DEBUG (fairseq/tasks/text_to_speech.py);
    # keep matplotlib's font-search chatter out of the report's stderr
    for name in ("matplotlib", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return cli.tool_main(GENERATOR, lambda: write_report(args), interrupted=f"interrupted; {args.out} is as it was")


def write_report(args: argparse.Namespace) -> int:
    out, notes = args.out, []
    destination = dict(inputs=args.records, overwrite=args.overwrite, flag="--out")
    # before any work: a destination we would refuse at the end must fail now, not after the figures
    outputs.check_destination(out, GENERATOR, OUTPUT_KIND, **destination)
    recs = records.read_records(args.records)
    if not recs:
        raise UserError(
            f"no {records.RECORD_NAME} under {' '.join(args.records)}; the run scripts write one per finished run"
        )
    files = build(recs, args, notes)
    try:
        with outputs.output_folder(
            out, GENERATOR, OUTPUT_KIND, info={"summary": "summary.json"}, **destination
        ) as folder:
            for name, write in files:
                write(os.path.join(folder, name))
    except OSError as error:  # disk full, a permission changed meanwhile: nothing was replaced
        raise UserError(
            f"--out {out}: cannot write the report ({error.strerror or error}); nothing was replaced"
        ) from None
    for note in notes:
        print(f"rxf-report: {note}", file=sys.stderr)
    for name, _ in files:
        print(os.path.join(os.path.abspath(out), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
