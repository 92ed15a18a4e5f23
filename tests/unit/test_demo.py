"""make demo's logic, in this process: convergence, the claims' intervals and verdicts, the claim tables, the full preset's schedule, the choice of lambda by the report's rule, and a folder the demo did not write refused."""

import operator
import os

import pytest

from rxf_repro import claims, demo, records
from tests.helpers import REPO

FIXTURE = os.path.join(REPO, "tests", "fixtures", "wordnet")


def test_a_run_has_converged_when_its_last_validation_is_no_better_than_an_earlier_one():
    curve = [[13, 80.0], [26, 85.0], [39, 84.7]]
    assert demo.stopped_improving(curve) is True
    assert demo.stopped_improving(curve[:2] + [[39, 85.0]]) is True  # a tie: fairseq's best is last
    assert demo.stopped_improving(curve[:2] + [[39, 85.3]]) is False
    assert demo.stopped_improving(curve[:1]) is None and demo.stopped_improving(None) is None


def test_intervals_and_verdicts_follow_the_interval_not_the_mean():
    assert claims.mean_interval([1.0, 2.0, 3.0]).low == pytest.approx(2 - 4.302653 / 3**0.5, abs=1e-5)
    up = claims.paired({1: 3.0, 2: 3.2, 3: 2.9}, {1: 1.0, 2: 1.1, 3: 1.0})  # seed by seed
    assert up.value == pytest.approx(2.0) and claims.verdict(up) == claims.SUPPORTED
    assert claims.verdict(claims.paired({1: 0.0, 2: 0.1}, {1: 3.0, 2: 3.0})) == claims.NOT_SUPPORTED
    noisy = claims.paired({1: 5.0, 2: -3.0, 3: 4.0}, {1: 0.0, 2: 0.0, 3: 0.0})  # mean +2, interval across 0
    assert noisy.value > 0 and claims.verdict(noisy) == claims.UNDECIDED
    assert claims.paired({1: 1.0}, {2: 1.0}) is None and claims.verdict(None) == claims.UNDECIDED
    assert claims.paired({1: 3.0, 2: 8.0}, {1: 1.5, 2: 4.0}, operator.truediv).value == 2.0  # a ratio, paired too
    assert claims.text(None) == "-" and claims.text(claims.mean_interval([2.0])) == "2.0 (n=1)"
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


def test_lambda_is_chosen_by_the_reports_rule_and_the_other_seeds_run_with_it(tmp_path):
    """First round: the pretrained encoder's probes, every run of a method without a grid, the grid on the selection
    seed; rxf-report's rule chooses (the best dev accuracy, a tie to the first setting); the second round runs the
    chosen value's other seeds, and the setting run with every seed is then the one reported."""
    preset = demo.load_preset("default")
    grids = {"r3f": ("criterion.r3f_lambda", [0.1, 1.0])}
    first = [(j.protocol, j.method, j.seed, j.setting) for j in demo.plan(preset, ["std", "r3f"], [1, 2, 3], grids)]
    assert first == [("generalisation", "none", 1, {})] + [("generalisation", "std", s, {}) for s in (1, 2, 3)] + [
        ("generalisation", "r3f", 1, {"criterion.r3f_lambda": v}) for v in (0.1, 1.0)
    ]

    def run(seed, value, accuracy):
        fields = dict(kind="glue", task="WN-POS", method="r3f", seed=seed, hparams={"r3f_lambda": value})
        return records.Record(**fields, metrics={"accuracy": accuracy})

    assert demo.report_setting([run(1, 0.1, 82.0), run(1, 1.0, 82.0)], "r3f").hparams == {"r3f_lambda": 0.1}
    grid = [run(1, 0.1, 80.0), run(1, 1.0, 82.0)]
    for r in grid:
        records.write_record(str(tmp_path / "runs" / f"{r.hparams['r3f_lambda']}" / "record.json"), r.to_dict())
    chosen = demo.choose(str(tmp_path), grids, seed=1)
    assert chosen == {"r3f": {"key": "criterion.r3f_lambda", "value": 1.0, "scores": {0.1: 80.0, 1.0: 82.0}}}
    second = demo.plan_chosen(preset, [1, 2, 3], chosen)
    assert [(j.protocol, j.seed, j.setting) for j in second] == [
        ("generalisation", s, {"criterion.r3f_lambda": 1.0}) for s in (2, 3)
    ]
    # a luckier grid point run on one seed is not what is reported
    assert demo.report_setting(grid + [run(2, 1.0, 70.0), run(3, 1.0, 71.0)], "r3f").seeds == [1, 2, 3]
