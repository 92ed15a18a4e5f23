"""Every command in README.md and docs/*.md runs, so a documented command that breaks fails ``make test``.

A fenced ``bash`` block is run as a bash script (``set -euo pipefail``) in a workspace that has what the docs name:
the repository's folders (``rxf_fairseq``, ``configs``, ``run_scripts``, ``preprocess``, ``benchmarks``, ``examples``),
raw data in the official layouts (``glue_data``, ``XNLI-1.0``, ``cnn_dm``, ``gigaword``, ``reddit_tifu``), the binaries
``preprocess/`` makes from it, tiny stand-ins for ``roberta.large``, ``bart.large`` and ``xlmr.large``, the real
all-MiniLM-L6-v2 imported into ``minilm``, run records under ``runs/``. The workspace is built once per test run
(``tests.helpers.built_once``); each document runs in a fresh copy of it, its blocks in order.

What runs, block by block: every command of a block runs, the shell's own way (pipes, ``export``, redirections,
``preprocess/*.sh`` and ``run_scripts/*.sh`` themselves). The programs they start that would each import fairseq in a
fresh interpreter (5-7 s here, two dozen times per run of the docs) run instead in a fork of this test process,
with the command's own arguments, working directory, environment and standard streams (``tests/doc_tools.py``):
fairseq's tools at tiny size, the project's console scripts (``rxf-run``, ``rxf-report``, ``rxf-rouge``, ...) and
``$PYTHON -m rxf_repro.X``/``rxf_fairseq.X`` (what the shell scripts ``exec``, with a pipeline's ``--workers`` as 1).
Everything else runs as written, ``python -c CODE`` and ``python FILE.py`` included (in a fresh interpreter: a fork
would have imported for them what they must import themselves).

The rule, decided block by block: no run block is only parsed or left out. Four of the documented preprocessing
commands have the arguments the workspace was built with (GLUE ALL, XNLI, CNN/DailyMail), and the pipelines' own tests
run every shell script once, but the blocks also make what later blocks use under the documented names (RTE-bin,
Gigaword, Reddit TIFU's two splits, MiniLM's WordPiece binaries), and run in a fork each costs a second or less:
parsing them would save little and prove less. The training commands run only here.

An HTML comment right before a block changes how it runs: ``<!-- doc-test: help (why) -->`` runs each of its commands
with ``--help`` appended (they would take minutes, or the network), ``<!-- doc-test: skip (why) -->`` runs nothing.

Outside the blocks, in milliseconds: every relative link resolves (a ``#section`` to a heading of its page), and every
path of ours a document names in backticks exists (a test named as ``FILE::test_name`` included).
"""

import glob
import importlib.metadata
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

from tests import doc_tools
from tests.doc_tools import DOC_BART, DOC_ROBERTA
from tests.helpers import CLASSIFICATION, REPO, benchmark_module, bpe_flags, built_once, fairseq_args, fairseq_cli
from tests.pipelines import pipeline

DOCS = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
TOOLS = ("fairseq-train", "fairseq-hydra-train", "fairseq-generate", "fairseq-validate")
LINKED = ("rxf_fairseq", "configs", "run_scripts", "preprocess", "benchmarks", "examples")
ONE_BATCH = ["--required-batch-size-multiple", "1"]
DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(run|help|skip)\b(.*?)-->", re.S)
# Measured with -n 2 on two busy cores: the slowest block (the imported MiniLM's, now in docs/plugin.md) 11-22 s; the
# slowest document (README.md, when it held that block) 23-42 s, plus 9-10 s of setup (the workspace build, or the
# wait for the other worker's). A block gets twice the slowest; a document twice the slowest with its setup, plus one
# block's limit: a block that hangs is stopped by serve, whose error names it, before pytest-timeout's stack dump
# (which names no block) even at twice the load.
BLOCK_TIMEOUT = 45
DOC_TIMEOUT = 150
pytestmark = pytest.mark.timeout(DOC_TIMEOUT)


