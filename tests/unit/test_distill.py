"""Distillation loss (chapter 13): known values, gradient, limits, clear errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.core import losses
from course_lib.training.distill import distillation_loss, distillation_loss_fn


def logits(seed, shape=(2, 5, 7)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_alpha_zero_is_cross_entropy_and_alpha_one_is_scaled_kl():
    s, t = logits(0), logits(1)
    y = torch.randint(7, (2, 5), generator=torch.Generator().manual_seed(2))
    ce = F.cross_entropy(s.flatten(0, 1), y.flatten())
    torch.testing.assert_close(distillation_loss(s, t, y, alpha=0.0).double(), ce.double())
    T = 3.0
    p_t = losses.softmax(t / T)
    p_s = losses.softmax(s / T)
    kl = losses.kl_divergence(p_t, p_s).mean()  # chapter 1's KL, per position
    got = distillation_loss(s, t, y, temperature=T, alpha=1.0)
    torch.testing.assert_close(got.double(), T**2 * kl, atol=1e-6, rtol=1e-6)


def test_gradient_of_the_kl_term_is_difference_of_softened_probabilities():
    s = logits(3, (4, 6)).float().requires_grad_()
    t = logits(4, (4, 6)).float()
    T = 2.0
    distillation_loss(s, t, torch.zeros(4, dtype=torch.long), temperature=T,
                      alpha=1.0).backward()
    expected = T * (F.softmax(s / T, -1) - F.softmax(t / T, -1)) / 4  # T^2 / T, mean over 4
    torch.testing.assert_close(s.grad, expected.detach(), atol=1e-6, rtol=1e-5)


def test_identical_logits_leave_only_the_label_term_and_ignored_positions_count_nowhere():
    s = logits(5)
    y = torch.full((2, 5), -100)
    y[0, 0] = 3
    ce = -F.log_softmax(s[0, 0], -1)[3]
    torch.testing.assert_close(distillation_loss(s, s.clone(), y, alpha=0.25).double(),
                               0.75 * ce, atol=1e-7, rtol=0)


def test_loss_fn_trains_a_student_towards_the_teacher():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Embedding(11, 11))
    student = torch.nn.Sequential(torch.nn.Embedding(11, 11))
    fn = distillation_loss_fn(teacher, temperature=1.0, alpha=1.0)
    x = torch.arange(11).view(1, 11)
    batch = (x, x)
    opt = torch.optim.Adam(student.parameters(), lr=0.1)
    first = fn(student, batch).item()
    for _ in range(50):
        opt.zero_grad()
        fn(student, batch).backward()
        opt.step()
    assert fn(student, batch).item() < 0.2 * first
    assert not any(p.requires_grad for p in teacher.parameters())
    assert math.isfinite(first)


@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=0.0), ["temperature", "positive", "0.0"]),
    (dict(alpha=1.5), ["alpha", "[0, 1]", "1.5"]),
])
def test_bad_settings_are_named(kwargs, words):
    with pytest.raises(ValueError) as err:
        distillation_loss(logits(0), logits(1), torch.zeros(2, 5, dtype=torch.long), **kwargs)
    for word in words:
        assert word in str(err.value)


def test_shape_mismatch_is_explained():
    with pytest.raises(ValueError, match="share a vocabulary"):
        distillation_loss(logits(0), logits(1, (2, 5, 8)), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets has shape \(5,\)"):
        distillation_loss(logits(0), logits(1), torch.zeros(5, dtype=torch.long))
