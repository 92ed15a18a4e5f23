"""The method without a framework (``rxf/``): it imports torch only, and its pieces (symmetric KL, noise and
where it enters a model, spectral normalisation, the probe's surgery, SMART's ascent) work on plain torch
modules. No fairseq model here."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rxf.kl import squared_prediction_change, symmetric_kl
from rxf.noise import check_noise_args, noised_token_embeddings, perturbed_token_embeddings, sample_embedding_noise
from rxf.probing import accuracy, choose_l2, fit_linear_probe, freeze_encoder
from rxf.smart import MomentumTeacher, SmartAscent, adversarial_forward, ascent_direction, example_norm, project
from rxf.spectral_norm import SpectralNormLinear, effective_spectral_norms, spectrally_normalise_head

# ------------------------------------------------------------------------------------------------ symmetric KL


def closed_form_symmetric_kl(a, b):
    p, q = F.softmax(a.double(), -1), F.softmax(b.double(), -1)
    return ((p - q) * (p.log() - q.log())).sum()


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 5), classes=st.integers(2, 7), scale=st.floats(0.01, 10.0), seed=st.integers(0, 10**6))
def test_symmetric_kl_equals_closed_form(batch, classes, scale, seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(batch, classes, generator=g) * scale, torch.randn(batch, classes, generator=g) * scale
    expected = closed_form_symmetric_kl(a, b).item()
    assert symmetric_kl(a, b).item() == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert symmetric_kl(a, b).item() == pytest.approx(symmetric_kl(b, a).item(), rel=1e-5, abs=1e-6)
    assert symmetric_kl(a, a).item() == 0.0


def test_symmetric_kl_is_fp32_for_half_inputs():
    a, b = torch.randn(4, 3).half(), torch.randn(4, 3).half()
    assert symmetric_kl(a, b).dtype == torch.float32
    assert symmetric_kl(a, b).item() == pytest.approx(closed_form_symmetric_kl(a.float(), b.float()).item(), rel=1e-4)


def test_masked_kl_of_padded_batch_equals_sum_over_unpadded_items():
    torch.manual_seed(0)
    lengths = [5, 2, 4]
    items = [(torch.randn(n, 11), torch.randn(n, 11)) for n in lengths]
    padded_a = torch.randn(3, 5, 11) * 100  # garbage at padding positions must not count
    padded_b = torch.randn(3, 5, 11) * 100
    mask = torch.zeros(3, 5, dtype=torch.bool)
    for i, (a, b) in enumerate(items):
        padded_a[i, : len(a)], padded_b[i, : len(b)], mask[i, : len(a)] = a, b, True
    expected = sum(symmetric_kl(a, b) for a, b in items)
    assert symmetric_kl(padded_a, padded_b, mask).item() == pytest.approx(expected.item(), rel=1e-5)
    assert symmetric_kl(padded_a, padded_b, torch.ones_like(mask)).item() == pytest.approx(
        symmetric_kl(padded_a, padded_b).item(), rel=1e-5
    )


def test_kl_shape_errors_are_clear():
    with pytest.raises(ValueError, match="logit shapes differ"):
        symmetric_kl(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="mask shape"):
        symmetric_kl(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))


def test_squared_prediction_change():
    assert squared_prediction_change(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == 5.0


# ------------------------------------------------------------------------------------------------------ noise


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_uniform_noise_statistics(eps):
    torch.manual_seed(0)
    z = sample_embedding_noise(torch.empty(200, 500), eps, "uniform")
    assert z.abs().max().item() <= eps
    assert z.mean().item() == pytest.approx(0.0, abs=eps * 0.01)
    assert z.std().item() == pytest.approx(eps / math.sqrt(3), rel=0.01)


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_normal_noise_statistics(eps):
    torch.manual_seed(0)
    z = sample_embedding_noise(torch.empty(200, 500), eps, "normal")
    assert z.mean().item() == pytest.approx(0.0, abs=eps * 0.01)
    assert z.std().item() == pytest.approx(eps, rel=0.01)
    assert (z.abs() > eps).float().mean().item() == pytest.approx(0.3173, abs=0.01)  # mass outside 1 sigma


def test_noise_follows_dtype_and_device_and_seed():
    like = torch.empty(3, 4, dtype=torch.float16)
    torch.manual_seed(3)
    first = sample_embedding_noise(like, 1e-3, "normal")
    torch.manual_seed(3)
    assert torch.equal(first, sample_embedding_noise(like, 1e-3, "normal"))
    assert first.dtype == torch.float16 and first.device == like.device


def test_zero_eps_gives_zero_noise():
    for kind in ("uniform", "normal"):
        assert torch.count_nonzero(sample_embedding_noise(torch.empty(5, 5), 0.0, kind)) == 0


@pytest.mark.parametrize(
    "eps,kind,match",
    [
        (-1e-5, "uniform", "--eps"),
        (float("nan"), "normal", "--eps"),
        (float("inf"), "uniform", "--eps must be >= 0 and finite"),
        (1e-5, "gaussian", "--noise-type"),
    ],
)
def test_bad_noise_arguments_name_the_flag(eps, kind, match):
    with pytest.raises(ValueError, match=match):
        check_noise_args(eps, kind)


class Encoder(nn.Module):
    def __init__(self, embed_tokens: nn.Embedding):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.layer = nn.Linear(embed_tokens.embedding_dim, embed_tokens.embedding_dim)

    def forward(self, tokens):
        return torch.tanh(self.layer(self.embed_tokens(tokens)))


class SharedEmbeddingModel(nn.Module):
    """An encoder and a "decoder" calling one embedding matrix, and a classifier on the first position."""

    def __init__(self, vocab: int = 50, dim: int = 8, classes: int = 3):
        super().__init__()
        self.encoder = Encoder(nn.Embedding(vocab, dim))
        self.out = nn.Linear(dim, classes)

    def forward(self, tokens):
        decoded = self.encoder.embed_tokens(tokens)  # the decoder's call, outside the encoder
        return self.out(self.encoder(tokens)[:, 0] + decoded[:, 0])


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return SharedEmbeddingModel(), torch.randint(0, 50, (4, 6))


def test_noise_enters_only_the_calls_made_inside_the_scope():
    model, tokens = tiny_model()
    calls = []
    handle = model.encoder.embed_tokens.register_forward_hook(lambda m, a, out: calls.append(out))
    with noised_token_embeddings(model.encoder.embed_tokens, model.encoder, 0.1, "uniform") as record:
        noised = model(tokens)
    handle.remove()
    assert len(calls) == 2 and record.applications == 1  # encoder noised, decoder clean
    assert not torch.equal(noised, model(tokens))
    assert record.changed is None  # fp32: not audited


def test_perturbation_keeps_gradients_and_hooks_leave_no_trace():
    model, tokens = tiny_model()
    with perturbed_token_embeddings(model.encoder.embed_tokens, model.encoder, lambda x: 2 * x):
        doubled = model(tokens)
    doubled.sum().backward()
    assert model.encoder.embed_tokens.weight.grad.abs().sum() > 0
    assert not model.encoder._forward_hooks and not model.encoder._forward_pre_hooks
    assert not model.encoder.embed_tokens._forward_hooks


def test_perturbation_that_never_reaches_the_model_is_an_error():
    model, tokens = tiny_model()
    with pytest.raises(RuntimeError, match="perturbation never reached the model: Encoder.forward did not call"):
        with noised_token_embeddings(model.encoder.embed_tokens, model.encoder, 1e-5, "uniform"):
            model.encoder.embed_tokens(tokens)  # a call outside the encoder is not the model's


# ----------------------------------------------------------------------------------------- spectral norm (R4F)


def test_spectral_norm_covers_every_linear_layer():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        head[0].weight.mul_(10)
    assert max(effective_spectral_norms(head).values()) > 1.5
    assert spectrally_normalise_head(head) == ["0", "2"]
    assert all(isinstance(m, SpectralNormLinear) for m in (head[0], head[2]))
    for value in effective_spectral_norms(head).values():
        assert value == pytest.approx(1.0, abs=1e-4)
    # a layer that fairseq's own flag already normalised is kept, not wrapped twice
    assert spectrally_normalise_head(head) == ["0", "2"]
    x = torch.randn(8, 32)
    assert head(x).shape == (8, 3)
    with pytest.raises(ValueError, match="no linear layer"):
        spectrally_normalise_head(nn.Tanh())


def test_spectrally_normalised_head_is_1_lipschitz():
    torch.manual_seed(1)
    head = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    spectrally_normalise_head(head)
    head.eval()
    x, y = torch.randn(64, 16), torch.randn(64, 16)
    ratio = (head(x) - head(y)).norm(dim=-1) / (x - y).norm(dim=-1)
    assert ratio.max().item() <= 1.0 + 1e-4


def test_spectral_norm_linear_loads_heads_trained_without_r4f():
    """A head fine-tuned without R4F has no power-iteration buffers; loading it must still work and
    the loaded weight must be normalised from the first forward on."""
    torch.manual_seed(2)
    plain = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    with torch.no_grad():
        plain[0].weight.mul_(5)
    r4f = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    spectrally_normalise_head(r4f)
    r4f.load_state_dict(plain.state_dict())
    assert torch.equal(r4f[0].weight, plain[0].weight)
    r4f.eval()
    r4f(torch.randn(3, 8))  # warms the power iteration for the loaded weight
    for value in effective_spectral_norms(r4f).values():
        assert value == pytest.approx(1.0, abs=1e-4)
    # and an R4F state dict round-trips, buffers included
    again = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    spectrally_normalise_head(again)
    again.load_state_dict(r4f.state_dict())
    assert torch.equal(again[0].sn_u, r4f[0].sn_u)


def test_a_loaded_r4f_head_uses_the_saved_power_iteration_vectors_as_they_are():
    """Resume and evaluation exact: after training steps sigma_hat is one power iteration behind the weight; a
    loaded copy keeps that sigma_hat (no re-warm), so it gives the same outputs, the same effective norms and,
    trained on, the same weights as the original."""
    torch.manual_seed(3)
    head = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    spectrally_normalise_head(head)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.5)
    x = torch.randn(16, 8)

    def steps(model, opt, n):
        for _ in range(n):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()

    steps(head, optimizer, 3)
    saved = copy.deepcopy(head.state_dict())
    before = effective_spectral_norms(head)
    loaded = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    spectrally_normalise_head(loaded)
    loaded.load_state_dict(saved)
    assert effective_spectral_norms(loaded) == before
    head.eval(), loaded.eval()
    assert torch.equal(loaded(x), head(x))
    head.train(), loaded.train()
    resumed = torch.optim.SGD(loaded.parameters(), lr=0.5)
    resumed.load_state_dict(optimizer.state_dict())
    steps(head, optimizer, 2)
    steps(loaded, resumed, 2)
    for key, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_fairseqs_own_spectral_norm_is_replaced_not_stacked():
    head = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.utils.spectral_norm(nn.Linear(6, 2)))
    spectrally_normalise_head(head)
    assert "weight_orig" not in dict(head.named_parameters()).keys() | {k.split(".", 1)[1] for k in head.state_dict()}
    assert set(head.state_dict()) == {
        "0.weight",
        "0.bias",
        "0.sn_u",
        "0.sn_v",
        "2.weight",
        "2.bias",
        "2.sn_u",
        "2.sn_v",
    }


# ------------------------------------------------------------------------------------------ the linear probe


class MyDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p


def test_freeze_encoder_trains_only_the_head_and_switches_off_every_dropout_type_given():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), MyDropout(0.2), nn.Linear(4, 2), nn.Dropout(0.3))
    model.layerdrop = 0.1
    head = nn.Sequential(model[3], model[4])
    silenced = freeze_encoder(model, head, dropout_types=(nn.Dropout, MyDropout))
    assert silenced == ["1", "2"] and model[1].p == 0 and model[2].p == 0 and model.layerdrop == 0
    assert model[4].p == 0.3  # the head's own dropout is the head's
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    assert freeze_encoder(model, head) == ["1"]  # by default, torch's nn.Dropout only


# ----------------------------------------------------------------------------------------- SMART


def test_ascent_directions_are_unit_per_example_smart_and_per_token_mtdnn():
    g = torch.randn(2, 3, 8)
    assert torch.allclose(ascent_direction(g, "l2", 0).reshape(2, -1).norm(dim=1), torch.ones(2))
    assert torch.allclose(ascent_direction(g, "inf", 0).reshape(2, -1).abs().amax(dim=1), torch.ones(2))
    assert torch.allclose(ascent_direction(g, "l2", 0, per="token").norm(dim=-1), torch.ones(2, 3))
    assert torch.allclose(ascent_direction(g, "inf", 0, per="token").abs().amax(dim=-1), torch.ones(2, 3))
    assert torch.equal(ascent_direction(g, "l1", 0, per="token"), g.sign())


def test_projection_onto_each_examples_ball():
    delta = torch.randn(3, 4, 5)
    delta[1] *= 1e-3  # inside its ball: unchanged by either projection
    assert example_norm(delta, "l2").shape == (3, 1, 1)  # one per example, broadcastable onto delta
    inf = project(delta, "inf", 0.01)
    assert inf.abs().max() <= 0.01 and torch.equal(inf[1], delta[1])
    l2 = project(delta, "l2", 0.01)
    norms = l2.reshape(3, -1).norm(dim=1)
    assert torch.allclose(norms[[0, 2]], torch.full((2,), 0.01)) and torch.equal(l2[1], delta[1])
    assert torch.allclose(F.normalize(l2[0].flatten(), dim=0), F.normalize(delta[0].flatten(), dim=0))


def test_an_mtdnn_step_is_eta_times_the_per_token_direction_unprojected_and_starts_a_new_graph():
    delta = torch.zeros(2, 3, 4, dtype=torch.float16, requires_grad=True)
    grad = torch.randn(2, 3, 4)
    ascent = SmartAscent(sigma=0.0, steps=1, step_size=0.5, norm="l1", radius=1e-5, epsilon=0.0, style="mt-dnn")
    stepped = ascent.step(delta, grad)
    assert stepped.dtype == torch.float16 and stepped.grad_fn is None
    assert torch.equal(stepped, (0.5 * grad.sign()).half())  # far outside the 1e-5 ball: mt-dnn never projects


def test_smart_refuses_what_it_does_not_define():
    with pytest.raises(ValueError, match="l1 is mt-dnn's only"):
        SmartAscent(sigma=0.0, steps=1, step_size=0.1, norm="l1")
    with pytest.raises(ValueError, match="style"):
        SmartAscent(sigma=0.0, steps=1, step_size=0.1, norm="inf", style="freelb")


class RecordingAscent(SmartAscent):
    """Keeps every delta its steps return."""

    def step(self, delta, grad):
        stepped = super().step(delta, grad)
        object.__getattribute__(self, "seen").append(stepped.detach().clone())
        return stepped


def smart(model, tokens, steps, step_size=0.05, norm="inf", seed=1, style="smart", radius=0.05, seen=None):
    clean = model(tokens).detach()
    torch.manual_seed(seed)
    ascent = RecordingAscent(sigma=0.01, steps=steps, step_size=step_size, norm=norm, radius=radius, style=style)
    object.__setattr__(ascent, "seen", seen if seen is not None else [])
    output, record = adversarial_forward(
        model,
        lambda net: net(tokens),
        model.encoder.embed_tokens,
        model.encoder,
        lambda logits: symmetric_kl(clean, logits),
        ascent,
    )
    return output, record, symmetric_kl(clean, output).item()


@pytest.mark.parametrize("style", ["smart", "mt-dnn"])
def test_smart_without_ascent_is_r3f_normal_noise(style):
    model, tokens = tiny_model()
    output, record, _ = smart(model, tokens, steps=0, style=style)
    torch.manual_seed(1)
    with noised_token_embeddings(model.encoder.embed_tokens, model.encoder, 0.01, "normal"):
        r3f = model(tokens)
    assert torch.equal(output, r3f) and record.applications == 1


@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_every_published_ascent_step_ends_inside_the_eps_ball(norm):
    model, tokens = tiny_model()
    seen = []
    smart(model, tokens, steps=4, step_size=0.5, norm=norm, radius=0.02, seen=seen)  # eta = 25 eps
    assert len(seen) == 4
    for delta in seen:
        size = delta.reshape(delta.shape[0], -1)
        size = size.abs().amax(dim=1) if norm == "inf" else size.norm(dim=1)
        assert (size <= 0.02 * (1 + 1e-5)).all() and (size >= 0.02 * (1 - 1e-5)).all()  # on the sphere


@pytest.mark.parametrize("style,norm", [("smart", "inf"), ("smart", "l2"), ("mt-dnn", "inf"), ("mt-dnn", "l1")])
def test_ascent_increases_the_term_and_the_final_pass_trains(style, norm):
    model, tokens = tiny_model()
    _, _, start = smart(model, tokens, steps=0, style=style)
    one, record, after_one = smart(model, tokens, steps=1, norm=norm, style=style)
    assert start < after_one
    assert record.applications == 1  # the record is the final pass's
    one.sum().backward()
    assert model.out.weight.grad.abs().sum() > 0


class CountingWrapper(nn.Module):
    """Stands for DistributedDataParallel: the wrapped model is ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.calls = 0

    def forward(self, tokens):
        self.calls += 1
        return self.module(tokens)


