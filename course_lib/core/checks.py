"""Checks: self-checks for a learner's exercises, tolerance checks for results.

Two kinds, for two readers:

* :func:`check_value` and :func:`check_function` are the learner's
  self-checks. They never raise for a wrong answer: they return a
  :class:`CheckResult` whose text says pass or fail, what differed, and a
  hint. A placeholder (``answer = ...``) or a function that is still a stub
  (``raise NotImplementedError``) is reported as "not attempted yet".
* :func:`expect_close` is the project's regression check on a chapter's own
  results (a loss after training, an accuracy, a fitted exponent): the
  stored value is written in the cell, and a value outside its tolerance
  *raises*, so that re-executing the chapter and nbval both fail.

>>> check_value("ln 2 in bits", 1.0, expected=1.0)
✅ ln 2 in bits: correct
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["CheckResult", "check_value", "check_function", "history",
           "ToleranceError", "Expectation", "expect_close", "LOG_ENV_VAR"]

#: Environment variable naming a file to which every :func:`expect_close`
#: appends one JSON line (name, value, reference, tolerance, arithmetic):
#: the raw material for choosing tolerances (see ``tests/README.md``).
LOG_ENV_VAR = "COURSE_CHECK_LOG"


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a self-check; its ``repr`` is the message shown in the notebook.

    ``status`` is ``"passed"``, ``"failed"`` or ``"not attempted"``.
    """

    name: str
    passed: bool
    message: str
    attempted: bool = True

    def __bool__(self) -> bool:
        return self.passed

    @property
    def status(self) -> str:
        if not self.attempted:
            return "not attempted"
        return "passed" if self.passed else "failed"

    def __repr__(self) -> str:
        mark = "✅" if self.passed else ("⬜" if not self.attempted else "❌")
        return f"{mark} {self.name}: {self.message}"


_HISTORY: list[CheckResult] = []


def history() -> list[CheckResult]:
    """Every self-check result of this session, oldest first (a copy).

    A tally for the learner (``[r.status for r in checks.history()]``) and
    what ``tests/test_labs.py`` reads to see that a wrong answer fails.
    """
    return list(_HISTORY)


def _record(result: CheckResult) -> CheckResult:
    _HISTORY.append(result)
    return result


def _short(x: Any, limit: int = 60) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().tolist() if x.numel() <= 8 else f"tensor of shape {tuple(x.shape)}"
    if isinstance(x, float):
        return f"{x:.6g}"
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(name: str, what: str, hint: str) -> CheckResult:
    return _record(CheckResult(name, False, what + (f" Hint: {hint}" if hint else "")))


def _not_attempted(name: str, what: str, hint: str) -> CheckResult:
    text = f"not attempted yet: {what}" + (f" Hint: {hint}" if hint else "")
    return _record(CheckResult(name, False, text, attempted=False))


def _is_placeholder(x: Any) -> bool:
    """``...`` or ``None``, alone or anywhere inside a list, tuple or dict."""
    if x is Ellipsis or x is None:
        return True
    if isinstance(x, (list, tuple)):
        return any(_is_placeholder(v) for v in x)
    if isinstance(x, dict):
        return any(_is_placeholder(v) for v in x.values())
    return False


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
    """Compare a learner's number (or tensor) with the expected one, within tolerances.

    ``got`` still ``...`` (or ``None``, or a list holding one) is reported as
    "not attempted yet", never as an error.
    """
    if _is_placeholder(got):
        return _not_attempted(name, "replace the placeholder with your answer.", hint)
    problem = _compare(got, expected, rtol, atol)
    if problem:
        return _fail(name, problem, hint)
    return _record(CheckResult(name, True, "correct"))


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
    stack trace; ``NotImplementedError`` (a stub) means "not attempted yet".
    """
    if fn is Ellipsis or fn is None:
        return _not_attempted(name, "write the function.", hint)
    if not callable(fn):
        return _fail(name, f"expected a function, got {type(fn).__name__}.", hint)
    cases = [tuple(c) for c in cases]
    for i, args in enumerate(cases, start=1):
        shown = ", ".join(_short(a) for a in args)
        try:
            got = fn(*args)
        except NotImplementedError:
            return _not_attempted(name, "the function still raises NotImplementedError.", hint)
        except Exception as err:  # noqa: BLE001 — any learner error becomes a message
            return _fail(name, f"case {i} ({shown}) raised {type(err).__name__}: {err}.", hint)
        problem = _compare(got, reference(*args), rtol, atol)
        if problem:
            return _fail(name, f"case {i} ({shown}): {problem}", hint)
    return _record(CheckResult(name, True, f"all {len(cases)} cases match"))


# --- tolerance checks on a chapter's results ---------------------------------------------


class ToleranceError(AssertionError):
    """A chapter's result moved outside the tolerance of its stored reference."""


