"""GLUE (the paper's Table 2 tasks, plus STS-B) from the official GLUE directory to fairseq binaries,
exactly as fairseq's RoBERTa recipe (``examples/roberta/preprocess_GLUE_tasks.sh``) lays them out:
``OUT/input0``, ``OUT/input1`` (sentence pairs), ``OUT/label``; train -> train, dev -> valid (MNLI:
dev_matched -> valid, dev_mismatched -> valid1), test -> test (MNLI: test_matched -> test,
test_mismatched -> test1; no labels). Inputs are GPT-2-BPE-encoded with fairseq's own encoder and
binarized with RoBERTa's ``dict.txt``; STS-B's scores are written as text divided by 5, as the recipe does.

Unlike the recipe, every row is validated first (header, column count, empty inputs, labels outside the
task's label set) and a bad row stops the run with ``file:line``; fairseq's recipe silently drops
QQP rows with the wrong number of fields, which ``--skip-malformed`` does here explicitly, counted.
Fields are split on tabs only: GLUE's TSVs are not CSV-quoted (QQP and MNLI contain bare quotes).
The output is built in a temporary folder beside OUT and renamed into place at the end.
"""

import argparse
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from rxf_fairseq.preprocessing import (PreprocessError, atomic_output, bpe_encode_file,  # noqa: E402
                                       fairseq_preprocess, log, positive_int, write_summary)


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


MNLI_TRAIN = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2")
STSB = ("index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2")
MRPC = ("#1 ID", "#2 ID", "#1 String", "#2 String")

# task -> (label set, None for regression; {file stem: (fairseq split, layout)})
TASKS: Dict[str, Tuple[Optional[frozenset], Dict[str, Tuple[str, Layout]]]] = {
    "CoLA": (frozenset("01"), {
        "train": ("train", Layout(None, (3,), 1, n_columns=4)),
        "dev": ("valid", Layout(None, (3,), 1, n_columns=4)),
        "test": ("test", Layout(("index", "sentence"), (1,), None))}),
    "SST-2": (frozenset("01"), {
        "train": ("train", Layout(("sentence", "label"), (0,), 1)),
        "dev": ("valid", Layout(("sentence", "label"), (0,), 1)),
        "test": ("test", Layout(("index", "sentence"), (1,), None))}),
    "MRPC": (frozenset("01"), {
        "train": ("train", Layout(("Quality",) + MRPC, (3, 4), 0)),
        "dev": ("valid", Layout(("Quality",) + MRPC, (3, 4), 0)),
        "test": ("test", Layout(("index",) + MRPC, (3, 4), None))}),
    "QQP": (frozenset("01"), {
        "train": ("train", Layout(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), (3, 4), 5)),
        "dev": ("valid", Layout(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), (3, 4), 5)),
        "test": ("test", Layout(("id", "question1", "question2"), (1, 2), None))}),
    "MNLI": (frozenset({"entailment", "neutral", "contradiction"}), {
        "train": ("train", Layout(MNLI_TRAIN + ("label1", "gold_label"), (8, 9), 11)),
        "dev_matched": ("valid", Layout(MNLI_TRAIN + tuple(f"label{i}" for i in range(1, 6)) + ("gold_label",), (8, 9), 15)),
        "dev_mismatched": ("valid1", Layout(MNLI_TRAIN + tuple(f"label{i}" for i in range(1, 6)) + ("gold_label",), (8, 9), 15)),
        "test_matched": ("test", Layout(MNLI_TRAIN, (8, 9), None)),
        "test_mismatched": ("test1", Layout(MNLI_TRAIN, (8, 9), None))}),
    "QNLI": (frozenset({"entailment", "not_entailment"}), {
        "train": ("train", Layout(("index", "question", "sentence", "label"), (1, 2), 3)),
        "dev": ("valid", Layout(("index", "question", "sentence", "label"), (1, 2), 3)),
        "test": ("test", Layout(("index", "question", "sentence"), (1, 2), None))}),
    "RTE": (frozenset({"entailment", "not_entailment"}), {
        "train": ("train", Layout(("index", "sentence1", "sentence2", "label"), (1, 2), 3)),
        "dev": ("valid", Layout(("index", "sentence1", "sentence2", "label"), (1, 2), 3)),
        "test": ("test", Layout(("index", "sentence1", "sentence2"), (1, 2), None))}),
    "STS-B": (None, {
        "train": ("train", Layout(STSB + ("score",), (7, 8), 9)),
        "dev": ("valid", Layout(STSB + ("score",), (7, 8), 9)),
        "test": ("test", Layout(STSB, (7, 8), None))}),
}


