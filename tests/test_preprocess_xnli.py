"""preprocess/xnli.sh on XNLI-1.0-format fixtures and a tiny sentencepiece model trained here."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.test_preprocess_glue import GLUE_FILES, write_glue

XNLI_SH = os.path.join(REPO, "preprocess", "xnli.sh")
HEADER = ("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
          "sentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
          "sentence1_tokenized\tsentence2_tokenized\tmatch")
SENTENCES = {
    "en": "The cat sleeps.", "fr": "Le chat dort sur le canapé.", "es": "El gato duerme.", "de": "Die Katze schläft.",
    "el": "Η γάτα κοιμάται.", "bg": "Котката спи.", "ru": "Кошка спит.", "tr": "Kedi uyuyor.",
    "ar": "القط نائم.", "vi": "Con mèo đang ngủ.", "th": "แมวกำลังนอน", "zh": "猫在睡觉。",
    "hi": "बिल्ली सो रही है।", "sw": "Paka analala.", "ur": "بلی سو رہی ہے۔",
}


def xnli_row(lang, label, s1, s2):
    return "\t".join([lang, label, "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, "1", "1a", "fiction",
                      label, label, label, label, label, s1, s2, "True"])


def write_xnli(root, rows_by_kind=None):
    root.mkdir(parents=True, exist_ok=True)
    for kind, suffix in (("dev", "A"), ("test", "B")):
        rows = rows_by_kind[kind] if rows_by_kind else [
            xnli_row(lang, "entailment" if kind == "dev" else "neutral", f"{text} {suffix}", text) for lang, text in SENTENCES.items()]
        (root / f"xnli.{kind}.tsv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory):
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("spm")
    (root / "text.txt").write_text("\n".join(list(SENTENCES.values()) * 10), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(root / "text.txt"), model_prefix=str(root / "sentencepiece.bpe"),
                                   vocab_size=400, model_type="bpe", byte_fallback=True, hard_vocab_limit=False,
                                   normalization_rule_name="identity", minloglevel=2)
    processor = spm.SentencePieceProcessor(model_file=str(root / "sentencepiece.bpe.model"))
    pieces = [processor.id_to_piece(i) for i in range(3, processor.get_piece_size())]  # fairseq adds <unk> <s> </s>
    (root / "dict.txt").write_text("".join(f"{p} 1\n" for p in pieces), encoding="utf-8")
    return {"model": str(root / "sentencepiece.bpe.model"), "dict": str(root / "dict.txt"), "processor": processor}


def run_xnli(mnli, xnli, out, tiny_spm, *extra):
    return subprocess.run(["bash", XNLI_SH, str(mnli), str(xnli), str(out), "--sentencepiece-model", tiny_spm["model"],
                           "--dict", tiny_spm["dict"], *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, "PYTHON": sys.executable})


def decode(data, split, column, tiny_spm):
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(str(data), f"input{column}", "dict.txt"))
    ds = data_utils.load_indexed_dataset(os.path.join(str(data), f"input{column}", split), dictionary)
    return [tiny_spm["processor"].decode_pieces(dictionary.string(ds[i]).split()) for i in range(len(ds))]


def test_xnli_zero_shot_splits_per_language(tmp_path, tiny_spm):
    mnli = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")}) / "MNLI"
    xnli = write_xnli(tmp_path / "XNLI-1.0")
    proc = run_xnli(mnli, xnli, tmp_path / "out", tiny_spm, "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    assert decode(out, "train", 0, tiny_spm) == ['He said "go home.', "The cat sat."]
    assert decode(out, "valid", 1, tiny_spm) == ["The rights are nice."]
    for lang, text in SENTENCES.items():  # every language, both kinds, separately loadable, lossless
        assert decode(out, f"dev_{lang}", 0, tiny_spm) == [f"{text} A"]
        assert decode(out, f"test_{lang}", 1, tiny_spm) == [text]
        assert os.path.isfile(out / "label" / f"test_{lang}.bin")
    summary = json.load(open(out / "summary.json"))
    assert summary["splits"]["test_zh"]["labels"] == {"neutral": 1}
    assert "[XNLI] dev_ur: 1 examples" in proc.stderr
    # the splits load through fairseq's sentence_prediction task as training would
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

    task = SentencePredictionTask.setup_task(SentencePredictionConfig(
        data=str(out), num_classes=3, init_token=0, separator_token=2, seed=1, classification_head_name="h"))
    assert len(task.load_dataset("test_sw")) == 1


@pytest.mark.parametrize("case,message", [
    ("unknown language", "xnli.dev.tsv:3: language 'xx' is not one of XNLI's 15"),
    ("missing language", "xnli.dev.tsv: no rows for language 'ur'"),
    ("bad label", "xnli.dev.tsv:2: label 'yes' is not one of"),
])
def test_bad_xnli_rows_fail_with_file_and_line(tmp_path, tiny_spm, case, message):
    mnli = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")}) / "MNLI"
    rows = [xnli_row(lang, "entailment", text, text) for lang, text in SENTENCES.items()]
    if case == "unknown language":
        rows[1] = xnli_row("xx", "entailment", "a", "b")
    elif case == "missing language":
        rows = rows[:-1]
    else:
        rows[0] = xnli_row("en", "yes", "a", "b")
    xnli = write_xnli(tmp_path / "XNLI-1.0", {"dev": rows, "test": rows})
    proc = run_xnli(mnli, xnli, tmp_path / "out", tiny_spm)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "out").exists()
