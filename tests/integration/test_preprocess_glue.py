"""preprocess/glue.sh on fixtures in the official GLUE formats, with the tiny GPT-2 BPE and dict of conftest.py.

The shell script runs for real once (``glue_all``: every task, two workers); every other test calls the ``main`` it
``exec``s, in this process (``tests/pipelines.py``)."""

import hashlib
import json
import os
import subprocess

import pytest

from rxf_repro.outputs import MARKER, owner
from tests.helpers import REPO, bpe_flags, built_once, run_tool, tree_digest
from tests.pipelines import pipeline

GLUE_SH = os.path.join(REPO, "preprocess", "glue.sh")
MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2"
)
STSB_HEAD = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"


def mnli_row(i, s1, s2, labels):
    return f"{i}\t1\t1a\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{s1}\t{s2}\t" + "\t".join(labels)


GLUE_FILES = {
    "CoLA/train.tsv": "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\ngj04\t0\t*\tThe more we study verbs, the crazier they get to.\n",
    "CoLA/dev.tsv": "gj04\t1\t\tThey drank the pub dry.\n",
    "CoLA/test.tsv": "index\tsentence\n0\tBill whistled past the house.\n",
    "SST-2/train.tsv": "sentence\tlabel\nhide new secretions from the parental units \t0\ncontains no wit , only labored gags \t0\nthat loves its characters \t1\n",
    "SST-2/dev.tsv": "sentence\tlabel\nit 's a charming and often affecting journey . \t1\n",
    "SST-2/test.tsv": "index\tsentence\n0\tuneasy mishmash of styles and genres .\n",
    "MRPC/train.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t702876\t702977\tAmrozi accused his brother.\tReferring to him, Amrozi accused his brother.\n0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa bought Dominick's in 1995.\n",
    "MRPC/dev.tsv": "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1355540\t1355592\tHe said the foodservice pie business fit.\tThe foodservice pie business fit.\n",
    "MRPC/test.tsv": "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n0\t1089874\t1089925\tPCCW's chief will be away.\tThe chief will be away.\n",
    "QQP/train.tsv": 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n133273\t213221\t213222\tHow is the "Life is Beautiful" film?\tIs "Life is Beautiful worth it?\t0\n402555\t536040\t536041\tHow do I learn Python?\tWhat is the best way to learn Python?\t1\n',
    "QQP/dev.tsv": 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy is "x" 5"?\tWhy is x five?\t1\n',
    "QQP/test.tsv": "id\tquestion1\tquestion2\n0\tWhy do rockets look white?\tWhy are rockets white?\n",
    "MNLI/train.tsv": MNLI_HEAD
    + "\tlabel1\tgold_label\n"
    + mnli_row(0, 'He said "go home.', "He spoke.", ["neutral", "neutral"])
    + "\n"
    + mnli_row(1, "The cat sat.", "A cat stood.", ["contradiction", "contradiction"])
    + "\n"
    + mnli_row(2, "The new law passed.", "A law passed.", ["entailment", "entailment"])
    + "\n",
    "MNLI/dev_matched.tsv": MNLI_HEAD
    + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
    + mnli_row(0, "The new rights are nice.", "The rights are nice.", ["entailment"] * 6)
    + "\n",
    "MNLI/dev_mismatched.tsv": MNLI_HEAD
    + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
    + mnli_row(0, "Your gift is appreciated.", "Hundreds gave.", ["neutral"] * 6)
    + "\n",
    "MNLI/test_matched.tsv": MNLI_HEAD
    + "\n"
    + mnli_row(0, "Hierbas, ans seco.", "Hierbas is a name.", []).rstrip("\t")
    + "\n",
    "MNLI/test_mismatched.tsv": MNLI_HEAD + "\n" + mnli_row(0, "What a day.", "It was a day.", []).rstrip("\t") + "\n",
    "QNLI/train.tsv": "index\tquestion\tsentence\tlabel\n0\tWhen did it start?\tIt started in 1990.\tentailment\n1\tWho won?\tNobody knows the date.\tnot_entailment\n",
    "QNLI/dev.tsv": "index\tquestion\tsentence\tlabel\n0\tWhat is it?\tIt is a cat.\tentailment\n",
    "QNLI/test.tsv": "index\tquestion\tsentence\n0\tWhere?\tHere.\n",
    "RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\tNo weapons were found.\tWeapons were found.\tnot_entailment\n1\tA man runs.\tA person runs.\tentailment\n",
    "RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tDana reached port.\tDana arrived.\tentailment\n",
    "RTE/test.tsv": "index\tsentence1\tsentence2\n0\tMaude lives here.\tMaude is here.\n",
    "STS-B/train.tsv": STSB_HEAD
    + "\tscore\n0\tmain-captions\tMSRvid\t2012test\t1\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n1\tmain-captions\tMSRvid\t2012test\t4\tnone\tnone\tA man plays a flute.\tA man plays a guitar.\t1.600\n",
    "STS-B/dev.tsv": STSB_HEAD
    + "\tscore\n0\tmain-captions\tMSRvid\t2012test\t1\tnone\tnone\tA man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t4.750\n",
    "STS-B/test.tsv": STSB_HEAD
    + "\n0\tmain-captions\tMSRvid\t2012test\t24\tnone\tnone\tA girl is styling her hair.\tA girl is brushing her hair.\n",
}


