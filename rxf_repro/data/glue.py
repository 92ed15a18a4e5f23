"""GLUE (the paper's Table 2 tasks, plus STS-B) from the official GLUE directory to fairseq binaries,
exactly as fairseq's RoBERTa recipe (``examples/roberta/preprocess_GLUE_tasks.sh``) lays them out:
``OUT/input0``, ``OUT/input1`` (sentence pairs), ``OUT/label``; train -> train, dev -> valid (MNLI:
dev_matched -> valid, dev_mismatched -> valid1), test -> test (MNLI: test_matched -> test,
test_mismatched -> test1; no labels). Inputs are GPT-2-BPE-encoded into the ids of fairseq's own encoder and
binarized with RoBERTa's ``dict.txt``; STS-B's scores are written as text divided by 5, as the recipe does.

Unlike the recipe, every row is validated first (header, column count, empty inputs, labels outside the
task's label set) and a bad row stops the run with ``file:line``; fairseq's recipe silently drops
QQP rows with the wrong number of fields, which ``--skip-malformed`` does here explicitly, counted.
Fields are split on tabs only: GLUE's TSVs are not CSV-quoted (QQP and MNLI contain bare quotes).
The output is built in a temporary folder beside OUT and renamed into place at the end, with a marker
(``.rxf-output.json``: this script, kind ``glue-binaries``) that lets a rerun replace it; any other non-empty
folder is left alone unless you pass ``--overwrite``. ``ALL`` builds every ``TASK-bin`` in one temporary folder and
replaces OUT as a whole (kind ``glue-binaries-all``): a failed or killed run leaves the earlier OUT as it was.
"""

import argparse
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from rxf_repro import cli
from rxf_repro.cli import UserError
from rxf_repro.data import wordnet
from rxf_repro.data.common import (
    TextEncoder,
    add_dict_and_workers_flags,
    add_overwrite_flag,
    check_files,
    encode_to_file,
    fairseq_preprocess,
    log,
    read_text_lines,
    text_encoder,
    write_lines,
    write_summary,
)
from rxf_repro.outputs import check_destination, output_folder, owner

TOOL = "preprocess/glue.sh"
KIND = "glue-binaries"  # one task's folder
KIND_ALL = "glue-binaries-all"  # ALL's OUT: one TASK-bin folder per task, replaced as one


@dataclass(frozen=True)
class Layout:
    """One TSV file of the GLUE distribution: its header (None: no header line), inputs, label."""

    header: Optional[Tuple[str, ...]]
    inputs: Tuple[int, ...]
    label: Optional[int]  # None: unlabelled (test)
    n_columns: Optional[int] = None  # only for header-less files

    @property
    def columns(self) -> int:
        return len(self.header) if self.header else self.n_columns


# MultiNLI's sentence columns, in its order (XNLI's files have them too, rxf_repro/data/xnli.py)
NLI_SENTENCES = (
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
)
MNLI_TRAIN = ("index", "promptID", "pairID", "genre", *NLI_SENTENCES)
STSB = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")
MRPC = ("#1 ID", "#2 ID", "#1 String", "#2 String")


def _splits(labelled: Layout, test: Layout) -> Dict[str, Tuple[str, Layout]]:
    """{file stem: (fairseq split, layout)} of a task whose train.tsv and dev.tsv share a layout."""
    return {"train": ("train", labelled), "dev": ("valid", labelled), "test": ("test", test)}


