"""Fast R3F, the SMART baseline and the fp16 noise audit."""

import pytest
import torch
from torch import nn

from rxf.kl import symmetric_kl
from rxf.noise import noised_token_embeddings
from rxf.smart import SmartAscent, adversarial_forward
from rxf_fairseq.model_parts import find_encoder_token_embedding
from tests.helpers import NO_DROPOUT, build, capture_model_outputs, classification_args, first_batch


def roberta(toy_data, *extra):
    torch.manual_seed(0)
    task, model, criterion, _ = build(classification_args(toy_data["cls"], extra))
    model.train()
    return model, criterion, first_batch(task)


def loss_and_head_grad(model, criterion, sample, seed=0):
    model.zero_grad()
    torch.manual_seed(seed)
    with capture_model_outputs(model) as outputs:
        loss, _, log = criterion(model, sample)
    loss.backward()
    grad = model.classification_heads["sentence_classification_head"].dense.weight.grad.clone()
    return loss.item(), log, grad, outputs


def test_fast_r3f_has_the_exact_loss_value_but_no_gradient_through_the_noised_pass(toy_data):
    model, exact, sample = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05")
    _, fast, _ = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05", "--fast-r3f")
    exact_loss, exact_log, exact_grad, _ = loss_and_head_grad(model, exact, sample)
    fast_loss, fast_log, fast_grad, outputs = loss_and_head_grad(model, fast, sample)
    assert fast_loss == pytest.approx(exact_loss, rel=1e-6)
    assert fast_log["symm_kl"].item() == pytest.approx(exact_log["symm_kl"].item(), rel=1e-6)
    assert fast_log["symm_kl"].item() > 0
    assert len(outputs) == 2 and outputs[1][0].grad_fn is None  # the noised pass built no graph
    assert not torch.allclose(fast_grad, exact_grad)  # a different (one-sided) objective


def test_the_smart_criterion_runs_rxf_smart_with_its_flags_and_trains_through_both_passes(toy_data, monkeypatch):
    """The wiring, not the method (rxf.smart's proofs, S = 0 being R3F with normal noise and the ascent raising the
    term among them, are tests/unit/test_core.py's; the logged keys and units, tests/unit/test_criterion_logs.py's): the flags
    reach ``adversarial_forward``, called once on the encoder's token embeddings to raise the term against the clean
    pass; the term of its output is the one logged, and it trains through the clean and the final pass."""
    from rxf_fairseq.criterions import sentence_prediction_smart

    calls = []

    def spy(*args):
        output, record = adversarial_forward(*args)
        calls.append((args, output.detach()))
        return output, record

    monkeypatch.setattr(sentence_prediction_smart, "adversarial_forward", spy)
    flags = ["--smart-sigma", "0.01", "--smart-steps", "2", "--smart-step-size", "0.05", "--smart-eps", "0.05"]
    flags += ["--smart-norm", "l2", "--smart-grad-eps", "1e-7", "--smart-mu", "0"]
    model, criterion, sample = roberta(toy_data, *NO_DROPOUT, "--criterion", "sentence_prediction_smart", *flags)
    _, log, grad, outputs = loss_and_head_grad(model, criterion, sample)
    (((wrapped, _, embedding, scope, objective, ascent), adversarial),) = calls
    assert ascent == SmartAscent(sigma=0.01, steps=2, step_size=0.05, norm="l2", radius=0.05, epsilon=1e-7)
    assert wrapped is model and (embedding, scope) == find_encoder_token_embedding(model)
    assert len(outputs) == 4  # clean, two ascent steps, the final adversarial pass
    clean, final = outputs[0][0], outputs[3][0]
    term = symmetric_kl(clean.detach(), adversarial).item()
    assert objective(adversarial).item() == pytest.approx(term, rel=1e-5) and term > 0
    assert log["smart_symm_kl"].item() == pytest.approx(term, rel=1e-5)
    assert clean.grad.abs().sum() > 0 and final.grad.abs().sum() > 0 and grad.abs().sum() > 0


