"""Throughput of the data-preparation pipelines (preprocess/*.sh): wall time on tiny inputs (start-up cost) and on a
synthetic input of ``--lines`` examples in the official formats, with ``--workers N``.

    python benchmarks/preprocess.py                                   # every pipeline, 100,000 lines, --workers 2
    python benchmarks/preprocess.py --pipelines xnli --lines 20000
    python benchmarks/preprocess.py --json benchmarks/results/preprocess.json   # update the committed results

The table goes to stdout; the results JSON (with the date, the git commit and the machine) is written only where
``--json`` says, so a run never overwrites the committed ``benchmarks/results/preprocess.json`` by accident.

Inputs are built here, from the formats the pipelines check (``rxf_repro/data/glue.py``'s ``TASKS``, ``xnli.py``'s
``XNLI``), seeded, so every run writes the same files; words are drawn from a made-up vocabulary:
  tiny          each pipeline on a few examples per split (glue: ALL, every task): the start-up cost
  glue          SST-2: dev.tsv and test.tsv 1,000 rows each (LINES / 50 below 50,000), train.tsv the rest;
                sentences of 5-30 words
  xnli          MNLI train.tsv + dev_matched.tsv (1,000), XNLI-1.0 xnli.dev/test.tsv with 134 rows per language
                (2 x 2,010; fewer below 100,000 lines); each language's words in its own script; sentencepiece BPE
                (8,000 pieces, byte fallback) trained here on a sample, in place of XLM-R's
  cnn_dm        98% / 1% / 1% of LINES as train/val/test.{source,target}; sources 20-60 words, targets 5-15
  gigaword      the same text in the org_data layout (train/dev/test.{src,tgt}.txt)
  reddit_tifu   the same text as JSON lines with every field of the release, and PEGASUS's split file
GLUE and the summarisation pipelines use a byte-level toy GPT-2 BPE (``write_tiny_bpe``: every byte plus six
merges), which gives several times more tokens than GPT-2's real BPE would, so real-data throughput differs.
"""

import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from rxf_repro.data import glue, summarization, xnli  # noqa: E402  (the formats the pipelines check: one source of truth)
from rxf_repro.outputs import write_file_atomically  # noqa: E402
from rxf_repro.provenance import provenance  # noqa: E402

PIPELINES = ("glue", "xnli", "cnn_dm", "gigaword", "reddit_tifu")
SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzéèàçüöäßğşıơưđ",
    "greek": "αβγδεζηθικλμνξοπρστυφχψω",
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщъьюя",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "thai": "กขคงจฉชซญดตถทนบปผพฟมยรลวศสหอฮะาิีึืุู",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह",
}
SCRIPT_OF = {
    "el": "greek",
    "bg": "cyrillic",
    "ru": "cyrillic",
    "ar": "arabic",
    "ur": "arabic",
    "th": "thai",
    "zh": "cjk",
    "hi": "devanagari",
}
XNLI_PER_LANGUAGE = 134
NLI_LABELS = sorted(xnli.NLI_LABELS)
TINY_LINES = {"glue": 6, "xnli": 100, "cnn_dm": 6, "gigaword": 6, "reddit_tifu": 6}  # a few examples per split
MIN_LINES = TINY_LINES


class Words:
    """Sentences of made-up words in one script."""

    def __init__(self, rng: random.Random, lang: str = "en", size: int = 5000):
        letters = SCRIPTS[SCRIPT_OF.get(lang, "latin")]
        longest = 4 if lang == "zh" else 9
        self.rng, self.join = rng, "" if lang in ("zh", "th") else " "
        self.words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, longest))) for _ in range(size)]

    def sentence(self, low: int, high: int) -> str:
        return self.join.join(self.rng.choice(self.words) for _ in range(self.rng.randint(low, high))) + " ."


def write_tiny_bpe(root: pathlib.Path) -> Dict[str, str]:
    """A real GPT-2-format BPE in ``root``: every byte symbol plus a few merges, and a RoBERTa/BART-style dict.txt
    (BPE id, count)."""
    from fairseq.data.encoders.gpt2_bpe_utils import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    merges = [("t", "h"), ("th", "e"), ("Ġ", "a"), ("Ġ", "th"), ("Ġth", "e"), ("i", "n")]
    encoder = {s: i for i, s in enumerate(symbols + [a + b for a, b in merges])}
    (root / "encoder.json").write_text(json.dumps(encoder))
    (root / "vocab.bpe").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for a, b in merges) + "\n")
    (root / "dict.txt").write_text("".join(f"{i} {1000 - i}\n" for i in range(len(encoder))))
    return {k: str(root / f) for k, f in (("encoder", "encoder.json"), ("vocab", "vocab.bpe"), ("dict", "dict.txt"))}


