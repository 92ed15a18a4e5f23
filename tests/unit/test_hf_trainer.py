"""R3F, R4F, SMART and R-Drop for transformers' Trainer (``rxf.hf``): the noise reaches the model, eps 0 adds exactly
0, the term is the plugin's (parity with fairseq on the imported MiniLM), padding is masked, R4F's head stays
1-Lipschitz and reloads with the same outputs; R-Drop's objective from the two passes' logits."""

import json
import os

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")

from transformers import BartConfig, BartForConditionalGeneration, BertConfig, BertForSequenceClassification  # noqa: E402

from rxf.hf import R3FTrainer, RDropTrainer, SMARTTrainer, apply_r4f, input_embedding_and_scope, load_r4f  # noqa: E402
from rxf.kl import symmetric_kl  # noqa: E402
from rxf.noise import noised_token_embeddings  # noqa: E402
from rxf.smart import SmartAscent, adversarial_forward  # noqa: E402
from rxf.spectral_norm import effective_spectral_norms  # noqa: E402
from tests.helpers import HF_TINY, REPO, hf_training_args, tiny_bert  # noqa: E402


def batch(n=4, length=10, num_labels=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, 7:] = 0  # one padded sentence
    labels = torch.randint(0, num_labels, (n,), generator=g) if num_labels > 1 else torch.randn(n, generator=g)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def training_args(tmp_path, **overrides):
    return hf_training_args(overrides.pop("output_dir", str(tmp_path / "out")), **overrides)


def trainer(model, tmp_path, **options):
    return R3FTrainer(model=model, args=training_args(tmp_path), **options)


def test_the_noise_reaches_the_model_once_and_eps_0_adds_exactly_0(tmp_path):
    model = tiny_bert().train()
    inputs = batch()
    zero = trainer(model, tmp_path, eps=0.0)
    stock = zero.__class__.__mro__[1].compute_loss(zero, model, dict(inputs))  # transformers' own Trainer
    assert torch.equal(zero.compute_loss(model, dict(inputs)), stock)  # no dropout, no noise: KL exactly 0
    noised = trainer(model, tmp_path, eps=1e-2)
    _, record = noised.noised_outputs(model, {k: v for k, v in inputs.items() if k != "labels"})
    assert record.applications == 1  # the word embeddings' output, once per pass
    assert noised.compute_loss(model, dict(inputs)) > stock
    assert noised._terms_log["symm_kl"][-1] > 0


def test_gradients_go_through_both_passes_unless_fast(tmp_path):
    model = tiny_bert().train()
    seen = []
    handle = model.classifier.register_forward_hook(lambda m, a, out: seen.append(out))
    for fast in (False, True):
        seen.clear()
        trainer(model, tmp_path, eps=1e-2, fast_r3f=fast).compute_loss(model, dict(batch())).backward()
        assert len(seen) == 2 and (seen[1].grad_fn is None) == fast
    handle.remove()


def test_models_r3f_cannot_perturb_are_refused(tmp_path):
    class NoEmbeddings(nn.Module):
        config = BertConfig()

        def get_input_embeddings(self):
            return None

    with pytest.raises(ValueError, match="NoEmbeddings has no input embeddings"):
        input_embedding_and_scope(NoEmbeddings())
    multi = tiny_bert(num_labels=3, problem_type="multi_label_classification").train()
    inputs = dict(batch(), labels=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="multi_label_classification"):
        trainer(multi, tmp_path).compute_loss(multi, inputs)
    with pytest.raises(ValueError, match="r3f_lambda must be >= 0"):
        trainer(tiny_bert(), tmp_path, r3f_lambda=float("nan"))


def test_bf16_computes_the_term_in_fp32_and_reports_how_much_noise_survived(tmp_path):
    model = tiny_bert().to(torch.bfloat16).train()
    t = trainer(model, tmp_path, eps=1e-5)
    clean = model(**{k: v for k, v in batch().items() if k != "labels"}).logits
    noised, record = t.noised_outputs(model, {k: v for k, v in batch().items() if k != "labels"})
    assert clean.dtype == torch.bfloat16 and symmetric_kl(clean, noised.logits).dtype == torch.float32
    t.compute_loss(model, dict(batch()))
    changed = float(t._terms_log["noise_changed_pct"][0])
    assert 0 <= changed < 50  # most of a 1e-5 noise rounds away in bf16 embeddings
    assert record.changed is not None and record.elements == 4 * 10 * 32


