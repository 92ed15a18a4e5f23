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
from typing import Dict, List, Optional, Sequence

from rxf_repro.catalog import XNLI_LANGUAGES
from rxf_repro.data.common import (
    PreprocessError,
    add_overwrite_flag,
    check_output,
    fairseq_preprocess,
    load_sentencepiece,
    log,
    map_lines,
    output_folder,
    positive_int,
    run_pipeline,
    write_summary,
)
from rxf_repro.data.glue import NLI_SENTENCES, TASKS, Layout, check_labels_seen_in_training, read_split
from rxf_repro.process import exit_on_sigterm

TOOL = "preprocess/xnli.sh"
KIND = "xnli-binaries"

XNLI_HEADER = (
    "language",
    "gold_label",
    *NLI_SENTENCES,
    "promptID",
    "pairID",
    "genre",
    "label1",
    "label2",
    "label3",
    "label4",
    "label5",
    "sentence1_tokenized",
    "sentence2_tokenized",
    "match",
)
XNLI = Layout(XNLI_HEADER, (6, 7), 1)
NLI_LABELS = TASKS["MNLI"][0]

_SP = None


def _init_sp(model: str) -> None:
    global _SP
    _SP = load_sentencepiece(model)  # loaded once per process; a forked worker inherits the parent's


def _pieces(line: str) -> str:
    return " ".join(_SP.encode(line, out_type=str))


def spm_encode(lines: List[str], model: str, workers: int) -> List[str]:
    """Sentencepiece pieces, space-separated, as ``spm_encode --output_format=piece`` (XLM-R's recipe)."""
    return map_lines(_pieces, lines, workers, _init_sp, (model,), "[XNLI] sentencepiece")