def _as_array(name: str, x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a number, a list of numbers, an array or a "
                         f"tensor; got {type(x).__name__} {_short(x)} ({err})") from None
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one number")
    return arr


def _tolerance(name: str, value: float | None) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def _fmt(x: np.ndarray) -> str:
    """Compact text: a number with 6 significant digits, or a short list."""
    if x.ndim == 0:
        return f"{float(x):.6g}"
    if x.size <= 8:
        return "[" + ", ".join(f"{float(v):.6g}" for v in x.ravel()) + "]"
    return f"{x.size} values"


def _tol_text(atol: float, rtol: float) -> str:
    parts = ([f"atol {atol:g}"] if atol else []) + ([f"rtol {rtol:g}"] if rtol else [])
    return ", ".join(parts) or "atol 0"


def _accelerator() -> str | None:
    """The chapters' device type if it is not the CPU (``cuda``, ``mps``), else None."""
    from course_lib.core.device import get_device

    kind = get_device().type
    return None if kind == "cpu" else kind


@dataclass(frozen=True)
class Expectation:
    """What :func:`expect_close` compared; ``repr`` is the line it printed.

    ``deviation`` is the largest ``|value - reference|``, ``allowed`` the
    largest deviation the tolerance accepts there (``atol + rtol |reference|``,
    elementwise as in :func:`numpy.isclose`), and ``device`` the accelerator
    whose tolerances applied (``None`` for the CPU's).
    """

    name: str
    value: np.ndarray
    reference: np.ndarray
    atol: float
    rtol: float
    device: str | None
    deviation: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        mark = "✅" if self.passed else "❌"
        where = f" on {self.device}" if self.device else ""
        # The measured value sits between ⟨ ⟩: tests/nbval_sanitize.cfg masks it, so
        # nbval compares the mark, name, reference and tolerance but not the value.
        return (f"{mark} {self.name}: measured ⟨{_fmt(self.value)}⟩, reference "
                f"{_fmt(self.reference)} ({_tol_text(self.atol, self.rtol)}{where})")

    def _ipython_display_(self) -> None:
        """Displaying the result adds nothing: its line was printed by the check."""