def test_regression_uses_the_squared_change(tmp_path):
    model = tiny_bert(num_labels=1).train()
    t = trainer(model, tmp_path, eps=1e-2)
    t.compute_loss(model, dict(batch(num_labels=1)))
    assert set(t._terms_log) == {"noise_sq_err"} and t._terms_log["noise_sq_err"][0] > 0


def test_seq2seq_noise_stays_in_the_encoder_and_padding_is_masked(tmp_path):
    model = tiny_bart().train()
    embedding, scope = input_embedding_and_scope(model)
    assert scope is model.get_encoder() and embedding.weight is model.get_input_embeddings().weight
    ids = torch.randint(4, 60, (3, 8))
    labels = torch.randint(4, 60, (3, 6))
    labels[0, 4:] = -100  # padding of the targets
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    t = trainer(model, tmp_path, eps=1e-2)
    torch.manual_seed(5)
    t.compute_loss(model, dict(inputs))
    with torch.no_grad():
        clean = model(**inputs).logits
        torch.manual_seed(5)
        with noised_token_embeddings(embedding, scope, 1e-2, "uniform") as record:
            noised = model(**inputs).logits
    assert record.applications == 1  # the encoder's call; the decoder shares the matrix and stays clean
    expected = symmetric_kl(clean, noised, labels.ne(-100)).item() / 3
    assert float(t._terms_log["symm_kl"][0]) == pytest.approx(expected, rel=1e-4)
    assert expected < symmetric_kl(clean, noised).item() / 3  # the masked positions would have added to it


def test_r4f_keeps_every_head_matrix_1_lipschitz_and_reloads_with_the_same_outputs(tmp_path):
    model = tiny_bert()
    assert apply_r4f(model) == ["classifier", "bert.pooler.dense"]
    data = [{k: v[i] for k, v in batch(n=8, seed=s).items()} for s in range(3) for i in range(8)]
    t = trainer(model, tmp_path, eps=1e-2, train_dataset=data)
    t.train()
    assert any("symm_kl" in entry for entry in t.state.log_history)
    for name in ("classifier", "bert.pooler.dense"):
        (sigma,) = effective_spectral_norms(nn.Sequential(model.get_submodule(name))).values()
        assert sigma <= 1 + 1e-3, name
    model.save_pretrained(str(tmp_path / "saved"))
    assert json.load(open(tmp_path / "saved" / "config.json"))["rxf_r4f_layers"] == ["classifier", "bert.pooler.dense"]
    reloaded = load_r4f(BertForSequenceClassification, str(tmp_path / "saved")).eval()
    inputs = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():  # a model built from its config and one from from_pretrained: the same weights, bits
        # apart by reordering (6e-8 seen); re-warmed power iterations would be 4e-5 apart, raw weights 0.5
        torch.testing.assert_close(reloaded(**inputs).logits, model.eval()(**inputs).logits, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="not saved with R4F"):
        tiny_bert().save_pretrained(str(tmp_path / "plain"))
        load_r4f(BertForSequenceClassification, str(tmp_path / "plain"))


def test_the_readme_example_runs(tmp_path, monkeypatch):
    """README's transformers example, as written, with MODEL a tiny BERT saved here and a tiny dataset."""
    import re

    readme = open(os.path.join(REPO, "README.md")).read()
    (code,) = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    tiny_bert().save_pretrained(str(tmp_path / "model"))
    train = [{k: v[i] for k, v in batch(n=8).items()} for i in range(8)]
    monkeypatch.chdir(tmp_path)
    scope = {"MODEL": str(tmp_path / "model"), "train": train}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["model"].config.rxf_r4f_layers == ["classifier", "bert.pooler.dense"]


# ------------------------------------------------------------------------------------------------ SMART


def smart_trainer(model, tmp_path, train_dataset=None, args=None, **options):
    return SMARTTrainer(
        model=model, args=training_args(tmp_path, **(args or {})), train_dataset=train_dataset, **options
    )


def examples(n_batches=3, n=8):
    return [{k: v[i] for k, v in batch(n=n, seed=s).items()} for s in range(n_batches) for i in range(n)]