def write_lines(path: pathlib.Path, lines: List[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def tsv_rows(layout: glue.Layout, rows: Sequence[Dict[int, str]]) -> List[str]:
    """A TSV of ``layout`` (its header, if any, then one line per row): each row gives its inputs (and label) by
    column; every other column gets a placeholder."""
    lines = ["\t".join(layout.header)] if layout.header else []
    lines += ["\t".join(row.get(c, "x") for c in range(layout.columns)) for row in rows]
    return lines


def label_of(labels: Optional[frozenset], rng: random.Random) -> str:
    return f"{rng.uniform(0, 5):.3f}" if labels is None else rng.choice(sorted(labels))


def glue_task(root: pathlib.Path, task: str, sizes: Dict[str, int], words: Words, rng: random.Random) -> None:
    """Every file of one GLUE task, in its official layout, ``sizes[stem]`` rows each; training holds every label."""
    labels, files = glue.TASKS[task]
    for stem, (_, layout) in files.items():
        rows = []
        for i in range(sizes.get(stem, sizes["dev"])):
            row = {c: words.sentence(5, 30) for c in layout.inputs}
            if layout.label is not None:
                in_train = labels is not None and stem == "train"  # every label, so that none becomes <unk>
                row[layout.label] = sorted(labels)[i % len(labels)] if in_train else label_of(labels, rng)
            rows.append(row)
        write_lines(root / task / f"{stem}.tsv", tsv_rows(layout, rows))


def synthetic_glue(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    held = min(1000, max(1, lines // 50))
    glue_task(root, "SST-2", {"train": lines - 2 * held, "dev": held, "test": held}, Words(rng), rng)
    return [str(root), "SST-2"]


def tiny_glue(root: pathlib.Path, rng: random.Random) -> List[str]:
    words = Words(rng)
    for task in glue.TASKS:
        glue_task(root, task, {"train": 3, "dev": 2}, words, rng)
    return [str(root), "ALL"]


def nli_rows(layout: glue.Layout, n: int, words: Words, rng: random.Random, lang: Optional[str] = None):
    rows = []
    for i in range(n):
        row = {
            layout.inputs[0]: words.sentence(5, 40),
            layout.inputs[1]: words.sentence(3, 20),
            layout.label: NLI_LABELS[i % 3] if i < 3 else rng.choice(NLI_LABELS),
        }
        if lang is not None:
            row[0] = lang
        if layout.header and "label1" in layout.header:  # MNLI's annotator labels: the gold one
            for c, name in enumerate(layout.header):
                if name.startswith("label"):
                    row[c] = row[layout.label]
        rows.append(row)
    return rows


def synthetic_xnli(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    english = Words(rng)
    per_language = min(XNLI_PER_LANGUAGE, max(1, lines // 746))
    n_dev = min(1000, max(1, lines // 100))
    n_xnli = 2 * len(xnli.XNLI_LANGUAGES) * per_language
    mnli = glue.TASKS["MNLI"][1]
    write_lines(
        root / "MNLI" / "train.tsv",
        tsv_rows(mnli["train"][1], nli_rows(mnli["train"][1], lines - n_dev - n_xnli, english, rng)),
    )
    write_lines(
        root / "MNLI" / "dev_matched.tsv",
        tsv_rows(mnli["dev_matched"][1], nli_rows(mnli["dev_matched"][1], n_dev, english, rng)),
    )
    sample = []
    for kind in ("dev", "test"):
        rows = []
        for lang in xnli.XNLI_LANGUAGES:  # XNLI-1.0 lists the rows language by language
            lang_rows = nli_rows(xnli.XNLI, per_language, Words(rng, lang), rng, lang)
            rows += lang_rows
            if len(sample) < 20000:
                sample += [text for row in lang_rows for c, text in row.items() if c in xnli.XNLI.inputs]
        write_lines(root / "XNLI-1.0" / f"xnli.{kind}.tsv", tsv_rows(xnli.XNLI, rows))
    model, dictionary = train_sentencepiece(root, sample + [english.sentence(5, 40) for _ in range(5000)])
    return [str(root / "MNLI"), str(root / "XNLI-1.0"), "--sentencepiece-model", model, "--dict", dictionary]


def train_sentencepiece(root: pathlib.Path, sample: List[str]) -> Tuple[str, str]:
    import sentencepiece as spm

    write_lines(root / "spm_sample.txt", sample)
    prefix = str(root / "sentencepiece.bpe")
    spm.SentencePieceTrainer.train(
        input=str(root / "spm_sample.txt"),
        model_prefix=prefix,
        vocab_size=8000,
        model_type="bpe",
        byte_fallback=True,
        hard_vocab_limit=False,
        character_coverage=1.0,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=prefix + ".model")
    write_lines(root / "dict.txt", [f"{processor.id_to_piece(i)} 1" for i in range(3, processor.get_piece_size())])
    return prefix + ".model", str(root / "dict.txt")


def summarisation_pairs(lines: int, rng: random.Random) -> Dict[str, List[Tuple[str, str]]]:
    words = Words(rng)
    held_out = max(1, lines // 100)
    sizes = {"train": lines - 2 * held_out, "valid": held_out, "test": held_out}
    return {split: [(words.sentence(20, 60), words.sentence(5, 15)) for _ in range(n)] for split, n in sizes.items()}


def synthetic_cnn_dm(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    for split, pairs in summarisation_pairs(lines, rng).items():
        stem = "val" if split == "valid" else split
        write_lines(root / f"{stem}.source", [s for s, _ in pairs])
        write_lines(root / f"{stem}.target", [t for _, t in pairs])
    return ["cnn_dm", str(root)]


def synthetic_gigaword(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    for split, pairs in summarisation_pairs(lines, rng).items():
        stem = "dev" if split == "valid" else split
        write_lines(root / "org_data" / f"{stem}.src.txt", [s for s, _ in pairs])
        write_lines(root / "org_data" / f"{stem}.tgt.txt", [t for _, t in pairs])
    return ["gigaword", str(root)]


def tifu_post(post_id: str, selftext_without_tldr: str, tldr: Optional[str], title: str = "TIFU by testing") -> Dict:
    """One line of Kim et al.'s ``tifu_all_tokenized_and_filtered.json``, with every field of the release."""
    selftext = selftext_without_tldr + (f"\n\nTL;DR: {tldr}" if tldr else "")
    return {
        "title_tokenized": title.lower().split(),
        "permalink": f"/r/tifu/comments/{post_id}/",
        "title": title,
        "url": f"https://www.reddit.com/r/tifu/comments/{post_id}/",
        "num_comments": 13,
        "tldr": tldr,
        "created_utc": 1371426179.0,
        "trimmed_title_tokenized": ["testing"],
        "ups": 50,
        "selftext_html": "<div>...</div>",
        "score": 50,
        "upvote_ratio": 0.77,
        "tldr_tokenized": tldr.lower().split() if tldr else None,
        "selftext": selftext,
        "trimmed_title": "testing",
        "selftext_without_tldr_tokenized": selftext_without_tldr.lower().split(),
        "id": post_id,
        "selftext_without_tldr": selftext_without_tldr,
    }


def synthetic_reddit_tifu(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    posts, split_ids = [], {"train": [], "validation": [], "test": []}
    for split, pairs in summarisation_pairs(lines, rng).items():
        for document, tldr in pairs:
            post_id = f"{len(posts):06x}"
            posts.append(json.dumps(tifu_post(post_id, document, tldr)))
            split_ids["validation" if split == "valid" else split].append(post_id)
    write_lines(root / summarization.TIFU_FILE, posts)
    (root / summarization.TIFU_SPLITS_FILE).write_text(json.dumps(split_ids))
    return ["reddit_tifu", str(root)]


SYNTHETIC = {
    "glue": synthetic_glue,
    "xnli": synthetic_xnli,
    "cnn_dm": synthetic_cnn_dm,
    "gigaword": synthetic_gigaword,
    "reddit_tifu": synthetic_reddit_tifu,
}


def tiny_inputs(pipeline: str, root: pathlib.Path, rng: random.Random) -> List[str]:
    """A few examples per split (glue: every task, as ALL): what a run costs before its data matters."""
    if pipeline == "glue":
        return tiny_glue(root, rng)
    return SYNTHETIC[pipeline](root, TINY_LINES[pipeline], rng)


def run(pipeline: str, inputs: List[str], out: pathlib.Path, bpe: Dict[str, str], workers: int) -> float:
    script = {"glue": "glue.sh", "xnli": "xnli.sh"}.get(pipeline, "summarization.sh")
    command = [*inputs[:2], str(out), *inputs[2:]]  # every pipeline: two inputs, then OUT
    if pipeline != "xnli":
        command += ["--encoder-json", bpe["encoder"], "--vocab-bpe", bpe["vocab"], "--dict", bpe["dict"]]
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "preprocess", script), *command, "--workers", str(workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{pipeline} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def _shown(path: Optional[str]) -> Optional[str]:
    """A path as the results record it: relative to the repository when inside it (no user's home in a result)."""
    if path is None:
        return None
    absolute = os.path.abspath(path)
    return os.path.relpath(absolute, REPO) if absolute.startswith(REPO + os.sep) else path


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pipelines", default=",".join(PIPELINES), help="comma-separated subset of " + ",".join(PIPELINES)
    )
    parser.add_argument("--lines", type=int, default=100_000, help="examples in the synthetic input of each pipeline")
    parser.add_argument("--workers", type=int, default=2, help="--workers of every pipeline run")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic inputs (same seed, same files)")
    parser.add_argument("--work", help="where inputs and outputs go (default: a temporary folder, removed at the end)")
    parser.add_argument(
        "--json",
        help="write the results (with date, commit and machine) to this file; default: "
        "none written, the table is printed (the committed results are "
        "benchmarks/results/preprocess.json)",
    )
    args = parser.parse_args(argv)
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    unknown = sorted(set(pipelines) - set(PIPELINES))
    if unknown:
        parser.error(f"--pipelines: unknown {unknown}; choose from {', '.join(PIPELINES)}")
    for pipeline in pipelines:
        if args.lines < MIN_LINES[pipeline]:
            parser.error(f"--lines must be >= {MIN_LINES[pipeline]} for {pipeline} (a few examples in every split)")
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    started = provenance()
    with tempfile.TemporaryDirectory(prefix="rxf-preprocess-bench-") as scratch:
        work = pathlib.Path(args.work or scratch)
        bpe = write_tiny_bpe(_mkdir(work / "bpe"))
        results = []
        for pipeline in pipelines:
            print(f"[{pipeline}] tiny input ...", file=sys.stderr, flush=True)
            tiny = tiny_inputs(pipeline, _mkdir(work / pipeline / "fixtures"), random.Random(args.seed))
            fixture_s = run(pipeline, tiny, work / pipeline / "fixtures-bin", bpe, args.workers)
            print(f"[{pipeline}] writing {args.lines:,} synthetic lines ...", file=sys.stderr, flush=True)
            inputs = SYNTHETIC[pipeline](_mkdir(work / pipeline / "synthetic"), args.lines, random.Random(args.seed))
            synthetic_s = run(pipeline, inputs, work / pipeline / "synthetic-bin", bpe, args.workers)
            with open(work / pipeline / "synthetic-bin" / "summary.json", encoding="utf-8") as f:
                summary = json.load(f)
            examples = sum(split["examples"] for split in summary["splits"].values())
            results.append(
                {
                    "pipeline": pipeline,
                    "fixtures_s": fixture_s,
                    "synthetic_examples": examples,
                    "synthetic_s": synthetic_s,
                    "examples_per_s": examples / synthetic_s,
                }
            )
            print(
                f"[{pipeline}] tiny input {fixture_s:.1f} s; {examples:,} examples in {synthetic_s:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    print(
        f"--workers {args.workers}, {os.cpu_count()} CPUs ({started['machine']['cpu']}), {started['date']}, "
        f"commit {started['commit']}\n"
    )
    print("| pipeline | tiny input (s) | synthetic examples | synthetic (s) | examples/s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['pipeline']} | {r['fixtures_s']:.1f} | {r['synthetic_examples']:,} | {r['synthetic_s']:.1f} | "
            f"{r['examples_per_s']:,.0f} |"
        )
    if args.json is None:
        print("\nresults not written to a file (pass --json FILE to keep them)", file=sys.stderr)
        return
    config = dict(vars(args), work=_shown(args.work), json=_shown(args.json))
    command = ["python", "benchmarks/preprocess.py", *(sys.argv[1:] if argv is None else argv)]
    record = {**started, "command": command, "config": config, "cpus": os.cpu_count(), "results": results}
    write_file_atomically(args.json, json.dumps(record, indent=2) + "\n")
    print(f"\nwritten: {args.json}", file=sys.stderr)


def _mkdir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
