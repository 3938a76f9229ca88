"""Input checks that turn bad input into a clear error.

Every function here raises with a message that names the argument, shows the
offending value, and says what was expected; none of them returns anything
useful except the (possibly converted) tensor. They are called at the top of
the public functions in ``course_lib`` so that a wrong shape or a stray NaN
stops the computation before it becomes a silent NaN loss or a wrong figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "first_index",
    "as_tensor",
    "require_finite",
    "require_probabilities",
    "require_class_indices",
    "require_same_shape",
    "require_positive",
    "require_in_range",
    "require_int",
    "require_number",
    "plain",
    "require_bool",
    "require_token_ids",
    "log_base",
]


def first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` as a tuple of ints (``()`` for a 0-d mask)."""
    idx = mask.nonzero()[0]
    return tuple(int(i) for i in idx)


_first_index = first_index


def as_tensor(name: str, x: object, *, min_ndim: int = 0) -> torch.Tensor:
    """Convert ``x`` to a floating tensor (lists and numpy arrays accepted).

    Lists, arrays and integer tensors become ``float64``; floating tensors keep
    their dtype (and device).
    Raises ``TypeError`` if ``x`` cannot be read as numbers and ``ValueError``
    if it has fewer than ``min_ndim`` dimensions or no elements.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            # Through NumPy, so that Python floats stay float64 (torch.as_tensor
            # alone would round them to float32 before the conversion below).
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a tensor, array or nested list of numbers; "
                f"got {type(x).__name__} ({err})"
            ) from None
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers; got dtype {t.dtype}")
    if not t.is_floating_point() or not isinstance(x, torch.Tensor):
        t = t.to(torch.float64)  # lists, arrays and integer tensors: compute in float64
    if t.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s); got shape {tuple(t.shape)}"
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one value")
    return t


def require_finite(name: str, x: torch.Tensor, *, allow_neg_inf: bool = False) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or ±inf; return ``x`` unchanged.

    With ``allow_neg_inf=True``, ``-inf`` is accepted (a logit of ``-inf`` rules a
    class out: probability exactly 0); NaN and ``+inf`` are still refused.
    """
    bad = ~torch.isfinite(x)
    if allow_neg_inf:
        bad &= x != float("-inf")
    if bool(bad.any()):
        where = _first_index(bad)
        other = " other than -inf" if allow_neg_inf else ""
        expected = "finite numbers or -inf" if allow_neg_inf else "finite numbers"
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s){other}; the first is "
            f"{x[where].item()} at index {where}. Expected {expected} "
            f"(a NaN or inf here usually comes from an overflow upstream)."
        )
    return x


def require_probabilities(
    name: str, p: torch.Tensor, *, dim: int = -1, atol: float = 1e-6
) -> torch.Tensor:
    """Check that ``p`` holds probability vectors along ``dim``.

    Entries must be finite, in [0, 1], and sum to 1 within ``atol``.
    """
    require_finite(name, p)
    neg = (p < 0) | (p > 1)
    if bool(neg.any()):
        where = _first_index(neg)
        raise ValueError(
            f"{name} has entry {p[where].item():.6g} at index {where}; "
            f"expected probabilities in [0, 1]"
        )
    sums = p.sum(dim=dim)
    off = (sums - 1).abs() > atol
    if bool(off.any()):
        where = _first_index(off) if sums.ndim else ()
        loc = f" (at index {where} of the other dimensions)" if sums.ndim else ""
        raise ValueError(
            f"{name} sums to {sums[where].item():.6g} along dim {dim}{loc}; expected probabilities "
            f"summing to 1 (tolerance {atol:g}). Did you pass logits instead of "
            f"probabilities, or forget to normalise?"
        )
    return p


def require_class_indices(name: str, y: object, num_classes: int) -> torch.Tensor:
    """Check that ``y`` holds integer class indices in ``[0, num_classes)``.

    Returns ``y`` as an ``int64`` tensor. Raises ``TypeError`` for floating or
    boolean labels and ``ValueError`` for out-of-range ones.
    """
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(y)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(
            f"{name} must hold integer class indices (dtype int64); got dtype {t.dtype}. "
            f"If these are one-hot or soft targets, pass class indices instead."
        )
    t = t.to(torch.int64)
    bad = (t < 0) | (t >= num_classes)
    if bool(bad.any()):
        where = _first_index(bad)
        raise ValueError(
            f"{name} has class index {int(t[where])} at position {where}; "
            f"expected indices in [0, {num_classes}) for {num_classes} classes"
        )
    return t


def require_same_shape(
    name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor
) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape "
            f"{tuple(b.shape)}; expected equal shapes"
        )


