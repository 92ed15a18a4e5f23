"""configs/ as the one source of the hyper-parameters: what the YAML says is what runs, and it ships installed."""

import os

import pytest

from rxf_repro import catalog, commands, configs
from tests.helpers import REPO

GLUE = os.path.join(REPO, "configs", "glue")


@pytest.mark.parametrize("task", sorted(catalog.TASKS))
def test_standard_plus_plus_doubles_every_length_of_the_task(task):
    """Standard++: twice the task's max updates, decay length and 6% warmup, in YAML (longer/TASK_std++.yaml)."""
    base = configs.read_yaml(os.path.join(GLUE, f"{task}.yaml"))
    longer = configs.read_yaml(os.path.join(GLUE, "longer", f"{task}_std++.yaml"))
    assert longer["optimization"]["max_update"] == 2 * base["optimization"]["max_update"]
    for key in ("total_num_update", "warmup_updates"):
        assert longer["lr_scheduler"][key] == 2 * base["lr_scheduler"][key]
    composed, _ = configs.compose("glue", task, "std++", ["++task.data=x", "++checkpoint.restore_file=y"])
    assert composed["optimization"]["max_update"] == 2 * base["optimization"]["max_update"]
    standard, _ = configs.compose("glue", task, "std", ["++task.data=x", "++checkpoint.restore_file=y"])
    assert standard["optimization"]["max_update"] == base["optimization"]["max_update"]


def test_grids_are_read_with_hydras_sweep_grammar_and_xnli_has_its_own():
    _, glue = configs.compose("glue", "rte", "r4f", ["++task.data=x", "++checkpoint.restore_file=y"])
    _, xnli = configs.compose("xnli", "xnli", "r4f", ["++task.data=x", "++checkpoint.restore_file=y"])
    assert glue["criterion.r3f_lambda"] == ["0.1", "0.5", "1.0", "5.0"]  # Table 6
    assert xnli["criterion.r3f_lambda"] == ["0.5", "1.0", "3.0", "5.0"]  # Table 9
    assert configs.parse_grid({"a": "range(1,4)"}) == {"a": ["1", "2", "3"]}


@pytest.mark.parametrize("family", ["glue", "xnli", "summarization"])
def test_every_method_searches_as_many_settings_per_task(family):
    """The paper's "hyper-parameter search with equivalent fixed budgets per method": each method's grid in
    configs/ has the same number of settings (GLUE 8, XNLI 8, summarisation 6), Standard's over the learning rate."""
    over = ["++task.data=x", "++checkpoint.restore_file=y"]
    tasks = {"glue": ["rte", "cola", "sst_2"], "xnli": ["xnli"], "summarization": ["cnn_dm"]}[family]
    folder = "summarization" if family == "summarization" else "glue"
    sizes = {}
    for task in tasks:
        for method in catalog.TABLE_METHODS[family]:
            _, grid = configs.compose(folder, task, method, over)
            sizes[(task, method)] = len(commands.settings(grid, sweep=True))
    assert set(sizes.values()) == {6 if family == "summarization" else 8}, sizes
    _, std = configs.compose(folder, tasks[0], "std", over)
    assert list(std) == ["optimization.lr"]
    if family == "glue":
        assert {"[5e-06]", "[1e-05]"} <= set(std["optimization.lr"])  # Table 5's rates are in it
        lr, _ = configs.compose(folder, "rte", "std", [*over, "++optimization.lr=[2e-05]"])
        assert lr["optimization"]["lr"] == [2e-05]  # a setting of the grid, as rxf-run --sweep applies it


def test_r4f_fast_r3f_and_r3fs_controls_are_r3f_plus_one_change():
    over = ["++task.data=x", "++checkpoint.restore_file=y"]
    r3f, r3f_grid = configs.compose("glue", "rte", "r3f", over)
    for method, differs in (
        ("r4f", {("task", "_name"): "sentence_prediction_r4f"}),
        ("fast-r3f", {("criterion", "fast_r3f"): True}),
        ("r3f-same-dropout", {("criterion", "r3f_same_dropout"): True}),
        ("r3f-no-noise", {("criterion", "eps"): 0}),
    ):
        cfg, grid = configs.compose("glue", "rte", method, over)
        for (section, key), value in differs.items():
            assert cfg[section][key] == value
        changed = {key for section, key in differs if section == "criterion"}
        assert {k: v for k, v in cfg["criterion"].items() if k not in changed} == {
            k: v for k, v in r3f["criterion"].items() if k not in changed
        }
        if method == "r3f-no-noise":  # no noise, so no noise type to search: R3F's lambdas alone
            assert grid == {**r3f_grid, "criterion.noise_type": ["uniform"]}
        else:
            assert grid == r3f_grid