def test_ascent_passes_run_inside_the_wrapper_the_final_pass_through_it():
    model, tokens = tiny_model()
    wrapped = CountingWrapper(CountingWrapper(model))
    clean = model(tokens).detach()
    adversarial_forward(
        wrapped,
        lambda net: net(tokens),
        model.encoder.embed_tokens,
        model.encoder,
        lambda logits: symmetric_kl(clean, logits),
        SmartAscent(sigma=0.01, steps=2, step_size=0.05, norm="inf", radius=0.05),
    )
    assert wrapped.calls == 1 and wrapped.module.calls == 1  # two ascent passes on the bare model, unseen


def sgd_step(model, tokens, lr=0.2):
    model.zero_grad()
    F.cross_entropy(model(tokens), torch.zeros(len(tokens), dtype=torch.long)).backward()
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)


def test_the_teacher_starts_at_theta_0_and_follows_the_model_with_its_momentum():
    model, tokens = tiny_model()
    teacher = MomentumTeacher(beta=0.9, beta_start=0.5, start_fraction=0.2, total_updates=10)
    assert [teacher.beta_at(t) for t in (1, 2, 3)] == [0.5, 0.5, 0.9]
    teacher.absorb(CountingWrapper(model))  # theta_0, through a DDP-style wrapper
    assert int(teacher.absorbed) == 1
    assert torch.equal(teacher.outputs(model, lambda net: net(tokens)), model.eval()(tokens))
    model.train()
    before = copy.deepcopy(teacher.state_dict())
    sgd_step(model, tokens)
    teacher.absorb(model)
    for name, p in model.named_parameters():
        expected = 0.5 * before["copies." + name.replace(".", "__")] + 0.5 * p.detach()
        assert torch.allclose(teacher.copies[name.replace(".", "__")], expected), name
    assert model.training  # outputs() puts the model back as it was
    assert all(not p.requires_grad for p in teacher.parameters())