def data_digest(root) -> str:
    """``tree_digest`` without the output marker, whose creation time differs between two identical runs."""
    digest = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name not in ("preprocess.log", MARKER):
                digest.update(os.path.relpath(os.path.join(dirpath, name), root).encode())
                digest.update(open(os.path.join(dirpath, name), "rb").read())
    return digest.hexdigest()


def write_glue(root, files=GLUE_FILES):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_glue(glue_dir, task, out, tiny_bpe, *extra):
    """``preprocess/glue.sh GLUE_DIR TASK OUT --encoder-json ... EXTRA...`` as its ``main``, in this process."""
    return pipeline("glue", [glue_dir, task, out, *bpe_flags(tiny_bpe), *extra])


@pytest.fixture(scope="session")
def glue_all(tmp_path_factory, tiny_bpe):
    """``bash preprocess/glue.sh glue_data ALL bin ... --workers 2``: the script itself, end to end, once per test run
    (shared by the xdist workers and by test_preprocess_outputs.py); ``(bin, its stderr)``."""

    def build(root):
        glue = write_glue(root / "glue_data")
        proc = run_tool(["bash", GLUE_SH, str(glue), "ALL", str(root / "bin"), *bpe_flags(tiny_bpe), "--workers", "2"])
        assert proc.returncode == 0, proc.stderr[-4000:]
        (root / "stderr.txt").write_text(proc.stderr)

    root = built_once(tmp_path_factory, "glue_all", build)
    return root / "bin", (root / "stderr.txt").read_text()


def decode_split(data, tiny_bpe, split, column, num_classes, regression=False):
    """Load the binaries through fairseq's own sentence_prediction task and decode them to text."""
    from fairseq.data import data_utils
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder
    from fairseq.tasks.sentence_prediction import SentencePredictionConfig, SentencePredictionTask

    cfg = SentencePredictionConfig(
        data=str(data),
        num_classes=num_classes,
        regression_target=regression,
        init_token=0,
        separator_token=2,
        seed=1,
        classification_head_name="sentence_classification_head",
    )
    task = SentencePredictionTask.setup_task(cfg)
    dictionary = task.source_dictionary
    bpe = get_encoder(tiny_bpe["encoder"], tiny_bpe["vocab"])
    ds = data_utils.load_indexed_dataset(os.path.join(str(data), f"input{column}", split), dictionary)
    texts = [bpe.decode([int(t) for t in dictionary.string(ds[i]).split()]) for i in range(len(ds))]
    if not split.startswith("test"):
        return texts, task.load_dataset(split), task  # the whole split through fairseq's task, labels included
    return texts, None, task


