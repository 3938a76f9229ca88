"""Self-checks that a learner runs on their own exercise solutions.

A check never raises for a wrong answer: it returns a :class:`CheckResult`
whose text says pass or fail, what differed, and a hint. A function that is
still a stub (``raise NotImplementedError``) is reported as "not done yet".

>>> check_value("ln 2 in bits", 1.0, expected=1.0)
✅ ln 2 in bits: correct
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CheckResult", "check_value", "check_function"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a self-check; its ``repr`` is the message shown in the notebook."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "✅" if self.passed else "❌"
        return f"{mark} {self.name}: {self.message}"


def _short(x: Any, limit: int = 60) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().tolist() if x.numel() <= 8 else f"tensor of shape {tuple(x.shape)}"
    if isinstance(x, float):
        return f"{x:.6g}"
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(name: str, what: str, hint: str) -> CheckResult:
    return CheckResult(name, False, what + (f" Hint: {hint}" if hint else ""))


def _compare(got: Any, expected: Any, rtol: float, atol: float) -> str | None:
    """``None`` if ``got`` matches ``expected``, else a sentence saying how it differs."""
    try:
        g = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        return f"expected a number or tensor, got {type(got).__name__} {_short(got)}."
    e = torch.as_tensor(expected, dtype=torch.float64)
    if g.shape != e.shape:
        return f"expected shape {tuple(e.shape)}, got shape {tuple(g.shape)}."
    if not torch.allclose(g, e, rtol=rtol, atol=atol, equal_nan=False):
        return f"got {_short(got)}, expected {_short(expected)}."
    return None


def check_value(
    name: str, got: Any, *, expected: Any, rtol: float = 1e-6, atol: float = 1e-9, hint: str = ""
) -> CheckResult:
    """Compare a learner's number (or tensor) with the expected one, within tolerances."""
    if got is Ellipsis or got is None:
        return _fail(name, "not done yet: replace the placeholder with your answer.", hint)
    problem = _compare(got, expected, rtol, atol)
    return _fail(name, problem, hint) if problem else CheckResult(name, True, "correct")


def check_function(
    name: str,
    fn: Callable[..., Any],
    *,
    reference: Callable[..., Any],
    cases: Iterable[Sequence[Any]],
    rtol: float = 1e-6,
    atol: float = 1e-9,
    hint: str = "",
) -> CheckResult:
    """Call ``fn(*args)`` and ``reference(*args)`` for each ``args`` in ``cases`` and compare.

    Exceptions raised by ``fn`` become a failed result naming the case, never a
    stack trace.
    """
    if not callable(fn):
        return _fail(name, f"expected a function, got {type(fn).__name__}.", hint)
    cases = [tuple(c) for c in cases]
    for i, args in enumerate(cases, start=1):
        shown = ", ".join(_short(a) for a in args)
        try:
            got = fn(*args)
        except NotImplementedError:
            return _fail(name, "not done yet: the function still raises NotImplementedError.", hint)
        except Exception as err:  # noqa: BLE001 — any learner error becomes a message
            return _fail(name, f"case {i} ({shown}) raised {type(err).__name__}: {err}.", hint)
        problem = _compare(got, reference(*args), rtol, atol)
        if problem:
            return _fail(name, f"case {i} ({shown}): {problem}", hint)
    return CheckResult(name, True, f"all {len(cases)} cases match")
