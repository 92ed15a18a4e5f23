"""XNLI zero-shot (the paper's Table 3): English MNLI for training, XNLI dev and test in 15 languages,
encoded with XLM-R's sentencepiece model and binarized with XLM-R's ``dict.txt``.

Splits, all in fairseq's ``sentence_prediction`` layout (``input0/ input1/ label/``): ``train`` (MNLI train),
``valid`` (MNLI dev_matched), and ``dev_{lang}`` / ``test_{lang}`` for each of the 15 XNLI languages, each
loadable on its own (``fairseq-validate --valid-subset test_fr,test_de``). Rows are validated as in
``rxf_repro/data/glue.py``; XNLI's TSVs (19 columns, language first) are checked for every language. The output is
built beside OUT and renamed into place at the end, with a marker (``.rxf-output.json``: this script, kind
``xnli-binaries``) that lets a rerun replace it; any other non-empty folder is left alone unless ``--overwrite``.
"""

import argparse
import os
import shutil
import sys
from collections import Counter
from typing import Dict, Optional, Sequence

from rxf_repro import cli
from rxf_repro.catalog import XNLI_LANGUAGES
from rxf_repro.cli import UserError
from rxf_repro.data.common import (
    add_dict_and_workers_flags,
    add_overwrite_flag,
    check_files,
    encode_lines,
    fairseq_preprocess,
    log,
    sentencepiece,
    write_lines,
    write_summary,
)
from rxf_repro.data.glue import NLI_SENTENCES, TASKS, Layout, check_labels_seen_in_training, read_split
from rxf_repro.outputs import check_destination, output_folder

TOOL = "preprocess/xnli.sh"
KIND = "xnli-binaries"

XNLI_HEADER = (
    ("language", "gold_label", *NLI_SENTENCES, "promptID", "pairID", "genre")
    + tuple(f"label{i}" for i in range(1, 6))
    + ("sentence1_tokenized", "sentence2_tokenized", "match")
)
XNLI = Layout(XNLI_HEADER, (6, 7), 1)
NLI_LABELS = TASKS["MNLI"][0]


def prepare(
    mnli_dir: str, xnli_dir: str, out: str, sp_model: str, dictionary: str, *, workers: int = 1, overwrite: bool = False
) -> Dict:
    sources = (mnli_dir, xnli_dir, sp_model, dictionary)
    check_destination(out, TOOL, KIND, inputs=sources, overwrite=overwrite)
    check_files(sp_model, dictionary)
    encoder = sentencepiece(sp_model)  # a bad model is one error, before any work
    splits: Dict[str, tuple] = {}
    mnli = TASKS["MNLI"][1]
    train_path = os.path.join(mnli_dir, "train.tsv")
    train = None
    for stem, split in (("train", "train"), ("dev_matched", "valid")):
        path = os.path.join(mnli_dir, f"{stem}.tsv")
        check_files(path, hint="English training data: GLUE's MNLI folder")
        log(f"[XNLI] reading MNLI {stem}.tsv")
        rows = read_split(path, mnli[stem][1], NLI_LABELS)
        if train is None:
            train = rows
        else:
            check_labels_seen_in_training(train_path, train, path, rows)
        splits[split] = (rows.inputs, rows.labels)
    for kind in ("dev", "test"):
        path = os.path.join(xnli_dir, f"xnli.{kind}.tsv")
        check_files(path, hint="XNLI-1.0")
        log(f"[XNLI] reading xnli.{kind}.tsv")
        rows = read_split(path, XNLI, NLI_LABELS, keep=0, dataset="XNLI-1.0's")
        check_labels_seen_in_training(train_path, train, path, rows)
        (first, second, languages), labels = rows.inputs, rows.labels
        unknown = sorted(set(languages) - set(XNLI_LANGUAGES))
        if unknown:
            row = rows.lines[languages.index(unknown[0])]
            raise UserError(f"{path}:{row}: language {unknown[0]!r} is not one of XNLI's 15")
        for lang in XNLI_LANGUAGES:
            keep = [i for i, code in enumerate(languages) if code == lang]
            if not keep:
                raise UserError(f"{path}: no rows for language {lang!r}")
            splits[f"{kind}_{lang}"] = (
                [[first[i] for i in keep], [second[i] for i in keep]],
                [labels[i] for i in keep],
            )

    summary = {"splits": {s: {"examples": len(v[1]), "labels": dict(Counter(v[1]))} for s, v in splits.items()}}
    dictionary = os.path.abspath(dictionary)  # fairseq-preprocess runs in the temporary folder
    with output_folder(out, TOOL, KIND, inputs=sources, overwrite=overwrite) as tmp:
        raw = os.path.join(tmp, ".raw")
        os.makedirs(raw)
        # every sentence of every split in one go, then cut back into the splits' files
        columns = [(split, k, values) for split, (inputs, _) in splits.items() for k, values in enumerate(inputs)]
        log(f"[XNLI] sentencepiece: {sum(len(v) for _, _, v in columns):,} sentences")
        lines = [line for _, _, values in columns for line in values]
        pieces = iter(encode_lines(encoder, lines, workers, "[XNLI] sentencepiece"))
        for split, k, values in columns:
            encoded = [next(pieces) for _ in values]
            summary["splits"][split][f"input{k}_pieces"] = sum(len(p.split()) for p in encoded)
            write_lines(os.path.join(raw, f"{split}.input{k}"), encoded)
        for split, (_, labels) in splits.items():
            write_lines(os.path.join(raw, f"{split}.label"), labels)
        extra = [s for s in splits if s not in ("train", "valid")]
        for dest in ("input0", "input1", "label"):
            log(f"[XNLI] binarizing {dest}")
            test = ",".join(os.path.join(".raw", f"{s}.{dest}") for s in extra)
            pref = ["--trainpref", f".raw/train.{dest}", "--validpref", f".raw/valid.{dest}", "--testpref", test]
            dict_args = [] if dest == "label" else ["--srcdict", dictionary]
            fairseq_preprocess(["--only-source", *dict_args, "--destdir", dest, *pref], cwd=tmp, workers=workers)
            # fairseq-preprocess names the test prefixes test, test1, ...: give them their XNLI names
            for i, split in enumerate(extra):
                for ext in ("bin", "idx"):
                    os.replace(
                        os.path.join(tmp, dest, f"test{i or ''}.{ext}"), os.path.join(tmp, dest, f"{split}.{ext}")
                    )
        shutil.rmtree(raw)
        write_summary(tmp, summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preprocess/xnli.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mnli_dir", help="GLUE's MNLI folder (train.tsv, dev_matched.tsv): the English training data")
    parser.add_argument("xnli_dir", help="XNLI-1.0 folder (xnli.dev.tsv, xnli.test.tsv)")
    parser.add_argument("out", help="output folder (splits train, valid, dev_LANG, test_LANG)")
    parser.add_argument(
        "--sentencepiece-model",
        dest="sp_model",
        metavar="SENTENCEPIECE_MODEL",
        required=True,
        help="XLM-R's sentencepiece.bpe.model",
    )
    add_dict_and_workers_flags(parser, "XLM-R's dict.txt")
    add_overwrite_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        for split, info in prepare(**vars(args))["splits"].items():  # the flags are prepare's parameters
            log(
                f"[XNLI] {split}: {info['examples']} examples, labels {info['labels']}, "
                f"pieces {info['input0_pieces'] + info['input1_pieces']}"
            )
        log(f"[XNLI] done: {args.out}")

    return cli.tool_main("xnli", run, interrupted=f"interrupted; {args.out} is as it was")


if __name__ == "__main__":
    sys.exit(main())
