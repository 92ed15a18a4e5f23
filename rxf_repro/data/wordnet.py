"""WordNet 3.0 (Debian's ``wordnet-base``: ``/usr/share/wordnet/data.{noun,verb,adj,adv}``) -> GLUE-shaped tasks
on real English for ``make demo``: one folder per task with ``train.tsv`` and ``dev.tsv`` in the layout of a GLUE
task, which ``preprocess/glue.sh`` then binarizes like GLUE itself (its ``--wordpiece-vocab`` path for an imported
BERT encoder). Deterministic: the same WordNet files and ``--seed`` give the same TSVs and ``summary.json``, byte
for byte.

The tasks (labels balanced; sizes per split are options):

- ``WN-POS`` (the task fine-tuned on, SST-2's role and layout): a synset's definition -> its part of speech
  (``noun``, ``verb``, ``adjective``, ``adverb``; satellite adjectives count as adjectives).
- ``WN-LEX`` (a probe, one sentence, SST-2's layout): a noun synset's definition -> its lexicographer file among
  six (``act``, ``animal``, ``artifact``, ``communication``, ``person``, ``plant``): what the gloss is about.
- ``WN-DEF`` (a probe, a pair, RTE's layout with labels 0/1): a word and a definition -> ``1`` if the definition is
  of one of the word's synsets, ``0`` if it is the definition of a synset of the same part of speech that does not
  contain the word.
- ``WN-BSHIFT`` (a probe, one sentence, SentEval's bigram shift): an example sentence of a gloss (the quoted
  parts), ``0`` as written or ``1`` with two adjacent words swapped.

Every synset belongs to one split (train 80%, dev 20%, by a hash of its offset, part of speech and the seed), the
same for every task; a pair task pairs only synsets of one split, so no synset and no definition is in two splits.
An example is drawn from the synsets of its split by a ``random.Random(seed)`` per task and split.

Bad input (a missing file, a line that is not a WordNet data line) stops with ``file:line`` and writes nothing; the
output is built beside OUT and renamed into place (``rxf_repro/outputs.py``: kind ``wordnet-tasks``).
"""

import argparse
import hashlib
import os
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from rxf_repro import catalog, cli
from rxf_repro.cli import UserError, positive_int
from rxf_repro.data.common import add_overwrite_flag, log, read_text_lines, write_lines, write_summary
from rxf_repro.outputs import check_destination, output_folder

TOOL = "preprocess/wordnet.sh"
KIND = "wordnet-tasks"
DEFAULT_DIR = "/usr/share/wordnet"  # Debian's wordnet-base
FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}  # data.FILE -> WordNet's part-of-speech letter
POS_NAMES = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
LEXICOGRAPHER_FILES = {4: "act", 5: "animal", 6: "artifact", 10: "communication", 18: "person", 20: "plant"}  # noun.*
TASKS = tuple(catalog.DEMO_TASKS.values())  # WN-POS (fine-tuned on), then the probes WN-LEX, WN-DEF, WN-BSHIFT
SPLITS = {"train": "train.tsv", "dev": "dev.tsv"}
DEV_SHARE = 0.2


@dataclass(frozen=True)
class Synset:
    key: str  # "n00001740": part of speech and offset, unique across the four files
    pos: str  # n v a s r
    lexicographer_file: int
    words: Tuple[str, ...]  # lemmas as written in text ("physical entity"), adjective markers removed
    definition: str  # the gloss without its quoted examples
    examples: Tuple[str, ...]


def parse_gloss(gloss: str) -> Tuple[str, Tuple[str, ...]]:
    """(definition, examples) of a WordNet gloss: ``def; def2; "example one"; "example two"``."""
    parts = gloss.split('"')
    definition = parts[0].strip().rstrip(";").strip()
    examples = tuple(" ".join(p.split()) for p in parts[1::2] if p.strip())
    return " ".join(definition.split()), examples


def parse_data_line(line: str, where: str) -> Synset:
    """One line of ``data.POS`` (WordNet's wndb(5) format); an error naming ``where`` if it is not one."""
    head, bar, gloss = line.partition(" | ")
    fields = head.split()
    try:
        if not bar:
            raise ValueError("no ' | ' before the gloss")
        offset, lex_file, pos, n_words = fields[0], int(fields[1]), fields[2], int(fields[3], 16)
        if pos not in POS_NAMES or len(offset) != 8 or not offset.isdigit():
            raise ValueError(f"part of speech {pos!r} or offset {offset!r}")
        words = tuple(fields[4 + 2 * i].split("(")[0].replace("_", " ") for i in range(n_words))  # "able(a)" -> "able"
        if len(fields) < 5 + 2 * n_words or not all(words):
            raise ValueError(f"{n_words} words announced")
    except (IndexError, ValueError) as error:
        raise UserError(f"{where}: not a WordNet data line ({error})") from None
    definition, examples = parse_gloss(gloss)
    return Synset(f"{'a' if pos == 's' else pos}{offset}", pos, lex_file, words, definition, examples)