# R-Drop's published alphas (Liang et al., NeurIPS 2021, Section 4; from the paper's text, their scripts set none):
# GLUE chosen among 0.1, 0.5, 1.0 per task; BART-large on CNN/DailyMail 0.7.
RDROP_ALPHAS = {"glue": {0.1, 0.5, 1.0}, "summarization": {0.7}}


@pytest.mark.parametrize("family,task", [("glue", "rte"), ("glue", "sts_b"), ("summarization", "cnn_dm")])
def test_r_drops_grid_has_r3fs_size_and_every_published_alpha(family, task):
    """Our rule (method/rdrop.yaml): as many settings per task as R3F's, every published alpha among them, the rest
    within R3F's lambda range (GLUE) or around the published 0.7 (summarisation)."""
    over = ["++task.data=x", "++checkpoint.restore_file=y"]
    cfg, grid = configs.compose(family, task, "rdrop", over)
    _, r3f = configs.compose(family, task, "r3f", over)
    assert list(grid) == ["criterion.rdrop_alpha"]
    alphas = [float(a) for a in grid["criterion.rdrop_alpha"]]
    assert len(set(alphas)) == len(commands.settings(grid, sweep=True)) == len(commands.settings(r3f, sweep=True))
    assert RDROP_ALPHAS[family] <= set(alphas)
    low, high = (0.1, 5.0) if family == "glue" else (0.1, 2.0)
    assert min(alphas) == low and max(alphas) == high
    want = "sentence_prediction_rdrop" if family == "glue" else "label_smoothed_cross_entropy_rdrop"
    assert cfg["criterion"]["_name"] == want and cfg["criterion"]["rdrop_alpha"] in RDROP_ALPHAS[family] | {1.0}
    if family == "summarization":  # label smoothing on both cross-entropies, as every summarisation run has it
        assert (
            cfg["criterion"]["label_smoothing"]
            == configs.compose(family, task, "std", over)[0]["criterion"]["label_smoothing"]
            == 0.1
        )


def test_the_methods_not_in_the_paper_are_extra_to_its_tables():
    """R-Drop and R3F's controls run by name only: no table's method set (what "every method" means) grows."""
    for family, extra in catalog.EXTRA_METHODS.items():
        assert catalog.FAMILY_METHODS[family] == catalog.TABLE_METHODS[family] + extra
        assert not set(extra) & set(catalog.TABLE_METHODS[family]), family
    assert catalog.TABLE_METHODS["glue"] == ("std", "std++", "r3f", "r4f", "fast-r3f", "smart")
    assert catalog.TABLE_METHODS["summarization"] == ("std", "r3f") and catalog.EXTRA_METHODS["xnli"] == ()
    assert {"rdrop", "r3f-no-noise", "r3f-same-dropout"} <= set(catalog.FAMILY_METHODS["probe"])
    assert "rdrop" in catalog.FAMILY_METHODS["summarization"]


def test_the_catalog_agrees_with_the_configs():
    for family, wanted in catalog.FAMILY_METHODS.items():
        assert set(wanted) - {catalog.PRETRAINED} <= set(configs.methods(family)), family
    for folder, names in (("glue", catalog.TASKS), ("summarization", catalog.SUMMARIZATION)):
        for name in names:
            assert os.path.isfile(os.path.join(configs.folder(folder), f"{name}.yaml")), name
    assert catalog.primary_metric("CoLA") == "mcc" and catalog.primary_metric("sst_2") == "accuracy"
    xnli, _ = configs.compose("xnli", "xnli", "std", ["++task.data=x", "++checkpoint.restore_file=y"])
    assert xnli["optimizer"]["adam_eps"] == 1e-08 and xnli["task"]["num_classes"] == 3  # Table 9, not base.yaml's
