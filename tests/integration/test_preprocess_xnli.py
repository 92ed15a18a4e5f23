"""preprocess/xnli.sh on XNLI-1.0-format fixtures and a tiny sentencepiece model trained here.

The shell script runs for real once (``test_xnli_zero_shot_splits_per_language``); every other test calls the ``main``
it ``exec``s, in this process (``tests/pipelines.py``)."""

import json
import os
import subprocess

import pytest

from tests.helpers import REPO, built_once, run_tool
from tests.integration.test_preprocess_glue import GLUE_FILES, data_digest, write_glue
from tests.pipelines import pipeline

XNLI_SH = os.path.join(REPO, "preprocess", "xnli.sh")
HEADER = (
    "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
    "sentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\t"
    "sentence1_tokenized\tsentence2_tokenized\tmatch"
)
SENTENCES = {
    "en": "The cat sleeps.",
    "fr": "Le chat dort sur le canapé.",
    "es": "El gato duerme.",
    "de": "Die Katze schläft.",
    "el": "Η γάτα κοιμάται.",
    "bg": "Котката спи.",
    "ru": "Кошка спит.",
    "tr": "Kedi uyuyor.",
    "ar": "القط نائم.",
    "vi": "Con mèo đang ngủ.",
    "th": "แมวกำลังนอน",
    "zh": "猫在睡觉。",
    "hi": "बिल्ली सो रही है।",
    "sw": "Paka analala.",
    "ur": "بلی سو رہی ہے۔",
}


def xnli_row(lang, label, s1, s2):
    return "\t".join(
        [
            lang,
            label,
            "( x )",
            "( y )",
            "(ROOT x)",
            "(ROOT y)",
            s1,
            s2,
            "1",
            "1a",
            "fiction",
            label,
            label,
            label,
            label,
            label,
            s1,
            s2,
            "True",
        ]
    )


def write_xnli(root, rows_by_kind=None):
    root.mkdir(parents=True, exist_ok=True)
    for kind, suffix in (("dev", "A"), ("test", "B")):
        rows = (
            rows_by_kind[kind]
            if rows_by_kind
            else [
                xnli_row(lang, "entailment" if kind == "dev" else "neutral", f"{text} {suffix}", text)
                for lang, text in SENTENCES.items()
            ]
        )
        (root / f"xnli.{kind}.tsv").write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root


def _train_tiny_spm(root):
    import sentencepiece as spm

    (root / "text.txt").write_text("\n".join(list(SENTENCES.values()) * 10), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(root / "text.txt"),
        model_prefix=str(root / "sentencepiece.bpe"),
        vocab_size=400,
        model_type="bpe",
        byte_fallback=True,
        hard_vocab_limit=False,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(root / "sentencepiece.bpe.model"))
    pieces = [processor.id_to_piece(i) for i in range(3, processor.get_piece_size())]  # fairseq adds <unk> <s> </s>
    (root / "dict.txt").write_text("".join(f"{p} 1\n" for p in pieces), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory):
    """A sentencepiece BPE model of XLM-R's kind trained on the 15 languages' sentences, and its fairseq dict.txt
    (trained once per test run: test_preprocess_outputs.py uses it too)."""
    import sentencepiece as spm

    root = built_once(tmp_path_factory, "tiny_spm", _train_tiny_spm)
    processor = spm.SentencePieceProcessor(model_file=str(root / "sentencepiece.bpe.model"))
    return {"model": str(root / "sentencepiece.bpe.model"), "dict": str(root / "dict.txt"), "processor": processor}


def spm_flags(tiny_spm):
    return ["--sentencepiece-model", tiny_spm["model"], "--dict", tiny_spm["dict"]]


def run_xnli(mnli, xnli, out, tiny_spm, *extra):
    """``preprocess/xnli.sh MNLI XNLI OUT --sentencepiece-model ... EXTRA...`` as its ``main``, in this process."""
    return pipeline("xnli", [mnli, xnli, out, *spm_flags(tiny_spm), *extra])


def decode(data, split, column, tiny_spm):
    from fairseq.data import Dictionary, data_utils

    dictionary = Dictionary.load(os.path.join(str(data), f"input{column}", "dict.txt"))
    ds = data_utils.load_indexed_dataset(os.path.join(str(data), f"input{column}", split), dictionary)
    return [tiny_spm["processor"].decode_pieces(dictionary.string(ds[i]).split()) for i in range(len(ds))]