def test_smart_trainer_runs_rxf_smart_with_its_options_and_adds_the_terms_it_logs(tmp_path, monkeypatch):
    """The wiring, not the method (rxf.smart's proofs, S = 0 being R3F with normal noise and the ascent raising the
    term among them, are tests/unit/test_core.py's): each step hands SMARTTrainer's options to ``adversarial_forward`` once,
    on the model's input embeddings, with the consistency term against the clean pass as what the ascent raises; the
    loss is the task loss + lambda * the term logged as smart_symm_kl + mu * the term against the teacher (theta_0 at
    the first update, absorbed once per update), logged as smart_bregman."""
    import rxf.hf

    calls = []

    def spy(*args):
        output, record = adversarial_forward(*args)
        calls.append((args, output.detach()))
        return output, record

    monkeypatch.setattr(rxf.hf, "adversarial_forward", spy)
    model = tiny_bert().train()
    options = dict(smart_sigma=1e-3, smart_steps=2, smart_step_size=0.05, smart_eps=1e-2, smart_norm="l2")
    teacher_options = dict(smart_beta=0.9, smart_beta_start=0.8, smart_beta_warmup=0.2)
    t = smart_trainer(
        model, tmp_path, smart_lambda=3.0, smart_mu=0.5, smart_grad_eps=1e-7, **options, **teacher_options
    )
    assert (t.teacher.beta, t.teacher.beta_start, t.teacher.start_fraction) == (0.9, 0.8, 0.2)
    inputs = batch()
    bregman = []
    for update in range(2):
        t.state.global_step, t._terms_log = update, {}
        calls.clear()
        loss = t.compute_loss(model, dict(inputs))
        (((wrapped, _, embedding, scope, objective, ascent), adversarial),) = calls
        assert ascent == SmartAscent(sigma=1e-3, steps=2, step_size=0.05, norm="l2", radius=1e-2, epsilon=1e-7)
        assert wrapped is model and (embedding, scope) == input_embedding_and_scope(model)
        with torch.no_grad():
            clean = model(**inputs)
            teacher = t.teacher.outputs(model, lambda net: net(**inputs).logits)
            term = symmetric_kl(clean.logits, adversarial).item()
            assert objective(adversarial).item() == pytest.approx(term, rel=1e-5)
        logged = {key: float(values[0]) for key, values in t._terms_log.items()}
        assert logged.keys() == {"smart_symm_kl", "smart_bregman"}
        assert logged["smart_symm_kl"] == pytest.approx(term / 4, rel=1e-5)
        bregman.append(symmetric_kl(teacher, clean.logits).item() / 4)
        assert logged["smart_bregman"] == pytest.approx(bregman[-1], rel=1e-5, abs=1e-12)
        assert loss.item() == pytest.approx(clean.loss.item() + 3.0 * term / 4 + 0.5 * bregman[-1], rel=1e-5)
        loss.backward()
        with torch.no_grad():  # an update, so that the teacher lags behind
            for p in model.parameters():
                p -= 0.5 * p.grad
                p.grad = None
    assert int(t.teacher.absorbed) == 2 and bregman[0] == 0 and bregman[1] > 0


def test_smart_teacher_absorbs_once_per_update_and_starts_at_theta_0(tmp_path):
    model = tiny_bert()
    t = smart_trainer(model, tmp_path, examples(), args=dict(gradient_accumulation_steps=2, logging_steps=1))
    forwards = []
    t.teacher.register_forward_pre_hook(lambda *a: forwards.append(1))  # never called as a module itself
    t.train()
    assert int(t.teacher.absorbed) == 6 and not forwards  # 6 updates of 2 micro-batches each
    assert t.teacher.total_updates == 6  # from max_steps
    bregman = [e["smart_bregman"] for e in t.state.log_history if "smart_bregman" in e]
    assert bregman[0] == 0.0 and bregman[-1] > 0  # theta~ = theta_0 during the first update, then it lags behind
    assert all(e["smart_symm_kl"] > 0 for e in t.state.log_history if "smart_symm_kl" in e)
    t.train()  # a second run (as a hyper-parameter search's next trial): a new teacher, from this run's theta_0
    assert int(t.teacher.absorbed) == 6


