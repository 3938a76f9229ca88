"""Every bad input gets an error that names the argument, the value and what was expected."""

import math

import numpy as np
import pytest
import torch

from course_lib.core import checks, device, glue, losses, seeding, validate

NAN = float("nan")

CASES = [
    # (call, exception, words that must appear in the message)
    (lambda: losses.entropy([0.5, 0.4]), ValueError, ["p", "sums to 0.9", "summing to 1"]),
    (lambda: losses.entropy([1.2, -0.2]), ValueError, ["p", "1.2", "[0, 1]"]),
    (lambda: losses.entropy([0.5, NAN]), ValueError, ["p", "non-finite", "nan"]),
    (lambda: losses.entropy(0.5), ValueError, ["p", "at least 1 dimension", "shape ()"]),
    (lambda: losses.entropy([]), ValueError, ["p", "empty"]),
    (lambda: losses.entropy("abc"), TypeError, ["p", "numbers", "str"]),
    (lambda: losses.cross_entropy([0.5, 0.5], [0.2, 0.3, 0.5]), ValueError, ["p", "(2,)", "q", "(3,)"]),
    (lambda: losses.kl_divergence([0.5, 0.5], [2.0, 3.0]), ValueError, ["q", "2", "[0, 1]"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(4, 3), torch.tensor([0, 1, 2, 3])),
     ValueError, ["targets", "class index 3", "[0, 3)"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([-1, 0])),
     ValueError, ["targets", "-1", "[0, 3)"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0.0, 1.0])),
     TypeError, ["targets", "integer class indices", "torch.float32"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(2, 3), torch.tensor([0, 1, 2])),
     ValueError, ["targets", "(3,)", "logits", "(2, 3)", "expected targets of shape (2,)"]),
    (lambda: losses.softmax_cross_entropy(torch.tensor([[1.0, math.inf]]), [0]),
     ValueError, ["logits", "non-finite", "inf", "(0, 1)"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(1, 3), [0], label_smoothing=1.5),
     ValueError, ["label_smoothing", "[0.0, 1.0]", "1.5"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(1, 3), [0], reduction="avg"),
     ValueError, ["reduction", "'avg'", "'mean'"]),
    (lambda: losses.softmax(torch.zeros(3), temperature=0.0), ValueError, ["temperature", "> 0", "0.0"]),
    (lambda: losses.binary_cross_entropy_with_logits(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0])),
     ValueError, ["targets", "[0, 1]", "max 2"]),
    (lambda: losses.binary_cross_entropy_with_logits(torch.zeros(3), torch.zeros(4)),
     ValueError, ["logits", "(3,)", "targets", "(4,)"]),
    (lambda: losses.surprisal([0.5, 1.5]), ValueError, ["p", "[0, 1]", "1.5"]),
    (lambda: losses.entropy([0.5, 0.5], base=1), ValueError, ["base", "other than 1"]),
    (lambda: losses.perplexity(-1.0), ValueError, ["nll_nats_per_token", ">= 0", "-1.0"]),
    (lambda: losses.bits_per_byte(1.0, n_tokens=10, n_bytes=0), ValueError, ["n_bytes", "> 0", "0"]),
    (lambda: device.get_device("tpu"), ValueError, ["preferred", "'tpu'", "cuda", "cpu"]),
    (lambda: seeding.set_seed(-3), ValueError, ["seed", "-3", "[0, 2**32)"]),
    (lambda: seeding.set_seed(1.5), ValueError, ["seed", "1.5", "integer"]),
    (lambda: glue.glue("final loss", 1.0), ValueError, ["name", "'final loss'", "identifier"]),
    # --- losses: -inf logits are a class ruled out; NaN, +inf and all -inf are not -------
    (lambda: losses.log_softmax(torch.tensor([[0.0, 1.0], [-math.inf, -math.inf]])),
     ValueError, ["logits", "-inf for every class", "index (1,)"]),
    (lambda: losses.softmax_cross_entropy(torch.full((1, 3), -math.inf), [0]),
     ValueError, ["logits", "-inf for every class"]),
    (lambda: losses.softmax_cross_entropy(torch.tensor([[0.0, NAN]]), [0]),
     ValueError, ["logits", "non-finite", "other than -inf", "nan", "(0, 1)"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(1, 3), [0], label_smoothing=NAN),
     ValueError, ["label_smoothing", "finite", "nan"]),
    (lambda: losses.softmax_cross_entropy(torch.zeros(1, 3), [[0]]),
     ValueError, ["targets", "(1, 1)", "expected targets of shape (1,)"]),
    (lambda: losses.softmax(torch.zeros(3), temperature=math.inf), ValueError,
     ["temperature", "finite", "inf"]),
    (lambda: losses.softmax(torch.zeros(3), temperature=True), TypeError,
     ["temperature", "number", "True"]),
    (lambda: losses.softmax(torch.zeros(3), temperature="1"), TypeError,
     ["temperature", "number", "'1'"]),
    (lambda: losses.perplexity(math.inf), ValueError, ["nll_nats_per_token", "finite", "inf"]),
    (lambda: losses.perplexity(torch.tensor([1.0, NAN])), ValueError,
     ["nll_nats_per_token", "non-finite", "nan"]),
    (lambda: losses.binary_cross_entropy_with_logits(torch.zeros(2), torch.tensor([0.0, NAN])),
     ValueError, ["targets", "non-finite", "nan"]),
    (lambda: losses.entropy([[0.5, 0.5], [0.9, 0.2]]), ValueError,
     ["p", "sums to 1.1", "(1,)"]),
    (lambda: losses.kl_divergence([0.5, 0.5], [1.0]), ValueError, ["p", "(2,)", "q", "(1,)"]),
    # --- the validate helpers themselves ------------------------------------------------
    (lambda: validate.require_int("n", 2.0, 1), TypeError, ["n", "an integer", "2.0"]),
    (lambda: validate.require_int("n", np.bool_(True), 0), TypeError, ["n", "True"]),
    (lambda: validate.require_int("n", 0, 1, expected="a positive integer"), ValueError,
     ["n must be a positive integer; got 0"]),
    (lambda: validate.require_int("k", 11, 1, 10), ValueError, ["k", "in [1, 10]", "11"]),
    (lambda: validate.require_number("x", math.nan), ValueError, ["x", "finite", "nan"]),
    (lambda: validate.require_number("x", 1.0, 0, 1, closed=(True, False)), ValueError,
     ["x must be in [0, 1); got 1.0"]),
    (lambda: validate.require_number("x", -1, 0), ValueError, ["x must be >= 0; got -1"]),
    (lambda: validate.require_number("x", 0.0, 0, closed=(False, True)), ValueError,
     ["x must be > 0; got 0.0"]),
    (lambda: validate.require_number("x", None), TypeError, ["x", "number", "None"]),
    (lambda: validate.require_bool("flag", 1), TypeError, ["flag", "True or False", "1"]),
    (lambda: validate.require_token_ids("idx", torch.tensor([[0, 5]]), 5), ValueError,
     ["idx holds token id 5 at position (0, 1), outside the vocabulary [0, 5) of vocab_size=5"]),
    (lambda: validate.require_token_ids("y", torch.tensor([-100, -7]), 5, ignore_index=-100),
     ValueError, ["y", "token id -7", "position (1,)", "-100"]),
    (lambda: validate.require_finite("x", torch.tensor([0.0, math.inf]), allow_neg_inf=True),
     ValueError, ["x", "other than -inf", "inf", "(1,)"]),
    (lambda: validate.require_positive("n", "3"), TypeError, ["n", "number", "'3'"]),
    (lambda: validate.require_class_indices("y", [0, 1.5], 3), TypeError,
     ["y", "integer class indices", "float"]),
    # --- the rest of core ---------------------------------------------------------------
    (lambda: seeding.make_generator(-1), ValueError, ["seed", "non-negative", "-1"]),
    (lambda: seeding.set_seed(2**32), ValueError, ["seed", "[0, 2**32)", "4294967296"]),
    (lambda: checks.expect_close("x", 1.0, 1.0, atol=-1), ValueError, ["atol", ">= 0", "-1"]),
    (lambda: checks.expect_close("x", [], 1.0, atol=1), ValueError, ["value", "empty"]),
    (lambda: checks.expect_close("x", 1.0, 1.0), ValueError, ["atol=", "rtol=", "neither"]),
    (lambda: device.get_device(3), (TypeError, ValueError), ["preferred", "3"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input_gets_a_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


def test_there_are_at_least_ten_cases():
    assert len(CASES) >= 10


def test_cuda_requested_on_a_machine_without_one_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        device.get_device("cuda")


def test_a_wrong_exercise_answer_is_a_message_not_an_exception():
    result = checks.check_function("entropy", lambda p: 1 / 0, reference=losses.entropy,
                                   cases=[([0.5, 0.5],)])
    assert not result and "ZeroDivisionError" in repr(result)


# --- NaN-free losses: mask before you multiply (0 * -inf is NaN) ------------------------
NEG_INF = -math.inf


def test_a_minus_inf_logit_where_the_target_is_zero_adds_nothing():
    logits = torch.tensor([[0.0, NEG_INF, 0.0], [2.0, NEG_INF, NEG_INF]])
    loss = losses.softmax_cross_entropy(logits, [0, 0], reduction="none")
    assert torch.equal(loss, torch.tensor([math.log(2.0), 0.0]))
    assert torch.equal(losses.log_softmax(logits[1]), torch.tensor([0.0, NEG_INF, NEG_INF]))
    assert torch.equal(losses.softmax(logits[0]), torch.tensor([0.5, 0.0, 0.5]))


def test_the_gradient_at_a_minus_inf_logit_is_zero_not_nan():
    logits = torch.tensor([[0.0, NEG_INF, 0.0]], requires_grad=True)
    losses.softmax_cross_entropy(logits, [2]).backward()
    assert torch.equal(logits.grad, torch.tensor([[0.5, 0.0, -0.5]]))
    analytic = losses.softmax_cross_entropy_grad(logits.detach(), [2])
    assert torch.equal(analytic, logits.grad)


def test_an_impossible_target_costs_infinitely_many_nats_not_nan():
    logits = torch.tensor([[0.0, NEG_INF]])
    assert losses.softmax_cross_entropy(logits, [1]).item() == math.inf
    smoothed = losses.softmax_cross_entropy(logits, [0], label_smoothing=0.1)
    assert smoothed.item() == math.inf  # smoothing gives the ruled-out class mass 0.05


@pytest.mark.parametrize("dtype, big", [(torch.float16, 60000.0), (torch.float32, 3e38),
                                        (torch.float64, 1e308)])
def test_extreme_logits_give_the_exact_loss_not_nan(dtype, big):
    # z - max(z) overflows to -inf for the losing class: its target is 0, so the loss is 0
    logits = torch.tensor([[big, -big]], dtype=dtype)
    right = losses.softmax_cross_entropy(logits, [0])
    assert right.dtype == dtype and right.item() == 0.0
    wrong = losses.softmax_cross_entropy(logits, [1])
    assert wrong.item() == math.inf  # 2 * big nats, beyond the dtype's range


def test_float16_logits_of_60000_keep_a_representable_loss():
    logits = torch.tensor([[60000.0, 59968.0]], dtype=torch.float16)  # 32 apart (fp16 spacing)
    loss = losses.softmax_cross_entropy(logits, [1])
    assert loss.dtype == torch.float16 and loss.item() == 32.0
    bce = losses.binary_cross_entropy_with_logits(
        torch.tensor([60000.0, -60000.0], dtype=torch.float16), torch.tensor([1.0, 0.0]))
    assert bce.item() == 0.0


def test_masking_leaves_finite_losses_unchanged():
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    for eps in (0.0, 0.1):
        ours = losses.softmax_cross_entropy(z, y, label_smoothing=eps)
        theirs = torch.nn.functional.cross_entropy(z, y, label_smoothing=eps)
        assert torch.allclose(ours, theirs, rtol=1e-12, atol=0)
        target = (1 - eps) * torch.nn.functional.one_hot(y, 5).double() + eps / 5
        unmasked = -(target * losses.log_softmax(z)).sum(-1).mean()  # the formula before
        assert torch.equal(ours, unmasked)  # bit for bit


def test_distillation_ignores_classes_the_teacher_rules_out():
    from course_lib.training.distill import distillation_loss

    teacher = torch.tensor([[0.0, NEG_INF], [NEG_INF, 3.0]])
    student = torch.zeros(2, 2, requires_grad=True)
    loss = distillation_loss(student, teacher, torch.tensor([0, 1]), temperature=1.0, alpha=1.0)
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-7)  # KL([1, 0] || [.5, .5])
    loss.backward()
    assert torch.isfinite(student.grad).all()
    fp16 = distillation_loss(torch.tensor([[60000.0, -60000.0]]).half(),
                             torch.tensor([[60000.0, -60000.0]]).half(), torch.tensor([0]))
    assert fp16.item() == 0.0
