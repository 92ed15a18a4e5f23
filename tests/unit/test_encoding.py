"""The pipelines' encoders (rxf_repro/data/common.py): GPT-2 BPE in the tokenizers library gives exactly the ids of
fairseq's own GPT-2 encoder, on real text, for the toy BPE of the tests and a larger one trained here."""

import glob
import json
import os

import pytest

from rxf_repro.cli import UserError
from rxf_repro.data import common
from tests.helpers import REPO

TRICKY = [
    "don't I'll we've they're she'd it's you'm 'twas",
    "  multiple   spaces\tand\ttabs   at the end   ",
    "digits 12345 3.14159 1,000,000 2e-5 0x1F 007",
    "emoji 👍🏽 🤷‍♀️ 🇫🇷 ✨ and symbols ©®™ € ½ → ≤ ∑",
    "accents: café naïve Ångström e\u0301 Łódź Straße",
    "scripts: 東京 漢字かなカナ 한국어 Ελληνικά русский عربي עברית हिन्दी ไทย",
    "odd spaces: a\u00a0b\u2009c\u3000d\u200be \u2028 f\u0085g",
    "<|endoftext|> <s> </s> [CLS] ##ing",
    "punctuation!!! ...??? (a) [b] {c} \"quoted\" 'single' — – -",
    "",
]


def corpus():
    """Real text: the README, the docs, and the lines above."""
    lines = []
    for path in [os.path.join(REPO, "README.md"), *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]:
        with open(path, encoding="utf-8") as f:
            lines += f.read().split("\n")
    return lines + TRICKY


@pytest.fixture(scope="module")
def trained_bpe(tmp_path_factory):
    """A byte-level BPE of 3,000 symbols trained on the corpus, written as GPT-2's encoder.json and vocab.bpe."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    root = tmp_path_factory.mktemp("bpe")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=3000, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(corpus(), trainer)
    tokenizer.model.save(str(root))
    os.rename(root / "vocab.json", root / "encoder.json")
    os.rename(root / "merges.txt", root / "vocab.bpe")
    assert len(json.loads((root / "encoder.json").read_text())) > 2000
    return {"encoder": str(root / "encoder.json"), "vocab": str(root / "vocab.bpe")}


@pytest.mark.parametrize("bpe", ["tiny_bpe", "trained_bpe"])
def test_gpt2_bpe_gives_fairseqs_ids(request, bpe):
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

    files = request.getfixturevalue(bpe)
    lines = [line.strip() for line in corpus()]
    assert len(lines) > 1000
    reference = get_encoder(files["encoder"], files["vocab"])
    expected = [" ".join(map(str, reference.encode(line))) for line in lines]
    encoded = common.encode_lines(common.gpt2_bpe(files["encoder"], files["vocab"]), lines, 2, "test")
    differ = [(line, want, got) for line, want, got in zip(lines, expected, encoded) if want != got]
    assert len(encoded) == len(lines) and not differ, differ[:3]


def test_encode_lines_keeps_the_order_in_threads():
    reverse = common.TextEncoder("reverse", (), lambda lines: [line[::-1] for line in lines])
    lines = [f" line {i} " for i in range(5000)]
    assert common.encode_lines(reverse, lines, 3, "test") == [f"line {i}"[::-1] for i in range(5000)]


def test_an_encoder_error_names_the_lines_of_its_batch():
    def encode(lines):
        if "line 2500" in lines:
            raise ValueError("cannot encode this")
        return lines

    lines = [f"line {i}" for i in range(5000)]  # 2 workers: batches of 5000 // 16 = 312 lines
    with pytest.raises(UserError, match=r"^test: lines 2497-2808: ValueError\('cannot encode this'\)$"):
        common.encode_lines(common.TextEncoder("failing", (), encode), lines, 2, "test")


def test_fairseq_preprocess_refusing_its_arguments_is_one_line(capsys):
    with pytest.raises(UserError, match="fairseq-preprocess --no-such-flag: refused its arguments"):
        common.fairseq_preprocess(["--no-such-flag"])