def test_the_proximal_term_is_zero_at_the_first_step_and_grows_as_the_model_moves():
    model, tokens = tiny_model()
    teacher = MomentumTeacher(beta=0.9, beta_start=0.9, total_updates=0)
    terms = []
    for _ in range(4):
        teacher.absorb(model)
        terms.append(symmetric_kl(teacher.outputs(model, lambda net: net(tokens)), model(tokens)).item())
        sgd_step(model, tokens)
    assert terms[0] == 0 and 0 < terms[1] < terms[2] < terms[3]


def test_a_teacher_saved_and_loaded_into_a_fresh_one_continues_exactly():
    model, tokens = tiny_model()
    teacher = MomentumTeacher(beta=0.99, beta_start=0.9, start_fraction=0.5, total_updates=4)
    for _ in range(2):
        teacher.absorb(model)
        sgd_step(model, tokens)
    restored = MomentumTeacher(beta=0.99, beta_start=0.9, start_fraction=0.5, total_updates=4)
    restored.load_state_dict(copy.deepcopy(teacher.state_dict()))  # strict, before any model is seen
    for t in (teacher, restored):
        t.absorb(model)
    assert teacher.state_dict().keys() == restored.state_dict().keys()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, restored.state_dict()[key]), key
    other, _ = tiny_model()
    other.out = nn.Linear(8, 4)  # another head
    with pytest.raises(ValueError, match="does not match the model|has shape"):
        restored.absorb(other)


