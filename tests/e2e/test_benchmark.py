"""The cost benchmark in a tiny configuration: its table and counts, not its speed."""

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time

import pytest

from rxf_repro.encoders import model_folder
from tests.helpers import MINILM, REPO, benchmark_module, forked

TINY_COST = ["--layers", "1", "--dim", "16", "--heads", "2", "--ffn", "32", "--seq-len", "12", "--batch", "4"]
TINY_COST += ["--warmup", "1", "--steps", "2", "--rounds", "1", "--threads", "1"]


def measured(cost, argv, method):
    """``benchmarks/cost.py ARGV --child METHOD`` (the measurement the driver runs in a fresh Python per method) in a
    fork of this interpreter: its ``RESULT`` line."""
    proc = forked(cost.main, ([*argv, "--child", method],), name="benchmarks/cost.py")
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def test_cost_benchmark_counts_passes_per_method():
    """Every method's measurement, each in a fork (its counters patch torch), and the table of all of them; the
    driver, which runs them in fresh Pythons, end to end in test_cost_benchmark_times_an_imported_checkpoint."""
    import argparse

    cost = benchmark_module("cost")
    results = [cost.pool([measured(cost, TINY_COST, method)]) for method in cost.METHODS]
    passes = {r["method"]: (r["forwards_per_update"], r["backwards_per_update"]) for r in results}
    assert passes == {
        "standard": (1, 1),
        "r3f": (2, 1),
        "r4f": (2, 1),
        "fast_r3f": (2, 1),
        "r3f_one_forward": (1, 1),  # one forward of the doubled batch
        "smart_s1": (4, 2),  # clean, ascent, adversarial and the teacher's forward
        "smart_s2": (5, 3),
        "smart_s1_mu0": (3, 2),
        "smart_s2_mu0": (4, 3),
        "reference_r3f": (2, 1),
    }
    assert all(r["seconds_per_update"] > 0 and r["cpu_seconds_per_update"] > 0 for r in results)
    table = cost.table(results, argparse.Namespace(device="cpu"))
    assert "| CPU s/update (median) |" in table
    for method in passes:
        assert f"| {method} |" in table


def test_cost_benchmark_rejects_bad_arguments():
    proc = forked(benchmark_module("cost").main, (["--methods", "r3f,nope"],), check=False)
    assert proc.returncode == 2 and "--methods: unknown ['nope']" in proc.stdout


def test_preprocess_benchmark_inputs_pass_the_pipelines_checks(tmp_path):
    """benchmarks/preprocess.py's synthetic inputs are in the official formats: the pipelines accept them."""
    out = tmp_path / "preprocess.json"
    preprocess = benchmark_module("preprocess")
    argv = ["--pipelines", "glue,reddit_tifu", "--lines", "500", "--json", str(out), "--work", str(tmp_path / "work")]
    forked(preprocess.main, (argv,), cwd=REPO, name="benchmarks/preprocess.py")
    record = json.load(open(out))
    results = {r["pipeline"]: r for r in record["results"]}
    assert {p: r["synthetic_examples"] for p, r in results.items()} == {"glue": 500, "reddit_tifu": 500}
    assert all(r["fixtures_s"] > 0 and r["examples_per_s"] > 0 for r in results.values())
    summary = json.load(open(tmp_path / "work" / "reddit_tifu" / "synthetic-bin" / "summary.json"))
    assert {s: v["examples"] for s, v in summary["splits"].items()} == {"train": 490, "valid": 5, "test": 5}
    tiny = sorted(os.listdir(tmp_path / "work" / "glue" / "fixtures-bin"))  # the tiny input: ALL, every task
    assert tiny == [
        ".rxf-output.json",
        "CoLA-bin",
        "MNLI-bin",
        "MRPC-bin",
        "QNLI-bin",
        "QQP-bin",
        "RTE-bin",
        "SST-2-bin",
        "STS-B-bin",
    ]
    # when, from which commit, on what
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], stdout=subprocess.PIPE, text=True).stdout.strip()
    assert record["commit"] == head and record["date"].startswith(time.strftime("%Y-"))
    assert record["command"][:2] == ["python", "benchmarks/preprocess.py"] and "--lines" in record["command"]
    machine = record["machine"]
    assert machine["cores"] == os.cpu_count() and machine["python"] == platform.python_version()
    assert machine["cpu"] and machine["torch"] == importlib.metadata.version("torch")
    bad = forked(preprocess.main, (["--pipelines", "nope"],), check=False)
    assert bad.returncode == 2 and "--pipelines: unknown ['nope']" in bad.stdout