def prepare(
    mnli_dir: str, xnli_dir: str, out: str, sp_model: str, dictionary: str, workers: int = 1, overwrite: bool = False
) -> Dict:
    sources = (mnli_dir, xnli_dir, sp_model, dictionary)
    check_output(out, TOOL, KIND, inputs=sources, overwrite=overwrite)
    for path in (sp_model, dictionary):
        if not os.path.isfile(path):
            raise PreprocessError(f"missing file: {path}")
    _init_sp(sp_model)  # here, once: a bad model is one error, before any worker starts
    splits: Dict[str, tuple] = {}
    mnli = TASKS["MNLI"][1]
    train_path = os.path.join(mnli_dir, "train.tsv")
    train = None
    for stem, split in (("train", "train"), ("dev_matched", "valid")):
        path = os.path.join(mnli_dir, f"{stem}.tsv")
        if not os.path.isfile(path):
            raise PreprocessError(f"missing file: {path} (English training data: GLUE's MNLI folder)")
        log(f"[XNLI] reading MNLI {stem}.tsv")
        rows = read_split(path, mnli[stem][1], NLI_LABELS, False)
        if train is None:
            train = rows
        else:
            check_labels_seen_in_training(train_path, train, path, rows)
        splits[split] = (rows.inputs, rows.labels)
    for kind in ("dev", "test"):
        path = os.path.join(xnli_dir, f"xnli.{kind}.tsv")
        if not os.path.isfile(path):
            raise PreprocessError(f"missing file: {path} (XNLI-1.0)")
        log(f"[XNLI] reading xnli.{kind}.tsv")
        rows = read_split(path, XNLI, NLI_LABELS, False, keep=0, dataset="XNLI-1.0's")
        check_labels_seen_in_training(train_path, train, path, rows)
        (first, second, languages), labels = rows.inputs, rows.labels
        unknown = sorted(set(languages) - set(XNLI_LANGUAGES))
        if unknown:
            row = rows.lines[languages.index(unknown[0])]
            raise PreprocessError(f"{path}:{row}: language {unknown[0]!r} is not one of XNLI's 15")
        for lang in XNLI_LANGUAGES:
            keep = [i for i, code in enumerate(languages) if code == lang]
            if not keep:
                raise PreprocessError(f"{path}: no rows for language {lang!r}")
            splits[f"{kind}_{lang}"] = (
                [[first[i] for i in keep], [second[i] for i in keep]],
                [labels[i] for i in keep],
            )

    summary = {"splits": {s: {"examples": len(v[1]), "labels": dict(Counter(v[1]))} for s, v in splits.items()}}
    dictionary = os.path.abspath(dictionary)  # fairseq-preprocess runs in the temporary folder
    with output_folder(out, TOOL, KIND, inputs=sources, overwrite=overwrite) as tmp:
        raw = os.path.join(tmp, ".raw")
        os.makedirs(raw)
        # every sentence of every split through one pool of workers, then cut back into the splits' files
        columns = [(split, k, values) for split, (inputs, _) in splits.items() for k, values in enumerate(inputs)]
        log(f"[XNLI] sentencepiece: {sum(len(v) for _, _, v in columns):,} sentences")
        pieces = iter(spm_encode([line for _, _, values in columns for line in values], sp_model, workers))
        for split, k, values in columns:
            encoded = [next(pieces) for _ in values]
            summary["splits"][split][f"input{k}_pieces"] = sum(len(p.split()) for p in encoded)
            with open(os.path.join(raw, f"{split}.input{k}"), "w", encoding="utf-8") as f:
                f.write("\n".join(encoded) + "\n")
        for split, (_, labels) in splits.items():
            with open(os.path.join(raw, f"{split}.label"), "w", encoding="utf-8") as f:
                f.write("\n".join(labels) + "\n")
        extra = [s for s in splits if s not in ("train", "valid")]
        for suffix, dest, dict_args in [(f".input{k}", f"input{k}", ["--srcdict", dictionary]) for k in (0, 1)] + [
            (".label", "label", [])
        ]:
            log(f"[XNLI] binarizing {dest}")
            # prefixes relative to the temporary folder: fairseq splits --testpref on commas
            fairseq_preprocess(
                [
                    "--only-source",
                    *dict_args,
                    "--workers",
                    str(workers),
                    "--destdir",
                    dest,
                    "--trainpref",
                    os.path.join(".raw", "train" + suffix),
                    "--validpref",
                    os.path.join(".raw", "valid" + suffix),
                    "--testpref",
                    ",".join(os.path.join(".raw", s + suffix) for s in extra),
                ],
                cwd=tmp,
            )
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
    """The command line (every option with its help: ``--help`` shows them)."""
    parser = argparse.ArgumentParser(
        prog="preprocess/xnli.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mnli_dir", help="GLUE's MNLI folder (train.tsv, dev_matched.tsv): the English training data")
    parser.add_argument("xnli_dir", help="XNLI-1.0 folder (xnli.dev.tsv, xnli.test.tsv)")
    parser.add_argument("out", help="output folder (splits train, valid, dev_LANG, test_LANG)")
    parser.add_argument("--sentencepiece-model", required=True, help="XLM-R's sentencepiece.bpe.model")
    parser.add_argument("--dict", required=True, help="XLM-R's dict.txt")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes for encoding and binarizing")
    add_overwrite_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    exit_on_sigterm()  # SIGTERM runs the cleanup Ctrl-C runs: no temporary folder, no worker left
    parser = build_parser()
    args = parser.parse_args(argv)
    code, summary = run_pipeline(
        "xnli",
        args.out,
        lambda: prepare(
            args.mnli_dir, args.xnli_dir, args.out, args.sentencepiece_model, args.dict, args.workers, args.overwrite
        ),
    )
    if code:
        return code
    for split, info in summary["splits"].items():
        log(
            f"[XNLI] {split}: {info['examples']} examples, labels {info['labels']}, "
            f"pieces {info['input0_pieces'] + info['input1_pieces']}"
        )
    log(f"[XNLI] done: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
