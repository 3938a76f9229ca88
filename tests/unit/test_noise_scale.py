"""The gradient noise scale estimator on a problem whose answer is known exactly."""

import pytest
import torch

from course_lib.training.noise_scale import measure_noise_scale, noise_scale_from_norms


class _Quadratic(torch.nn.Module):
    """Per-example loss |w - z|^2 / 2 with z ~ N(mu, s^2 I): the per-example gradient is
    w - z, so G = w - mu and tr(Sigma) = dim s^2, exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(w)


def _loss(model, batch):
    return 0.5 * (model.w - batch[0]).pow(2).sum(1).mean()


@pytest.mark.parametrize("b, k", [(4, 8), (16, 4)])
def test_recovers_the_true_noise_scale(b, k):
    dim, s = 50, 0.7
    mu, w = torch.zeros(dim), torch.full((dim,), 0.1)
    true_g2, true_trace = (w - mu).pow(2).sum().item(), dim * s * s
    model = _Quadratic(w.clone())

    def batch(generator):
        return (mu + s * torch.randn(b, dim, generator=generator),)

    est = measure_noise_scale(model, batch, _loss, micro_batches=k, repeats=400)
    assert est.small_batch == b and est.big_batch == b * k
    assert est.grad_sq == pytest.approx(true_g2, rel=0.1)
    assert est.trace_cov == pytest.approx(true_trace, rel=0.05)
    assert est.b_simple == pytest.approx(true_trace / true_g2, rel=0.12)
    assert torch.equal(model.w.detach(), w) and model.w.grad is None


def test_two_batch_formulas_invert_the_expectation():
    g2, trace, b, big = 3.0, 40.0, 8, 64
    small_sq, big_sq = g2 + trace / b, g2 + trace / big
    assert noise_scale_from_norms(small_sq, big_sq, b, big) == pytest.approx((g2, trace))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="big"):
        noise_scale_from_norms(1.0, 1.0, 8, 8)
    with pytest.raises(ValueError, match="micro_batches"):
        measure_noise_scale(_Quadratic(torch.zeros(2)), None, _loss, micro_batches=1)