def test_xnli_zero_shot_splits_per_language(tmp_path, tiny_spm):
    """``bash preprocess/xnli.sh ... --workers 2``, the script itself, end to end."""
    mnli = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")}) / "MNLI"
    xnli = write_xnli(tmp_path / "XNLI-1.0")
    out = tmp_path / "out"
    proc = run_tool(["bash", XNLI_SH, str(mnli), str(xnli), str(out), *spm_flags(tiny_spm), "--workers", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert decode(out, "train", 0, tiny_spm) == ['He said "go home.', "The cat sat.", "The new law passed."]
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

    task = SentencePredictionTask.setup_task(
        SentencePredictionConfig(
            data=str(out),
            num_classes=3,
            regression_target=False,
            init_token=0,
            separator_token=2,
            seed=1,
            classification_head_name="h",
        )
    )
    labels = task.label_dictionary
    for split, label in (("test_sw", "neutral"), ("dev_th", "entailment"), ("valid", "entailment")):
        dataset = task.load_dataset(split)
        assert len(dataset) == 1
        assert labels[int(dataset[0]["target"]) + labels.nspecial] == label  # not <unk>
    # one process makes the same binaries as two
    assert run_xnli(mnli, xnli, tmp_path / "one", tiny_spm, "--workers", "1").returncode == 0
    assert data_digest(tmp_path / "one") == data_digest(out)


BAD = {  # case -> (file, its new text or None to delete it, message)
    "unknown language": (
        "xnli.dev.tsv",
        lambda rows: rows[:1] + [xnli_row("xx", "entailment", "a", "b")] + rows[1:],
        "xnli.dev.tsv:3: language 'xx' is not one of XNLI's 15",
    ),
    "missing language": ("xnli.dev.tsv", lambda rows: rows[:-1], "xnli.dev.tsv: no rows for language 'ur'"),
    "bad label": (
        "xnli.dev.tsv",
        lambda rows: [xnli_row("en", "yes", "a", "b")] + rows[1:],
        "xnli.dev.tsv:2: label 'yes' is not one of",
    ),
    "missing file": ("xnli.test.tsv", None, "xnli.test.tsv (XNLI-1.0)"),
    "wrong header": ("xnli.test.tsv", lambda rows: rows, "xnli.test.tsv:1: header"),
    "column count": (
        "xnli.test.tsv",
        lambda rows: rows + ["en\tneutral\tonly three"],
        "xnli.test.tsv:17: 3 tab-separated fields, expected 19",
    ),
    "empty line": ("xnli.test.tsv", lambda rows: rows[:3] + [""] + rows[3:], "xnli.test.tsv:5: empty line"),
    "empty sentence": (
        "xnli.dev.tsv",
        lambda rows: rows[:4] + [xnli_row("de", "neutral", "a", " ")] + rows[4:],
        "xnli.dev.tsv:6: empty input text",
    ),
    "bad dictionary (fails while writing)": ("dict.txt", "dict", "Incorrect dictionary format"),
    "label unseen in MNLI train": (
        "MNLI/train.tsv",
        "train",
        "dev_matched.tsv:2: label 'entailment' does not occur in",
    ),
}


@pytest.fixture(scope="module")
def good_xnli(tmp_path_factory, tiny_spm):
    """Inputs and the complete dataset made from them, once; each bad-input test works on a copy."""
    root = tmp_path_factory.mktemp("good_xnli")
    write_glue(root / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")})
    rows = [xnli_row(lang, "entailment", text, text) for lang, text in SENTENCES.items()]
    write_xnli(root / "XNLI-1.0", {"dev": rows, "test": rows})
    assert run_xnli(root / "glue" / "MNLI", root / "XNLI-1.0", root / "out", tiny_spm).returncode == 0
    return root, rows


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_with_file_and_line_and_leaves_the_earlier_output_alone(tmp_path, tiny_spm, good_xnli, case):
    import shutil

    from tests.helpers import tree_digest
    from tests.integration.test_preprocess_glue import MNLI_HEAD, mnli_row

    name, change, message = BAD[case]
    shutil.copytree(good_xnli[0], tmp_path, dirs_exist_ok=True)
    rows = good_xnli[1]
    mnli, xnli, out = tmp_path / "glue" / "MNLI", tmp_path / "XNLI-1.0", tmp_path / "out"
    before = tree_digest(out)
    spm = tiny_spm
    if change == "dict":  # a malformed dict.txt: fairseq-preprocess fails after the output was begun
        (tmp_path / "dict.txt").write_text("onlyoneword\n")
        spm = dict(tiny_spm, dict=str(tmp_path / "dict.txt"))
    elif change is None:
        (xnli / name).unlink()
    elif change == "train":  # MNLI training data without any entailment example
        (mnli / "train.tsv").write_text(
            MNLI_HEAD + "\tlabel1\tgold_label\n" + mnli_row(0, "A.", "B.", ["neutral"] * 2) + "\n"
        )
    elif case == "wrong header":
        (xnli / name).write_text(
            HEADER.replace("gold_label", "label") + "\n" + "\n".join(rows) + "\n", encoding="utf-8"
        )
    else:
        (xnli / name).write_text(HEADER + "\n" + "\n".join(change(rows)) + "\n", encoding="utf-8")
    proc = run_xnli(mnli, xnli, out, spm)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert tree_digest(out) == before  # the earlier complete dataset is untouched
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.tmp")] == []  # no half-written folder


def test_rerun_is_idempotent_and_usage_is_printed(tmp_path, tiny_spm):
    mnli = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("MNLI/")}) / "MNLI"
    xnli = write_xnli(tmp_path / "XNLI-1.0")
    assert run_xnli(mnli, xnli, tmp_path / "out", tiny_spm).returncode == 0
    first = data_digest(tmp_path / "out")
    assert run_xnli(mnli, xnli, tmp_path / "out", tiny_spm).returncode == 0  # with two workers: the test above
    assert data_digest(tmp_path / "out") == first
    usage = subprocess.run(["bash", XNLI_SH], stderr=subprocess.PIPE, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: preprocess/xnli.sh")
