"""preprocess/summarization.sh on fixtures in the public formats of CNN/DailyMail (BART recipe), Gigaword (org_data,
sumdata) and Reddit TIFU (Kim et al.'s JSON lines), with the tiny GPT-2 BPE of conftest.py.

The shell script runs for real once (CNN/DailyMail with two workers, in ``built``); every other run calls the ``main``
it ``exec``s, in this process (``tests/pipelines.py``)."""

import hashlib
import json
import os
import subprocess

import pytest

from rxf_repro.data import summarization
from rxf_repro.outputs import MARKER, output_folder
from tests.helpers import REPO, SUMMARIZATION_TRANSLATION, benchmark_module, bpe_flags, built_once, run_tool
from tests.integration.test_preprocess_glue import data_digest
from tests.pipelines import pipeline

SUMMARIZATION_SH = os.path.join(REPO, "preprocess", "summarization.sh")


LONG_ARTICLE = " ".join(f"word{i % 97} ({i})" for i in range(6000))  # ~60 KB on one line
CNN_DM = {  # as the scripts of the BART recipe write them: untokenised, cased, one example per line
    "train.source": [
        '(CNN) -- The "Tour de France" starts on Saturday, organisers said. "It\'s the best," said one rider.',
        "Zürich's café owners — «très content» — welcomed 5 000 visitors; 東京 and São Paulo too 🚲.",
        LONG_ARTICLE,
    ],
    "train.target": [
        'The "Tour de France" starts Saturday . Riders say it\'s "the best"',
        "Zürich cafés welcomed 5 000 visitors 🚲 .",
        "A very long article . It goes on .",
    ],
    "val.source": ["By . Daily Mail Reporter . PUBLISHED: 12:01 EST, 1 May 2013 . A dog 'saved' its owner."],
    "val.target": ["Dog saved its owner ."],
    "test.source": ["Tabs\tand  double  spaces stay as they are.", "Second test article."],
    "test.target": ["Whitespace kept .", "Second summary ."],
}
GIGAWORD = {  # Rush et al.'s text: lower-cased, tokenised, digits as #, UNK (and <unk> in train/dev)
    "train.src.txt": [
        "australia 's current account deficit shrunk by a record #.## billion dollars -lrb- #.## "
        "billion us -rrb- in the june quarter due to soaring commodity prices , figures released monday "
        "showed .",
        "at least two people were killed in a suspected bomb attack on a passenger bus in "
        "the strife-torn southern philippines on monday , the military said .",
    ],
    "train.tgt.txt": [
        "australian current account deficit narrows sharply",
        "at least two dead in southern philippines blast",
    ],
    "dev.src.txt": ["the <unk> of the UNK said `` it is over '' on tuesday ."],
    "dev.tgt.txt": ["<unk> says it is over"],
    "test.src.txt": ["japan 's nec corp. and UNK computer corp. of the united states said wednesday ."],
    "test.tgt.txt": ["nec UNK in computer sales tie-up"],
}
SUMDATA = {  # harvardnlp's sumdata layout of the same data
    "train/train.article.txt": GIGAWORD["train.src.txt"],
    "train/train.title.txt": GIGAWORD["train.tgt.txt"],
    "train/valid.article.filter.txt": GIGAWORD["dev.src.txt"],
    "train/valid.title.filter.txt": GIGAWORD["dev.tgt.txt"],
    "Giga/input.txt": GIGAWORD["test.src.txt"],
    "Giga/task1_ref0.txt": GIGAWORD["test.tgt.txt"],
}


tifu_post = benchmark_module("preprocess").tifu_post  # one line of Kim et al.'s JSON, every field of the release


