"""The pure pieces: symmetric KL, noise sampling, spectral normalisation. No fairseq model."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from rxf.kl import squared_prediction_change, symmetric_kl
from rxf.noise import check_noise_args, sample_embedding_noise
from rxf.spectral_norm import effective_spectral_norms, is_spectrally_normalised, spectrally_normalise_head
from tests.helpers import load_reference_criterion


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


def test_kl_matches_fairseq_reference_scaled_by_batch():
    reference = load_reference_criterion("sentence_prediction_r3f").SentencePredictionR3F
    a, b = torch.randn(6, 3), torch.randn(6, 3)
    # The reference divides by the batch size and multiplies by sample_size (= batch) again.
    ref = reference._get_symm_kl(None, b, a) * a.size(0)
    assert symmetric_kl(a, b).item() == pytest.approx(ref.item(), rel=1e-6)


def test_kl_shape_errors_are_clear():
    with pytest.raises(ValueError, match="logit shapes differ"):
        symmetric_kl(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="mask shape"):
        symmetric_kl(torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))


def test_squared_prediction_change():
    assert squared_prediction_change(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).item() == 5.0


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


@pytest.mark.parametrize("eps,kind,match", [(-1e-5, "uniform", "--eps"), (float("nan"), "normal", "--eps"),
                                            (float("inf"), "uniform", "--eps must be >= 0 and finite"),
                                            (1e-5, "gaussian", "--noise-type")])
def test_bad_noise_arguments_name_the_flag(eps, kind, match):
    with pytest.raises(ValueError, match=match):
        check_noise_args(eps, kind)


def test_spectral_norm_covers_every_linear_layer():
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        head[0].weight.mul_(10)
    assert max(effective_spectral_norms(head).values()) > 1.5
    assert spectrally_normalise_head(head) == ["0", "2"]
    assert all(is_spectrally_normalised(m) for m in (head[0], head[2]))
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


def test_fairseqs_own_spectral_norm_is_replaced_not_stacked():
    head = nn.Sequential(nn.Linear(6, 6), nn.Tanh(), nn.utils.spectral_norm(nn.Linear(6, 2)))
    spectrally_normalise_head(head)
    assert "weight_orig" not in dict(head.named_parameters()).keys() | {k.split(".", 1)[1] for k in head.state_dict()}
    assert set(head.state_dict()) == {"0.weight", "0.bias", "0.sn_u", "0.sn_v", "2.weight", "2.bias", "2.sn_u", "2.sn_v"}