def test_the_teachers_weights_are_swapped_in_and_always_back_out():
    model, tokens = tiny_model()
    teacher = MomentumTeacher()
    teacher.absorb(model)
    sgd_step(model, tokens)
    own = {n: p.detach().clone() for n, p in model.named_parameters()}
    storage = {n: p.data_ptr() for n, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="inside"):
        with teacher.swapped_in(model):
            assert not torch.equal(model.out.weight, own["out.weight"])
            raise RuntimeError("inside")
    for n, p in model.named_parameters():
        assert p.data_ptr() == storage[n] and torch.equal(p, own[n]), n


def test_the_cached_linear_probe_is_logistic_regression_read_on_raw_features():
    """fit_linear_probe: standardised inside, folded back (the layer reads raw features); a stronger L2 gives
    smaller weights; the L2 is chosen without the validation features; on features that hold the label linearly
    the probe finds it, on noise it is near chance."""
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (600,), generator=g)
    features = torch.randn(600, 8, generator=g) * torch.tensor([5.0, 0.1, 1, 1, 1, 1, 1, 1]) + 40.0
    features[:, 1] += 0.6 * labels  # the label, on a small, offset, unscaled feature
    layer = fit_linear_probe(features[:400], labels[:400], 3, 1e-4)
    mean, std = features[:400].double().mean(0), features[:400].double().std(0) + 1e-6
    assert accuracy(layer, features[400:], labels[400:]) > 95
    strong = fit_linear_probe(features[:400], labels[:400], 3, 1.0)
    assert (strong.weight * std.float()).norm() < (layer.weight * std.float()).norm() / 5
    standardised = nn.Linear(8, 3)  # the folded layer equals the standardised fit it came from
    with torch.no_grad():
        standardised.weight.copy_(layer.weight * std.float())
        standardised.bias.copy_(layer.bias + layer.weight.double() @ mean)
    assert torch.allclose(standardised(((features.double() - mean) / std).float()), layer(features), atol=1e-3)
    l2, scores = choose_l2(features[:400], labels[:400], 3)
    assert [value for value, _ in scores] == [1e-4, 1e-3, 1e-2, 1e-1] and l2 in (1e-4, 1e-3, 1e-2, 1e-1)
    noise = torch.randn(600, 8, generator=g)
    assert accuracy(fit_linear_probe(noise[:400], labels[:400], 3, 1e-2), noise[400:], labels[400:]) < 45