TIFU_POSTS = [
    tifu_post(
        "1ghd5r", 'So this happened today.\n\nI told my boss "I quit" — he laughed. 😅', "quit job, boss laughed"
    ),
    tifu_post("1ghd3r", "No summary in this one.", None),  # the long config keeps posts with a tldr only
    tifu_post("1ghd4r", "Müller's   dog\tate my\r\nhomework “again”.", " dog ate homework  "),
    tifu_post("2abc9x", "   ", "a tldr without a story"),  # empty document: left out, as TFDS
    tifu_post("3xyz1q", "Validation post text.", "validation tldr"),
    tifu_post("4test0", "Test post text.", "test tldr"),
    tifu_post("5outsd", "In no split.", "not in the split file"),
]
TIFU_SPLITS = {"train": ["1ghd5r", "1ghd4r", "gone01"], "validation": ["3xyz1q"], "test": ["4test0"]}


def write_lines(root, files, newline="\n"):
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    return root


def write_tifu(root, posts=TIFU_POSTS, splits=TIFU_SPLITS):
    root.mkdir(parents=True, exist_ok=True)
    # Python-dumped JSON lines; one post with raw UTF-8 instead of \\u escapes, as both occur in the wild
    lines = [json.dumps(p, ensure_ascii=i != 2) for i, p in enumerate(posts)]
    (root / summarization.TIFU_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    if splits is not None:
        (root / summarization.TIFU_SPLITS_FILE).write_text(json.dumps(splits))
    return root


def run_sh(dataset, raw, out, tiny_bpe, *extra):
    return run_tool(["bash", SUMMARIZATION_SH, dataset, str(raw), str(out), *bpe_flags(tiny_bpe), *extra])


def run_main(dataset, raw, out, tiny_bpe, *extra, dictionary=None):
    """``preprocess/summarization.sh DATASET RAW OUT --encoder-json ... EXTRA...`` as its ``main``, in this process."""
    return pipeline("summarization", [dataset, raw, out, *bpe_flags(tiny_bpe, dictionary), *extra])


def decode(data, split, tiny_bpe):
    """(sources, targets) of a split, loaded through fairseq's translation task as fairseq-train loads BART's
    summarisation data, and decoded back to text (dictionary symbols -> GPT-2 BPE ids -> text)."""
    from fairseq import options, tasks
    from fairseq.data.encoders.gpt2_bpe_utils import get_encoder
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    args = options.parse_args_and_arch(
        options.get_training_parser(), [str(data), *SUMMARIZATION_TRANSLATION, "--arch", "bart_base"]
    )
    task = tasks.setup_task(convert_namespace_to_omegaconf(args).task)
    task.load_dataset(split)
    dataset = task.dataset(split)
    bpe = get_encoder(tiny_bpe["encoder"], tiny_bpe["vocab"])

    def text(tokens, dictionary):
        return bpe.decode([int(t) for t in dictionary.string(tokens).split()])

    return (
        [text(dataset.src[i], task.source_dictionary) for i in range(len(dataset))],
        [text(dataset.tgt[i], task.target_dictionary) for i in range(len(dataset))],
    )


DATASETS = ("cnn_dm", "gigaword", "reddit_tifu")


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_bpe):
    """Each dataset's binaries and the run's stderr, built once per test run: CNN/DailyMail through the .sh entry
    point (the script itself, end to end, two workers), the others through its ``main``."""

    def build(root):
        runs = {
            "cnn_dm": (write_lines(root / "cnn_dm", CNN_DM), ["--workers", "2"]),
            "gigaword": (write_lines(root / "gigaword" / "org_data", GIGAWORD).parent, []),
            "reddit_tifu": (write_tifu(root / "reddit_tifu"), []),
        }
        for dataset, (raw, extra) in runs.items():
            run = run_sh if dataset == "cnn_dm" else run_main
            proc = run(dataset, raw, root / f"{dataset}-bin", tiny_bpe, *extra)
            assert proc.returncode == 0, proc.stderr[-4000:]
            (root / f"{dataset}.stderr").write_text(proc.stderr, encoding="utf-8")

    root = built_once(tmp_path_factory, "summarization", build)
    return {d: (root / f"{d}-bin", (root / f"{d}.stderr").read_text(encoding="utf-8")) for d in DATASETS}


