"""R-Drop's criteria (sentence_prediction_rdrop, label_smoothed_cross_entropy_rdrop): the objective against the two
passes' logits, their dropout masks, gradients, the stock fallbacks, the option checks and a fairseq-train run."""

import os
import shutil

import pytest
import torch
import torch.nn.functional as F
from fairseq import options
from fairseq.criterions import CRITERION_DATACLASS_REGISTRY, CRITERION_REGISTRY
from fairseq.criterions import label_smoothed_cross_entropy_with_rdrop as rdrop_reference
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.logging import metrics

from rxf_fairseq.criterions.label_smoothed_cross_entropy_rdrop import RXFLabelSmoothedCrossEntropyRDropConfig
from rxf_fairseq.criterions.sentence_prediction_rdrop import RXFSentencePredictionRDropConfig
from rxf_fairseq.errors import OptionError
from tests.helpers import (
    NO_DROPOUT,
    USER_DIR,
    build,
    capture_model_outputs,
    classification_args,
    fairseq_cli,
    first_batch,
    json_records,
    seq2seq_args,
    stock_sentence_prediction,
)

SENTENCE = ["--criterion", "sentence_prediction_rdrop"]
SEQ2SEQ = ["--criterion", "label_smoothed_cross_entropy_rdrop"]
DROPOUT = ["--dropout", "0.1", "--attention-dropout", "0.1"]


def roberta(data, *extra, regression=False):
    torch.manual_seed(0)
    args = classification_args(data, [*SENTENCE, *extra])
    if regression:
        args[args.index("--num-classes") + 1] = "1"
    task, model, criterion, _ = build(args)
    model.train()
    return task, model, criterion, first_batch(task)


def bart(toy_data, *extra):
    """The tiny BART on four training pairs of different lengths: padded targets."""
    torch.manual_seed(0)
    task, model, criterion, _ = build(seq2seq_args(toy_data["s2s"], [*SEQ2SEQ, *extra]))
    task.load_dataset("train")
    dataset = task.dataset("train")
    by_length = {int(dataset.tgt_sizes[i]): i for i in range(len(dataset))}
    sample = dataset.collater([dataset[i] for i in list(by_length.values())[:4]])
    assert sample["target"].eq(task.target_dictionary.pad()).any()
    model.train()
    return task, model, criterion, sample


@pytest.fixture(scope="module")
def regression_data(toy_data, tmp_path_factory):
    """The toy sentences with real-valued labels (an STS-B-like regression task)."""
    data = tmp_path_factory.mktemp("reg") / "data"
    shutil.copytree(os.path.join(toy_data["cls"], "input0"), data / "input0")
    (data / "label").mkdir()
    for split in ("train", "valid"):
        n = len(open(os.path.join(toy_data["root"], "raw", f"{split}.label")).read().split())
        (data / "label" / f"{split}.label").write_text("\n".join(f"{(i % 50) / 10:.1f}" for i in range(n)) + "\n")
    return str(data)


def half_symmetric_kl(logits_1, logits_2, mask=None):
    """1/2 (KL(P1||P2) + KL(P2||P1)) summed over the positions ``mask`` keeps, written out from the probabilities."""
    log_1, log_2 = logits_1.float().log_softmax(-1), logits_2.float().log_softmax(-1)
    per_position = 0.5 * ((log_1.exp() - log_2.exp()) * (log_1 - log_2)).sum(-1)
    return per_position[mask].sum() if mask is not None else per_position.sum()


def run(criterion, model, sample, seed=0):
    """The criterion's (loss, log) and every model output it computed, with retained gradients."""
    torch.manual_seed(seed)
    with capture_model_outputs(model) as outputs:
        loss, sample_size, log = criterion(model, sample)
    return loss, sample_size, log, [output[0] for output in outputs]


# ------------------------------------------------------------------------------------------ the objective


def test_classification_loss_is_both_cross_entropies_plus_alpha_times_the_half_symmetric_kl(toy_data):
    task, model, criterion, sample = roberta(toy_data["cls"], *DROPOUT, "--rdrop-alpha", "0.7")
    loss, sample_size, log, (logits_1, logits_2) = run(criterion, model, sample)
    target = sample["target"].view(-1)
    ce_1, ce_2 = (F.cross_entropy(logits.float(), target, reduction="sum") for logits in (logits_1, logits_2))
    kl = half_symmetric_kl(logits_1, logits_2)
    assert kl.item() > 1e-6  # two dropout masks: the passes differ
    assert loss.item() == pytest.approx((ce_1 + ce_2 + 0.7 * kl).item(), rel=1e-5)
    assert log["rdrop_kl"].item() == pytest.approx(kl.item(), rel=1e-4)
    # fairseq's sums, sample_size and metrics are the first pass's
    assert sample_size == sample["nsentences"] and log["sample_size"] == sample_size
    assert log["task_loss"].item() == pytest.approx(ce_1.item(), rel=1e-5)
    assert log["ncorrect"].item() == (logits_1.argmax(-1) == target).sum().item()
    assert log["loss"].item() == pytest.approx(loss.item())