def test_the_smart_teacher_absorbs_once_per_update_whatever_the_micro_batches(toy_data):
    """--smart-lambda 0: the proximal term alone (its pass runs although lambda is 0); the teacher absorbs the
    model once per update (each train() the trainer makes), however many micro-batches the update has, with
    --max-update's schedule."""
    model, criterion, sample = roberta(
        toy_data, *NO_DROPOUT, "--criterion", "sentence_prediction_smart", "--smart-lambda", "0", "--max-update", "40"
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    terms = []
    for _ in range(4):
        criterion.train()
        for _ in range(2):  # --update-freq 2: two forwards, one absorption
            with capture_model_outputs(model) as outputs:
                loss, _, log = criterion(model, sample)
            loss.backward()
        terms.append(log["smart_bregman"].item())
        assert len(outputs) == 2  # the clean pass and the teacher's
        optimizer.step()
        optimizer.zero_grad()
    teacher = criterion.teacher
    assert int(teacher.absorbed) == 4 and teacher.total_updates == 40  # --max-update reaches the criterion
    assert teacher.beta_at(4) == 0.99 and teacher.beta_at(5) == 0.999  # SMART's schedule: 0.99 for 10% of them
    assert terms[0] == 0 < terms[-1], terms  # theta~ = theta_0 at the first update (its growth: test_core.py)
    assert [n for n, p in criterion.named_parameters() if p.requires_grad] == []  # nothing of the teacher trains


@pytest.mark.parametrize("flags", [[], ["--criterion", "sentence_prediction_smart", "--smart-mu", "0"]])
def test_a_criterion_never_holds_the_models_parameters(toy_data, flags):
    """fairseq saves a criterion that has parameters in every checkpoint: the model must not become one of its
    submodules (on GPU each checkpoint would hold the model twice)."""
    model, criterion, sample = roberta(toy_data, *flags)
    criterion(model, sample)[0].backward()
    assert list(criterion.parameters()) == []


def test_bad_smart_flags_are_named(toy_data):
    with pytest.raises(ValueError, match="--smart-steps must be >= 0"):
        build(classification_args(toy_data["cls"], ["--criterion", "sentence_prediction_smart", "--smart-steps", "-1"]))


class HalfEncoderModel(nn.Module):
    """The smallest thing with an encoder calling a (half-precision) token embedding."""

    def __init__(self, scale):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.embed_tokens = nn.Embedding(1000, 256)
        nn.init.normal_(self.encoder.embed_tokens.weight, std=scale)
        self.encoder.embed_tokens.half()
        self.encoder.forward = lambda tokens: self.encoder.embed_tokens(tokens)


@pytest.mark.parametrize("scale", [0.02, 0.1])
def test_fp16_audit_counts_the_noise_that_rounds_away(scale):
    torch.manual_seed(0)
    model = HalfEncoderModel(scale)
    tokens = torch.randint(0, 1000, (16, 64))
    with noised_token_embeddings(model.encoder.embed_tokens, model.encoder, 1e-5, "uniform") as record:
        model.encoder(tokens)
    unchanged = 1 - record.changed.item() / record.elements
    print(f"\nembedding std {scale}: {100 * unchanged:.1f}% of fp16 entries unchanged by U(-1e-5, 1e-5) noise")
    assert record.elements == 16 * 64 * 256
    assert 0.5 <= unchanged <= 0.9  # the numpy simulation: 50-88% for scales 0.02-0.1
    model.encoder.embed_tokens.float()
    with noised_token_embeddings(model.encoder.embed_tokens, model.encoder, 1e-5, "uniform") as record:
        model.encoder(tokens)
    assert record.changed is None  # not audited (nor paid for) in fp32


# ------------------------------------------------------------------ both passes in one forward (--r3f-one-forward)


def all_grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def loss_and_grads(model, criterion, sample, seed=0):
    model.zero_grad()
    torch.manual_seed(seed)  # the same noise for both forms: with dropout 0 nothing else draws from the generator
    with capture_model_outputs(model) as outputs:
        loss, _, log = criterion(model, sample)
    loss.backward()
    return loss, log, all_grads(model), outputs


def assert_same_step(two, one):
    (loss2, log2, grads2, _), (loss1, log1, grads1, outputs1) = two, one
    assert len(outputs1) == 1 and len(two[3]) == 2  # one forward of the doubled batch, against two
    assert loss1.item() == pytest.approx(loss2.item(), rel=1e-5)
    assert log1["symm_kl"].item() == pytest.approx(log2["symm_kl"].item(), rel=1e-4) and log2["symm_kl"] > 0
    assert grads1.keys() == grads2.keys()
    for name in grads2:
        torch.testing.assert_close(grads1[name], grads2[name], rtol=1e-4, atol=1e-6, msg=name)


def test_one_forward_gives_the_two_pass_loss_and_gradients_for_classification(toy_data):
    model, two_pass, sample = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05")
    _, one_forward, _ = roberta(toy_data, *NO_DROPOUT, "--eps", "0.05", "--r3f-one-forward")
    assert_same_step(loss_and_grads(model, two_pass, sample), loss_and_grads(model, one_forward, sample))
    model.eval()  # evaluation: one pass of the batch as it is, no term
    with capture_model_outputs(model) as outputs:
        one_forward(model, sample)
    assert outputs[0][0].shape[0] == sample["nsentences"]


def test_one_forward_gives_the_two_pass_loss_and_gradients_for_seq2seq_with_padding(toy_data):
    from tests.unit.test_criterions import bart, batch_of

    task, model, two_pass = bart(toy_data, *NO_DROPOUT, "--eps", "0.05")
    _, _, one_forward = bart(toy_data, *NO_DROPOUT, "--eps", "0.05", "--r3f-one-forward")
    model.train()
    sample = batch_of(task, same_lengths=False)
    assert sample["target"].eq(task.target_dictionary.pad()).any()  # padded targets, masked in the term
    assert_same_step(loss_and_grads(model, two_pass, sample), loss_and_grads(model, one_forward, sample))


def test_one_forward_with_dropout_runs_one_doubled_pass_and_refuses_fast_r3f(toy_data):
    model, criterion, sample = roberta(toy_data, "--eps", "0.05", "--r3f-one-forward")
    loss, log, grads, outputs = loss_and_grads(model, criterion, sample)
    assert len(outputs) == 1 and log["symm_kl"] > 0 and torch.isfinite(loss)
    from rxf_fairseq.errors import OptionError

    with pytest.raises(OptionError, match="--r3f-one-forward .* --fast-r3f"):
        roberta(toy_data, "--r3f-one-forward", "--fast-r3f")


def test_one_forward_refuses_what_would_be_drawn_once_for_both_copies(toy_data):
    from rxf_fairseq.errors import OptionError

    model, criterion, sample = roberta(toy_data, "--r3f-one-forward", "--encoder-layerdrop", "0.2")
    with pytest.raises(OptionError, match="--r3f-one-forward with --encoder-layerdrop 0.2"):
        criterion(model, sample)
    model, criterion, sample = roberta(toy_data, "--r3f-one-forward", "--quant-noise-pq", "0.1")
    with pytest.raises(OptionError, match="--r3f-one-forward with --quant-noise-pq 0.1"):
        criterion(model, sample)