@pytest.mark.parametrize(
    "task,num_classes,first_valid",
    [
        ("CoLA", 2, "They drank the pub dry."),
        ("SST-2", 2, "it 's a charming and often affecting journey ."),
        ("MRPC", 2, "He said the foodservice pie business fit."),
        ("QQP", 2, 'Why is "x" 5"?'),
        ("MNLI", 3, "The new rights are nice."),
        ("QNLI", 2, "What is it?"),
        ("RTE", 2, "Dana reached port."),
        ("STS-B", 1, "A man with a hard hat is dancing."),
    ],
)
def test_every_glue_task_round_trips_through_fairseq(glue_all, tiny_bpe, task, num_classes, first_valid):
    out, _ = glue_all
    data = out / f"{task}-bin"
    texts, dataset, fairseq_task = decode_split(data, tiny_bpe, "valid", 0, num_classes, regression=task == "STS-B")
    assert texts == [first_valid]
    assert len(dataset) == 1
    target = dataset[0]["target"]
    if task == "STS-B":
        assert [float(v) for v in target] == pytest.approx([0.95])  # 4.750 / 5
    else:  # the label decodes to the one in dev.tsv (not <unk>: the label dictionary comes from train.tsv)
        value = fairseq_task.label_dictionary[int(target) + fairseq_task.label_dictionary.nspecial]
        assert value == {"MNLI": "entailment", "QNLI": "entailment", "RTE": "entailment"}.get(task, "1")
    train_texts, *_ = decode_split(data, tiny_bpe, "train", 0, num_classes, regression=task == "STS-B")
    assert len(train_texts) == sum(1 for _ in open(out.parent / "glue_data" / task / "train.tsv")) - (task != "CoLA")
    summary = json.load(open(data / "summary.json"))
    assert summary["splits"]["valid"]["examples"] == 1
    if task == "STS-B":
        assert (data / "label" / "train.label").read_text() == "1\n0.32\n"  # scores / 5, as fairseq's recipe
    else:
        assert os.path.isfile(data / "label" / "train.bin") and os.path.isfile(data / "label" / "dict.txt")
    if task == "MNLI":  # matched -> valid, mismatched -> valid1, tests -> test / test1
        assert decode_split(data, tiny_bpe, "valid1", 0, 3)[0] == ["Your gift is appreciated."]
        assert decode_split(data, tiny_bpe, "test1", 1, 3)[0] == ["It was a day."]
        assert summary["splits"]["train"]["labels"] == {"neutral": 1, "contradiction": 1, "entailment": 1}
    if task == "MRPC":  # quality first, then the two strings
        assert decode_split(data, tiny_bpe, "train", 1, 2)[0][1] == "Yucaipa bought Dominick's in 1995."
    if task == "QQP":  # bare, unbalanced quotes are text, not CSV quoting
        assert decode_split(data, tiny_bpe, "train", 1, 2)[0][0] == 'Is "Life is Beautiful worth it?'


def test_progress_and_summary_on_stderr(glue_all):
    _, stderr = glue_all
    assert "[MNLI] train: 3 examples, labels {'neutral': 1, 'contradiction': 1, 'entailment': 1}" in stderr
    assert "[QQP] done:" in stderr