@dataclass
class Block:
    doc: str
    line: int
    mode: str
    why: str
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def read(doc: str) -> str:
    return open(os.path.join(REPO, doc), encoding="utf-8").read()


def blocks(doc: str) -> List[Block]:
    """The fenced bash blocks of a document, with the directive before each (default: run)."""
    text = read(doc)
    found = []
    for match in re.finditer(r"^```(bash|sh)\n(.*?)^```", text, re.S | re.M):
        before = text[: match.start()].rstrip()
        directive = DIRECTIVE.search(before[-600:]) if before.endswith("-->") else None
        mode, why = (directive.group(1), directive.group(2).strip()) if directive else ("run", "")
        found.append(Block(doc, text[: match.start()].count("\n") + 1, mode, why, match.group(2)))
    return found


def commands(block: Block) -> List[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = block.text.replace("\\\n", " ")
    return [line for line in (raw.strip() for raw in joined.splitlines()) if line and not line.startswith("#")]


ALL_BLOCKS = [b for doc in DOCS for b in blocks(doc)]


def test_the_docs_have_runnable_blocks_and_say_why_one_is_not_run():
    assert {"README.md", "docs/data.md", "docs/reproduction.md"} <= set(DOCS)
    assert len(ALL_BLOCKS) > 20
    for block in ALL_BLOCKS:
        assert "..." not in block.text, f"{block}: '...' in a command block; write the command out"
        if block.mode != "run":
            assert block.why, f"{block}: doc-test {block.mode} needs its reason in parentheses"
        for command in commands(block):
            if command.split()[0] in doc_tools.FAIRSEQ_TOOLS and "user_dir=" not in command:
                assert "--user-dir" in command, (  # served, it would find the plugin the test process registered
                    f"{block}: {command.split()[0]} without --user-dir rxf_fairseq: the real tool would not find the "
                    "plugin's criteria, tasks and architectures; add it"
                )


FENCED = re.compile(r"^```.*?^```", re.S | re.M)
OURS = ("rxf", "rxf_fairseq", "rxf_repro", "tests", "configs", "preprocess", "run_scripts", "docs", ".ci")


def prose(text: str) -> str:
    """A document without its fenced blocks (a ``#`` comment in a block is no heading, a link in one no link)."""
    return FENCED.sub("", text)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(doc: str, text: str) -> List[str]:
    """Each relative link of ``text`` (``doc``'s) that names no file, or no heading of it after ``#``."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, section = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if path and not os.path.isfile(os.path.join(REPO, linked)):
            broken.append(f"{doc}: link to {target}: no such file {linked}")
            continue
        headings = re.findall(r"^#+\s+(.*)$", prose(read(linked) if path else text), re.M)
        if section and section not in map(anchor, headings):
            broken.append(f"{doc}: link to {target}: no such heading in {linked}")
    return broken


def missing_paths(doc: str, text: str) -> List[str]:
    """Each path of ours named in backticks that is not in the repository: ``rxf_repro/rouge`` (a module or a
    package), ``configs/glue/*.yaml`` (a glob), ``FILE::test_name``; a placeholder in capitals
    (``configs/glue/NAME.yaml``) is not a path."""
    missing = []
    for code in re.findall(r"`([^`\s]+)`", prose(text)):
        path, _, name = code.partition("::")
        parts = path.rstrip("/").split("/")
        if len(parts) < 2 or parts[0] not in OURS or any(re.fullmatch(r"[A-Z_]+(\.\w+)?", p) for p in parts):
            continue
        found = glob.glob(os.path.join(REPO, path)) + glob.glob(os.path.join(REPO, path.rstrip("/") + ".py"))
        test = name.split("::")[-1].split("[")[0]
        if not found:
            missing.append(f"{doc}: `{code}`: no such file or folder in the repository")
        elif test and not re.search(rf"^\s*def {re.escape(test)}\b", read(os.path.relpath(found[0], REPO)), re.M):
            missing.append(f"{doc}: `{code}`: {path} has no {test}")
    return missing


@pytest.mark.parametrize("doc", DOCS)
def test_every_link_resolves_and_every_path_named_exists(doc):
    text = read(doc)
    problems = broken_links(doc, text) + missing_paths(doc, text)
    assert not problems, "\n".join(problems)


def test_a_broken_link_or_a_missing_path_is_found():
    text = "\n".join(
        [
            "## A heading, `with` code",
            "[ok](testing.md) [ok](#a-heading-with-code) [ok](../README.md#layout) [web](https://example.org/x)",
            "[gone](nowhere.md) [no such heading](testing.md#nowhere)",
            "`rxf_repro/rouge` `configs/glue/*.yaml` `configs/glue/NAME.yaml` `glue-bin/RTE-bin` `examples/rxf`",
            "`rxf_repro/nowhere.py` `tests/e2e/test_docs.py::test_a_broken_link_or_a_missing_path_is_found`",
            "`tests/e2e/test_docs.py::test_nowhere`",
            "```bash",
            "# not a heading; [not a link](nowhere.md) `rxf_repro/nowhere_either.py`",
            "```",
        ]
    )
    assert broken_links("docs/x.md", text) == [
        "docs/x.md: link to nowhere.md: no such file docs/nowhere.md",
        "docs/x.md: link to testing.md#nowhere: no such heading in docs/testing.md",
    ]
    assert missing_paths("docs/x.md", text) == [
        "docs/x.md: `rxf_repro/nowhere.py`: no such file or folder in the repository",
        "docs/x.md: `tests/e2e/test_docs.py::test_nowhere`: tests/e2e/test_docs.py has no test_nowhere",
    ]


# ------------------------------------------------------------------------------------------- workspace


def pretrain(data: str, save: str, root: str) -> None:
    """A tiny RoBERTa "pretrained" with masked_lm on a dictionary the docs' data uses (two updates)."""
    model = [*DOC_ROBERTA, "--tokens-per-sample", "512", "--sample-break-mode", "complete"]
    extra = ["--max-update", "2", "--save-dir", save, "--no-epoch-checkpoints", "--num-workers", "0"]
    fairseq_cli("train", fairseq_args(data, "masked_lm", "masked_lm", model, [*extra, *ONE_BATCH], batch_size=8), root)
    os.rename(os.path.join(root, save, "checkpoint_last.pt"), os.path.join(root, save, "model.pt"))


def write_records(root: str) -> None:
    """Run records as rxf-run writes them: GLUE runs of two methods over seeds, and probes."""
    from rxf_repro.records import write_record

    rng = random.Random(1)
    common = {
        "best_update": 6,
        "wall_time_s": 40.0,
        "train_wall_s": 30.0,
        "tiny": True,
        "attempts": [{"attempt": 1, "resumed": False, "exit": 0, "wall_time_s": 40.0}],
        "command": ["fairseq_cli.train", "glue-bin/RTE-bin", *DOC_ROBERTA],
    }
    for task, folder in (("RTE", "rte"), ("SST-2", "sst_2")):
        for method, setting, hparams in (
            ("r3f", "noise_type=uniform,r3f_lambda=1.0", {"noise_type": "uniform", "r3f_lambda": 1.0}),
            ("std", "default", {}),
        ):
            for seed in (1, 2, 3):
                write_record(
                    os.path.join(root, "glue", folder, method, setting, f"seed{seed}", "record.json"),
                    dict(
                        common,
                        kind="glue",
                        task=task,
                        method=method,
                        seed=seed,
                        hparams=hparams,
                        metrics={"accuracy": round(rng.uniform(50, 60), 1)},
                        time_to_best_s=rng.uniform(10, 20),
                    ),
                )
    probe = {
        "protocol": "generalisation",
        "source": "SST-2",
        "chain": ["SST-2"],
        "step": 0,
        "cycle": 1,
        "finetuned_on": "SST-2",
    }
    for method, setting, hparams in (
        ("none", "default", {}),
        ("r4f", "noise_type=normal,r3f_lambda=0.5", {"noise_type": "normal", "r3f_lambda": 0.5}),
    ):
        for seed in (1, 2):
            for task in ("MRPC", "CoLA"):
                write_record(
                    os.path.join(
                        root,
                        "probing",
                        "generalisation",
                        method,
                        setting,
                        f"seed{seed}",
                        f"probe-{task}",
                        "record.json",
                    ),
                    dict(
                        common,
                        kind="probe",
                        task=task,
                        method=method,
                        seed=seed,
                        hparams=hparams,
                        probe=probe,
                        metrics={"accuracy": round(rng.uniform(50, 70), 1)},
                        time_to_best_s=5.0,
                    ),
                )


def build_workspace(root: Path, minilm: Path) -> None:
    """Every input the docs name, made by the project's own pipelines (``main`` in this process) from synthetic inputs
    in the official layouts (``benchmarks/preprocess.py``); the tiny checkpoints trained in forks of it."""
    bench = benchmark_module("preprocess")
    rng = random.Random(1)
    for name in LINKED:
        os.symlink(os.path.join(REPO, name), root / name)
    bpe = bench.write_tiny_bpe(bench._mkdir(root / "gpt2_bpe"))
    bench.tiny_glue(root / "glue_data", rng)
    built = pipeline("glue", [root / "glue_data", "ALL", root / "glue-bin", *bpe_flags(bpe)])
    assert built.returncode == 0, built.stderr[-3000:]
    pretrain("glue-bin/RTE-bin/input0", "roberta.large", str(root))

    xnli_inputs = bench.synthetic_xnli(root / "xnli_raw", 300, rng)
    os.makedirs(root / "xlmr.large")
    shutil.move(xnli_inputs[1], root / "XNLI-1.0")
    shutil.copy(xnli_inputs[3], root / "xlmr.large" / "sentencepiece.bpe.model")
    shutil.copy(xnli_inputs[5], root / "xlmr.large" / "dict.txt")
    shutil.copytree(xnli_inputs[0], root / "glue_data" / "MNLI", dirs_exist_ok=True)
    spm = [
        "--sentencepiece-model",
        root / "xlmr.large" / "sentencepiece.bpe.model",
        "--dict",
        root / "xlmr.large" / "dict.txt",
    ]
    built = pipeline("xnli", [root / "glue_data" / "MNLI", root / "XNLI-1.0", root / "xnli-bin", *spm])
    assert built.returncode == 0, built.stderr[-3000:]
    pretrain("xnli-bin/input0", "xlmr.large/pretrain", str(root))
    os.rename(root / "xlmr.large" / "pretrain" / "model.pt", root / "xlmr.large" / "model.pt")

    for dataset, writer in (
        ("cnn_dm", bench.synthetic_cnn_dm),
        ("gigaword", bench.synthetic_gigaword),
        ("reddit_tifu", bench.synthetic_reddit_tifu),
    ):
        writer(bench._mkdir(root / dataset), 30, rng)
    built = pipeline("summarization", ["cnn_dm", root / "cnn_dm", root / "summ-bin" / "cnn_dm-bin", *bpe_flags(bpe)])
    assert built.returncode == 0, built.stderr[-3000:]
    bart = ["--source-lang", "source", "--target-lang", "target", "--share-all-embeddings"]
    bart += ["--share-decoder-input-output-embed", "--layernorm-embedding", *DOC_BART]
    extra = ["--max-update", "2", "--save-dir", "bart.large", "--no-epoch-checkpoints", "--num-workers", "0"]
    fairseq_cli(
        "train",
        fairseq_args("summ-bin/cnn_dm-bin", "translation", "cross_entropy", bart, [*extra, *ONE_BATCH], 4),
        str(root),
    )
    os.rename(root / "bart.large" / "checkpoint_last.pt", root / "bart.large" / "model.pt")

    shutil.copytree(minilm, root / "minilm")  # the real pretrained encoder, imported with rxf-import-hf (conftest.py)
    write_records(str(root / "runs"))
    finetuned = "runs/glue/sst_2/r3f/noise_type=uniform,r3f_lambda=1.0/seed1"
    start = ["--restore-file", "roberta.large/model.pt", "--reset-optimizer", "--reset-dataloader", "--reset-meters"]
    extra = [*start, "--max-update", "2", "--save-dir", finetuned, "--no-epoch-checkpoints", "--no-last-checkpoints"]
    model = [*CLASSIFICATION, *DOC_ROBERTA]
    args = fairseq_args("glue-bin/SST-2-bin", "sentence_prediction", "sentence_prediction_r3f", model, extra, 4)
    fairseq_cli("train", [*args, "--num-workers", "0", *ONE_BATCH], str(root))
    for name, lines in (
        ("test.ref", ["the cat sat on the mat .", "rain fell all night ."]),
        ("test.hypo", ["a cat sat on a mat .", "it rained all night ."]),
    ):
        (root / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    tools = root / ".doc-tools"
    tools.mkdir()
    ours = [e.name for e in importlib.metadata.entry_points(group="console_scripts") if e.name.startswith("rxf-")]
    for tool in (*doc_tools.FAIRSEQ_TOOLS, *ours, doc_tools.PYTHON):
        (tools / tool).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{doc_tools.__file__}" {tool} "$@"\n')
        (tools / tool).chmod(0o755)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, minilm):
    """Built once per test run, shared by the xdist workers (``tests.helpers.built_once``); each document runs in a
    copy of it."""
    return str(built_once(tmp_path_factory, "docs-workspace", lambda root: build_workspace(root, minilm)))


def run_block(block: Block, where: str, server: doc_tools.ToolServer, timeout: float = BLOCK_TIMEOUT) -> None:
    if block.mode == "skip":
        return
    script = block.text
    if block.mode == "help":
        script = "\n".join(shlex.join(shlex.split(c, comments=True) + ["--help"]) for c in commands(block))
    tools = os.path.join(where, ".doc-tools")
    env = dict(
        os.environ,
        PATH=os.pathsep.join([tools, os.path.dirname(sys.executable), os.environ["PATH"]]),
        PYTHON=os.path.join(tools, doc_tools.PYTHON),
        **{doc_tools.SOCKET: server.path},
    )
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        shell = subprocess.Popen(
            ["bash", "-c", "set -euo pipefail\n" + script],
            cwd=where,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group: stopped as a whole if the block runs too long
        )
        try:
            server.serve(shell, timeout)
            failure = f"the documented command failed (exit {shell.returncode})" if shell.returncode else ""
        except subprocess.TimeoutExpired:
            failure = f"the documented commands ran past {timeout:g} s and were stopped (a hang? BLOCK_TIMEOUT)"
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    assert not failure, f"{block}: {failure}:\n{script}\n--- stdout\n{stdout[-3000:]}\n--- stderr\n{stderr[-5000:]}"


@pytest.fixture
def server():
    """The test process, serving the documented commands' fairseq tools and console scripts in forks of itself."""
    serving = doc_tools.ToolServer()
    yield serving
    serving.close()


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_runs(doc, workspace, server, tmp_path):
    where = str(tmp_path / "ws")
    shutil.copytree(workspace, where, symlinks=True)
    for block in blocks(doc):
        run_block(block, where, server)


BROKEN = [  # a failing command of each way a command runs: (command, what the test process served, from its stderr)
    # a fairseq tool, in a fork
    (
        "fairseq-train glue-bin/RTE-bin --arch roberta_large --no-such-flag",
        ["fairseq-train"],
        "arguments: --no-such-flag",
    ),
    # a shell script run as written, which exec-s a pipeline, in a fork
    (
        "preprocess/glue.sh glue_data RTE out --encoder-json missing.json --vocab-bpe gpt2_bpe/vocab.bpe --dict x",
        ["rxf_repro.data.glue"],
        "missing file: missing.json",
    ),
    # a console script, in a fork
    ("rxf-report no-such-folder --out report", ["rxf-report"], "no-such-folder: no such file or folder"),
    # python -c and python FILE.py, in a fresh interpreter (the shim exec-s it: its status is the block's)
    ("python -c 'import sys; sys.exit(3)'", [], ""),
    ("python benchmarks/cost.py --no-such-flag", [], "unrecognized arguments: --no-such-flag"),
]


def test_a_broken_command_fails_the_doc_test(workspace, server, tmp_path):
    """The harness itself: a command that fails makes the test fail, naming the document and line, whichever way it
    runs (each served as it says, its stderr the block's); a command served in a fork reads and writes the block's own
    standard streams."""
    where = str(tmp_path / "ws")
    shutil.copytree(workspace, where, symlinks=True)
    for command, served, said in BROKEN:
        server.served.clear()
        with pytest.raises(AssertionError, match="doc.md:3: the documented command failed") as failed:
            run_block(Block("doc.md", 3, "run", "", command + "\n"), where, server)
        assert server.served == served, command
        assert said in str(failed.value).split("--- stderr", 1)[1], command
    run_block(Block("doc.md", 9, "help", "slow", "rxf-rouge test.ref test.hypo\n"), where, server)
    streams = 'test "$(echo \'Fine (yes).\' | rxf-ptb-tokenize)" = "Fine -LRB- yes -RRB- ."\n'
    run_block(Block("doc.md", 12, "run", "", streams), where, server)


def test_a_pipe_of_served_commands_ends(workspace, server, tmp_path):
    """``A | B``, both served, B started while A runs: B's fork must not hold A's connection open (A's shim would
    wait on it, holding open the pipe B reads to its end)."""
    where = str(tmp_path / "ws")
    shutil.copytree(workspace, where, symlinks=True)
    pipe = "(sleep 2; echo 'Fine (yes).') | rxf-ptb-tokenize | (sleep 1; rxf-ptb-tokenize)"
    run_block(Block("doc.md", 5, "run", "", f'test "$({pipe})" = "Fine -LRB- yes -RRB- ."\n'), where, server, 20)


def test_a_block_past_its_time_is_stopped_with_all_it_started(server, tmp_path):
    """Past the block's time the test fails naming the block, and nothing the block started runs on (here a command
    that is not served, in the background)."""
    block = Block("doc.md", 7, "run", "", "sleep 37 &\necho $! > sleep.pid\nwait\n")
    with pytest.raises(AssertionError, match=r"doc.md:7: the documented commands ran past 1 s"):
        run_block(block, str(tmp_path), server, timeout=1)
    pid = int((tmp_path / "sleep.pid").read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid), "the block's background sleep outlived the block"


def alive(pid: int) -> bool:
    """Running (a zombie has ended: it waits only for a parent, here init, to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Entry:
    """A console_scripts entry point whose ``main`` returns ``returned``."""

    def __init__(self, returned) -> None:
        self.returned = returned

    def load(self):
        return lambda: self.returned


def test_a_served_console_script_exits_as_its_wrapper_would(monkeypatch, tmp_path):
    """The wrapper pip writes is ``sys.exit(main())``: None is 0, an int itself, anything else printed and 1."""
    from rxf_repro import process

    for returned, status in ((None, 0), (3, 3), ("rxf-x: no runs under 'x'", 1)):
        monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: [Entry(returned)])
        request = {"kind": "script", "name": "rxf-x", "argv": []}
        with open(tmp_path / "out", "w+") as out, open(os.devnull) as nothing:
            fds = [nothing.fileno(), os.dup(out.fileno())]  # stdin, stdout: the fork closes output_fd once dup-ed
            try:
                child = process.ForkedChild(doc_tools._run, (request, fds, []), output_fd=out.fileno())
            finally:
                os.close(fds[1])
            assert child.wait(60) == status, returned
            out.seek(0)
            assert out.read() == (f"{returned}\n" if status == 1 else ""), returned
