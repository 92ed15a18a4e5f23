"""Throughput of the data-preparation pipelines (preprocess/*.sh): wall time on the tests' fixtures and on a
synthetic input of ``--lines`` examples in the official formats, with ``--workers N``.

    python benchmarks/preprocess.py                                   # every pipeline, 100,000 lines, --workers 2
    python benchmarks/preprocess.py --pipelines xnli --lines 20000

Synthetic inputs (seeded, so every run writes the same files; words drawn from a made-up vocabulary):
  glue          SST-2: train.tsv LINES - 2,000 rows, dev.tsv and test.tsv 1,000 each; sentences of 5-30 words
  xnli          MNLI train.tsv + dev_matched.tsv (1,000), XNLI-1.0 xnli.dev/test.tsv with 134 rows per language
                (2 x 2,010); each language's words in its own script; sentencepiece BPE (8,000 pieces, byte
                fallback) trained here on a sample, in place of XLM-R's
  cnn_dm        98% / 1% / 1% of LINES as train/val/test.{source,target}; sources 20-60 words, targets 5-15
  gigaword      the same text in the org_data layout (train/dev/test.{src,tgt}.txt)
  reddit_tifu   the same text as JSON lines with every field of the release, and PEGASUS's split file
GLUE and the summarisation pipelines use the tests' byte-level GPT-2 BPE (tests/conftest.py::write_tiny_bpe),
which gives several times more tokens than GPT-2's real BPE would, so real-data throughput differs.
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
from typing import Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
PIPELINES = ("glue", "xnli", "cnn_dm", "gigaword", "reddit_tifu")
LANGS = ("en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur")
SCRIPTS = {"latin": "abcdefghijklmnopqrstuvwxyzéèàçüöäßğşıơưđ", "greek": "αβγδεζηθικλμνξοπρστυφχψω",
           "cyrillic": "абвгдежзийклмнопрстуфхцчшщъьюя", "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
           "thai": "กขคงจฉชซญดตถทนบปผพฟมยรลวศสหอฮะาิีึืุู",
           "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年", "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह"}
SCRIPT_OF = {"el": "greek", "bg": "cyrillic", "ru": "cyrillic", "ar": "arabic", "ur": "arabic", "th": "thai",
             "zh": "cjk", "hi": "devanagari"}
XNLI_PER_LANGUAGE = 134
NLI_LABELS = ("entailment", "neutral", "contradiction")


class Words:
    """Sentences of made-up words in one script."""

    def __init__(self, rng: random.Random, lang: str = "en", size: int = 5000):
        letters = SCRIPTS[SCRIPT_OF.get(lang, "latin")]
        longest = 4 if lang == "zh" else 9
        self.rng, self.join = rng, "" if lang in ("zh", "th") else " "
        self.words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, longest))) for _ in range(size)]

    def sentence(self, low: int, high: int) -> str:
        return self.join.join(self.rng.choice(self.words) for _ in range(self.rng.randint(low, high))) + " ."


def write_lines(path: pathlib.Path, lines: List[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def synthetic_glue(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    words = Words(rng)
    rows = lambda n: [f"{words.sentence(5, 30)}\t{rng.randint(0, 1)}" for _ in range(n)]  # noqa: E731
    write_lines(root / "SST-2" / "train.tsv", ["sentence\tlabel"] + rows(lines - 2000))
    write_lines(root / "SST-2" / "dev.tsv", ["sentence\tlabel"] + rows(1000))
    write_lines(root / "SST-2" / "test.tsv", ["index\tsentence"] + [f"{i}\t{words.sentence(5, 30)}" for i in range(1000)])
    return [str(root), "SST-2"]


def synthetic_xnli(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    from tests.test_preprocess_glue import MNLI_HEAD, mnli_row
    from tests.test_preprocess_xnli import HEADER, xnli_row

    english = Words(rng)
    n_dev, n_xnli = 1000, 2 * len(LANGS) * XNLI_PER_LANGUAGE

    def mnli(n: int, n_labels: int) -> List[str]:
        return [mnli_row(i, english.sentence(5, 40), english.sentence(3, 20), [rng.choice(NLI_LABELS)] * n_labels)
                for i in range(n)]

    write_lines(root / "MNLI" / "train.tsv", [MNLI_HEAD + "\tlabel1\tgold_label"] + mnli(lines - n_dev - n_xnli, 2))
    write_lines(root / "MNLI" / "dev_matched.tsv",
                [MNLI_HEAD + "".join(f"\tlabel{i}" for i in range(1, 6)) + "\tgold_label"] + mnli(n_dev, 6))
    sample = []
    for kind in ("dev", "test"):
        rows = []
        for lang in LANGS:  # XNLI-1.0 lists the rows language by language
            words = Words(rng, lang)
            for _ in range(XNLI_PER_LANGUAGE):
                premise, hypothesis = words.sentence(5, 40), words.sentence(3, 20)
                rows.append(xnli_row(lang, rng.choice(NLI_LABELS), premise, hypothesis))
                sample += [premise, hypothesis][: 2 if len(sample) < 20000 else 0]
        write_lines(root / "XNLI-1.0" / f"xnli.{kind}.tsv", [HEADER] + rows)
    model, dictionary = train_sentencepiece(root, sample + [english.sentence(5, 40) for _ in range(5000)])
    return [str(root / "MNLI"), str(root / "XNLI-1.0"), "--sentencepiece-model", model, "--dict", dictionary]


def train_sentencepiece(root: pathlib.Path, sample: List[str]) -> Tuple[str, str]:
    import sentencepiece as spm

    write_lines(root / "spm_sample.txt", sample)
    prefix = str(root / "sentencepiece.bpe")
    spm.SentencePieceTrainer.train(input=str(root / "spm_sample.txt"), model_prefix=prefix, vocab_size=8000,
                                   model_type="bpe", byte_fallback=True, hard_vocab_limit=False,
                                   character_coverage=1.0, minloglevel=2)
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


def synthetic_reddit_tifu(root: pathlib.Path, lines: int, rng: random.Random) -> List[str]:
    from tests.test_preprocess_summarization import summarization, tifu_post

    posts, split_ids = [], {"train": [], "validation": [], "test": []}
    for split, pairs in summarisation_pairs(lines, rng).items():
        for document, tldr in pairs:
            post_id = f"{len(posts):06x}"
            posts.append(json.dumps(tifu_post(post_id, document, tldr)))
            split_ids["validation" if split == "valid" else split].append(post_id)
    write_lines(root / summarization.TIFU_FILE, posts)
    (root / summarization.TIFU_SPLITS_FILE).write_text(json.dumps(split_ids))
    return ["reddit_tifu", str(root)]


SYNTHETIC = {"glue": synthetic_glue, "xnli": synthetic_xnli, "cnn_dm": synthetic_cnn_dm,
             "gigaword": synthetic_gigaword, "reddit_tifu": synthetic_reddit_tifu}


def fixtures(pipeline: str, root: pathlib.Path) -> List[str]:
    """The tests' fixtures of ``pipeline`` (tests/test_preprocess_*.py), written to ``root``."""
    if pipeline == "glue":
        from tests.test_preprocess_glue import write_glue

        return [str(write_glue(root / "glue")), "ALL"]
    if pipeline == "xnli":
        from tests.test_preprocess_glue import GLUE_FILES, write_glue
        from tests.test_preprocess_xnli import SENTENCES, write_xnli

        mnli = write_glue(root / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")}) / "MNLI"
        model, dictionary = train_sentencepiece(root, list(SENTENCES.values()) * 10)
        return [str(mnli), str(write_xnli(root / "XNLI-1.0")), "--sentencepiece-model", model, "--dict", dictionary]
    from tests import test_preprocess_summarization as t

    if pipeline == "reddit_tifu":
        return ["reddit_tifu", str(t.write_tifu(root / "tifu"))]
    files = {"cnn_dm": t.CNN_DM, "gigaword": t.GIGAWORD}[pipeline]
    return [pipeline, str(t.write_lines(root / pipeline, files))]


def run(pipeline: str, inputs: List[str], out: pathlib.Path, bpe: Dict[str, str], workers: int) -> float:
    script = {"glue": "glue.sh", "xnli": "xnli.sh"}.get(pipeline, "summarization.sh")
    command = [*inputs[:2], str(out), *inputs[2:]]  # every pipeline: two inputs, then OUT
    if pipeline != "xnli":
        command += ["--encoder-json", bpe["encoder"], "--vocab-bpe", bpe["vocab"], "--dict", bpe["dict"]]
    started = time.perf_counter()
    proc = subprocess.run(["bash", os.path.join(REPO, "preprocess", script), *command, "--workers", str(workers)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHON": sys.executable})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{pipeline} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset of " + ",".join(PIPELINES))
    parser.add_argument("--lines", type=int, default=100_000, help="examples in the synthetic input")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="where inputs and outputs go (default: a temporary folder, removed)")
    parser.add_argument("--json", default=os.path.join(REPO, "benchmarks", "results", "preprocess.json"),
                        help="where to write the results")
    args = parser.parse_args(argv)
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    unknown = sorted(set(pipelines) - set(PIPELINES))
    if unknown:
        parser.error(f"--pipelines: unknown {unknown}; choose from {', '.join(PIPELINES)}")
    if args.lines < 6000 and "xnli" in pipelines:
        parser.error("--lines must be >= 6,000 for xnli (1,000 MNLI dev + 4,020 XNLI rows are fixed)")
    if args.lines < 2001 and "glue" in pipelines:
        parser.error("--lines must be > 2,000 for glue (dev and test have 1,000 rows each)")

    from tests.conftest import write_tiny_bpe

    with tempfile.TemporaryDirectory(prefix="rxf-preprocess-bench-") as scratch:
        work = pathlib.Path(args.work or scratch)
        bpe = write_tiny_bpe(_mkdir(work / "bpe"))
        results = []
        for pipeline in pipelines:
            print(f"[{pipeline}] fixtures ...", file=sys.stderr, flush=True)
            fixture_s = run(pipeline, fixtures(pipeline, _mkdir(work / pipeline / "fixtures")),
                            work / pipeline / "fixtures-bin", bpe, args.workers)
            print(f"[{pipeline}] writing {args.lines:,} synthetic lines ...", file=sys.stderr, flush=True)
            inputs = SYNTHETIC[pipeline](_mkdir(work / pipeline / "synthetic"), args.lines, random.Random(args.seed))
            synthetic_s = run(pipeline, inputs, work / pipeline / "synthetic-bin", bpe, args.workers)
            summary = json.load(open(work / pipeline / "synthetic-bin" / "summary.json"))
            examples = sum(split["examples"] for split in summary["splits"].values())
            results.append({"pipeline": pipeline, "fixtures_s": fixture_s, "synthetic_examples": examples,
                            "synthetic_s": synthetic_s, "examples_per_s": examples / synthetic_s})
            print(f"[{pipeline}] fixtures {fixture_s:.1f} s; {examples:,} examples in {synthetic_s:.1f} s",
                  file=sys.stderr, flush=True)
    print(f"--workers {args.workers}, {os.cpu_count()} CPUs\n")
    print("| pipeline | test fixtures (s) | synthetic examples | synthetic (s) | examples/s |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['pipeline']} | {r['fixtures_s']:.1f} | {r['synthetic_examples']:,} | {r['synthetic_s']:.1f} | "
              f"{r['examples_per_s']:,.0f} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump({"config": vars(args), "cpus": os.cpu_count(), "results": results}, f, indent=2)
    os.replace(args.json + ".tmp", args.json)
    print(f"\nwritten: {args.json}", file=sys.stderr)


def _mkdir(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    main()