MNLI_DEV = Layout(MNLI_TRAIN + tuple(f"label{i}" for i in range(1, 6)) + ("gold_label",), (8, 9), 15)
QQP = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
# task -> (label set, None for regression; {file stem: (fairseq split, layout)})
TASKS: Dict[str, Tuple[Optional[frozenset], Dict[str, Tuple[str, Layout]]]] = {
    "CoLA": (frozenset("01"), _splits(Layout(None, (3,), 1, n_columns=4), Layout(("index", "sentence"), (1,), None))),
    "SST-2": (
        frozenset("01"),
        _splits(Layout(("sentence", "label"), (0,), 1), Layout(("index", "sentence"), (1,), None)),
    ),
    "MRPC": (frozenset("01"), _splits(Layout(("Quality",) + MRPC, (3, 4), 0), Layout(("index",) + MRPC, (3, 4), None))),
    "QQP": (frozenset("01"), _splits(Layout(QQP, (3, 4), 5), Layout(("id", "question1", "question2"), (1, 2), None))),
    "MNLI": (
        frozenset({"entailment", "neutral", "contradiction"}),
        {
            "train": ("train", Layout(MNLI_TRAIN + ("label1", "gold_label"), (8, 9), 11)),
            "dev_matched": ("valid", MNLI_DEV),
            "dev_mismatched": ("valid1", MNLI_DEV),
            "test_matched": ("test", Layout(MNLI_TRAIN, (8, 9), None)),
            "test_mismatched": ("test1", Layout(MNLI_TRAIN, (8, 9), None)),
        },
    ),
    "QNLI": (
        frozenset({"entailment", "not_entailment"}),
        _splits(
            Layout(("index", "question", "sentence", "label"), (1, 2), 3),
            Layout(("index", "question", "sentence"), (1, 2), None),
        ),
    ),
    "RTE": (
        frozenset({"entailment", "not_entailment"}),
        _splits(
            Layout(("index", "sentence1", "sentence2", "label"), (1, 2), 3),
            Layout(("index", "sentence1", "sentence2"), (1, 2), None),
        ),
    ),
    "STS-B": (None, _splits(Layout(STSB + ("score",), (7, 8), 9), Layout(STSB, (7, 8), None))),
}


_SINGLE = {stem: spec for stem, spec in TASKS["SST-2"][1].items() if stem != "test"}  # SST-2's, labelled splits
_PAIR = {stem: spec for stem, spec in TASKS["RTE"][1].items() if stem != "test"}  # RTE's
# GLUE-shaped tasks on WordNet's English for make demo (rxf_repro/data/wordnet.py writes their TSVs): binarized as
# GLUE's are; ALL is GLUE's tasks only
MINIATURE_TASKS: Dict[str, Tuple[Optional[frozenset], Dict[str, Tuple[str, Layout]]]] = {
    "WN-POS": (frozenset(wordnet.POS_NAMES.values()), _SINGLE),
    "WN-LEX": (frozenset(wordnet.LEXICOGRAPHER_FILES.values()), _SINGLE),
    "WN-DEF": (frozenset("01"), _PAIR),
    "WN-BSHIFT": (frozenset("01"), _SINGLE),
}
assert set(MINIATURE_TASKS) == set(wordnet.TASKS)


def task_spec(task: str) -> Tuple[Optional[frozenset], Dict[str, Tuple[str, Layout]]]:
    return TASKS[task] if task in TASKS else MINIATURE_TASKS[task]


class TSVSplit(NamedTuple):
    inputs: List[List[str]]  # the text of each input column
    labels: List[str]
    lines: List[int]  # the file line of each kept row
    skipped: int


def is_score(text: str) -> bool:  # STS-B's similarity
    try:
        return 0.0 <= float(text) <= 5.0
    except ValueError:
        return False