def test_smart_resumed_from_a_checkpoint_continues_exactly(tmp_path):
    def run(out, resume=None, steps=4):
        model = tiny_bert()
        t = smart_trainer(
            model,
            tmp_path,
            examples(n_batches=2),
            args=dict(output_dir=str(out), max_steps=steps, save_strategy="steps", save_steps=2, seed=7),
        )
        t.train(resume_from_checkpoint=resume)
        return model, t.teacher

    whole, whole_teacher = run(tmp_path / "whole")
    assert (tmp_path / "whole" / "checkpoint-2" / "smart_teacher.pt").is_file()
    resumed, resumed_teacher = run(tmp_path / "resumed", resume=str(tmp_path / "whole" / "checkpoint-2"))
    assert int(resumed_teacher.absorbed) == int(whole_teacher.absorbed) == 4
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    for name, copy in whole_teacher.copies.items():
        assert torch.allclose(copy, resumed_teacher.copies[name], atol=1e-6), name


def test_smart_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="smart_lambda must be >= 0"):
        smart_trainer(tiny_bert(), tmp_path, smart_lambda=float("nan"))
    with pytest.raises(ValueError, match="l1 is mt-dnn's only"):
        smart_trainer(tiny_bert(), tmp_path, smart_norm="l1")
    with pytest.raises(ValueError, match="momentum beta must be in"):
        smart_trainer(tiny_bert(), tmp_path, smart_beta=1.0)
    with pytest.raises(ValueError, match="smart_steps must be an integer"):
        smart_trainer(tiny_bert(), tmp_path, smart_steps=1.5)


def test_gradient_accumulation_keeps_the_terms_weight_against_the_task_loss(tmp_path):
    """The same 8 sentences in one batch or in two accumulated halves: the same gradient, task loss and term alike
    (transformers would otherwise leave BERT's per-batch mean loss undivided by the accumulation steps)."""
    from rxf.hf import ConsistencyTrainer

    class SquaredLogits(ConsistencyTrainer):  # a deterministic stand-in for the R3F term
        weight = 1.0

        def regularised(self):
            return True

        def terms(self, model, inputs, clean, labels):
            return [(self.weight, clean.float().pow(2).sum(), "sq")]

    data = batch(n=8)

    def gradient(steps, weight):
        model = tiny_bert()
        args = training_args(tmp_path, gradient_accumulation_steps=steps, per_device_train_batch_size=8 // steps)
        t = SquaredLogits(model=model, args=args)
        t.weight = weight
        t.create_optimizer_and_scheduler(num_training_steps=1)
        t.current_gradient_accumulation_steps = steps
        for part in range(steps):
            rows = slice(part * 8 // steps, (part + 1) * 8 // steps)
            t.training_step(model, {k: v[rows] for k, v in data.items()}, num_items_in_batch=torch.tensor(8))
        return model.classifier.weight.grad.clone()

    for weight in (0.0, 1.0):
        torch.testing.assert_close(gradient(2, weight), gradient(1, weight), rtol=1e-4, atol=1e-6)


# ------------------------------------------ other models (RoBERTa, BART, T5), tuple outputs, R4F at inference, logging


def tiny_roberta():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)  # RoBERTa's positions start after its padding index: 40 for sentences of 10
    return RobertaForSequenceClassification(
        RobertaConfig(**dict(HF_TINY, num_hidden_layers=1, max_position_embeddings=40))
    )


BART_SIZES = dict(
    vocab_size=60,
    d_model=16,
    encoder_layers=1,
    decoder_layers=1,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_ffn_dim=32,
    max_position_embeddings=32,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    classifier_dropout=0.0,
)


def tiny_bart(seq2seq=True):
    from transformers import BartForSequenceClassification

    torch.manual_seed(0)
    return (BartForConditionalGeneration if seq2seq else BartForSequenceClassification)(BartConfig(**BART_SIZES))


def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=60,
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        dropout_rate=0.0,
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return T5ForConditionalGeneration(config)


def seq2seq_batch(start=0):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(4, 60, (3, 8), generator=g)
    labels = torch.randint(4, 60, (3, 6), generator=g)
    labels[0, 4:] = -100
    # as DataCollatorForSeq2Seq gives them: the model needs them when label smoothing takes the labels away
    decoder = torch.cat([torch.full((3, 1), start), labels[:, :-1].clamp(min=1)], dim=1)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "decoder_input_ids": decoder, "labels": labels}


