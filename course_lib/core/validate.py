"""Input checks that turn bad input into a clear error.

Every function here raises with a message that names the argument, shows the
offending value, and says what was expected; none of them returns anything
useful except the (possibly converted) tensor. They are called at the top of
the public functions in ``course_lib`` so that a wrong shape or a stray NaN
stops the computation before it becomes a silent NaN loss or a wrong figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "as_tensor",
    "require_finite",
    "require_probabilities",
    "require_class_indices",
    "require_same_shape",
    "require_positive",
    "require_in_range",
    "require_int",
    "log_base",
]


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` as a tuple of ints."""
    idx = mask.nonzero()[0]
    return tuple(int(i) for i in idx)


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


def require_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or ±inf; return ``x`` unchanged."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        where = _first_index(bad)
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite value(s); the first is "
            f"{x[where].item()} at index {where}. Expected finite numbers "
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


def require_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Check a scalar is finite and > 0 (or >= 0); return it as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {value!r}") from None
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


def require_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """Check an integer (Python or NumPy, not ``bool``) with ``low <= value (<= high)``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}; got {value!r}")
    return int(value)


def log_base(base: float) -> float:
    """``ln(base)`` for converting nats: ``bits = nats / log_base(2)``; refuses ``base = 1``."""
    import math

    base = require_positive("base", base)
    if base == 1.0:
        raise ValueError("base must be a positive number other than 1; got 1")
    return math.log(base)