def read_split(
    path: str,
    layout: Layout,
    labels: Optional[frozenset],
    *,
    skip_malformed: bool = False,
    keep: Optional[int] = None,
    dataset: str = "GLUE's",
) -> TSVSplit:
    """One TSV, validated row by row. With ``keep``, that column's values come last in the inputs (XNLI's
    language)."""
    lines = read_text_lines(path)  # split on \n only; not-UTF-8 bytes are an error naming the line
    first = 0
    if layout.header is not None:
        header = tuple(lines[0].split("\t")) if lines else ()
        if header != layout.header:
            raise UserError(f"{path}:1: header {list(header)} is not {dataset} {list(layout.header)}")
        first = 1
    columns = layout.inputs + ((keep,) if keep is not None else ())
    inputs: List[List[str]] = [[] for _ in columns]
    out_labels: List[str] = []
    line_numbers: List[int] = []
    skipped = 0
    for number, line in enumerate(lines[first:], start=first + 1):
        fields = line.split("\t")
        if not line.strip() or len(fields) != layout.columns:  # malformed: --skip-malformed skips it
            if skip_malformed:
                skipped += 1
                continue
            found = f"{len(fields)} tab-separated fields, expected {layout.columns}" if line.strip() else "empty line"
            raise UserError(f"{path}:{number}: {found}")
        label = fields[layout.label].strip() if layout.label is not None else None
        if any(not fields[c].strip() for c in layout.inputs):
            raise UserError(f"{path}:{number}: empty input text")
        if label is not None and labels is not None and label not in labels:
            raise UserError(f"{path}:{number}: label {label!r} is not one of {sorted(labels)}")
        if label is not None and labels is None and not is_score(label):
            raise UserError(f"{path}:{number}: score {label!r} is not a number in [0, 5]")
        for column, values in zip(columns, inputs):
            values.append(" ".join(fields[column].split()))
        if label is not None:
            out_labels.append(label)
        line_numbers.append(number)
    if not inputs[0]:
        raise UserError(f"{path}: no examples")
    return TSVSplit(inputs, out_labels, line_numbers, skipped)


def check_labels_seen_in_training(train_path: str, train: TSVSplit, path: str, split: TSVSplit) -> None:
    """The label dictionary is built from the training labels (as fairseq's recipe builds it, so that label ids
    keep the recipe's order); a label that training never shows would silently become ``<unk>``."""
    seen = set(train.labels)
    for value, number in zip(split.labels, split.lines):
        if value not in seen:
            raise UserError(
                f"{path}:{number}: label {value!r} does not occur in {train_path}, from which the "
                "label dictionary is built: it would become <unk>"
            )


@dataclass
class TaskData:
    task: str
    splits: Dict[str, Tuple[List[List[str]], List[str]]]  # (inputs, labels)
    summary: Dict


def read_task(glue_dir: str, task: str, *, skip_malformed: bool = False) -> TaskData:
    """Read and validate every file of one task; nothing is written."""
    labels, files = task_spec(task)
    source = os.path.join(glue_dir, task)
    present = {stem: spec for stem, spec in files.items() if os.path.isfile(os.path.join(source, f"{stem}.tsv"))}
    missing = [f"{stem}.tsv" for stem, (_, layout) in files.items() if stem not in present and layout.label is not None]
    if missing:
        raise UserError(f"{source}: missing {', '.join(missing)} (the official GLUE layout has them)")
    summary: Dict = {"task": task, "splits": {}}
    read: Dict[str, Tuple[str, TSVSplit]] = {}
    for stem, (split, layout) in present.items():
        log(f"[{task}] reading {stem}.tsv")
        path = os.path.join(source, f"{stem}.tsv")
        rows = read_split(path, layout, labels, skip_malformed=skip_malformed)
        read[split] = (path, rows)
        summary["splits"][split] = {
            "file": f"{stem}.tsv",
            "examples": len(rows.lines),
            "skipped_malformed": rows.skipped,
            "labels": dict(Counter(rows.labels)) if labels is not None else None,
        }
        if rows.skipped:
            log(
                f"[{task}] {stem}.tsv: skipped {rows.skipped} malformed rows (wrong number of fields or empty lines; "
                "--skip-malformed)"
            )
    if labels is not None:
        for split, (path, rows) in read.items():
            if split != "train":
                check_labels_seen_in_training(*read["train"], path, rows)
    return TaskData(task, {split: (rows.inputs, rows.labels) for split, (_, rows) in read.items()}, summary)