def test_both_passes_in_one_forward_noises_only_the_second_copy_and_counts_its_entries():
    from rxf.noise import both_passes_in_one_forward

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8).to(torch.bfloat16)
            self.out = nn.Linear(8, 3).to(torch.bfloat16)

        def forward(self, tokens, lengths, flag=True):
            return self.out(self.embed(tokens).mean(1)), {"lengths": lengths}

    torch.manual_seed(0)
    model, tokens = Tiny(), torch.randint(0, 20, (4, 5))
    clean, extra = model(tokens, torch.full((4,), 5))
    with both_passes_in_one_forward(model, model.embed, model, 0.5, "uniform") as both:
        returned, returned_extra = model(tokens, torch.full((4,), 5), flag=False)
    assert returned is both.clean  # the caller sees the clean copy: the clean pass's up to the doubled batch's
    torch.testing.assert_close(returned, clean)  # rounding (bf16's tolerance; the noised copy is > 0.01 off)
    assert returned_extra["lengths"].shape == (8,)  # every batched argument doubled
    assert both.noised.shape == clean.shape and not torch.equal(both.noised, clean)
    assert both.record.applications == 1 and both.record.elements == 4 * 5 * 8  # the noised copy's entries only
    assert 0 < int(both.record.changed) <= both.record.elements
    with pytest.raises(RuntimeError, match="called more than once"):
        with both_passes_in_one_forward(model, model.embed, model, 0.5, "uniform"):
            model(tokens, torch.full((4,), 5))
            model(tokens, torch.full((4,), 5))