def test_regression_loss_is_both_squared_errors_plus_alpha_times_the_squared_difference(regression_data):
    task, model, criterion, sample = roberta(
        regression_data, *DROPOUT, "--regression-target", "--rdrop-alpha", "2", regression=True
    )
    loss, _, log, (y_1, y_2) = run(criterion, model, sample)
    target = sample["target"].view(-1).float()
    mse_1, mse_2 = (F.mse_loss(y.view(-1).float(), target, reduction="sum") for y in (y_1, y_2))
    squared_difference = (y_1.float() - y_2.float()).pow(2).sum()
    assert squared_difference.item() > 0
    assert loss.item() == pytest.approx((mse_1 + mse_2 + 2 * squared_difference).item(), rel=1e-5)
    assert log["rdrop_kl"].item() == pytest.approx(squared_difference.item(), rel=1e-5)
    assert log["task_loss"].item() == pytest.approx(mse_1.item(), rel=1e-5)


def test_seq2seq_loss_is_both_label_smoothed_cross_entropies_plus_alpha_times_the_kl_over_target_tokens(toy_data):
    task, model, criterion, sample = bart(toy_data, "--dropout", "0.1", "--rdrop-alpha", "0.5")
    with torch.no_grad():  # sharpen the near-uniform distributions of the untrained model: the KL is then signal
        for p in model.parameters():
            p.mul_(4)
    loss, sample_size, log, (logits_1, logits_2) = run(criterion, model, sample)
    pad, vocab = task.target_dictionary.pad(), logits_1.size(-1)
    target, keep = sample["target"], sample["target"].ne(pad)
    # fairseq's label smoothing (eps spread over the V - 1 wrong classes) is torch's at eps * V / (V - 1)
    smoothing = 0.1 * vocab / (vocab - 1)

    def cross_entropy(logits, smoothing=0.0):
        flat = logits.float().view(-1, vocab)
        return F.cross_entropy(flat, target.view(-1), ignore_index=pad, label_smoothing=smoothing, reduction="sum")

    ce_1, ce_2 = cross_entropy(logits_1, smoothing), cross_entropy(logits_2, smoothing)
    kl = half_symmetric_kl(logits_1, logits_2, keep)
    assert kl.item() > 1e-6 and half_symmetric_kl(logits_1, logits_2).item() > kl.item()  # padding excluded
    # per token, not rescaled by sample_size / nsentences as R3F's seq2seq term is
    assert loss.item() == pytest.approx((ce_1 + ce_2 + 0.5 * kl).item(), rel=1e-5)
    assert log["rdrop_kl"].item() == pytest.approx(kl.item(), rel=1e-4)
    # fairseq's own R-Drop term (label_smoothed_cross_entropy_with_rdrop: R-Drop's compute_kl_loss) on the two passes
    doubled = (torch.cat([logits_1, logits_2]).detach(), None)
    fairseq_kl = rdrop_reference.compute_kl_loss(model, doubled, target.view(-1, 1).eq(pad))
    assert log["rdrop_kl"].item() == pytest.approx(fairseq_kl.item(), rel=1e-4)
    assert sample_size == sample["ntokens"] == keep.sum().item()
    assert log["task_loss"].item() == pytest.approx(ce_1.item(), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(cross_entropy(logits_1).item(), rel=1e-5)


def test_rdrop_kl_is_reduced_per_sample_size_to_three_significant_digits():
    logs = [{"loss": 4.0, "ntokens": 40, "nsentences": 8, "sample_size": 8, "ncorrect": 3, "rdrop_kl": 8 * 1.23456e-7}]
    with metrics.aggregate(new_root=True) as agg:
        CRITERION_REGISTRY["sentence_prediction_rdrop"].reduce_metrics(logs)
    assert agg.get_smoothed_values()["rdrop_kl"] == 1.23e-07
    with metrics.aggregate(new_root=True) as agg:
        CRITERION_REGISTRY["label_smoothed_cross_entropy_rdrop"].reduce_metrics(
            [{"loss": 3.0, "nll_loss": 2.0, "ntokens": 10, "nsentences": 2, "sample_size": 10, "rdrop_kl": 0.5}]
        )
    assert agg.get_smoothed_values()["rdrop_kl"] == pytest.approx(0.05)


# ------------------------------------------------------------------------------------------ dropout and gradients


@pytest.mark.parametrize("family", ["classification", "seq2seq"])
def test_the_passes_draw_their_own_dropout_masks_and_agree_exactly_without_dropout(toy_data, family):
    def term_and_loss(*flags):
        if family == "classification":
            task, model, criterion, sample = roberta(toy_data["cls"], *flags)
            stock = stock_sentence_prediction(task)
        else:
            task, model, criterion, sample = bart(toy_data, *flags)
            stock = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
        loss, _, log, _ = run(criterion, model, sample)
        return log["rdrop_kl"].item(), loss.item(), stock(model, sample)[0].item()

    assert term_and_loss("--dropout", "0.1")[0] > 0
    term, loss, stock_loss = term_and_loss(*NO_DROPOUT)
    assert term == 0.0 and loss == pytest.approx(2 * stock_loss, rel=1e-6)


def test_gradients_flow_through_both_passes(toy_data):
    _, model, criterion, sample = roberta(toy_data["cls"], *DROPOUT)
    loss, _, _, (logits_1, logits_2) = run(criterion, model, sample)
    loss.backward()
    assert logits_1.grad.abs().sum().item() > 0 and logits_2.grad.abs().sum().item() > 0
    assert not torch.allclose(logits_1.grad, logits_2.grad)  # each pass its own cross-entropy and side of the term


# ------------------------------------------------------------------------------------------ the stock fallbacks


def test_evaluation_is_the_stock_criterion(toy_data):
    task, model, criterion, sample = roberta(toy_data["cls"], *DROPOUT)
    model.eval()
    with torch.no_grad():
        loss, sample_size, log, outputs = run(criterion, model, sample)
        stock_loss, stock_size, stock_log = stock_sentence_prediction(task)(model, sample)
    assert len(outputs) == 1 and "rdrop_kl" not in log
    assert loss.item() == stock_loss.item() and sample_size == stock_size
    assert log["ncorrect"] == stock_log["ncorrect"] and log["task_loss"] is log["loss"]


@pytest.mark.parametrize("family", ["classification", "seq2seq"])
def test_alpha_zero_is_one_stock_pass(toy_data, family):
    if family == "classification":
        task, model, criterion, sample = roberta(toy_data["cls"], *DROPOUT, "--rdrop-alpha", "0")
        stock = stock_sentence_prediction(task)
    else:
        task, model, criterion, sample = bart(toy_data, "--dropout", "0.1", "--rdrop-alpha", "0")
        stock = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    loss, _, log, outputs = run(criterion, model, sample, seed=3)
    torch.manual_seed(3)  # the same dropout masks
    stock_loss, _, _ = stock(model, sample)
    assert len(outputs) == 1 and "rdrop_kl" not in log
    assert loss.item() == stock_loss.item()


def test_the_r4f_task_takes_the_rdrop_criterion(toy_data, tmp_path):
    """fairseq-train end to end: a few updates of R-Drop on the R4F task's spectrally normalised head; the term
    is logged per update and per epoch."""
    args = classification_args(
        toy_data["cls"],
        [*SENTENCE, "--max-update", "3", "--no-save", "--log-format", "json", "--log-interval", "1"],
        task="sentence_prediction_r4f",
    )
    out = fairseq_cli("train", args, cwd=str(tmp_path)).stdout
    assert "SpectralNormLinear" in out
    inner = json_records(out, "train_inner")
    assert len(inner) == 3 and all(float(record["rdrop_kl"]) > 0 for record in inner)
    last = json_records(out, "train")[-1]
    assert float(last["train_rdrop_kl"]) > 0 and float(last["train_loss"]) > float(last["train_task_loss"])
    assert "valid_rdrop_kl" not in json_records(out, "valid")[-1]  # validation: the stock criterion


# ------------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
@pytest.mark.parametrize("family", ["classification", "seq2seq"])
def test_a_bad_alpha_fails_at_start_up_naming_the_flag(toy_data, value, family):
    args = (
        classification_args(toy_data["cls"], SENTENCE)
        if family == "classification"
        else seq2seq_args(toy_data["s2s"], SEQ2SEQ)
    )
    with pytest.raises(OptionError, match=f": error: --rdrop-alpha must be >= 0 and finite, got {value}"):
        build([*args, f"--rdrop-alpha={value}"])


def test_check_options_runs_without_a_task_or_model():
    for name, config in (
        ("sentence_prediction_rdrop", RXFSentencePredictionRDropConfig),
        ("label_smoothed_cross_entropy_rdrop", RXFLabelSmoothedCrossEntropyRDropConfig),
    ):
        CRITERION_REGISTRY[name].check_options(config(rdrop_alpha=0.5))
        with pytest.raises(OptionError, match="--rdrop-alpha must be >= 0 and finite, got -0.1"):
            CRITERION_REGISTRY[name].check_options(config(rdrop_alpha=-0.1))


@pytest.mark.parametrize(
    "task,criterion,arch",
    [
        ("sentence_prediction_r4f", "sentence_prediction_rdrop", "roberta_base"),
        ("translation", "label_smoothed_cross_entropy_rdrop", "bart_base"),
    ],
)
def test_every_option_has_help(toy_data, task, criterion, arch):
    """Each flag of the criterion's dataclass, fairseq's inherited ones included, has help in fairseq-train --help."""
    parser = options.get_training_parser()
    argv = [toy_data["cls"], "--user-dir", USER_DIR, "--task", task, "--criterion", criterion, "--arch", arch]
    options.parse_args_and_arch(parser, argv)
    config = CRITERION_DATACLASS_REGISTRY[criterion]()
    flags = {"--" + name.replace("_", "-") for name in config._get_all_attributes() if name != "_name"}
    flags = {flag for flag in flags if not str(config._get_default(flag[2:].replace("-", "_"))).startswith("${")}
    helped = {
        flag for action in parser._actions if action.help and action.help.strip() for flag in action.option_strings
    }
    assert "--rdrop-alpha" in flags and flags <= helped
