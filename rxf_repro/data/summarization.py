"""Summarisation data (the paper's Table 4: CNN/DailyMail, Gigaword, Reddit TIFU) to fairseq binaries, exactly as
fairseq's BART recipe (``examples/bart/README.summarization.md``) makes them: one example per line in
``{train,valid,test}.{source,target}``, GPT-2 BPE ids as ``examples/roberta/multiprocessing_bpe_encoder.py``, then
``fairseq-preprocess --source-lang source --target-lang target --srcdict dict.txt --tgtdict dict.txt`` with BART's
``dict.txt`` (GPT-2's). ``fairseq-train OUT --task translation --source-lang source --target-lang target`` reads it.

Inputs, in their public formats:

- ``cnn_dm``: the recipe's text files ``train.source train.target val.source val.target test.source test.target``
  (one article / one summary per line, untokenised, as the scripts the recipe points to write them; ``valid.*`` is
  accepted for ``val.*``).
- ``gigaword``: Rush et al. (2015)'s headline data, either as the ``org_data`` folder that UniLM distributes and
  TFDS / Hugging Face ``gigaword`` read (``train.src.txt train.tgt.txt dev.src.txt dev.tgt.txt test.src.txt
  test.tgt.txt``; ``valid.*`` accepted for ``dev.*``), or as harvardnlp's ``sumdata`` (``train/train.article.txt
  train/train.title.txt train/valid.article.filter.txt train/valid.title.filter.txt Giga/input.txt
  Giga/task1_ref0.txt``). RAW_DIR may be that folder or its parent. The text is kept as given: lower-cased,
  digits as ``#``, ``UNK``, and the ``<unk>`` of train/dev (TFDS rewrites those to ``UNK``; we do not).
- ``reddit_tifu``: Kim et al. (2019)'s ``tifu_all_tokenized_and_filtered.json`` (JSON lines), TFDS's "long"
  config: document ``selftext_without_tldr``, summary ``tldr``, posts whose tldr or document is empty left out
  (counted). A post becomes one line: its whitespace, newlines included, is collapsed to single spaces.
  There is no official split. ``--tifu-split pegasus`` (default) uses ``reddit_tifu_long_splits.json`` from
  RAW_DIR: the ids of PEGASUS's 80/10/10 split (``train[:80%]``, ``train[80%:90%]``, ``train[90%:]`` of TFDS's
  train split), released by TFDS (config ``long_split``) so that results are comparable; ``--tifu-split hash``
  needs no extra file: a post goes to train, valid or test by the first 8 bytes of SHA-256 of its id, modulo 10
  (0-7, 8, 9). Either way ``OUT/splits.json`` lists the ids of each split.

Unlike the recipe, every file is checked first: missing files, source/target line counts, empty sources or
targets (``file:line``; ``--skip-empty`` leaves such examples out, counted; the recipe keeps them with
``--keep-empty``), malformed JSON and missing fields. A stray ``\\r`` inside a line becomes a space (fairseq reads
text with universal newlines, where it would split the example in two). The output is built beside OUT and renamed
into place at the end, with a marker (``.rxf-output.json``: this script, kind ``summarization-binaries``) that lets
a rerun replace it; any other non-empty folder is left alone unless ``--overwrite``.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from rxf_repro import cli
from rxf_repro.cli import UserError
from rxf_repro.data.common import (
    add_dict_and_workers_flags,
    add_overwrite_flag,
    check_files,
    encode_to_file,
    fairseq_preprocess,
    gpt2_bpe,
    log,
    read_text_lines,
    write_lines,
    write_summary,
)
from rxf_repro.outputs import check_destination, output_folder

TOOL = "preprocess/summarization.sh"
KIND = "summarization-binaries"

SPLITS = ("train", "valid", "test")
LANGS = ("source", "target")


def _pairs(source: str, target: str, *stems: str) -> Dict[str, List[Tuple[str, str]]]:
    """{split: [(source file, target file), ...]} of train, valid, test's ``stems`` ("a|b": either name)."""
    return {split: [(s + source, s + target) for s in stem.split("|")] for split, stem in zip(SPLITS, stems)}


