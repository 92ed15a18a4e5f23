"""Tiny, deterministic datasets in fairseq's on-disk formats, for the tests and the demo.

A toy sentiment language: sentences of sentiment words, neutral filler and negations; the label is
the sign of the summed sentiment, each sentiment word flipped by a directly preceding "not". A tiny
model learns it in a few hundred updates, so the demo's numbers mean something. The seq2seq toy asks
for the sentence's sentiment words in order (a crude "summary"), with variable lengths so batches
carry padding.
"""

import os
import random
from typing import Dict, List, Optional, Sequence, Tuple

from rxf_repro.data.common import fairseq_preprocess
from rxf_repro.outputs import output_folder

POSITIVE = ["good", "great", "fine", "nice", "superb", "lovely", "happy", "bright"]
NEGATIVE = ["bad", "awful", "poor", "nasty", "grim", "sad", "dull", "ugly"]
FILLER = ["the", "a", "film", "plot", "cast", "was", "is", "and", "very", "story", "it", "quite"]
NEGATION = "not"


def toy_sentence(rng: random.Random) -> Tuple[List[str], int]:
    """One sentence and its label (1 = positive). Ties are re-drawn so every label is defined."""
    while True:
        words, score = [], 0
        for _ in range(rng.randint(4, 12)):
            draw = rng.random()
            if draw < 0.45:
                words.append(rng.choice(FILLER))
                continue
            negated = rng.random() < 0.25
            if negated:
                words.append(NEGATION)
            positive = draw < 0.725
            words.append(rng.choice(POSITIVE if positive else NEGATIVE))
            score += (1 if positive else -1) * (-1 if negated else 1)
        if score != 0:
            return words, int(score > 0)


def write_classification_raw(dest: str, sizes: Dict[str, int], seed: int = 1) -> None:
    """``{split}.input0`` (one whitespace-tokenised sentence a line) and ``{split}.label``."""
    rng = random.Random(seed)
    os.makedirs(dest, exist_ok=True)
    for split, n in sizes.items():
        rows = [toy_sentence(rng) for _ in range(n)]
        _write_lines(os.path.join(dest, f"{split}.input0"), [" ".join(w) for w, _ in rows])
        _write_lines(os.path.join(dest, f"{split}.label"), [str(label) for _, label in rows])


def write_seq2seq_raw(dest: str, sizes: Dict[str, int], seed: int = 1) -> None:
    """``{split}.src`` sentences and ``{split}.tgt`` their sentiment words, in order."""
    rng = random.Random(seed)
    os.makedirs(dest, exist_ok=True)
    keep = set(POSITIVE + NEGATIVE + [NEGATION])
    for split, n in sizes.items():
        src = [toy_sentence(rng)[0] for _ in range(n)]
        _write_lines(os.path.join(dest, f"{split}.src"), [" ".join(w) for w in src])
        _write_lines(os.path.join(dest, f"{split}.tgt"), [" ".join(x for x in w if x in keep) for w in src])


def _write_lines(path: str, lines: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def binarize_sentence_prediction(
    raw: str, dest: str, splits: Sequence[str] = ("train", "valid"), workers: int = 1, srcdict: Optional[str] = None
) -> None:
    """The ``input0/ label/`` layout of fairseq's ``sentence_prediction`` task (RoBERTa GLUE recipe),
    written to a temporary folder and renamed into place, so a failure leaves no half dataset."""
    with output_folder(dest, "rxf_fairseq", "data") as tmp:
        common = ["--only-source", "--workers", str(workers)]
        pref = {s: os.path.join(raw, s) for s in splits}
        prefixes = ["--trainpref", pref["train"] + ".input0"]
        if "valid" in pref:
            prefixes += ["--validpref", pref["valid"] + ".input0"]
        dict_args = ["--srcdict", srcdict] if srcdict else []
        fairseq_preprocess(common + prefixes + dict_args + ["--destdir", os.path.join(tmp, "input0")])
        prefixes = ["--trainpref", pref["train"] + ".label"]
        if "valid" in pref:
            prefixes += ["--validpref", pref["valid"] + ".label"]
        fairseq_preprocess(common + prefixes + ["--destdir", os.path.join(tmp, "label")])


def binarize_monolingual(raw_prefix: str, dest: str, srcdict: str, workers: int = 1) -> None:
    """Masked-LM data (``--task masked_lm``) from ``{raw_prefix}.train`` / ``.valid`` text files."""
    fairseq_preprocess(
        [
            "--only-source",
            "--workers",
            str(workers),
            "--srcdict",
            srcdict,
            "--trainpref",
            raw_prefix + ".train",
            "--validpref",
            raw_prefix + ".valid",
            "--destdir",
            dest,
        ]
    )


def binarize_seq2seq(raw: str, dest: str, workers: int = 1) -> None:
    """``translation``-task data with a joined dictionary, as BART's summarisation recipe."""
    fairseq_preprocess(
        [
            "--source-lang",
            "src",
            "--target-lang",
            "tgt",
            "--joined-dictionary",
            "--workers",
            str(workers),
            "--trainpref",
            os.path.join(raw, "train"),
            "--validpref",
            os.path.join(raw, "valid"),
            "--destdir",
            dest,
        ]
    )
