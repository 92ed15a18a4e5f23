"""The criterions and the R4F task on tiny fairseq models built in-process."""

import os
import shutil

import pytest
import torch
from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
from fairseq.logging import metrics

import rxf.noise
from rxf.kl import symmetric_kl
from rxf.noise import noised_token_embeddings
from rxf.spectral_norm import SpectralNormLinear, effective_spectral_norms
from rxf_fairseq.criterions.label_smoothed_cross_entropy_r3f import RXFLabelSmoothedCrossEntropyR3FCriterion
from rxf_fairseq.criterions.sentence_prediction_r3f import RXFSentencePredictionR3FCriterion
from rxf_fairseq.errors import OptionError
from rxf_fairseq.model_parts import find_encoder_token_embedding
from rxf_fairseq.tasks.sentence_prediction_r4f import spectrally_normalise_classification_head
from tests.helpers import (
    NO_DROPOUT,
    arch_without_heads_args,
    build,
    capture_model_outputs,
    classification_args,
    first_batch,
    load_reference_criterion,
    masked_lm_args,
    seq2seq_args,
    stock_sentence_prediction,
)


def roberta(toy_data, *extra):
    torch.manual_seed(0)
    task, model, criterion, cfg = build(classification_args(toy_data["cls"], extra))
    return task, model, criterion, first_batch(task)


def test_noise_reaches_roberta_unlike_the_reference(toy_data):
    """With dropout 0 the only difference between the two passes is the noise: ours sees it, the
    reference's RoBERTa criterion does not (RobertaEncoder.forward drops ``token_embeddings``)."""
    task, model, criterion, sample = roberta(toy_data, *NO_DROPOUT, "--eps", "0.1")
    model.train()
    torch.manual_seed(0)
    _, _, ours = criterion(model, sample)
    Reference = load_reference_criterion("sentence_prediction_r3f").SentencePredictionR3F
    reference = Reference(task, 0.1, 1.0, "uniform", "sentence_classification_head", False)
    torch.manual_seed(0)
    _, _, theirs = reference(model, sample)
    print(
        f"\nsymm_kl on one batch of {sample['nsentences']} sentences, dropout 0, eps 0.1: "
        f"rxf_fairseq {ours['symm_kl'].item():.6g}, fairseq examples/rxf {float(theirs['symm_kl']):.6g}"
    )
    assert ours["symm_kl"].item() > 1e-6
    # the reference's value is float32 rounding of KL(P||P) with softmax targets, not signal
    assert float(theirs["symm_kl"]) < 1e-6 < ours["symm_kl"].item() / 1000


def test_kl_matches_fairseq_reference_scaled_by_batch():
    reference = load_reference_criterion("sentence_prediction_r3f").SentencePredictionR3F
    a, b = torch.randn(6, 3), torch.randn(6, 3)
    # The reference divides by the batch size and multiplies by sample_size (= batch) again.
    ref = reference._get_symm_kl(None, b, a) * a.size(0)
    assert symmetric_kl(a, b).item() == pytest.approx(ref.item(), rel=1e-6)


@pytest.mark.parametrize("flags", [["--eps", "0"], ["--r3f-lambda", "0"]])
def test_no_noise_or_no_lambda_gives_the_stock_loss(toy_data, flags):
    task, model, criterion, sample = roberta(toy_data, *NO_DROPOUT, *flags)
    model.train()
    with capture_model_outputs(model) as outputs:
        loss, sample_size, log = criterion(model, sample)
    stock_loss, stock_size, stock_log = stock_sentence_prediction(task)(model, sample)
    assert loss.item() == pytest.approx(stock_loss.item(), rel=1e-6)
    assert sample_size == stock_size and log["ncorrect"] == stock_log["ncorrect"]
    if "--eps" in flags:
        assert log["symm_kl"].item() == 0.0
    else:  # lambda = 0 is standard fine-tuning: no second forward pass at all
        assert len(outputs) == 1 and "symm_kl" not in log


def test_loss_is_task_loss_plus_lambda_times_kl(toy_data):
    task, model, criterion, sample = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05", "--r3f-lambda", "3")
    model.train()
    loss, _, log = criterion(model, sample)
    stock_loss, _, _ = stock_sentence_prediction(task)(model, sample)
    assert loss.item() == pytest.approx(stock_loss.item() + 3 * log["symm_kl"].item(), rel=1e-5)
    assert log["loss"].item() == pytest.approx(loss.item())


