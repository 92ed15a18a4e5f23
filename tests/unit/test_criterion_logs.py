"""What the R3F and SMART criteria log and in which units, the lambda-grid warning, and their help text."""

import argparse
import logging
import math

import pytest
import torch
from fairseq import options
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.logging import metrics
from fairseq.tasks import TASK_DATACLASS_REGISTRY

from rxf_fairseq.criterions import label_smoothed_cross_entropy_r3f, sentence_prediction_r3f
from rxf_repro import configs as rxf_configs
from tests.helpers import NO_DROPOUT, USER_DIR, build, classification_args, seq2seq_args, stock_sentence_prediction

LN2 = math.log(2)
GRIDS = {
    "sentence_prediction_r3f": sentence_prediction_r3f.PAPER_LAMBDA_GRIDS,
    "label_smoothed_cross_entropy_r3f": label_smoothed_cross_entropy_r3f.PAPER_LAMBDA_GRIDS,
}


def batches(task, n: int, split: str = "valid", size: int = 8):
    task.load_dataset(split)
    itr = task.get_batch_iterator(
        task.dataset(split), max_sentences=size, seed=1, ignore_invalid_inputs=True
    ).next_epoch_itr(shuffle=False)
    return [next(itr) for _ in range(n)]


def classifier(toy_data, *extra):
    torch.manual_seed(0)
    task, model, criterion, _ = build(classification_args(toy_data["cls"], [*NO_DROPOUT, *extra]))
    model.train()
    return task, model, criterion


def smoothed(criterion_class, logs):
    with metrics.aggregate(new_root=True) as agg:
        criterion_class.reduce_metrics(logs)
    return agg.get_smoothed_values(), agg


def summed(logs):
    """What fairseq's trainer hands reduce_metrics when logging_outputs_can_be_summed(): one log, the sum."""
    return [{key: sum(log[key] for log in logs) for key in logs[0]}]


# ------------------------------------------------------------------------------------------ what is logged


def test_task_loss_is_logged_alone_in_the_units_of_fairseqs_loss(toy_data):
    task, model, criterion = classifier(toy_data, "--eps", "0.05", "--r3f-lambda", "3")
    (sample,) = batches(task, 1)
    torch.manual_seed(0)
    loss, sample_size, log = criterion(model, sample)
    stock = stock_sentence_prediction(task)
    stock_loss, _, _ = stock(model, sample)
    assert log["task_loss"].item() == pytest.approx(stock_loss.item(), rel=1e-6)
    assert log["loss"].item() == pytest.approx(log["task_loss"].item() + 3 * log["symm_kl"].item(), rel=1e-6)

    values, _ = smoothed(type(criterion), [log])
    # fairseq's loss: summed loss / sample_size / ln 2 (bits), 3 decimals; task_loss the same, without lambda * KL
    assert values["loss"] == pytest.approx(round(loss.item() / sample_size / LN2, 3), abs=1e-12)
    assert values["task_loss"] == pytest.approx(round(stock_loss.item() / sample_size / LN2, 3), abs=1e-12)
    assert values["task_loss"] < values["loss"]
    # the KL per sentence in nats, not weighted by lambda: loss = task_loss + lambda * symm_kl / ln 2
    assert values["symm_kl"] == float(f"{log['symm_kl'].item() / sample_size:.3g}")
    assert values["loss"] == pytest.approx(values["task_loss"] + 3 * values["symm_kl"] / LN2, abs=1.1e-3)


def test_evaluation_and_lambda_zero_log_the_task_loss_too(toy_data):
    task, model, criterion = classifier(toy_data)
    (sample,) = batches(task, 1)
    model.eval()
    with torch.no_grad():
        _, _, log = criterion(model, sample)
    assert log["task_loss"] is log["loss"] and "symm_kl" not in log
    task, model, criterion = classifier(toy_data, "--r3f-lambda", "0")
    _, _, log = criterion(model, sample)
    assert log["task_loss"] is log["loss"] and "symm_kl" not in log