# dataset -> [(layout name, sub-folders of RAW_DIR to look in, {split: [(source file, target file), ...]})]
LAYOUTS: Dict[str, List[Tuple[str, Tuple[str, ...], Dict[str, List[Tuple[str, str]]]]]] = {
    "cnn_dm": [("BART recipe", ("",), _pairs(".source", ".target", "train", "val|valid", "test"))],
    "gigaword": [
        ("org_data", ("", "org_data"), _pairs(".src.txt", ".tgt.txt", "train", "dev|valid", "test")),
        (
            "sumdata",
            ("", "sumdata"),
            {
                "train": [("train/train.article.txt", "train/train.title.txt")],
                "valid": [("train/valid.article.filter.txt", "train/valid.title.filter.txt")],
                "test": [("Giga/input.txt", "Giga/task1_ref0.txt")],
            },
        ),
    ],
}
DATASETS = ("cnn_dm", "gigaword", "reddit_tifu")
TIFU_FILE = "tifu_all_tokenized_and_filtered.json"
TIFU_SPLITS_FILE = "reddit_tifu_long_splits.json"
TIFU_SPLIT_KEYS = {"train": "train", "validation": "valid", "test": "test"}  # TFDS's names -> fairseq's


def find_files(raw_dir: str, dataset: str) -> Tuple[str, Dict[str, Tuple[str, str]]]:
    """(layout name, {split: (source path, target path)}) of the first layout whose train source is in RAW_DIR."""
    for name, roots, splits in LAYOUTS[dataset]:
        for root in roots:
            folder = os.path.normpath(os.path.join(raw_dir, root))
            if not os.path.isfile(os.path.join(folder, splits["train"][0][0])):
                continue
            files = {}
            for split, candidates in splits.items():
                pairs = [(os.path.join(folder, s), os.path.join(folder, t)) for s, t in candidates]
                present = [pair for pair in pairs if any(map(os.path.exists, pair))]
                if len(present) > 1:
                    raise UserError(
                        f"{folder}: both {present[0][0]} and {present[1][0]} are there for {split}; keep one"
                    )
                if not present:
                    expected = " or ".join(f"{s} + {t}" for s, t in candidates)
                    raise UserError(f"{folder}: missing {expected} ({split} split of the {name} layout)")
                check_files(*present[0])  # both of the pair
                files[split] = present[0]
            return name, files
    expected = "; ".join(
        f"{name}: {', '.join(s + ' ' + t for c in splits.values() for s, t in c[:1])}"
        for name, _, splits in LAYOUTS[dataset]
    )
    raise UserError(f"{raw_dir}: no {dataset} files found (expected {expected})")


def read_pair(source: str, target: str, skip_empty: bool) -> Tuple[List[str], List[str], int]:
    """Line-aligned sources and targets, validated; (sources, targets, examples skipped for being empty)."""
    sources, targets = read_text_lines(source), read_text_lines(target)
    if len(sources) != len(targets):
        raise UserError(
            f"{source} has {len(sources)} lines but {target} has {len(targets)}: source and target "
            "must be line-aligned, one example per line"
        )
    kept_sources, kept_targets, skipped = [], [], 0
    for number, (src, tgt) in enumerate(zip(sources, targets), start=1):
        src, tgt = src.replace("\r", " ").strip(), tgt.replace("\r", " ").strip()
        if not src or not tgt:
            if skip_empty:
                skipped += 1
                continue
            path, which = (source, "source") if not src else (target, "target")
            raise UserError(f"{path}:{number}: empty {which} text (--skip-empty leaves such examples out)")
        kept_sources.append(src)
        kept_targets.append(tgt)
    if not kept_sources:
        raise UserError(f"{source}: no examples")
    return kept_sources, kept_targets, skipped


