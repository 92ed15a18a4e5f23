"""make demo: the synthetic benchmark's determinism and balance, and the --quick preset end to end."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rxf_repro import demo, minilang, outputs
from tests.helpers import REPO

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it


def test_benchmark_is_deterministic_and_has_the_documented_balance():
    for task in minilang.TASKS:
        first, again = minilang.generate(task, 2000, seed=7), minilang.generate(task, 2000, seed=7)
        assert first == again and first != minilang.generate(task, 2000, seed=8)
        balance = minilang.label_balance(first)
        expected = {"CoLA": 0.6}.get(task, 0.5)  # CoLA-like: 60% well-formed; the others balanced
        assert abs(balance["1"] - expected) < 0.03, (task, balance)
        assert all(len(inputs) == (2 if task in minilang.PAIR_TASKS else 1) for inputs, _ in first)
    assert minilang.corpus(50, 3) == minilang.corpus(50, 3)


def test_tasks_mean_what_the_documentation_says():
    for (text,), label in minilang.generate("SST-2", 300, 1):
        words = text.split()
        score = sum(
            minilang.polarity(w) * (-1 if i and words[i - 1] == minilang.NOT else 1) for i, w in enumerate(words)
        )
        assert label == str(int(score > 0)) and score != 0
    for (premise, hypothesis), label in minilang.generate("RTE", 300, 1):
        name, verb, det, noun, end = hypothesis.split()
        clauses = [c.split() for c in premise[:-2].split(" and ")]
        entailed = any(c[0] == name and c[1] == verb and c[-1] == noun for c in clauses)
        assert label == str(int(entailed))
    for (first, second), label in minilang.generate("MRPC", 300, 1):
        assert label == str(int(sorted(first[:-2].split(" and ")) == sorted(second[:-2].split(" and "))))
    for (text,), label in minilang.generate("CoLA", 300, 1):
        words = text.split()
        if label == "1":
            assert words[-1] == "." and words[0] in minilang.NAMES and words[1] in minilang.VERBS


def test_quick_demo_end_to_end(tmp_path):
    (tmp_path / "demo").mkdir()  # an earlier demo's output: replaced as a whole
    (tmp_path / "demo" / outputs.MARKER).write_text(json.dumps({"tool": "rxf-demo", "kind": "demo"}))
    (tmp_path / "demo" / "stale.txt").write_text("from an earlier run")
    # the command itself, in a fresh interpreter: nothing the test process imported (rxf_fairseq) helps it
    proc = subprocess.run(
        [sys.executable, "-m", "rxf_repro.demo", "--quick", "--out", str(tmp_path / "demo")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        not (tmp_path / "demo" / "stale.txt").exists() and outputs.owner(str(tmp_path / "demo"))["tool"] == "rxf-demo"
    )
    assert [n for n in os.listdir(tmp_path) if n.startswith(".demo.")] == []
    printed = proc.stdout
    for row in ("| pretrained, not fine-tuned |", "| Standard |", "| R3F |", "| R4F |", "| majority baseline |"):
        assert row in printed
    assert "masked-LM accuracy" in printed and str(tmp_path / "demo") in printed
    assert "Linear probes of the pretrained encoder, before any fine-tuning: RTE" in printed
    summary = json.load(open(tmp_path / "demo" / "summary.json"))
    assert set(summary["methods"]) == {"none", "std", "r3f", "r4f"}
    for method in ("std", "r3f", "r4f"):
        numbers = summary["methods"][method]
        assert len(numbers["SST-2"]) == 1 and set(numbers["probes"]) == {"RTE", "MRPC", "CoLA"}
        assert len(numbers["train_wall_s"]) == 1 and 0 < numbers["train_wall_s"][0] < 300
    assert {t: len(v) for t, v in summary["methods"]["none"]["probes"].items()} == {
        "SST-2": 1,
        "RTE": 1,
        "MRPC": 1,
        "CoLA": 1,
    }  # the pretrained encoder, probed on every task
    table2 = open(tmp_path / "demo" / "report" / "table2.md").read()
    assert "(paper)" not in table2  # synthetic data: no published numbers beside it
    for name in (
        "summary.md",
        "report/figure1_walltime.png",
        "report/figure2_seeds.png",
        "report/figure3_generalisation.png",
        "report/probing_generalisation.md",
        "report/table2.md",
    ):
        assert os.path.getsize(tmp_path / "demo" / name) > 0, name


def test_a_folder_the_demo_did_not_write_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert demo.main(["--quick", "--out", str(tmp_path / "mine")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("rxf-demo: error: --out ") and "--overwrite" in line
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"] and sorted(os.listdir(tmp_path)) == ["mine"]


def test_sigterm_stops_every_child_and_leaves_nothing(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxf_repro.demo", "--quick", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    deadline = time.time() + 180
    while "[2/5]" not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    time.sleep(2)  # fairseq-train (the pretraining) is running now
    assert proc.poll() is None
    working = [n for n in os.listdir(tmp_path) if n.startswith(".demo.tmp-")]
    assert len(working) == 1
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    # a child forked from rxf-demo has its command line (naming --out), a fresh one names the working folder
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.strip()
    assert left == "", "a child of rxf-demo outlived it"
    assert os.listdir(tmp_path) == []
