"""The cost benchmark in a tiny configuration: its table and counts, not its speed."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO


def test_cost_benchmark_counts_passes_per_method(tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "cost.py"), "--layers", "1", "--dim", "16", "--heads", "2",
         "--ffn", "32", "--seq-len", "12", "--batch", "4", "--warmup", "1", "--steps", "2", "--rounds", "1", "--json", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = {r["method"]: r for r in json.load(open(out))["results"]}
    passes = {m: (r["forwards_per_update"], r["backwards_per_update"]) for m, r in results.items()}
    assert passes == {"standard": (1, 1), "r3f": (2, 1), "r4f": (2, 1), "fast_r3f": (2, 1),
                      "smart_s1": (3, 2), "smart_s2": (4, 3), "reference_r3f": (2, 1)}
    assert all(r["seconds_per_update"] > 0 and r["cpu_seconds_per_update"] > 0 for r in results.values())
    assert "| CPU s/update (median) |" in proc.stdout
    for method in results:
        assert f"| {method} |" in proc.stdout


def test_cost_benchmark_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "cost.py"), "--methods", "r3f,nope"],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 2 and "--methods: unknown ['nope']" in proc.stdout


def test_preprocess_benchmark_inputs_pass_the_pipelines_checks(tmp_path):
    """benchmarks/preprocess.py's synthetic inputs are in the official formats: the pipelines accept them."""
    out = tmp_path / "preprocess.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "benchmarks", "preprocess.py"), "--pipelines", "glue,reddit_tifu",
         "--lines", "2500", "--json", str(out), "--work", str(tmp_path / "work")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = {r["pipeline"]: r for r in json.load(open(out))["results"]}
    assert {p: r["synthetic_examples"] for p, r in results.items()} == {"glue": 2500, "reddit_tifu": 2500}
    assert all(r["fixtures_s"] > 0 and r["examples_per_s"] > 0 for r in results.values())
    summary = json.load(open(tmp_path / "work" / "reddit_tifu" / "synthetic-bin" / "summary.json"))
    assert {s: v["examples"] for s, v in summary["splits"].items()} == {"train": 2450, "valid": 25, "test": 25}
    bad = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "preprocess.py"), "--pipelines", "nope"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert bad.returncode == 2 and "--pipelines: unknown ['nope']" in bad.stdout