def _real(name: str, value: object, expected: str = "a number") -> float:
    """``value`` as a Python float: Python and NumPy numbers (and 0-d arrays or one-element
    tensors) are accepted; ``bool`` and strings are refused with a ``TypeError``."""
    message = f"{name} must be {expected}; got {value!r} ({type(value).__name__})"
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(message)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(message) from None


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check a scalar is finite and > 0 (or >= 0); return it as a float."""
    v = _real(name, value)
    ok = v >= 0 if allow_zero else v > 0
    if not (ok and v == v and v not in (float("inf"), float("-inf"))):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return v


def require_in_range(
    name: str, value: float, low: float, high: float, *, closed: Sequence[bool] = (True, False)
) -> float:
    """Check ``low <= value < high`` (bounds closed/open per ``closed``)."""
    v = require_positive(name, value, allow_zero=True) if low >= 0 else float(value)
    lo_ok = v >= low if closed[0] else v > low
    hi_ok = v <= high if closed[1] else v < high
    if not (lo_ok and hi_ok):
        lb = "[" if closed[0] else "("
        rb = "]" if closed[1] else ")"
        raise ValueError(f"{name} must be in {lb}{low}, {high}{rb}; got {value!r}")
    return v


def require_int(name: str, value: object, low: int, high: int | None = None, *,
                expected: str | None = None) -> int:
    """Check an integer (Python or NumPy, not ``bool``) with ``low <= value (<= high)``.

    Returns it as a Python ``int`` (so that it serialises to JSON). A non-integer
    raises ``TypeError``, one out of range ``ValueError``; ``expected`` rewords what
    both messages ask for (``"a positive integer"``), in place of the bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {expected or 'an integer'}; got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {expected or bound}; got {value!r}")
    return int(value)


def require_number(
    name: str, value: object, low: float | None = None, high: float | None = None, *,
    closed: Sequence[bool] = (True, True), expected: str | None = None,
) -> float:
    """Check a finite real number (Python or NumPy, not ``bool``) within optional bounds.

    ``closed`` says whether ``low`` and ``high`` themselves are allowed. Returns a
    Python ``float``. A non-number raises ``TypeError``; NaN, ±inf or a value out of
    range raise ``ValueError``. ``expected`` rewords the range in the message
    (``"a positive number"``); by default it reads ``"in [0, 1)"``, ``">= 0"`` etc.
    """
    v = _real(name, value, expected or "a number")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    lo_ok = low is None or (v >= low if closed[0] else v > low)
    hi_ok = high is None or (v <= high if closed[1] else v < high)
    if not (lo_ok and hi_ok):
        if expected is None:
            if low is not None and high is not None:
                expected = (f"in {'[' if closed[0] else '('}{low}, "
                            f"{high}{']' if closed[1] else ')'}")
            elif low is not None:
                expected = f"{'>=' if closed[0] else '>'} {low}"
            else:
                expected = f"{'<=' if closed[1] else '<'} {high}"
        raise ValueError(f"{name} must be {expected}; got {value!r}")
    return v


def plain(value: object, checked: float) -> object:
    """``value`` itself if it is a Python ``int`` or ``float``, else ``checked`` (the float a
    check returned for it): NumPy scalars become Python floats, which JSON can write,
    while ``0`` stays ``0`` (a settings file or a cache key written from it is unchanged)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else checked


def require_bool(name: str, value: object) -> bool:
    """Check ``True`` or ``False`` (NumPy booleans accepted); return a Python ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r} ({type(value).__name__})")
    return bool(value)


def require_token_ids(
    name: str, ids: torch.Tensor, vocab_size: int, *, ignore_index: int | None = None
) -> torch.Tensor:
    """Check that the integer tensor ``ids`` holds token ids in ``[0, vocab_size)``.

    Entries equal to ``ignore_index`` (for targets: -100) are allowed too. Made for a
    model's forward pass: the common case costs two comparisons over ``ids`` and one
    ``any`` (on a GPU, one synchronisation); the offending position is looked up only
    on failure. Raises ``ValueError`` naming the id, its position and ``vocab_size``,
    before an embedding lookup turns it into an ``IndexError`` on the CPU or a
    device-side assert on a GPU (which leaves the CUDA context unusable).
    """
    bad = (ids >= vocab_size) | (ids < 0)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bool(bad.any()):
        where = first_index(bad)
        other = (f"; the only other value allowed is {ignore_index} (a position left out "
                 f"of the loss)" if ignore_index is not None else "")
        raise ValueError(
            f"{name} holds token id {int(ids[where])} at position {where}, outside the "
            f"vocabulary [0, {vocab_size}) of vocab_size={vocab_size}{other}"
        )
    return ids


def log_base(base: float) -> float:
    """``ln(base)`` for converting nats: ``bits = nats / log_base(2)``; refuses ``base = 1``."""
    base = require_positive("base", base)
    if base == 1.0:
        raise ValueError("base must be a positive number other than 1; got 1")
    return math.log(base)
