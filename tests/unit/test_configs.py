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
        for method in catalog.FAMILY_METHODS[family]:
            _, grid = configs.compose(folder, task, method, over)
            sizes[(task, method)] = len(commands.settings(grid, sweep=True))
    assert set(sizes.values()) == {6 if family == "summarization" else 8}, sizes
    _, std = configs.compose(folder, tasks[0], "std", over)
    assert list(std) == ["optimization.lr"]
    if family == "glue":
        assert {"[5e-06]", "[1e-05]"} <= set(std["optimization.lr"])  # Table 5's rates are in it
        lr, _ = configs.compose(folder, "rte", "std", [*over, "++optimization.lr=[2e-05]"])
        assert lr["optimization"]["lr"] == [2e-05]  # a setting of the grid, as rxf-run --sweep applies it


def test_r4f_and_fast_r3f_are_r3f_plus_one_change():
    over = ["++task.data=x", "++checkpoint.restore_file=y"]
    r3f, r3f_grid = configs.compose("glue", "rte", "r3f", over)
    for method, differs in (
        ("r4f", {("task", "_name"): "sentence_prediction_r4f"}),
        ("fast-r3f", {("criterion", "fast_r3f"): True}),
    ):
        cfg, grid = configs.compose("glue", "rte", method, over)
        assert grid == r3f_grid
        for (section, key), value in differs.items():
            assert cfg[section][key] == value
        assert {k: v for k, v in cfg["criterion"].items() if k != "fast_r3f"} == r3f["criterion"]


def test_the_catalog_agrees_with_the_configs():
    for family, wanted in catalog.FAMILY_METHODS.items():
        assert set(wanted) - {catalog.PRETRAINED} <= set(configs.methods(family)), family
    for folder, names in (("glue", catalog.TASKS), ("summarization", catalog.SUMMARIZATION)):
        for name in names:
            assert os.path.isfile(os.path.join(configs.folder(folder), f"{name}.yaml")), name
    assert catalog.primary_metric("CoLA") == "mcc" and catalog.primary_metric("sst_2") == "accuracy"
    xnli, _ = configs.compose("xnli", "xnli", "std", ["++task.data=x", "++checkpoint.restore_file=y"])
    assert xnli["optimizer"]["adam_eps"] == 1e-08 and xnli["task"]["num_classes"] == 3  # Table 9, not base.yaml's