def test_gradients_flow_through_both_passes(toy_data):
    task, model, criterion, sample = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05")
    model.train()
    with capture_model_outputs(model) as outputs:
        loss, _, _ = criterion(model, sample)
    loss.backward()
    clean, noised = outputs[0][0], outputs[1][0]
    assert noised.grad_fn is not None
    assert clean.grad.abs().sum().item() > 0 and noised.grad.abs().sum().item() > 0


def test_eval_mode_runs_one_pass(toy_data):
    task, model, criterion, sample = roberta(toy_data)
    model.eval()
    with capture_model_outputs(model) as outputs, torch.no_grad():
        _, _, log = criterion(model, sample)
    assert len(outputs) == 1 and "symm_kl" not in log


def test_regression_gets_a_consistency_term(toy_data, tmp_path):
    data = str(tmp_path / "reg")
    shutil.copytree(os.path.join(toy_data["cls"], "input0"), os.path.join(data, "input0"))
    os.makedirs(os.path.join(data, "label"))
    for split in ("train", "valid"):
        n = len(open(os.path.join(toy_data["root"], "raw", f"{split}.label")).read().split())
        with open(os.path.join(data, "label", f"{split}.label"), "w") as f:
            f.write("\n".join(f"{(i % 50) / 10:.1f}" for i in range(n)) + "\n")
    args = classification_args(data, [*NO_DROPOUT, "--eps", "0.1", "--regression-target"])
    args[args.index("--num-classes") + 1] = "1"
    task, model, criterion, _ = build(args)
    model.train()
    loss, _, log = criterion(model, first_batch(task))
    assert log["noise_sq_err"].item() > 0 and "symm_kl" not in log
    assert torch.isfinite(loss)


def test_bad_arguments_fail_at_start_up_naming_the_flag(toy_data):
    with pytest.raises(ValueError, match="--eps must be >= 0"):
        build(classification_args(toy_data["cls"], ["--eps", "-1"]))
    with pytest.raises(ValueError, match="--r3f-lambda must be >= 0"):
        build(classification_args(toy_data["cls"], ["--r3f-lambda", "-0.5"]))
    with pytest.raises(SystemExit):  # argparse: "--noise-type: invalid choice: 'gaussian'"
        build(classification_args(toy_data["cls"], ["--noise-type", "gaussian"]))


def test_tasks_and_criteria_without_classification_heads_name_the_flag(toy_data):
    """In-process, the same checks raise a ValueError (OptionError) that Python callers can catch."""
    for criterion in ("sentence_prediction_r3f", "sentence_prediction_smart"):
        with pytest.raises(
            OptionError, match=f"--criterion {criterion} .*--classification-head-name .*--task masked_lm"
        ):
            build(masked_lm_args(toy_data, criterion))
    for task in ("sentence_prediction_r4f", "sentence_prediction_probe"):
        with pytest.raises(ValueError, match=f"--task {task} needs .*--classification-head-name .*--arch lstm_lm"):
            build(arch_without_heads_args(toy_data, task))


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--eps", "inf"], "--eps must be >= 0 and finite"),
        (["--eps", "nan"], "--eps must be >= 0 and finite"),
        (["--r3f-lambda", "inf"], "--r3f-lambda must be >= 0 and finite"),
        (["--r3f-lambda", "nan"], "--r3f-lambda must be >= 0 and finite"),
        (["--r3f-lambda", "-1"], "--r3f-lambda must be >= 0"),
        (
            ["--criterion", "sentence_prediction_smart", "--smart-lambda", "inf"],
            "--smart-lambda must be >= 0 and finite",
        ),
        (["--criterion", "sentence_prediction_smart", "--smart-sigma", "nan"], "--smart-sigma must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-step-size", "inf"], "--smart-step-size must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-eps", "inf"], "--smart-eps must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-grad-eps=-1e-6"], "--smart-grad-eps must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-steps", "-2"], "--smart-steps must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-mu", "nan"], "--smart-mu must be >= 0"),
        (["--criterion", "sentence_prediction_smart", "--smart-beta", "1"], r"--smart-beta must be in \[0, 1\)"),
        (["--criterion", "sentence_prediction_smart", "--smart-beta-warmup", "2"], "--smart-beta-warmup must be in"),
        (["--criterion", "sentence_prediction_smart", "--smart-norm", "l1"], "--smart-norm l1 is mt-dnn's"),
        (
            ["--criterion", "sentence_prediction_smart", "--distributed-world-size", "2", "--ddp-backend", "c10d"],
            "--ddp-backend c10d cannot wrap with 2 workers: use --ddp-backend legacy_ddp",
        ),
    ],
)
def test_non_finite_or_negative_options_fail_at_start_up_naming_the_flag(toy_data, flags, match):
    with pytest.raises(OptionError, match=match):
        build(classification_args(toy_data["cls"], flags))


