"""Every bad input gets an error that names the argument, the value and what was expected."""

import math

import pytest
import torch

from course_lib.core import checks, device, glue, losses, seeding

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