def read_wordnet(folder: str) -> List[Synset]:
    """Every synset of ``folder/data.{noun,verb,adj,adv}``, in file order (the licence lines, indented, skipped)."""
    synsets = []
    for name in FILES:
        path = os.path.join(folder, f"data.{name}")
        if not os.path.isfile(path):
            raise UserError(f"{path}: missing (WordNet 3.0's database files; on Debian: apt-get install wordnet-base)")
        for number, line in enumerate(read_text_lines(path), start=1):
            if line.startswith("  ") or not line.strip():
                continue
            synsets.append(parse_data_line(line, f"{path}:{number}"))
    if not synsets:
        raise UserError(f"{folder}: no synsets in its data.* files")
    return synsets


def split_of(synset: Synset, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{synset.key}".encode()).digest()
    return "dev" if int.from_bytes(digest[:8], "big") / 2**64 < DEV_SHARE else "train"


Example = Tuple[Tuple[str, ...], str]  # (inputs, label)


def balanced(labelled: Iterable[Tuple[str, str]], size: int, rng: random.Random) -> List[Example]:
    """``size`` (definition,) -> label examples from (label, definition) pairs, as many of each label as the rarest
    label allows (at most ``size // labels`` each), shuffled."""
    by_label: Dict[str, List[Tuple[str, ...]]] = defaultdict(list)
    for label, definition in labelled:
        by_label[label].append((definition,))
    per_label = min(size // len(by_label), *(len(v) for v in by_label.values()))
    chosen = [(inputs, label) for label in sorted(by_label) for inputs in rng.sample(by_label[label], per_label)]
    rng.shuffle(chosen)
    return chosen


def pos_task(synsets: Sequence[Synset], size: int, rng: random.Random) -> List[Example]:
    return balanced(((POS_NAMES[s.pos], s.definition) for s in synsets if s.definition), size, rng)


def lex_task(synsets: Sequence[Synset], size: int, rng: random.Random) -> List[Example]:
    nouns = [s for s in synsets if s.pos == "n" and s.lexicographer_file in LEXICOGRAPHER_FILES and s.definition]
    return balanced(((LEXICOGRAPHER_FILES[s.lexicographer_file], s.definition) for s in nouns), size, rng)


def def_task(synsets: Sequence[Synset], size: int, rng: random.Random) -> List[Example]:
    """Half the words with a definition of theirs, half with another synset's of the same part of speech."""
    usable = [s for s in synsets if s.definition]
    by_pos: Dict[str, List[Synset]] = defaultdict(list)
    senses: Dict[Tuple[str, str], set] = defaultdict(set)  # (word, pos) -> its definitions
    for s in usable:
        by_pos[POS_NAMES[s.pos]].append(s)
        for w in s.words:
            senses[(w.lower(), POS_NAMES[s.pos])].add(s.definition)
    examples: List[Example] = []
    for index, s in enumerate(rng.sample(usable, min(size, len(usable)))):
        word = rng.choice(s.words)
        if index % 2 == 0:
            examples.append(((word, s.definition), "1"))
            continue
        known = senses[(word.lower(), POS_NAMES[s.pos])]
        for _ in range(20):  # another synset of this part of speech that is not a sense of the word
            other = rng.choice(by_pos[POS_NAMES[s.pos]])
            if other.definition not in known:
                examples.append(((word, other.definition), "0"))
                break
    rng.shuffle(examples)
    return examples


def bshift_task(synsets: Sequence[Synset], size: int, rng: random.Random) -> List[Example]:
    """Example sentences of at least 5 words (each used once), half with two adjacent words swapped; a swap
    that changes nothing (``the the``) is not made."""
    sentences = sorted({e for s in synsets for e in s.examples if len(e.split()) >= 5})
    examples: List[Example] = []
    for index, sentence in enumerate(rng.sample(sentences, min(size, len(sentences)))):
        words = sentence.split()
        if index % 2 == 0:
            examples.append(((sentence,), "0"))
            continue
        positions = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
        if not positions:
            continue
        i = rng.choice(positions)
        words[i], words[i + 1] = words[i + 1], words[i]
        examples.append(((" ".join(words),), "1"))
    rng.shuffle(examples)
    return examples


BUILDERS = {"WN-POS": pos_task, "WN-LEX": lex_task, "WN-DEF": def_task, "WN-BSHIFT": bshift_task}


def task_seed(seed: int, task: str, split: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{task}:{split}".encode()).digest()[:8], "big")


def build_tasks(
    synsets: Sequence[Synset], sizes: Dict[str, int], seed: int, tasks: Sequence[str] = TASKS
) -> Dict[str, Dict[str, List[Example]]]:
    """{task: {split: examples}}: each split's examples from that split's synsets only."""
    by_split: Dict[str, List[Synset]] = {split: [] for split in SPLITS}
    for s in synsets:
        by_split[split_of(s, seed)].append(s)
    return {
        task: {
            split: BUILDERS[task](by_split[split], sizes[split], random.Random(task_seed(seed, task, split)))
            for split in SPLITS
        }
        for task in tasks
    }


def tsv_lines(examples: Sequence[Example]) -> List[str]:
    """GLUE's layout: SST-2's (``sentence label``) for one input, RTE's (``index sentence1 sentence2 label``) for
    pairs; WordNet's text has no tabs or newlines."""
    if len(examples[0][0]) == 1:
        return ["sentence\tlabel"] + [f"{inputs[0]}\t{label}" for inputs, label in examples]
    return ["index\tsentence1\tsentence2\tlabel"] + [
        f"{i}\t{inputs[0]}\t{inputs[1]}\t{label}" for i, (inputs, label) in enumerate(examples)
    ]


def majority_baseline(examples: Sequence[Example]) -> float:
    """Accuracy in % of always answering the most frequent label."""
    counts = Counter(label for _, label in examples)
    return 100.0 * max(counts.values()) / len(examples)


def prepare(
    wordnet_dir: str, out: str, sizes: Dict[str, int], seed: int = 1, *, overwrite: bool = False
) -> Dict[str, Dict]:
    """``OUT/TASK/{train,dev}.tsv`` and ``OUT/summary.json`` (per task and split: examples, labels, majority)."""
    inputs = [os.path.join(wordnet_dir, f"data.{name}") for name in FILES]
    check_destination(out, TOOL, KIND, inputs=inputs, overwrite=overwrite)
    log(f"[wordnet] reading {wordnet_dir}/data.{{{','.join(FILES)}}}")
    synsets = read_wordnet(wordnet_dir)
    log(f"[wordnet] {len(synsets)} synsets; building {', '.join(TASKS)} (seed {seed})")
    built = build_tasks(synsets, sizes, seed)
    summary: Dict[str, Dict] = {"source": "WordNet 3.0", "synsets": len(synsets), "seed": seed, "tasks": {}}
    for task, splits in built.items():
        for split, examples in splits.items():
            if len(set(label for _, label in examples)) < 2:
                raise UserError(f"{wordnet_dir}: too few synsets for {task} {split} ({len(examples)} examples)")
        summary["tasks"][task] = {
            split: {
                "examples": len(examples),
                "labels": dict(sorted(Counter(label for _, label in examples).items())),
                "majority_baseline": round(majority_baseline(examples), 2),
            }
            for split, examples in splits.items()
        }
    with output_folder(out, TOOL, KIND, inputs=inputs, overwrite=overwrite, info={"seed": seed}) as tmp:
        for task, splits in built.items():
            os.makedirs(os.path.join(tmp, task))
            for split, examples in splits.items():
                write_lines(os.path.join(tmp, task, SPLITS[split]), tsv_lines(examples))
                log(f"[{task}] {split}: {len(examples)} examples, majority {majority_baseline(examples):.1f}%")
        write_summary(tmp, summary)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="output folder: OUT/TASK/train.tsv and dev.tsv for each task, OUT/summary.json")
    parser.add_argument(
        "--wordnet-dir",
        default=DEFAULT_DIR,
        help=f"WordNet 3.0's dict folder with data.noun etc. (default {DEFAULT_DIR})",
    )
    parser.add_argument("--train", type=positive_int, default=2000, help="examples per task in train (default 2000)")
    parser.add_argument("--dev", type=positive_int, default=1000, help="examples per task in dev (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="the splits' and the sampling's seed (default 1)")
    add_overwrite_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        prepare(args.wordnet_dir, args.out, {"train": args.train, "dev": args.dev}, args.seed, overwrite=args.overwrite)
        log(f"[wordnet] done: {args.out}")

    return cli.tool_main("wordnet", run, interrupted=f"interrupted; {args.out} is as it was")


if __name__ == "__main__":
    sys.exit(main())