@pytest.mark.parametrize("flags", [["--eps", "inf"], ["--r3f-lambda", "nan"], ["--r3f-lambda", "inf"]])
def test_seq2seq_rejects_non_finite_options(toy_data, flags):
    with pytest.raises(OptionError, match=f"{flags[0]} must be >= 0 and finite"):
        build(seq2seq_args(toy_data["s2s"], flags))


def test_models_without_what_r3f_needs_are_refused(toy_data):
    task, model, criterion, sample = roberta(toy_data, "--classification-head-name", "other_head")
    del model.classification_heads["other_head"]
    with pytest.raises(ValueError, match="--classification-head-name 'other_head'"):
        criterion(model, sample)
    with pytest.raises(ValueError, match="with an encoder"):
        find_encoder_token_embedding(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="--task sentence_prediction_r4f"):
        spectrally_normalise_classification_head(model, "other_head")
    model.classification_heads["other_head"] = torch.nn.Linear(2, 2)
    model.encoder.sentence_encoder.embed_tokens = None  # e.g. a model that embeds differently
    with pytest.raises(ValueError, match="--criterion sentence_prediction_r3f: .* has no embed_tokens"):
        criterion(model, sample)


def test_noise_that_never_reaches_the_model_is_an_error(toy_data):
    _, model, _, sample = roberta(toy_data)
    with pytest.raises(RuntimeError, match="perturbation never reached the model"):
        with noised_token_embeddings(*find_encoder_token_embedding(model), 1e-5, "uniform"):
            pass  # a model that never calls its embedding layer


def test_reduce_metrics_logs_percent_accuracy_and_mean_kl():
    logs = [
        {"loss": 4.0, "ntokens": 40, "nsentences": 4, "sample_size": 4, "ncorrect": 3, "symm_kl": 0.2},
        {"loss": 2.0, "ntokens": 40, "nsentences": 4, "sample_size": 4, "ncorrect": 1, "symm_kl": 0.6},
    ]
    with metrics.aggregate(new_root=True) as agg:
        RXFSentencePredictionR3FCriterion.reduce_metrics(logs)
    values = agg.get_smoothed_values()
    assert values["accuracy"] == 50.0
    assert values["symm_kl"] == pytest.approx(0.1)
    assert values["loss"] == pytest.approx(6.0 / 8 / 0.6931471805599453, abs=1e-3)
    with metrics.aggregate(new_root=True) as agg:
        RXFLabelSmoothedCrossEntropyR3FCriterion.reduce_metrics(
            [{"loss": 3.0, "nll_loss": 2.0, "ntokens": 10, "nsentences": 2, "sample_size": 10, "symm_kl": 0.5}]
        )
    assert agg.get_smoothed_values()["symm_kl"] == pytest.approx(0.05)


# --------------------------------------------------------------------------- seq2seq (BART)


def bart(toy_data, *extra):
    torch.manual_seed(0)  # the same tiny model whatever ran before
    task, model, criterion, cfg = build(seq2seq_args(toy_data["s2s"], extra))
    task.load_dataset("train")
    return task, model, criterion


def batch_of(task, same_lengths: bool):
    """Four training pairs collated; all of one source and target length (no padding) or not."""
    dataset = task.dataset("train")
    by_shape = {}
    for i in range(len(dataset)):
        by_shape.setdefault((int(dataset.src_sizes[i]), int(dataset.tgt_sizes[i])), []).append(i)
    if same_lengths:
        indices = max(by_shape.values(), key=len)[:4]
        assert len(indices) >= 2
    else:
        indices = [group[0] for group in list(by_shape.values())[:4]]
    return dataset.collater([dataset[i] for i in indices])