def test_cnn_dm_round_trips_through_fairseq_translation_task(built, tiny_bpe):
    out, stderr = built["cnn_dm"]
    for split, stem in (("train", "train"), ("valid", "val"), ("test", "test")):
        sources, targets = decode(out, split, tiny_bpe)
        assert sources == CNN_DM[f"{stem}.source"] and targets == CNN_DM[f"{stem}.target"]
        assert (out / "raw" / f"{split}.source").read_text(encoding="utf-8").splitlines() == CNN_DM[f"{stem}.source"]
    for name in ("dict.source.txt", "dict.target.txt"):  # BART's dict for both sides, as --srcdict/--tgtdict
        assert (out / name).read_text() == open(tiny_bpe["dict"]).read()
    summary = json.load(open(out / "summary.json"))
    assert summary["layout"] == "BART recipe"
    assert summary["splits"]["valid"]["files"] == ["val.source", "val.target"]
    assert summary["splits"]["train"]["examples"] == 3 and summary["splits"]["test"]["examples"] == 2
    assert summary["splits"]["train"]["source_bpe_tokens"] > len(LONG_ARTICLE.split())
    assert "[cnn_dm] train: 3 examples, BPE tokens source" in stderr and "[cnn_dm] done:" in stderr
    assert not (out / ".bpe").exists()


def test_gigaword_keeps_its_text_as_given(built, tiny_bpe):
    out, _ = built["gigaword"]
    assert decode(out, "train", tiny_bpe) == (GIGAWORD["train.src.txt"], GIGAWORD["train.tgt.txt"])
    assert decode(out, "valid", tiny_bpe) == (GIGAWORD["dev.src.txt"], GIGAWORD["dev.tgt.txt"])  # <unk> kept
    assert decode(out, "test", tiny_bpe) == (GIGAWORD["test.src.txt"], GIGAWORD["test.tgt.txt"])
    summary = json.load(open(out / "summary.json"))
    assert summary["layout"] == "org_data" and summary["splits"]["valid"]["files"] == [
        "org_data/dev.src.txt",
        "org_data/dev.tgt.txt",
    ]


def test_gigaword_sumdata_layout_gives_the_same_binaries(built, tiny_bpe, tmp_path):
    raw = write_lines(tmp_path / "sumdata", SUMDATA, newline="\r\n")  # and CRLF line endings change nothing
    assert run_main("gigaword", raw, tmp_path / "out", tiny_bpe).returncode == 0
    for split in ("train", "valid", "test"):
        for lang in ("source", "target"):
            name = f"{split}.source-target.{lang}.bin"
            assert (tmp_path / "out" / name).read_bytes() == (built["gigaword"][0] / name).read_bytes()
    assert json.load(open(tmp_path / "out" / "summary.json"))["layout"] == "sumdata"


def test_reddit_tifu_long_config_and_pegasus_split(built, tiny_bpe):
    out, stderr = built["reddit_tifu"]
    assert decode(out, "train", tiny_bpe) == (
        ['So this happened today. I told my boss "I quit" — he laughed. 😅', "Müller's dog ate my homework “again”."],
        ["quit job, boss laughed", "dog ate homework"],
    )
    assert decode(out, "valid", tiny_bpe) == (["Validation post text."], ["validation tldr"])
    assert decode(out, "test", tiny_bpe) == (["Test post text."], ["test tldr"])
    splits = json.load(open(out / "splits.json"))
    assert splits == {"convention": "pegasus", "train": ["1ghd5r", "1ghd4r"], "valid": ["3xyz1q"], "test": ["4test0"]}
    summary = json.load(open(out / "summary.json"))
    assert summary["posts_left_out"] == {"no_tldr": 1, "empty_document": 1, "not_in_split": 1}
    assert summary["split_ids_not_in_data"] == 1
    assert "1 ids of reddit_tifu_long_splits.json are not posts" in stderr