def eos_batch():  # BART's classification head reads the hidden state of each sentence's one </s> (id 2)
    inputs = batch()
    inputs["input_ids"] = inputs["input_ids"].clamp(4, 59)
    inputs["input_ids"][:, -1] = 2
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    return inputs


MODELS = {  # name: (model factory, batch, the term's log name)
    "bert": (tiny_bert, batch, "symm_kl"),
    "bert-regression": (lambda: tiny_bert(num_labels=1), lambda: batch(num_labels=1), "noise_sq_err"),
    "roberta": (tiny_roberta, batch, "symm_kl"),
    "bart-classification": (lambda: tiny_bart(seq2seq=False), eos_batch, "symm_kl"),
    "bart": (tiny_bart, lambda: seq2seq_batch(start=2), "symm_kl"),
    "t5": (tiny_t5, seq2seq_batch, "symm_kl"),
}


def term_and_loss(name, tmp_path, smoothing, trainer_class=R3FTrainer, **forward_options):
    make, data, key = MODELS[name]
    model = make().train()
    args = training_args(tmp_path, label_smoothing_factor=smoothing)
    options = dict(eps=1e-2) if trainer_class is R3FTrainer else dict(smart_mu=0.0, smart_sigma=1e-3)
    t = trainer_class(model=model, args=args, **options)
    torch.manual_seed(5)
    loss, outputs = t.compute_loss(model, dict(data(), **forward_options), return_outputs=True)
    (key,) = [k for k in t._terms_log if k != "noise_changed_pct"] if trainer_class is SMARTTrainer else [key]
    return float(t._terms_log[key][0]), loss.item(), outputs