def test_preprocess_benchmark_writes_no_results_file_unless_asked_and_imports_nothing_from_tests(tmp_path):
    """By default the committed benchmarks/results/preprocess.json is left alone; and the benchmark builds its own
    inputs (tests may import from benchmarks, not the other way round)."""
    committed = os.path.join(REPO, "benchmarks", "results", "preprocess.json")
    before = open(committed, "rb").read()
    script = (
        "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
        "leaked = sorted(m for m in sys.modules if m == 'tests' or m.startswith('tests.')); "
        "print('imported from tests:', leaked)"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            os.path.join(REPO, "benchmarks", "preprocess.py"),
            "--pipelines",
            "gigaword",
            "--lines",
            "50",
            "--work",
            str(tmp_path / "work"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "imported from tests: []" in proc.stdout and "| gigaword |" in proc.stdout
    assert "results not written to a file (pass --json FILE to keep them)" in proc.stdout
    assert open(committed, "rb").read() == before and os.listdir(tmp_path) == ["work"]


def test_cost_benchmark_times_an_imported_checkpoint(minilm, tmp_path):
    """The driver end to end (its measurement in a fresh Python, as it always runs it) on rxf-import-hf's
    checkpoint: the table, and the results file with when, from which commit, on what."""
    out = tmp_path / "cost.json"
    cost = benchmark_module("cost")
    restore = ["--restore", str(minilm / "model.pt"), "--seq-len", "8", "--batch", "2", "--threads", "1"]
    restore += ["--warmup", "1", "--steps", "1", "--rounds", "1"]
    proc = forked(cost.main, ([*restore, "--methods", "standard", "--json", str(out)],), cwd=REPO)
    assert f"the checkpoint {minilm / 'model.pt'}" in proc.stdout
    assert "| CPU s/update (median) |" in proc.stdout and "| standard |" in proc.stdout
    written = json.load(open(out))
    assert written["config"]["restore"] == str(minilm / "model.pt")
    assert written["date"] and written["commit"] and written["machine"]["cpu"]
    assert written["command"][1] == "benchmarks/cost.py" and "--restore" in written["command"]
    assert [(r["method"], r["forwards_per_update"]) for r in written["results"]] == [("standard", 1)]
    assert written["results"][0]["seconds_per_update"] > 0
    assert measured(cost, restore, "r3f")["forwards_per_update"] == 2


def tiny_hf_model(folder):
    from tests.helpers import tiny_bert

    tiny_bert(hidden_dropout_prob=0.1).save_pretrained(str(folder))
    return str(folder)


def test_trainer_cost_benchmark_counts_passes_per_method(tmp_path):
    """benchmarks/cost_hf.py's measurement of every method in this process (a tiny BERT, 2 timed updates each);
    its driver end to end on two methods."""
    pytest.importorskip("transformers")
    import argparse

    cost_hf = benchmark_module("cost_hf")
    model = tiny_hf_model(tmp_path / "bert")
    argv = ["--model", model, "--seq-len", "8", "--batch", "4", "--warmup", "1", "--steps", "2", "--threads", "1"]
    args = argparse.Namespace(
        model=model, seq_len=8, batch=4, warmup=1, steps=2, device="cpu", fp16=False, bf16=False, threads=1
    )
    passes = {}
    for method in cost_hf.METHODS:
        args.scratch = str(tmp_path / "scratch")
        result = cost_hf.measure(args, method)
        assert len(result["seconds"]) == 2 and all(t > 0 for t in result["seconds"])
        passes[method] = (result["forwards_per_update"], result["backwards_per_update"])
    assert passes == {
        "standard": (1, 1),
        "r3f": (2, 1),
        "fast_r3f": (2, 1),
        "r4f": (2, 1),
        "smart": (4, 2),  # clean, ascent, adversarial and the teacher's forward; the ascent's grad and the backward
        "smart_mu0": (3, 2),
        "snippet_r3f": (2, 1),
    }
    import torch

    assert torch.autograd.backward.__name__ == "backward"  # the counters are gone again
    # its driver end to end, in a fork of this interpreter (the measurement in a fresh Python, as it always runs it)
    out = tmp_path / "cost_hf.json"
    argv += ["--methods", "standard,r3f", "--rounds", "1", "--json", str(out)]
    proc = forked(cost_hf.main, (argv,), cwd=str(tmp_path), name="benchmarks/cost_hf.py")
    written = json.load(open(out))
    assert written["commit"] and written["command"][1] == "benchmarks/cost_hf.py"
    assert [(r["method"], r["forwards_per_update"]) for r in written["results"]] == [("standard", 1), ("r3f", 2)]
    assert "| standard |" in proc.stdout and "| r3f |" in proc.stdout and "| vs the snippet |" in proc.stdout


def test_gpu_check_runs_on_the_cpu_in_its_tiny_configuration(tmp_path):
    """benchmarks/gpu_check.sh --device cpu --tiny, as make test runs it: every check passes, every record is there."""
    out = tmp_path / "check"
    proc = subprocess.run(
        ["bash", os.path.join(REPO, "benchmarks", "gpu_check.sh"), "--device", "cpu", "--tiny", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "set-up: fairseq" in proc.stdout and "already imports; nothing installed" in proc.stdout
    report = json.load(open(out / "gpu_check.json"))
    assert report["failures"] == [] and report["commit"]
    runs = {t["check"]: t for t in report["training"]}
    assert set(runs) == {"train r3f fp32", "train r4f fp32", "train lsce_r3f fp32"}
    assert all(t["exit"] == 0 and t["losses_logged"] == t["updates"] and t["symm_kl"] for t in runs.values())
    assert set(runs["train r4f fp32"]["spectral_norms"]) == {"dense", "out_proj"}
    reads = {r["criterion"]: r for r in report["host_reads"]}
    assert reads["sentence_prediction_r3f --r3f-one-forward"]["model_forwards_per_update"] == 1
    assert reads["sentence_prediction_smart"]["model_forwards_per_update"] == 4  # clean, ascent, final, teacher
    assert all(r["criterion_host_reads_per_update"] == 0 for r in reads.values())
    assert {r["method"] for r in report["cost"]["results"]} == {"standard", "r3f", "r3f_one_forward"}
    assert "## Host reads per update" in (out / "gpu_check.md").read_text()


def test_gpu_check_names_a_criterion_that_reads_a_value_back_to_the_host(tmp_path, monkeypatch):
    """The host-read count catches one float() of a tensor added to the R3F criterion (a GPU synchronisation)."""
    import rxf_fairseq.criterions.r3f_common as common

    gpu_check = benchmark_module("gpu_check")
    data = gpu_check.make_data(str(tmp_path), gpu_check.SIZES["tiny"])
    monkeypatch.setattr(gpu_check, "VARIANTS", gpu_check.VARIANTS[:2])  # stock sentence_prediction and R3F
    original = common.add_consistency_term

    def reading(loss, logging_output, weight, term, key):
        float(term)  # what a careless log line does
        return original(loss, logging_output, weight, term, key)

    monkeypatch.setattr(common, "add_consistency_term", reading)
    stock, r3f = gpu_check.host_reads(data, gpu_check.SIZES["tiny"], "cpu", "fp32", updates=2)
    assert stock["failures"] == [] and stock["criterion_host_reads_per_update"] == 0
    assert r3f["criterion_host_reads_per_update"] == 1
    assert r3f["failures"] == ["host reads of the criterion per update: 1, its stock criterion's 0"]


def test_the_offline_bundle_script_parses_and_explains_itself():
    """benchmarks/gpu_wheels.sh downloads (the network): here only its syntax, its usage and its refusal of options."""
    script = os.path.join(REPO, "benchmarks", "gpu_wheels.sh")
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    usage = subprocess.run(["bash", script, "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "Usage: benchmarks/gpu_wheels.sh [DEST]" in usage.stdout
    bad = subprocess.run(["bash", script, "--dest"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option --dest" in bad.stderr


def test_the_noise_share_benchmark_replays_the_masks(tmp_path):
    """benchmarks/noise_share.py on the real MiniLM, small: with the same dropout masks in both passes and no noise
    the term is exactly 0 (the replay works), with independent masks it is not, and the noise alone grows with eps."""
    import argparse

    noise_share = benchmark_module("noise_share")
    args = argparse.Namespace(model=MINILM, sentences=3, seeds=2, eps=[0.0, 1e-3, 1e-1], bf16=False)
    rows = {row["eps"]: row for row in noise_share.measure(args)["rows"]}
    assert rows[0.0]["same masks"]["values"] == [0.0, 0.0] and rows[0.0]["dropout off"]["values"] == [0.0, 0.0]
    assert min(rows[0.0]["dropout on"]["values"]) > 0
    assert 0 < rows[1e-3]["same masks"]["mean"] < rows[1e-1]["same masks"]["mean"]
    assert len(noise_share.sentences(os.path.join(model_folder(MINILM), "README.md"), 15)) == 15