def write_task(data: TaskData, folder: str, encoder: TextEncoder, dictionary: str, workers: int = 1) -> Dict:
    """GPT-2 BPE (or WordPiece), then fairseq-preprocess, into ``folder`` (a temporary folder of ``output_folder``)."""
    task, splits, summary = data.task, data.splits, data.summary
    raw = os.path.join(folder, ".raw")
    os.makedirs(raw)
    # 1. GPT-2 BPE as examples/roberta/multiprocessing_bpe_encoder.py, or the imported checkpoint's WordPiece
    summary["encoder"] = encoder.name
    for split, (inputs, split_labels) in splits.items():
        for k, values in enumerate(inputs):
            label = f"[{task}] {encoder.name}-encoding {split}.input{k}"
            dest = os.path.join(raw, f"{split}.input{k}.bpe")
            summary["splits"][split][f"input{k}_bpe_tokens"] = encode_to_file(encoder, values, dest, workers, label)
        if split_labels:
            write_lines(os.path.join(raw, f"{split}.label"), split_labels)
    # 2. fairseq-preprocess, in ``folder``: prefixes relative to it, so no comma of the user's path reaches them
    prefixes = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}

    def pref_args(suffix, kinds=("train", "valid", "test")):
        args = []
        for kind in kinds:
            names = [s for s in splits if s.rstrip("1") == kind]
            if names:
                args += [prefixes[kind], ",".join(os.path.join(".raw", f"{s}{suffix}") for s in sorted(names))]
        return args

    dictionary = os.path.abspath(dictionary)  # fairseq-preprocess runs in ``folder``
    for k in range(len(next(iter(splits.values()))[0])):
        log(f"[{task}] binarizing input{k}")
        args = ["--only-source", "--srcdict", dictionary, "--destdir", f"input{k}", *pref_args(f".input{k}.bpe")]
        fairseq_preprocess(args, cwd=folder, workers=workers)
    if task_spec(task)[0] is not None:
        log(f"[{task}] binarizing labels")
        args = ["--only-source", "--destdir", "label", *pref_args(".label", kinds=("train", "valid"))]
        fairseq_preprocess(args, cwd=folder, workers=workers)
    else:  # STS-B: regression targets in [0, 1], as text (fairseq's sentence_prediction reads them so)
        os.makedirs(os.path.join(folder, "label"))
        for split, (_, split_labels) in splits.items():
            if split_labels:
                scores = [f"{float(v) / 5.0:.6g}" for v in split_labels]
                write_lines(os.path.join(folder, "label", f"{split}.label"), scores)
    shutil.rmtree(raw)
    write_summary(folder, summary)
    return summary


def check_all_destination(out: str, overwrite: bool) -> None:
    """``ALL`` replaces OUT as one folder. An OUT that holds task folders written one at a time (single-task runs
    into OUT/TASK-bin, or this script before ALL was one output) is not such an output: say so."""
    if overwrite or not os.path.isdir(out) or os.path.islink(out) or owner(out) is not None:
        return
    tasks = sorted(
        name
        for name in os.listdir(out)
        if name.endswith("-bin")
        and os.path.isdir(os.path.join(out, name))
        and (owner(os.path.join(out, name)) or os.path.isfile(os.path.join(out, name, "summary.json")))
    )
    if tasks:
        raise UserError(
            f"output folder {out}: holds task folders written one at a time ({', '.join(tasks)}), "
            "not one earlier ALL output, which replaces the whole folder; pass --overwrite to replace "
            f"all of {out} (anything else in it is deleted too), or choose another folder"
        )