@pytest.mark.parametrize(  # label smoothing is for classes: not with the regression
    "name,smoothing", [(n, s) for n in sorted(MODELS) for s in (0.0, 0.1) if not (n == "bert-regression" and s)]
)
def test_the_logits_of_a_tuple_are_where_the_model_class_puts_them(tmp_path, name, smoothing):
    """return_dict=False (with output_hidden_states too): the term and the loss are return_dict=True's, with and
    without Trainer's label smoothing (which takes the labels away, so the tuple starts with the logits; it was an
    IndexError on BERT, an AttributeError with hidden states, and T5's encoder states silently taken for logits)."""
    term, loss, outputs = term_and_loss(name, tmp_path, smoothing)
    assert not isinstance(outputs, tuple) and term > 0
    for hidden in (False, True):
        tuple_term, tuple_loss, tuple_outputs = term_and_loss(
            name, tmp_path, smoothing, return_dict=False, output_hidden_states=hidden
        )
        assert isinstance(tuple_outputs, tuple)
        assert tuple_term == pytest.approx(term, rel=1e-6) and tuple_loss == pytest.approx(loss, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_smart_finds_the_logits_of_a_tuple_too(tmp_path, smoothing):
    term, loss, _ = term_and_loss("bert", tmp_path, smoothing, SMARTTrainer)
    tuple_term, tuple_loss, _ = term_and_loss("bert", tmp_path, smoothing, SMARTTrainer, return_dict=False)
    assert tuple_term == pytest.approx(term, rel=1e-6) and tuple_loss == pytest.approx(loss, rel=1e-6)


def test_outputs_whose_logits_are_not_documented_are_refused_in_one_line(tmp_path):
    from transformers import BertModel

    from rxf.hf import model_logits

    class Unannotated(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = BertConfig()
            self.embed, self.head = nn.Embedding(100, 8), nn.Linear(8, 2)

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids, attention_mask=None, labels=None):
            return (self.head(self.embed(input_ids).mean(1)),)

    model = Unannotated()
    t = R3FTrainer(model=model, args=training_args(tmp_path, label_smoothing_factor=0.1))
    with pytest.raises(ValueError, match=r"^rxf.hf: Unannotated returned a tuple whose layout .*no ModelOutput"):
        t.compute_loss(model, dict(batch()))
    encoder = BertModel(tiny_bert().config)  # documents BaseModelOutputWithPooling...: no logits
    ids = batch()["input_ids"]
    with pytest.raises(ValueError, match="BertModel returned a tuple whose layout .* names BaseModelOutput"):
        model_logits(encoder, encoder(ids, return_dict=False))
    with pytest.raises(ValueError, match="BertModel's output has no logits"):
        model_logits(encoder, encoder(ids))
    with pytest.raises(ValueError, match="BertModel returned a Tensor"):
        model_logits(encoder, ids)


def test_r4f_layers_take_the_training_flag_and_a_reloaded_model_answers_the_same_every_time(tmp_path):
    """apply_r4f on a model in eval mode, and load_r4f (eval mode, as from_pretrained): no layer in training mode,
    so no power-iteration step per call; repeated calls are bit-identical, under inference_mode too (they were
    0.540633 then 0.540632)."""
    evaluated = tiny_bert().eval()
    names = apply_r4f(evaluated)
    assert not any(evaluated.get_submodule(n).training for n in names)
    trained = tiny_bert().train()
    assert all(trained.get_submodule(n).training for n in apply_r4f(trained))
    data = [{k: v[i] for k, v in batch(n=8, seed=s).items()} for s in range(2) for i in range(8)]
    trainer(trained, tmp_path, eps=1e-2, train_dataset=data).train()  # vectors that moved with training
    trained.save_pretrained(str(tmp_path / "saved"))
    reloaded = load_r4f(BertForSequenceClassification, str(tmp_path / "saved"))
    assert not any(m.training for m in reloaded.modules())
    vectors = {k: v.clone() for k, v in reloaded.state_dict().items() if k.endswith((".sn_u", ".sn_v"))}
    inputs = {k: v for k, v in batch().items() if k != "labels"}
    with torch.no_grad():
        first, second = reloaded(**inputs).logits, reloaded(**inputs).logits
    with torch.inference_mode():
        third = reloaded(**inputs).logits
    assert torch.equal(first, second) and torch.equal(first, third)
    for key, value in vectors.items():
        assert torch.equal(reloaded.state_dict()[key], value), key
    reloaded.train()  # and back in training mode, a step per forward again
    assert all(reloaded.get_submodule(n).training for n in names)


def test_the_terms_since_the_last_log_are_logged_when_training_ends(tmp_path):
    """5 updates logged every 2: the 5th update's term gets an entry of its own at step 5, before the summary."""
    model = tiny_bert()
    data = [{k: v[i] for k, v in batch(n=8, seed=s).items()} for s in range(3) for i in range(8)]
    t = R3FTrainer(
        model=model, args=training_args(tmp_path, max_steps=5, logging_steps=2), train_dataset=data, eps=1e-2
    )
    seen = []
    original = t.compute_loss

    def spy(*args, **kwargs):
        loss = original(*args, **kwargs)
        seen.append(float(t._terms_log["symm_kl"][-1]))
        return loss

    t.compute_loss = spy
    t.train()
    history = t.state.log_history
    windows = [(e["step"], e["symm_kl"]) for e in history if "symm_kl" in e]
    assert [step for step, _ in windows] == [2, 4, 5]
    assert windows[-1][1] == float(f"{seen[-1]:.3g}") and windows[0][1] == float(f"{sum(seen[:2]) / 2:.3g}")
    last = history.index(next(e for e in history if e["step"] == 5 and "symm_kl" in e))
    assert "loss" not in history[last] and "train_loss" in history[last + 1] and not t._terms_log
    t = R3FTrainer(model=tiny_bert(), args=training_args(tmp_path, max_steps=4, logging_steps=2), train_dataset=data)
    t.train()  # nothing left over: no extra entry
    assert [e["step"] for e in t.state.log_history if "symm_kl" in e] == [2, 4]


def test_noise_changed_pct_is_logged_for_half_precision_embeddings_not_under_bf16_autocast(tmp_path):
    """TrainingArguments(bf16=True) (--bf16): autocast leaves the embedding layer's output in fp32, where the noise
    is added whole, so noise_changed_pct is not logged; a bf16 model's embeddings round it, and it is."""
    data = [{k: v[i] for k, v in batch(n=8, seed=s).items()} for s in range(1) for i in range(8)]
    args = training_args(tmp_path, max_steps=2, logging_steps=1, bf16=True)
    t = R3FTrainer(model=tiny_bert(), args=args, train_dataset=data)
    t.train()
    logged = [e for e in t.state.log_history if "loss" in e]
    assert len(logged) == 2 and all("symm_kl" in e and "noise_changed_pct" not in e for e in logged)
    half = tiny_bert().to(torch.bfloat16)
    t = R3FTrainer(model=half, args=training_args(tmp_path, max_steps=2, logging_steps=1), train_dataset=data)
    t.train()
    logged = [e for e in t.state.log_history if "loss" in e]
    assert len(logged) == 2 and all(0 <= e["noise_changed_pct"] < 50 for e in logged)


def test_same_dropout_replays_the_clean_passs_masks_so_only_the_noise_makes_the_term(tmp_path):
    """With dropout on, eps = 0 gives a term from the two passes' masks alone; same_dropout=True replays the clean
    pass's masks in the noised pass, so eps = 0 gives exactly 0 and eps > 0 the noise's own, far smaller, term."""

    def term(**options):
        t = trainer(tiny_bert(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).train(), tmp_path, **options)
        torch.manual_seed(3)
        t.compute_loss(t.model, dict(batch()))
        return float(t._terms_log["symm_kl"][-1])

    assert term(eps=0.0) > 0
    assert term(eps=0.0, same_dropout=True) == 0.0
    assert 0 < term(eps=1e-3, same_dropout=True) < term(eps=1e-3) / 100
    assert term(eps=1e-3, same_dropout=True) == term(eps=1e-3, same_dropout=True)  # the noise drawn from the stream


# ------------------------------------------------------------------------------------------------ R-Drop


def half_symmetric_kl(logits_1, logits_2):
    """1/2 (KL(P1||P2) + KL(P2||P1)) per position, from the definition, in float64."""
    log_p, log_q = logits_1.double().log_softmax(-1), logits_2.double().log_softmax(-1)
    return 0.5 * ((log_p.exp() * (log_p - log_q)).sum(-1) + (log_q.exp() * (log_q - log_p)).sum(-1))


def stock_loss(model, tmp_path, inputs, seed=3):
    """transformers' own Trainer's loss of ``inputs``, its dropout drawn as ``rdrop_step`` draws the first pass's."""
    from transformers import Trainer

    t = Trainer(model=model, args=training_args(tmp_path))
    torch.manual_seed(seed)
    return t.compute_loss(model, dict(inputs))


def rdrop_step(model, tmp_path, inputs, alpha=1.0, smoothing=0.0, seed=3):
    """RDropTrainer's loss and log of one step, and the logits of each forward pass (captured by a hook, None for a
    pass in evaluation mode)."""
    seen = []
    handle = model.register_forward_hook(lambda module, args, out: seen.append(out.logits if module.training else None))
    t = RDropTrainer(model=model, args=training_args(tmp_path, label_smoothing_factor=smoothing), rdrop_alpha=alpha)
    torch.manual_seed(seed)
    loss = t.compute_loss(model, dict(inputs))
    handle.remove()
    return loss, {k: float(v[0]) for k, v in t._terms_log.items()}, seen


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_rdrop_is_both_passes_task_losses_plus_alpha_times_the_half_symmetric_kl_per_sentence(tmp_path, smoothing):
    """Classification: CE(P1) + CE(P2) (Trainer's label smoothing on both) + alpha * 1/2 (KL(P1||P2) + KL(P2||P1))
    summed over the batch and divided by its sentences; both passes carry gradient."""
    model = tiny_bert(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1).train()
    inputs = batch()
    loss, logged, (first, second) = rdrop_step(model, tmp_path, inputs, alpha=3.0, smoothing=smoothing)
    assert first.grad_fn is not None and second.grad_fn is not None
    ce = [
        torch.nn.functional.cross_entropy(x, inputs["labels"], label_smoothing=smoothing).item()
        for x in (first, second)
    ]
    kl = half_symmetric_kl(first, second).sum().item() / 4
    assert kl > 0
    assert logged["rdrop_kl"] == pytest.approx(kl, rel=1e-4)
    assert logged["rdrop_second_loss"] == pytest.approx(ce[1], rel=1e-5)
    assert loss.item() == pytest.approx(ce[0] + ce[1] + 3.0 * kl, rel=1e-5)


def test_rdrop_regression_uses_the_squared_difference(tmp_path):
    model = tiny_bert(num_labels=1, hidden_dropout_prob=0.1).train()
    inputs = batch(num_labels=1)
    loss, logged, (first, second) = rdrop_step(model, tmp_path, inputs, alpha=2.0)
    mse = [torch.nn.functional.mse_loss(x.squeeze(-1), inputs["labels"]).item() for x in (first, second)]
    squared = (first.double() - second.double()).pow(2).sum().item() / 4
    assert squared > 0 and logged.keys() == {"rdrop_kl", "rdrop_second_loss"}
    assert logged["rdrop_kl"] == pytest.approx(squared, rel=1e-4)
    assert loss.item() == pytest.approx(mse[0] + mse[1] + 2.0 * squared, rel=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_rdrop_on_token_logits_masks_the_targets_padding(tmp_path, smoothing):
    """Sequence-to-sequence: the task losses per target token (Trainer's label smoothing given the labels back for
    the second pass), the term summed over the target positions with labels != -100, divided by their number."""
    torch.manual_seed(0)
    model = BartForConditionalGeneration(BartConfig(**dict(BART_SIZES, dropout=0.1))).train()
    inputs = seq2seq_batch(start=2)
    labels = inputs["labels"]
    loss, logged, (first, second) = rdrop_step(model, tmp_path, inputs, alpha=0.5, smoothing=smoothing)
    ce = [
        torch.nn.functional.cross_entropy(x.flatten(0, 1), labels.flatten(), label_smoothing=smoothing).item()
        for x in (first, second)
    ]
    per_position, targets = half_symmetric_kl(first, second), labels.ne(-100)
    assert 0 < per_position[targets].sum() < per_position.sum()  # the padded targets would have added to it
    kl = per_position[targets].sum().item() / targets.sum().item()  # per target token, as the plugin and R-Drop's code
    assert logged["rdrop_kl"] == pytest.approx(kl, rel=1e-4)
    assert loss.item() == pytest.approx(ce[0] + ce[1] + 0.5 * kl, rel=1e-5)


def test_rdrop_passes_draw_their_own_dropout_masks(tmp_path):
    """Dropout on: the passes differ, so the term is > 0; dropout off: the same pass twice, a term of exactly 0 and
    twice Trainer's loss."""
    _, logged, (first, second) = rdrop_step(tiny_bert(hidden_dropout_prob=0.1).train(), tmp_path, batch())
    assert not torch.equal(first, second) and logged["rdrop_kl"] > 0
    model = tiny_bert().train()
    stock = stock_loss(model, tmp_path, batch())
    loss, logged, (first, second) = rdrop_step(model, tmp_path, batch())
    assert torch.equal(first, second) and logged["rdrop_kl"] == 0.0
    assert torch.equal(loss, 2 * stock)


def test_rdrop_alpha_0_is_transformers_trainer_and_a_bad_alpha_is_refused(tmp_path):
    model = tiny_bert(hidden_dropout_prob=0.1).train()
    stock = stock_loss(model, tmp_path, batch())
    loss, logged, passes = rdrop_step(model, tmp_path, batch(), alpha=0.0)
    assert len(passes) == 1 and not logged and torch.equal(loss, stock)
    multi = tiny_bert(num_labels=3, problem_type="multi_label_classification").train()
    with pytest.raises(ValueError, match="^R-Drop: problem_type multi_label_classification"):
        rdrop_step(multi, tmp_path, dict(batch(), labels=torch.zeros(4, 3)))
    for alpha in (float("nan"), -1.0, float("inf"), "1"):
        with pytest.raises(ValueError, match="^rdrop_alpha must be >= 0 and finite"):
            RDropTrainer(model=tiny_bert(), args=training_args(tmp_path), rdrop_alpha=alpha)


def test_rdrop_trains_and_logs_its_term(tmp_path):
    t = RDropTrainer(
        model=tiny_bert(hidden_dropout_prob=0.1), args=training_args(tmp_path, max_steps=4), train_dataset=examples()
    )
    t.train()
    logged = [e for e in t.state.log_history if "loss" in e]
    assert len(logged) == 2 and all(e["rdrop_kl"] > 0 and e["rdrop_second_loss"] > 0 for e in logged)