class FixedNoise:
    """Same noise for ours and the reference: the first entries of one fixed tensor."""

    def __init__(self, eps):
        self.table = (torch.rand(8, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1) * eps

    def sample(self, sample_shape):
        b, t, d = sample_shape
        return self.table[:b, :t, :d].clone()

    def like(self, like, eps, noise_type, generator=None):
        return self.sample(like.shape).to(like)


def test_seq2seq_matches_reference_without_padding_and_masks_padding(toy_data, monkeypatch):
    eps = 0.1
    task, model, criterion = bart(toy_data, *NO_DROPOUT, "--eps", str(eps))
    with torch.no_grad():  # an untrained tiny BART predicts near-uniform distributions whose KL
        for p in model.parameters():  # sits at float32 rounding; sharpen it so the KL is signal
            p.mul_(4)
    noise = FixedNoise(eps)
    monkeypatch.setattr(rxf.noise, "sample_embedding_noise", noise.like)
    Reference = load_reference_criterion("label_smoothed_cross_entropy_r3f").LabelSmoothedCrossEntropyR3FCriterion
    reference = Reference(task, False, 0.1, eps, 1.0, "normal")
    reference.noise_sampler = noise
    model.train()

    sample = batch_of(task, same_lengths=True)
    assert not sample["target"].eq(task.target_dictionary.pad()).any()
    loss, _, ours = criterion(model, sample)
    ref_loss, _, theirs = reference(model, sample)
    print(
        f"\nBART symm_kl without padding: rxf_fairseq {ours['symm_kl'].item():.6g}, "
        f"fairseq examples/rxf {float(theirs['symm_kl']):.6g}"
    )
    assert ours["symm_kl"].item() > 0
    # float32 sums of a few thousand terms, written two ways (softmax vs log-softmax targets)
    assert ours["symm_kl"].item() == pytest.approx(float(theirs["symm_kl"]), rel=1e-4)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)

    padded = batch_of(task, same_lengths=False)
    assert padded["target"].eq(task.target_dictionary.pad()).any()
    _, _, ours = criterion(model, padded)
    _, _, theirs = reference(model, padded)
    assert ours["symm_kl"].item() < float(theirs["symm_kl"])  # the reference also counts padding


def test_seq2seq_noise_only_on_the_encoder_of_shared_embeddings(toy_data):
    task, model, criterion = bart(toy_data)
    embed, encoder = find_encoder_token_embedding(model)
    assert embed is model.decoder.embed_tokens  # --share-all-embeddings
    calls = []
    handle = embed.register_forward_hook(lambda m, a, out: calls.append(out))
    sample = batch_of(task, same_lengths=False)
    with noised_token_embeddings(embed, encoder, 1e-2, "normal") as record:
        model(**sample["net_input"])
    handle.remove()
    assert len(calls) == 2 and record.applications == 1  # encoder noised, decoder clean


def test_seq2seq_zero_noise_gives_the_stock_loss(toy_data):
    task, model, criterion = bart(toy_data, *NO_DROPOUT, "--eps", "0")
    model.train()
    sample = batch_of(task, same_lengths=False)
    loss, sample_size, log = criterion(model, sample)
    stock = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    stock_loss, stock_size, stock_log = stock(model, sample)
    assert log["symm_kl"].item() == 0.0
    assert loss.item() == pytest.approx(stock_loss.item(), rel=1e-6)
    assert log["nll_loss"].item() == pytest.approx(stock_log["nll_loss"].item(), rel=1e-6)


def test_r4f_task_normalises_every_head_layer_of_bart_and_roberta(toy_data):
    for args in (
        classification_args(toy_data["cls"]),
        classification_args(toy_data["cls"], ["--arch", "bart_base", "--add-prev-output-tokens"]),
    ):
        args[args.index("sentence_prediction")] = "sentence_prediction_r4f"
        if "bart_base" in args:  # swap the RoBERTa dims for BART's
            args = [a for a in args[: args.index("--arch")]] + args[args.index("--arch") + 12 :]
            from tests.helpers import TINY_BART

            args += TINY_BART[2:]
        _, model, _, _ = build(args)
        head = model.classification_heads["sentence_classification_head"]
        linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 2 and all(isinstance(m, SpectralNormLinear) for m in linears)
        assert max(effective_spectral_norms(head).values()) <= 1 + 1e-4


def test_same_dropout_replays_the_clean_passs_masks(toy_data):
    """--r3f-same-dropout: the noised pass draws the clean pass's dropout masks, so with dropout on and no noise the
    term is exactly 0 (independent masks give a positive one), and the noise's own term remains with --eps."""

    def symm_kl(*flags):
        _, model, criterion, sample = roberta(toy_data, "--dropout", "0.1", *flags)
        model.train()
        torch.manual_seed(1)
        return criterion(model, sample)[2]["symm_kl"].item()

    assert symm_kl("--eps", "0") > 0
    assert symm_kl("--eps", "0", "--r3f-same-dropout") == 0.0
    assert symm_kl("--eps", "0.1", "--r3f-same-dropout") > 0
    with pytest.raises(OptionError, match="--r3f-same-dropout"):
        roberta(toy_data, "--r3f-same-dropout", "--r3f-one-forward")