def prepare(
    glue_dir: str,
    task: str,
    out: str,
    dictionary: str,
    *,
    encoder_json: Optional[str] = None,
    vocab_bpe: Optional[str] = None,
    wordpiece_vocab: Optional[str] = None,
    workers: int = 1,
    skip_malformed: bool = False,
    overwrite: bool = False,
) -> List[Dict]:
    """Each task's summary. For ALL every task is built in one temporary folder, renamed into place as one."""
    tasks = sorted(TASKS) if task == "ALL" else [task]
    files = [path for path in (encoder_json, vocab_bpe, wordpiece_vocab) if path]
    inputs = [os.path.join(glue_dir, t) for t in tasks] + [*files, dictionary]
    if task == "ALL":
        check_all_destination(out, overwrite)
    check_destination(out, TOOL, KIND_ALL if task == "ALL" else KIND, inputs=inputs, overwrite=overwrite)
    check_files(*files, dictionary)
    encoder = text_encoder(encoder_json, vocab_bpe, wordpiece_vocab)  # a bad file is one error, before any work
    # every task is read and validated before any is written: a bad file in the last task leaves nothing half done
    read = [read_task(glue_dir, t, skip_malformed=skip_malformed) for t in tasks]
    if task != "ALL":
        with output_folder(out, TOOL, KIND, inputs=inputs, overwrite=overwrite, info={"task": task}) as tmp:
            return [write_task(read[0], tmp, encoder, dictionary, workers)]
    summaries = []
    with output_folder(out, TOOL, KIND_ALL, inputs=inputs, overwrite=overwrite, info={"tasks": tasks}) as tmp:
        for data in read:  # each TASK-bin is also a task output of its own (a single-task rerun may replace it)
            with output_folder(os.path.join(tmp, f"{data.task}-bin"), TOOL, KIND, info={"task": data.task}) as folder:
                summaries.append(write_task(data, folder, encoder, dictionary, workers))
    return summaries


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preprocess/glue.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("glue_dir", help="the official GLUE folder (with CoLA/, SST-2/, MNLI/, ...)")
    parser.add_argument(
        "task",
        choices=sorted(TASKS) + ["ALL"] + list(MINIATURE_TASKS),
        help="one task, or ALL: every GLUE task, into OUT/TASK-bin; or one of make demo's WordNet tasks "
        "(preprocess/wordnet.sh writes their TSVs)",
    )
    parser.add_argument("out", help="output folder (for ALL: one sub-folder TASK-bin per task)")
    parser.add_argument("--encoder-json", help="GPT-2 BPE encoder.json (RoBERTa, BART; or an imported RoBERTa's)")
    parser.add_argument("--vocab-bpe", help="GPT-2 BPE vocab.bpe")
    parser.add_argument(
        "--wordpiece-vocab",
        metavar="VOCAB_TXT",
        help="instead of GPT-2 BPE: the vocab.txt of a BERT checkpoint imported with rxf-import-hf, "
        "encoded with its own tokenizer (tokenizer.json beside it, lower-casing included)",
    )
    add_dict_and_workers_flags(parser, "the model's dict.txt (RoBERTa's, or rxf-import-hf's)")
    parser.add_argument(
        "--skip-malformed",
        action="store_true",
        help="skip rows with the wrong number of fields and empty lines, counted (fairseq's recipe drops such QQP rows silently)",
    )
    add_overwrite_flag(parser, " for the same TASK/ALL")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        for summary in prepare(**vars(args)):  # the flags are prepare's parameters
            task = summary["task"]
            for split, info in summary["splits"].items():
                labels = f", labels {info['labels']}" if info["labels"] else ""
                tokens = sum(v for k, v in info.items() if k.endswith("_bpe_tokens"))
                log(f"[{task}] {split}: {info['examples']} examples{labels}, {summary['encoder']} tokens {tokens}")
            log(f"[{task}] done: {os.path.join(args.out, f'{task}-bin') if args.task == 'ALL' else args.out}")

    return cli.tool_main("glue", run, interrupted=f"interrupted; {args.out} is as it was")


if __name__ == "__main__":
    sys.exit(main())