BAD = {
    "wrong header": ("SST-2/train.tsv", "text\tlabel\nfine\t1\n", "SST-2/train.tsv:1: header ['text', 'label']"),
    "column count": (
        "RTE/dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tOnly one sentence.\tentailment\n",
        "RTE/dev.tsv:2: 3 tab-separated fields, expected 4",
    ),
    "label set": (
        "RTE/train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n1\tC.\tD.\tmaybe\n",
        "RTE/train.tsv:3: label 'maybe' is not one of ['entailment', 'not_entailment']",
    ),
    "empty text": (
        "RTE/train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\t \tB.\tentailment\n",
        "RTE/train.tsv:2: empty input text",
    ),
    "missing file": ("RTE/dev.tsv", None, "missing dev.tsv"),
    "empty line": (
        "RTE/dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tentailment\n\n1\tC.\tD.\tentailment\n",
        "RTE/dev.tsv:3: empty line",
    ),
    "not UTF-8": ("SST-2/dev.tsv", b"sentence\tlabel\nfine\t1\ncaf\xe9 au lait\t1\n", "SST-2/dev.tsv:3: not UTF-8"),
    "label unseen in train": (
        "RTE/train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tnot_entailment\n",
        "RTE/dev.tsv:2: label 'entailment' does not occur in",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_naming_file_and_line_and_leaves_output_alone(tmp_path, tiny_bpe, case):
    name, text, message = BAD[case]
    files = {k: v for k, v in GLUE_FILES.items() if k.startswith("RTE/") or k.startswith("SST-2/")}
    glue = write_glue(tmp_path / "glue", files)
    task = name.split("/")[0]
    out = tmp_path / "out"
    assert run_glue(glue, task, out, tiny_bpe).returncode == 0
    before = tree_digest(out)
    if text is None:
        (glue / name).unlink()
    elif isinstance(text, bytes):
        (glue / name).write_bytes(text)
    else:
        (glue / name).write_text(text)
    proc = run_glue(glue, task, out, tiny_bpe)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert tree_digest(out) == before  # the earlier complete dataset is untouched
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.tmp")] == []  # no half-written folder


def test_stsb_score_out_of_range_and_skip_malformed(tmp_path, tiny_bpe):
    files = {k: v for k, v in GLUE_FILES.items() if k.startswith("STS-B/") or k.startswith("QQP/")}
    glue = write_glue(tmp_path / "glue", files)
    (glue / "STS-B/dev.tsv").write_text(GLUE_FILES["STS-B/dev.tsv"].replace("4.750", "7"))
    proc = run_glue(glue, "STS-B", tmp_path / "sts", tiny_bpe)
    assert proc.returncode == 1 and "STS-B/dev.tsv:2: score '7' is not a number in [0, 5]" in proc.stderr
    assert not (tmp_path / "sts").exists()
    (glue / "QQP/train.tsv").write_text(GLUE_FILES["QQP/train.tsv"] + "9\t9\tdangling question\n")
    assert run_glue(glue, "QQP", tmp_path / "qqp", tiny_bpe).returncode == 1
    proc = run_glue(glue, "QQP", tmp_path / "qqp", tiny_bpe, "--skip-malformed")
    assert proc.returncode == 0 and "skipped 1 malformed rows" in proc.stderr
    assert json.load(open(tmp_path / "qqp" / "summary.json"))["splits"]["train"]["examples"] == 2


def test_rerun_is_idempotent_and_usage_is_printed(tmp_path, tiny_bpe):
    glue = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k.startswith("CoLA/")})
    assert run_glue(glue, "CoLA", tmp_path / "a", tiny_bpe).returncode == 0
    first = data_digest(tmp_path / "a")
    assert run_glue(glue, "CoLA", tmp_path / "a", tiny_bpe, "--workers", "2").returncode == 0
    assert data_digest(tmp_path / "a") == first
    assert owner(tmp_path / "a")["tool"] == "preprocess/glue.sh"
    usage = subprocess.run(["bash", GLUE_SH], stderr=subprocess.PIPE, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: preprocess/glue.sh")
    usage = subprocess.run(["bash", GLUE_SH, "--help"], stdout=subprocess.PIPE, text=True)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: preprocess/glue.sh")


def test_an_output_folder_that_holds_the_inputs_is_refused(tmp_path, tiny_bpe):
    """The inputs glue.sh names to ``rxf_repro.outputs`` (the rule: test_outputs.py's
    ``test_links_files_and_inputs_are_refused_before_any_work``): the GLUE folder, a task's folder, a folder above."""
    glue = write_glue(tmp_path / "glue", {k: v for k, v in GLUE_FILES.items() if k[:4] in ("CoLA", "RTE/")})
    before = tree_digest(glue)
    for out, message in (
        (glue, "is or contains the input"),
        (glue / "CoLA", "is or contains the input"),
        (tmp_path, "is or contains the input"),
    ):
        proc = run_glue(glue, "CoLA", out, tiny_bpe)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr[-2000:]
    assert tree_digest(glue) == before


def test_all_validates_every_task_before_writing_any(tmp_path, tiny_bpe):
    glue = write_glue(tmp_path / "glue")
    (glue / "STS-B/dev.tsv").write_text(GLUE_FILES["STS-B/dev.tsv"].replace("4.750", "7"))  # STS-B comes last
    proc = run_glue(glue, "ALL", tmp_path / "bin", tiny_bpe)
    assert proc.returncode == 1 and "STS-B/dev.tsv:2: score '7'" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "bin").exists() and "BPE-encoding" not in proc.stderr