def read_tifu(path: str) -> Tuple[List[Tuple[str, str, str]], Counter]:
    """(id, document, tldr) of every post of the long config, in file order, and the posts left out, by reason."""
    posts, left_out, first_line = [], Counter(), {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            if not raw.strip():
                raise UserError(f"{where}: empty line (JSON lines: one post per line)")
            try:
                post = json.loads(raw)
            except UnicodeDecodeError as error:
                raise UserError(f"{where}: not UTF-8 ({error.reason})") from None
            except json.JSONDecodeError as error:
                raise UserError(f"{where}: not valid JSON ({error.msg}, column {error.colno})") from None
            if not isinstance(post, dict):
                raise UserError(f"{where}: expected a JSON object, got {type(post).__name__}")
            for field, types in (("id", (str,)), ("selftext_without_tldr", (str,)), ("tldr", (str, type(None)))):
                if field not in post:
                    raise UserError(
                        f"{where}: missing field {field!r} (every post of {TIFU_FILE} has "
                        "id, selftext_without_tldr and tldr)"
                    )
                if not isinstance(post[field], types):
                    raise UserError(f"{where}: field {field!r} is {type(post[field]).__name__}, expected a string")
                check_encodable(post[field] or "", where, field)
            post_id = post["id"].strip()
            if not post_id:
                raise UserError(f"{where}: empty id")
            if post_id in first_line:
                raise UserError(f"{where}: duplicate id {post_id!r} (first on line {first_line[post_id]})")
            first_line[post_id] = number
            document = " ".join(post["selftext_without_tldr"].split())
            tldr = " ".join((post["tldr"] or "").split())
            if not tldr:
                left_out["no_tldr"] += 1
            elif not document:
                left_out["empty_document"] += 1
            else:
                posts.append((post_id, document, tldr))
    if not posts:
        raise UserError(f"{path}: no post has both a tldr and a text")
    return posts, left_out


def check_encodable(text: str, where: str, field: str) -> None:
    """JSON may escape half of a UTF-16 surrogate pair (``"\\ud800"``): Python reads it as a lone surrogate, which
    no UTF-8 file can hold, so it would fail when written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise UserError(
            f"{where}: field {field!r} has a lone surrogate {ascii(text[error.start])[1:-1]} at "
            f"character {error.start + 1} (half of a UTF-16 pair, escaped in the JSON): not text; "
            "fix or remove that post"
        ) from None


def hash_split(post_id: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(post_id.encode("utf-8")).digest()[:8], "big") % 10
    return "train" if bucket < 8 else "valid" if bucket == 8 else "test"


def read_pegasus_split(path: str) -> Dict[str, str]:
    """{post id: fairseq split} from TFDS's split file: {"train": [ids], "validation": [ids], "test": [ids]}."""
    fetch = "preprocess/download.sh DEST reddit_tifu fetches it; or pass --tifu-split hash"
    check_files(path, hint=f"PEGASUS's split, released by TFDS: {fetch}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        line = getattr(error, "lineno", 1)
        raise UserError(f"{path}:{line}: not valid JSON ({getattr(error, 'msg', error)})") from None
    if not isinstance(data, dict) or sorted(data) != sorted(TIFU_SPLIT_KEYS):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: expected an object with keys {sorted(TIFU_SPLIT_KEYS)}, got {keys}")
    split_of: Dict[str, str] = {}
    for key, split in TIFU_SPLIT_KEYS.items():
        if not isinstance(data[key], list) or not all(isinstance(i, str) for i in data[key]):
            raise UserError(f"{path}: {key!r} must be a list of post ids (strings)")
        for post_id in data[key]:
            if post_id in split_of and split_of[post_id] != split:
                raise UserError(f"{path}: id {post_id!r} is in two splits ({split_of[post_id]}, {split})")
            split_of[post_id] = split
    return split_of


def read_reddit_tifu(raw_dir: str, convention: str) -> Tuple[Dict[str, Tuple[List[str], List[str], List[str]]], Dict]:
    """({split: (ids, documents, tldrs)}, what to record in summary.json)."""
    path = os.path.join(raw_dir, TIFU_FILE)
    check_files(path, hint="Kim et al. 2019's Reddit TIFU release")
    split_of = read_pegasus_split(os.path.join(raw_dir, TIFU_SPLITS_FILE)) if convention == "pegasus" else None
    log(f"[reddit_tifu] reading {TIFU_FILE}")
    posts, left_out = read_tifu(path)
    splits: Dict[str, Tuple[List[str], List[str], List[str]]] = {s: ([], [], []) for s in SPLITS}
    for post_id, document, tldr in posts:
        split = hash_split(post_id) if split_of is None else split_of.get(post_id)
        if split is None:
            left_out["not_in_split"] += 1
            continue
        for values, value in zip(splits[split], (post_id, document, tldr)):
            values.append(value)
    info = {"split_convention": convention, "posts_left_out": dict(left_out)}
    if split_of is not None:
        info["split_ids_not_in_data"] = len(split_of.keys() - {post_id for post_id, _, _ in posts})
        if info["split_ids_not_in_data"]:
            log(
                f"[reddit_tifu] {info['split_ids_not_in_data']} ids of {TIFU_SPLITS_FILE} are not posts with a tldr "
                f"in {TIFU_FILE}: is it the same release?"
            )
    for split, (ids, _, _) in splits.items():
        if not ids:
            raise UserError(f"{path}: no post falls in the {split} split ({convention} convention)")
    return splits, info


def prepare(
    dataset: str,
    raw_dir: str,
    out: str,
    encoder_json: str,
    vocab_bpe: str,
    dictionary: str,
    *,
    workers: int = 1,
    skip_empty: bool = False,
    tifu_split: str = "pegasus",
    overwrite: bool = False,
) -> Dict:
    inputs = (raw_dir, encoder_json, vocab_bpe, dictionary)
    check_destination(out, TOOL, KIND, inputs=inputs, overwrite=overwrite)
    check_files(encoder_json, vocab_bpe, dictionary)
    if not os.path.isdir(raw_dir):
        raise UserError(f"missing folder: {raw_dir}")
    encoder = gpt2_bpe(encoder_json, vocab_bpe)  # a bad file is one error, before any work

    # 1. read and validate everything before writing anything
    summary: Dict = {"dataset": dataset, "splits": {}}
    examples: Dict[str, Tuple[List[str], List[str]]] = {}
    split_ids = None
    if dataset == "reddit_tifu":
        tifu, info = read_reddit_tifu(raw_dir, tifu_split)
        summary.update(info)
        split_ids = {"convention": tifu_split, **{split: ids for split, (ids, _, _) in tifu.items()}}
        for split, (ids, documents, tldrs) in tifu.items():
            examples[split] = (documents, tldrs)
            summary["splits"][split] = {"examples": len(ids)}
    else:
        layout, files = find_files(raw_dir, dataset)
        summary["layout"] = layout
        for split, (source, target) in files.items():
            log(f"[{dataset}] reading {os.path.relpath(source, raw_dir)}, {os.path.relpath(target, raw_dir)}")
            sources, targets, skipped = read_pair(source, target, skip_empty)
            examples[split] = (sources, targets)
            summary["splits"][split] = {
                "files": [os.path.relpath(p, raw_dir) for p in (source, target)],
                "examples": len(sources),
                "skipped_empty": skipped,
            }

    dictionary = os.path.abspath(dictionary)  # fairseq-preprocess runs in the temporary folder
    with output_folder(out, TOOL, KIND, inputs=inputs, overwrite=overwrite, info={"dataset": dataset}) as tmp:
        raw, bpe = os.path.join(tmp, "raw"), os.path.join(tmp, ".bpe")
        os.makedirs(raw)
        os.makedirs(bpe)
        # 2. the recipe's raw text, kept (generation and ROUGE read test.source / test.target), then GPT-2 BPE
        for split, texts in examples.items():
            for lang, lines in zip(LANGS, texts):
                write_lines(os.path.join(raw, f"{split}.{lang}"), lines)
                label = f"[{dataset}] BPE-encoding {split}.{lang}"
                dest = os.path.join(bpe, f"{split}.{lang}")
                summary["splits"][split][f"{lang}_bpe_tokens"] = encode_to_file(encoder, lines, dest, workers, label)
        # 3. fairseq-preprocess, as the recipe, with prefixes relative to the temporary folder
        log(f"[{dataset}] binarizing")
        pref = [arg for split in SPLITS for arg in (f"--{split}pref", os.path.join(".bpe", split))]
        langs = ["--source-lang", "source", "--target-lang", "target", "--srcdict", dictionary, "--tgtdict", dictionary]
        fairseq_preprocess([*langs, *pref, "--destdir", "."], cwd=tmp, workers=workers)
        shutil.rmtree(bpe)
        if split_ids is not None:
            with open(os.path.join(tmp, "splits.json"), "w") as f:
                json.dump(split_ids, f, indent=1)
        write_summary(tmp, summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preprocess/summarization.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", choices=DATASETS, help="which dataset RAW_DIR holds")
    parser.add_argument("raw_dir", help="the folder with the dataset's public files (see the list above)")
    parser.add_argument("out", help="output folder (fairseq's translation layout, source -> target)")
    parser.add_argument("--encoder-json", required=True, help="GPT-2 BPE encoder.json")
    parser.add_argument("--vocab-bpe", required=True, help="GPT-2 BPE vocab.bpe")
    add_dict_and_workers_flags(parser, "BART's dict.txt (GPT-2's, fairseq's gpt2_bpe/dict.txt)")
    parser.add_argument(
        "--skip-empty",
        action="store_true",
        help="leave out examples whose source or target is empty (counted) instead of failing",
    )
    parser.add_argument(
        "--tifu-split",
        choices=("pegasus", "hash"),
        default=None,
        help="reddit_tifu only: PEGASUS's released split (default) or a hash of the post id",
    )
    add_overwrite_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.tifu_split is not None and args.dataset != "reddit_tifu":
        parser.error("--tifu-split is for reddit_tifu only")

    def run() -> None:
        summary = prepare(**dict(vars(args), tifu_split=args.tifu_split or "pegasus"))  # the flags are its parameters
        for split, info in summary["splits"].items():
            skipped = f", {info['skipped_empty']} skipped (empty)" if info.get("skipped_empty") else ""
            log(
                f"[{args.dataset}] {split}: {info['examples']} examples{skipped}, BPE tokens "
                f"source {info['source_bpe_tokens']} / target {info['target_bpe_tokens']}"
            )
        if "posts_left_out" in summary:
            log(f"[{args.dataset}] split: {summary['split_convention']}; posts left out: {summary['posts_left_out']}")
        log(f"[{args.dataset}] done: {args.out}")

    return cli.tool_main("summarization", run, interrupted=f"interrupted; {args.out} is as it was")


if __name__ == "__main__":
    sys.exit(main())