def _log(result: Expectation) -> None:
    path = os.environ.get(LOG_ENV_VAR)
    if not path:
        return
    record = {"name": result.name, "value": result.value.tolist(),
              "reference": result.reference.tolist(), "atol": result.atol,
              "rtol": result.rtol, "device": result.device or "cpu",
              "passed": result.passed, "deviation": result.deviation,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "threads": torch.get_num_threads()}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def expect_close(
    name: str,
    value: Any,
    reference: Any,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    gpu_atol: float | None = None,
    gpu_rtol: float | None = None,
) -> Expectation:
    """Check a chapter's result against its stored reference; raise if it moved.

    ``value`` is what the cell just computed (a number, list, array or
    tensor); ``reference`` is the stored value, written as a literal in the
    cell; they must have the same shape. The check passes where
    ``|value - reference| <= atol + rtol * |reference|`` elementwise, and
    every value is finite. At least one of ``atol`` and ``rtol`` is required.

    It prints one line, ``✅ name: measured ⟨value⟩, reference R (atol A)``;
    the part between ``⟨ ⟩`` depends on the hardware and is masked by
    ``tests/nbval_sanitize.cfg``, so nbval compares the rest — the mark,
    the name, the reference and the tolerance. Outside the tolerance it
    prints the line with ❌ and raises :class:`ToleranceError` (an
    ``AssertionError``), naming value, reference and tolerance: executing
    the chapter and checking it with nbval then both fail.

    **On an accelerator.** When the chapters' device
    (:func:`course_lib.core.device.get_device`, i.e. ``$COURSE_DEVICE`` or
    auto-detection) is not the CPU, ``gpu_atol`` / ``gpu_rtol`` replace
    ``atol`` / ``rtol`` if either is given. Give them for a value computed on
    ``get_device()`` (bf16 autocast and other kernels move it further than
    any CPU does); a value the chapter computes on the CPU whatever the
    device needs none, and keeps the CPU tolerance everywhere.

    **Choosing a tolerance.** From the measured spread, never by eye: run the
    chapter under each arithmetic CI uses — ``make spread`` executes it with
    torch's native and portable kernels and one and two threads, with
    ``$COURSE_CHECK_LOG`` set so that every check appends its value — and
    take the largest deviation from the reference seen across those runs
    (and on other processors, when known). The tolerance is the larger of
    five times that spread and two units of the last digit the chapter
    quotes the value to, rounded up to 1, 2 or 5 in its leading digit (the
    spread on one machine underestimates the spread across processors); a
    rounding error, with reference 0, gets the bound its analysis gives.
    Keep it well below the effect the chapter demonstrates: a tolerance as
    wide as the effect would let a broken result pass.
    For GPU tolerances, the same rule on the spread between the CPU
    reference and GPU runs; until that has been measured, a chapter states
    a GPU tolerance as wide as the effect it demonstrates allows.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string naming the result; got {name!r}")
    atol_, rtol_ = _tolerance("atol", atol), _tolerance("rtol", rtol)
    if atol is None and rtol is None:
        raise ValueError(f"expect_close({name!r}): give atol= or rtol= (or both), "
                         "chosen from the measured spread of the value; got neither")
    ref = _as_array("reference", reference)
    if not np.all(np.isfinite(ref)):
        raise ValueError(f"reference of {name!r} must be finite; got {_fmt(ref)}")
    gpu = _tolerance("gpu_atol", gpu_atol), _tolerance("gpu_rtol", gpu_rtol)
    device = _accelerator() if gpu_atol is not None or gpu_rtol is not None else None
    if device:
        atol_, rtol_ = gpu
    val = _as_array("value", value)
    if val.shape != ref.shape:
        problem = f"has shape {val.shape}, but the reference has shape {ref.shape}"
        result = Expectation(name, val, ref, atol_, rtol_, device, math.inf, False)
    else:
        finite = bool(np.all(np.isfinite(val)))
        deviation = float(np.max(np.abs(val - ref))) if finite else math.inf
        ok = finite and bool(np.all(np.abs(val - ref) <= atol_ + rtol_ * np.abs(ref)))
        result = Expectation(name, val, ref, atol_, rtol_, device, deviation, ok)
        problem = "is not finite" if not finite else (
            f"differs from the reference by {deviation:.3g}")
    print(repr(result))
    _log(result)
    if not result.passed:
        raise ToleranceError(
            f"{name}: measured {_fmt(val)} {problem}; reference {_fmt(ref)}, tolerance "
            f"{_tol_text(atol_, rtol_)}{f' on {device}' if device else ''}. If the change "
            f"is intended, re-execute the chapter and update the reference in the cell.")
    return result