def test_consistency_terms_keep_significant_digits_not_decimals():
    """fairseq's 3 decimals would print the paper-scale KL (about 1e-7 at eps 1e-5) as 0."""
    logs = [
        {
            "loss": 4.0,
            "task_loss": 4.0,
            "ntokens": 40,
            "nsentences": 8,
            "sample_size": 8,
            "ncorrect": 3,
            "symm_kl": torch.tensor(8 * 2.34567e-7),
        }
    ]
    values, agg = smoothed(sentence_prediction_r3f.RXFSentencePredictionR3FCriterion, logs)
    assert values["symm_kl"] == 2.35e-07
    assert "_symm_kl" not in values and agg["_symm_kl"].avg == pytest.approx(2.34567e-7)  # full precision kept
    assert values["loss"] == round(4.0 / 8 / LN2, 3)


def test_smart_logs_its_term_under_its_own_key(toy_data):
    task, model, criterion = classifier(toy_data, "--criterion", "sentence_prediction_smart", "--smart-sigma", "0.05")
    (sample,) = batches(task, 1)
    _, _, log = criterion(model, sample)
    assert log["smart_symm_kl"].item() > 0 and "symm_kl" not in log
    assert log["smart_bregman"].item() >= 0  # the proximal term (mu = 1), against the teacher just copied
    total = log["task_loss"].item() + log["smart_symm_kl"].item() + log["smart_bregman"].item()
    assert log["loss"].item() == pytest.approx(total, rel=1e-6)
    values, _ = smoothed(type(criterion), [log])
    assert values["smart_symm_kl"] > 0 and "symm_kl" not in values and "task_loss" in values
    assert "smart_bregman" in values


def test_seq2seq_logs_the_label_smoothed_task_loss_next_to_fairseqs_nll_loss(toy_data):
    torch.manual_seed(0)
    task, model, criterion, _ = build(
        seq2seq_args(toy_data["s2s"], [*NO_DROPOUT, "--eps", "0.1", "--r3f-lambda", "0.1"])
    )
    model.train()
    (sample,) = batches(task, 1, split="train", size=4)
    loss, sample_size, log = criterion(model, sample)
    stock_loss, _, stock_log = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)(model, sample)
    assert log["task_loss"].item() == pytest.approx(stock_loss.item(), rel=1e-6)
    values, _ = smoothed(type(criterion), [log])
    assert values["task_loss"] == pytest.approx(round(stock_loss.item() / sample_size / LN2, 3), abs=1e-12)
    assert values["nll_loss"] == pytest.approx(round(stock_log["nll_loss"].item() / log["ntokens"] / LN2, 3), abs=1e-12)
    assert values["loss"] == pytest.approx(values["task_loss"] + 0.1 * values["symm_kl"] / LN2, abs=1.1e-3)