def test_reddit_tifu_hash_split_is_deterministic_and_documented(tmp_path, tiny_bpe):
    posts = [tifu_post(f"p{i:03d}", f"story number {i}", f"summary {i}") for i in range(40)]
    raw = write_tifu(tmp_path / "raw", posts, splits=None)
    assert run_main("reddit_tifu", raw, tmp_path / "a", tiny_bpe, "--tifu-split", "hash").returncode == 0
    splits = json.load(open(tmp_path / "a" / "splits.json"))
    expected = {"train": [], "valid": [], "test": []}
    for post in posts:  # first 8 bytes of SHA-256 of the id, modulo 10: 0-7 train, 8 valid, 9 test
        bucket = int(hashlib.sha256(post["id"].encode()).hexdigest()[:16], 16) % 10
        expected["train" if bucket < 8 else "valid" if bucket == 8 else "test"].append(post["id"])
    assert splits == {"convention": "hash", **expected} and all(expected.values())
    assert decode(tmp_path / "a", "valid", tiny_bpe)[0] == [f"story number {int(i[1:])}" for i in expected["valid"]]
    proc = run_main("reddit_tifu", raw, tmp_path / "b", tiny_bpe, "--tifu-split", "hash", "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert data_digest(tmp_path / "a") == data_digest(tmp_path / "b")


def test_skip_empty_leaves_out_and_counts(tmp_path, tiny_bpe):
    files = dict(CNN_DM, **{"train.target": ["one", "", "three"]})
    raw = write_lines(tmp_path / "raw", files)
    assert run_main("cnn_dm", raw, tmp_path / "out", tiny_bpe, "--skip-empty").returncode == 0
    summary = json.load(open(tmp_path / "out" / "summary.json"))
    assert summary["splits"]["train"]["examples"] == 2 and summary["splits"]["train"]["skipped_empty"] == 1
    assert decode(tmp_path / "out", "train", tiny_bpe)[1] == ["one", "three"]


def test_lines_split_on_newline_only(tmp_path):
    """A stray carriage return would split an example under fairseq's universal-newline reading: it becomes a space."""
    (tmp_path / "s").write_bytes("\ufefffirst\rhalf\r\nsecond \u2028 line\n".encode("utf-8"))
    (tmp_path / "t").write_bytes(b"one\ntwo")  # no final newline
    assert summarization.read_pair(str(tmp_path / "s"), str(tmp_path / "t"), False) == (
        ["first half", "second \u2028 line"],
        ["one", "two"],
        0,
    )


def tifu_lines(*replacements):
    lines = [json.dumps(p) for p in TIFU_POSTS]
    for number, text in replacements:
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


def without(post, field):
    return json.dumps({k: v for k, v in post.items() if k != field})


# case -> (dataset, {file: new content, None: delete}, message)
BAD = {
    "cnn_dm missing file": ("cnn_dm", {"val.target": None}, "missing file: {raw}/val.target"),
    "cnn_dm no files": ("cnn_dm", {"train.source": None, "train.target": None}, "no cnn_dm files found"),
    "cnn_dm line counts": (
        "cnn_dm",
        {"train.target": "one\ntwo\n"},
        "{raw}/train.source has 3 lines but {raw}/train.target has 2: source and target must be line-aligned",
    ),
    "cnn_dm empty target": ("cnn_dm", {"test.target": "first\n  \n"}, "{raw}/test.target:2: empty target text"),
    "cnn_dm not utf-8": ("cnn_dm", {"val.source": b"caf\xe9\n"}, "{raw}/val.source:1: not UTF-8"),
    "cnn_dm val and valid": ("cnn_dm", {"valid.source": "a\n", "valid.target": "b\n"}, "keep one"),
    "gigaword empty source": ("gigaword", {"train.src.txt": "fine .\n\n"}, "{raw}/train.src.txt:2: empty source text"),
    "gigaword missing test": (
        "gigaword",
        {"test.src.txt": None, "test.tgt.txt": None},
        "missing test.src.txt + test.tgt.txt (test split of the org_data layout)",
    ),
    "tifu malformed json": (
        "reddit_tifu",
        {summarization.TIFU_FILE: tifu_lines((2, '{"id": "x", "tldr": '))},
        "{raw}/tifu_all_tokenized_and_filtered.json:2: not valid JSON",
    ),
    "tifu missing field": (
        "reddit_tifu",
        {summarization.TIFU_FILE: tifu_lines((3, without(TIFU_POSTS[2], "tldr")))},
        "{raw}/tifu_all_tokenized_and_filtered.json:3: missing field 'tldr'",
    ),
    "tifu field type": (
        "reddit_tifu",
        {summarization.TIFU_FILE: tifu_lines((1, json.dumps(dict(TIFU_POSTS[0], selftext_without_tldr=["a"]))))},
        "json:1: field 'selftext_without_tldr' is list, expected a string",
    ),
    "tifu duplicate id": (
        "reddit_tifu",
        {summarization.TIFU_FILE: tifu_lines((5, json.dumps(TIFU_POSTS[0])))},
        "json:5: duplicate id '1ghd5r' (first on line 1)",
    ),
    "tifu empty line": ("reddit_tifu", {summarization.TIFU_FILE: tifu_lines((4, ""))}, "json:4: empty line"),
    "tifu no split file": (
        "reddit_tifu",
        {summarization.TIFU_SPLITS_FILE: None},
        "missing file: {raw}/reddit_tifu_long_splits.json",
    ),
    "tifu split file keys": (
        "reddit_tifu",
        {summarization.TIFU_SPLITS_FILE: '{"train": [], "dev": []}'},
        "expected an object with keys ['test', 'train', 'validation']",
    ),
    "tifu id in two splits": (
        "reddit_tifu",
        {summarization.TIFU_SPLITS_FILE: json.dumps(dict(TIFU_SPLITS, test=["4test0", "1ghd5r"]))},
        "id '1ghd5r' is in two splits",
    ),
}


def write_raw(root, dataset):
    if dataset == "cnn_dm":
        return write_lines(root, CNN_DM)
    if dataset == "gigaword":
        return write_lines(root, GIGAWORD)
    return write_tifu(root)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_naming_file_and_line_and_leaves_output_alone(tmp_path, tiny_bpe, case):
    dataset, changes, message = BAD[case]
    raw = write_raw(tmp_path / "raw", dataset)
    for name, content in changes.items():
        if content is None:
            (raw / name).unlink()
        elif isinstance(content, bytes):
            (raw / name).write_bytes(content)
        else:
            (raw / name).write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    with output_folder(str(out), summarization.TOOL, summarization.KIND) as earlier:  # an earlier output
        with open(os.path.join(earlier, "summary.json"), "w") as f:
            f.write("an earlier complete output")
    proc = run_main(dataset, raw, out, tiny_bpe)
    stderr = proc.stderr
    assert proc.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("summarization: error: ")]
    assert len(errors) == 1 and message.format(raw=raw) in errors[0], stderr
    assert sorted(os.listdir(out)) == [MARKER, "summary.json"]
    assert (out / "summary.json").read_text() == "an earlier complete output"
    assert [p for p in os.listdir(tmp_path) if p.startswith(".out.tmp")] == []


def test_failure_after_writing_started_leaves_nothing(tmp_path, tiny_bpe):
    """fairseq-preprocess refusing a bad dict.txt happens after BPE: the half-built folder is removed."""
    raw = write_lines(tmp_path / "raw", CNN_DM)
    bad_dict = tmp_path / "dict.txt"
    bad_dict.write_text("0 5\nnot-a-count-line\n")
    proc = run_main("cnn_dm", raw, tmp_path / "out", tiny_bpe, dictionary=str(bad_dict))
    assert proc.returncode == 1 and "fairseq-preprocess" in proc.stderr, proc.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["dict.txt", "raw"]


def test_usage_and_flag_checks(tmp_path, tiny_bpe):
    usage = subprocess.run(["bash", SUMMARIZATION_SH], stderr=subprocess.PIPE, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: preprocess/summarization.sh")
    assert "preprocess/summarization.sh: error: the following arguments are required: dataset" in usage.stderr
    proc = run_main("cnn_dm", tmp_path, tmp_path / "out", tiny_bpe, "--tifu-split", "hash")
    assert proc.returncode == 2 and "--tifu-split is for reddit_tifu only" in proc.stderr