def read_split(path: str, layout: Layout, labels: Optional[frozenset], skip_malformed: bool,
               keep: Optional[int] = None) -> Tuple[List[List[str]], List[str], int]:
    """(inputs per column, labels, rows skipped) of one TSV, validated row by row. With ``keep``, that
    column's values come last in the inputs (XNLI's language)."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = 0
    if layout.header is not None:
        header = tuple(lines[0].rstrip("\r").split("\t")) if lines else ()
        if header != layout.header:
            raise PreprocessError(f"{path}:1: header {list(header)} is not GLUE's {list(layout.header)}")
        first = 1
    columns = layout.inputs + ((keep,) if keep is not None else ())
    inputs: List[List[str]] = [[] for _ in columns]
    out_labels: List[str] = []
    skipped = 0
    for number, line in enumerate(lines[first:], start=first + 1):
        fields = line.rstrip("\r").split("\t")
        problem = None
        if len(fields) != layout.columns:
            problem = f"{len(fields)} tab-separated fields, expected {layout.columns}"
        elif any(not fields[c].strip() for c in layout.inputs):
            problem = "empty input text"
        elif layout.label is not None:
            value = fields[layout.label].strip()
            if labels is not None and value not in labels:
                problem = f"label {value!r} is not one of {sorted(labels)}"
            elif labels is None:
                try:
                    score = float(value)
                except ValueError:
                    score = float("nan")
                if not 0.0 <= score <= 5.0:
                    problem = f"score {value!r} is not a number in [0, 5]"
        if problem:
            if skip_malformed and problem.endswith(f"expected {layout.columns}"):
                skipped += 1
                continue
            raise PreprocessError(f"{path}:{number}: {problem}")
        for column, values in zip(columns, inputs):
            values.append(" ".join(fields[column].split()))
        if layout.label is not None:
            out_labels.append(fields[layout.label].strip())
    if not inputs[0]:
        raise PreprocessError(f"{path}: no examples")
    return inputs, out_labels, skipped


def prepare(glue_dir: str, task: str, out: str, encoder_json: str, vocab_bpe: str, dictionary: str,
            workers: int = 1, skip_malformed: bool = False) -> Dict:
    labels, files = TASKS[task]
    source = os.path.join(glue_dir, task)
    for path in (encoder_json, vocab_bpe, dictionary):
        if not os.path.isfile(path):
            raise PreprocessError(f"missing file: {path}")
    present = {stem: spec for stem, spec in files.items() if os.path.isfile(os.path.join(source, f"{stem}.tsv"))}
    missing = [f"{stem}.tsv" for stem, (split, layout) in files.items() if stem not in present and layout.label is not None]
    if missing:
        raise PreprocessError(f"{source}: missing {', '.join(missing)} (the official GLUE layout has them)")

    # 1. validate everything before writing anything
    splits = {}
    summary: Dict = {"task": task, "splits": {}}
    for stem, (split, layout) in present.items():
        log(f"[{task}] reading {stem}.tsv")
        inputs, split_labels, skipped = read_split(os.path.join(source, f"{stem}.tsv"), layout, labels, skip_malformed)
        splits[split] = (inputs, split_labels)
        summary["splits"][split] = {"file": f"{stem}.tsv", "examples": len(inputs[0]), "skipped_malformed": skipped,
                                    "labels": dict(Counter(split_labels)) if labels is not None else None}
        if skipped:
            log(f"[{task}] {stem}.tsv: skipped {skipped} rows with the wrong number of fields (--skip-malformed)")
    n_inputs = len(next(iter(files.values()))[1].inputs)

    with atomic_output(out) as tmp:
        raw = os.path.join(tmp, ".raw")
        os.makedirs(raw)
        for split, (inputs, split_labels) in splits.items():
            for k, values in enumerate(inputs):
                with open(os.path.join(raw, f"{split}.input{k}"), "w", encoding="utf-8") as f:
                    f.write("\n".join(values) + "\n")
            if split_labels:
                with open(os.path.join(raw, f"{split}.label"), "w", encoding="utf-8") as f:
                    f.write("\n".join(split_labels) + "\n")
        # 2. GPT-2 BPE, as examples/roberta/multiprocessing_bpe_encoder.py
        for split in splits:
            for k in range(n_inputs):
                log(f"[{task}] BPE-encoding {split}.input{k}")
                tokens = bpe_encode_file(os.path.join(raw, f"{split}.input{k}"), os.path.join(raw, f"{split}.input{k}.bpe"),
                                         encoder_json, vocab_bpe, workers)
                summary["splits"][split][f"input{k}_bpe_tokens"] = tokens
        # 3. fairseq-preprocess
        prefixes = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}

        def pref_args(suffix, kinds=("train", "valid", "test")):
            args = []
            for kind in kinds:
                names = [s for s in splits if s.rstrip("1") == kind]
                if names:
                    args += [prefixes[kind], ",".join(os.path.join(raw, f"{s}{suffix}") for s in sorted(names))]
            return args

        for k in range(n_inputs):
            log(f"[{task}] binarizing input{k}")
            fairseq_preprocess(["--only-source", "--srcdict", dictionary, "--workers", str(workers),
                                "--destdir", os.path.join(tmp, f"input{k}"), *pref_args(f".input{k}.bpe")])
        label_dir = os.path.join(tmp, "label")
        if labels is not None:
            log(f"[{task}] binarizing labels")
            fairseq_preprocess(["--only-source", "--workers", str(workers), "--destdir", label_dir,
                                *pref_args(".label", kinds=("train", "valid"))])
        else:  # STS-B: regression targets in [0, 1], as text (fairseq's sentence_prediction reads them so)
            os.makedirs(label_dir)
            for split, (_, split_labels) in splits.items():
                if split_labels:
                    with open(os.path.join(label_dir, f"{split}.label"), "w") as f:
                        f.write("".join(f"{float(v) / 5.0:.6g}\n" for v in split_labels))
        shutil.rmtree(raw)
        write_summary(tmp, summary)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="preprocess/glue.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("glue_dir", help="the official GLUE folder (with CoLA/, SST-2/, MNLI/, ...)")
    parser.add_argument("task", choices=sorted(TASKS) + ["ALL"])
    parser.add_argument("out", help="output folder (for ALL: one sub-folder TASK-bin per task)")
    parser.add_argument("--encoder-json", required=True, help="GPT-2 BPE encoder.json")
    parser.add_argument("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe")
    parser.add_argument("--dict", required=True, help="RoBERTa's dict.txt")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes for encoding and binarizing")
    parser.add_argument("--skip-malformed", action="store_true",
                        help="skip rows with the wrong number of fields (fairseq's recipe drops them silently for QQP)")
    args = parser.parse_args(argv)
    tasks = sorted(TASKS) if args.task == "ALL" else [args.task]
    try:
        for task in tasks:
            out = os.path.join(args.out, f"{task}-bin") if args.task == "ALL" else args.out
            summary = prepare(args.glue_dir, task, out, args.encoder_json, args.vocab_bpe, args.dict,
                              args.workers, args.skip_malformed)
            for split, info in summary["splits"].items():
                log(f"[{task}] {split}: {info['examples']} examples" +
                    (f", labels {info['labels']}" if info["labels"] else "") +
                    f", BPE tokens {sum(v for k, v in info.items() if k.endswith('_bpe_tokens'))}")
            log(f"[{task}] done: {out}")
    except PreprocessError as error:
        print(f"glue: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
