"""course_lib.core.losses against PyTorch / SciPy, known values, gradients and stability."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from course_lib.core import losses

DT = torch.float64


def random_logits(shape, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT) * scale


def random_simplex(shape, seed=0):
    return torch.softmax(random_logits(shape, seed=seed), dim=-1)


# --- known values ------------------------------------------------------------

def test_fair_coin_has_one_bit_and_ln2_nats():
    assert losses.entropy([0.5, 0.5], base=2).item() == pytest.approx(1.0, abs=1e-15)
    assert losses.entropy([0.5, 0.5]).item() == pytest.approx(math.log(2), abs=1e-15)


def test_uniform_entropy_is_log_k_and_certain_outcome_is_zero():
    for k in (2, 7, 256):
        assert losses.entropy(torch.full((k,), 1 / k, dtype=DT)).item() == pytest.approx(math.log(k))
    assert losses.entropy([0.0, 1.0, 0.0]).item() == 0.0


def test_surprisal_values_and_impossible_event_is_infinite():
    s = losses.surprisal([1.0, 0.5, 0.25, 0.0], base=2)
    assert s[:3].tolist() == pytest.approx([0.0, 1.0, 2.0])
    assert math.isinf(s[3].item())


def test_entropy_cross_entropy_kl_match_scipy():
    p, q = random_simplex((6,), seed=1), random_simplex((6,), seed=2)
    assert losses.entropy(p).item() == pytest.approx(scipy.stats.entropy(p.numpy()))
    assert losses.kl_divergence(p, q).item() == pytest.approx(scipy.stats.entropy(p.numpy(), q.numpy()))
    assert losses.cross_entropy(p, q).item() == pytest.approx(
        losses.entropy(p).item() + losses.kl_divergence(p, q).item())


def test_kl_is_nonnegative_zero_at_equality_and_asymmetric():
    p, q = random_simplex((100, 5), seed=3), random_simplex((100, 5), seed=4)
    kl = losses.kl_divergence(p, q)
    assert kl.shape == (100,) and bool((kl >= 0).all())
    assert losses.kl_divergence(p, p).abs().max().item() < 1e-12
    assert not torch.allclose(kl, losses.kl_divergence(q, p))


def test_kl_matches_torch_kl_div():
    p, q = random_simplex((4, 9), seed=5), random_simplex((4, 9), seed=6)
    ref = F.kl_div(q.log(), p, reduction="none").sum(-1)
    torch.testing.assert_close(losses.kl_divergence(p, q), ref)


def test_cross_entropy_infinite_when_model_excludes_a_possible_outcome():
    assert math.isinf(losses.cross_entropy([0.5, 0.5], [1.0, 0.0]).item())


# --- softmax and softmax cross-entropy ---------------------------------------

@pytest.mark.parametrize("shape", [(7,), (4, 7), (2, 3, 7)])
def test_log_softmax_and_softmax_match_torch(shape):
    z = random_logits(shape, scale=20)
    torch.testing.assert_close(losses.log_softmax(z), torch.log_softmax(z, -1))
    torch.testing.assert_close(losses.softmax(z, temperature=2.0), torch.softmax(z / 2.0, -1))


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_softmax_cross_entropy_matches_torch(eps, reduction):
    z = random_logits((3, 5, 11), seed=7)
    y = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(8))
    ours = losses.softmax_cross_entropy(z, y, label_smoothing=eps, reduction=reduction)
    ref = F.cross_entropy(z.permute(0, 2, 1), y, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_analytic_gradient_equals_autograd(eps, reduction):
    z = random_logits((8, 6), seed=9).requires_grad_()
    y = torch.randint(0, 6, (8,), generator=torch.Generator().manual_seed(10))
    F.cross_entropy(z, y, label_smoothing=eps, reduction=reduction).backward()
    analytic = losses.softmax_cross_entropy_grad(z.detach(), y, label_smoothing=eps, reduction=reduction)
    torch.testing.assert_close(analytic, z.grad, rtol=0, atol=1e-14)


def test_analytic_gradient_equals_central_finite_differences():
    z = random_logits((3, 4), seed=11)
    y = torch.tensor([0, 3, 1])
    h = 1e-6
    numeric = torch.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        e = torch.zeros_like(z)
        e[idx] = h
        numeric[idx] = (losses.softmax_cross_entropy(z + e, y) - losses.softmax_cross_entropy(z - e, y)) / (2 * h)
    torch.testing.assert_close(losses.softmax_cross_entropy_grad(z, y), numeric, rtol=0, atol=1e-9)


def test_gradient_rows_sum_to_zero():
    z = random_logits((5, 4), seed=12)
    g = losses.softmax_cross_entropy_grad(z, torch.tensor([0, 1, 2, 3, 0]), reduction="sum")
    assert g.sum(-1).abs().max().item() < 1e-15


def test_huge_logits_stay_finite_in_float32():
    z = torch.tensor([[1000.0, 0.0, -1000.0]], dtype=torch.float32)
    naive = torch.log(torch.exp(z) / torch.exp(z).sum(-1, keepdim=True))
    assert torch.isnan(naive).any()  # the failure the stable form avoids
    ce = losses.softmax_cross_entropy(z, [1])
    assert torch.isfinite(ce) and ce.item() == pytest.approx(1000.0)
    assert losses.log_softmax(z)[0, 0].item() == 0.0


def test_label_smoothing_keeps_loss_above_zero_for_a_perfect_margin():
    z = torch.tensor([[50.0, 0.0, 0.0]], dtype=DT)
    assert losses.softmax_cross_entropy(z, [0]).item() < 1e-20
    assert losses.softmax_cross_entropy(z, [0], label_smoothing=0.1).item() > 1.0


# --- binary case ---------------------------------------------------------------

def test_binary_cross_entropy_matches_torch_and_is_stable():
    z = torch.tensor([-800.0, -3.0, 0.0, 2.5, 800.0], dtype=DT)
    y = torch.tensor([1.0, 0.0, 1.0, 0.3, 0.0], dtype=DT)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            losses.binary_cross_entropy_with_logits(z, y, reduction=reduction),
            F.binary_cross_entropy_with_logits(z, y, reduction=reduction))


def test_binary_cross_entropy_gradient_is_sigmoid_minus_label():
    z = random_logits((10,), seed=13)
    z[:3] = 0.0  # the usual initial logit, where max(z, 0) and |z| have a kink
    z.requires_grad_()
    y = (torch.rand(10, generator=torch.Generator().manual_seed(14)) > 0.5).to(DT)
    losses.binary_cross_entropy_with_logits(z, y, reduction="sum").backward()
    torch.testing.assert_close(z.grad, torch.sigmoid(z.detach()) - y)


def test_binary_is_two_class_softmax_with_logits_0_and_z():
    z = random_logits((6,), seed=15)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    two_class = torch.stack([torch.zeros_like(z), z], dim=-1)
    torch.testing.assert_close(
        losses.binary_cross_entropy_with_logits(z, y.to(DT)),
        losses.softmax_cross_entropy(two_class, y))


# --- perplexity and bits per byte ----------------------------------------------

def test_uniform_model_perplexity_is_vocabulary_size():
    assert losses.perplexity(math.log(50257)) == pytest.approx(50257)
    assert losses.perplexity(torch.tensor(math.log(3.0))).item() == pytest.approx(3.0)


def test_bits_per_byte_of_uniform_byte_model_is_eight():
    assert losses.bits_per_byte(math.log(256), n_tokens=1000, n_bytes=1000) == pytest.approx(8.0)
    # the same text, tokens of 4 bytes each: 4x the loss per token, same bits per byte
    assert losses.bits_per_byte(4 * math.log(256), n_tokens=250, n_bytes=1000) == pytest.approx(8.0)


def test_nats_to_bits():
    assert losses.nats_to_bits(math.log(2)) == pytest.approx(1.0)