@pytest.mark.parametrize(
    "criterion", ["sentence_prediction_r3f", "sentence_prediction_smart", "label_smoothed_cross_entropy_r3f"]
)
def test_metrics_are_the_same_when_worker_logs_are_summed_first(toy_data, criterion):
    """logging_outputs_can_be_summed() is True: fairseq then reduces the sum of the workers' logs, which
    must give what reducing the separate logs gives."""
    torch.manual_seed(0)
    if criterion == "label_smoothed_cross_entropy_r3f":
        task, model, crit, _ = build(seq2seq_args(toy_data["s2s"], ["--eps", "0.1", "--r3f-lambda", "0.1"]))
        samples = batches(task, 2, split="train", size=4)
    else:
        noise = ["--smart-sigma", "0.1"] if criterion == "sentence_prediction_smart" else ["--eps", "0.1"]
        task, model, crit, _ = build(classification_args(toy_data["cls"], ["--criterion", criterion, *noise]))
        samples = batches(task, 2)
    model.train()
    logs = [crit(model, sample)[2] for sample in samples]
    assert crit.logging_outputs_can_be_summed()
    separate, _ = smoothed(type(crit), logs)
    together, _ = smoothed(type(crit), summed(logs))
    assert {"loss", "task_loss"} <= separate.keys()
    assert separate.keys() == together.keys()
    for key, value in separate.items():
        assert together[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_prediction_lists_make_the_logs_unsummable(toy_data):
    _, _, criterion = classifier(toy_data, "--report-mcc")
    assert not criterion.logging_outputs_can_be_summed()


# ------------------------------------------------------------------------------------- the lambda grid


@pytest.mark.parametrize(
    "kind,flags,warned",
    [
        ("cls", [], False),
        ("cls", ["--r3f-lambda", "0.1"], False),
        ("cls", ["--r3f-lambda", "3"], False),
        ("cls", ["--r3f-lambda", "0"], False),
        ("cls", ["--r3f-lambda", "10"], True),
        ("cls", ["--r3f-lambda", "0.05"], True),
        ("s2s", [], True),
        ("s2s", ["--r3f-lambda", "0.01"], False),
        ("s2s", ["--r3f-lambda", "0.5"], True),
    ],
)
def test_lambda_outside_the_papers_grid_warns_once_at_start_up(toy_data, caplog, kind, flags, warned):
    caplog.set_level(logging.WARNING, logger="rxf_fairseq")
    build(classification_args(toy_data["cls"], flags) if kind == "cls" else seq2seq_args(toy_data["s2s"], flags))
    warnings = [r for r in caplog.records if "outside the paper's grid" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0)
    if warned:
        message = warnings[0].getMessage()
        assert warnings[0].levelno == logging.WARNING and "--r3f-lambda" in message
        assert ("(the default)" in message) == (flags == [])
        tables = ("Table 6", "Table 9") if kind == "cls" else ("Table 8",)
        assert all(table in message for table in tables)


def test_lambda_grids_match_the_configs_sweeper_params():
    """The criteria keep the paper's grids as constants (the plugin works without configs/); they must be
    exactly what each benchmark's configs sweep, as composed (XNLI's grid replaces GLUE's in grid/xnli_*.yaml)."""
    benches = {"glue": ("glue", "rte"), "xnli": ("glue", "xnli"), "summarization": ("summarization", "cnn_dm")}
    seen = set()
    for bench, (family, name) in benches.items():
        for method in rxf_configs.methods(family):
            config, grid = rxf_configs.compose(family, name, method)
            criterion = config["criterion"]["_name"]
            if criterion not in GRIDS:
                continue
            swept = tuple(float(v) for v in grid["criterion.r3f_lambda"])
            assert swept == GRIDS[criterion][bench][1], (bench, method)
            seen.add((criterion, bench))
    assert seen == {(name, bench) for name, grids in GRIDS.items() for bench in grids}


# -------------------------------------------------------------------------------------------- help text


@pytest.mark.parametrize(
    "task,criterion,arch",
    [
        ("sentence_prediction_r4f", "sentence_prediction_r3f", "roberta_base"),
        ("sentence_prediction_probe", "sentence_prediction_smart", "roberta_base"),
        ("translation", "label_smoothed_cross_entropy_r3f", "bart_base"),
    ],
)
def test_every_option_of_our_criteria_and_tasks_has_help(toy_data, task, criterion, arch):
    """Parsed as fairseq-train parses (and prints --help): each flag of our dataclasses, fairseq's inherited
    ones included, has a non-empty help text."""
    parser = options.get_training_parser()
    options.parse_args_and_arch(
        parser, [toy_data["cls"], "--user-dir", USER_DIR, "--task", task, "--criterion", criterion, "--arch", arch]
    )
    ours = [CRITERION_DATACLASS_REGISTRY[criterion]()]
    if task in TASK_DATACLASS_REGISTRY and task.startswith("sentence_prediction_"):
        ours.append(TASK_DATACLASS_REGISTRY[task]())
    help_text = parser.format_help()
    checked = 0
    for config in ours:
        for name in config._get_all_attributes():
            default = config._get_default(name)
            if name == "_name" or (isinstance(default, str) and default.startswith("${")):
                continue  # not a flag: fairseq fills it from another option
            flag = "--" + name.replace("_", "-")
            actions = [a for a in parser._actions if flag in a.option_strings or (name == "data" and a.dest == "data")]
            assert actions, f"{flag} is not an option of fairseq-train --task {task} --criterion {criterion}"
            assert actions[0].help and actions[0].help.strip() and actions[0].help != argparse.SUPPRESS, flag
            assert name == "data" or flag in help_text
            checked += 1
    assert checked >= 7
