"""Information-theoretic quantities and the losses built from them (chapter 1).

Conventions
-----------
* Logarithms are natural (results in **nats**) unless ``base=2`` (bits).
* Probability vectors and logits live on the last dimension: ``p`` has shape
  ``(..., K)`` for ``K`` outcomes, class-index targets have shape ``(...)``.
* Every function checks its input (shape, range, finiteness) and raises a
  ``ValueError`` / ``TypeError`` that names the argument; see ``validate.py``.

The functions are written out (rather than calling ``torch.nn.functional``) so
that a reader sees each formula once; ``tests/unit/test_losses.py`` and
chapter 1 check every one against PyTorch.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from course_lib.core.validate import (
    as_tensor,
    first_index,
    require_class_indices,
    require_finite,
    require_in_range,
    require_positive,
    require_probabilities,
    require_same_shape,
)

Reduction = Literal["mean", "sum", "none"]
LN2 = math.log(2.0)
#: A target equal to this is left out of every loss (as in PyTorch and Hugging Face).
IGNORE_INDEX = -100

__all__ = [
    "IGNORE_INDEX",
    "surprisal",
    "entropy",
    "cross_entropy",
    "kl_divergence",
    "log_softmax",
    "softmax",
    "softmax_cross_entropy",
    "softmax_cross_entropy_grad",
    "binary_cross_entropy_with_logits",
    "nats_to_bits",
    "perplexity",
    "bits_per_byte",
]


def _base_divisor(base: float) -> float:
    base = require_positive("base", base)
    if base == 1.0:
        raise ValueError("base must be a positive number other than 1; got 1")
    return math.log(base)


def _reduce(x: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def surprisal(p: object, *, base: float = math.e) -> torch.Tensor:
    """Surprisal ``-log p`` of events with probability ``p`` (any shape).

    ``p = 0`` gives ``inf``: an impossible event is infinitely surprising.
    """
    t = as_tensor("p", p)
    require_finite("p", t)
    if bool(((t < 0) | (t > 1)).any()):
        raise ValueError(f"p must hold probabilities in [0, 1]; got min {t.min().item():.6g}, "
                         f"max {t.max().item():.6g}")
    return -torch.log(t) / _base_divisor(base)


def entropy(p: object, *, base: float = math.e) -> torch.Tensor:
    """Entropy ``H(p) = -sum_k p_k log p_k`` of distributions ``p`` of shape ``(..., K)``.

    Returns shape ``(...)``. Uses ``0 log 0 = 0`` (the limit), via ``xlogy``.
    """
    t = require_probabilities("p", as_tensor("p", p, min_ndim=1))
    return -torch.special.xlogy(t, t).sum(-1) / _base_divisor(base)


def cross_entropy(p: object, q: object, *, base: float = math.e) -> torch.Tensor:
    """Cross-entropy ``H(p, q) = -sum_k p_k log q_k`` for ``p, q`` of shape ``(..., K)``.

    The expected surprisal under model ``q`` of outcomes drawn from ``p``.
    Infinite if ``q`` gives zero probability to an outcome that ``p`` allows.
    """
    tp = require_probabilities("p", as_tensor("p", p, min_ndim=1))
    tq = require_probabilities("q", as_tensor("q", q, min_ndim=1))
    require_same_shape("p", tp, "q", tq)
    return -torch.special.xlogy(tp, tq).sum(-1) / _base_divisor(base)


def kl_divergence(p: object, q: object, *, base: float = math.e) -> torch.Tensor:
    """Kullback–Leibler divergence ``KL(p || q) = H(p, q) - H(p)``, shape ``(...)``.

    Always ``>= 0`` (Gibbs' inequality), zero only when ``p == q``; not symmetric.
    """
    tp = require_probabilities("p", as_tensor("p", p, min_ndim=1))
    tq = require_probabilities("q", as_tensor("q", q, min_ndim=1))
    require_same_shape("p", tp, "q", tq)
    ratio_terms = torch.special.xlogy(tp, tp) - torch.special.xlogy(tp, tq)
    return ratio_terms.sum(-1) / _base_divisor(base)


def _require_some_finite(z: torch.Tensor, m: torch.Tensor, dim: int) -> None:
    """Refuse a slice of logits that is ``-inf`` everywhere (``m`` its maximum): no distribution."""
    empty = m == float("-inf")
    if bool(empty.any()):
        where = first_index(empty.squeeze(dim))
        at = f" at index {where} of the other dimensions" if where else ""
        raise ValueError(f"logits are -inf for every class along dim {dim}{at}; expected at "
                         f"least one finite logit per distribution (all -inf leaves nothing "
                         f"to normalise)")


def log_softmax(logits: object, *, dim: int = -1) -> torch.Tensor:
    """Numerically stable ``log softmax(z) = z - logsumexp(z)``; same shape as ``logits``.

    Subtracting the maximum first keeps every ``exp`` in (0, 1], so no overflow
    for any finite logits (the naive ``log(exp(z) / sum(exp(z)))`` returns NaN
    once a logit exceeds ~88.7 in float32 or ~709.8 in float64). A logit of ``-inf``
    (a class ruled out) gets log-probability ``-inf``; NaN and ``+inf`` are refused.
    """
    z = require_finite("logits", as_tensor("logits", logits, min_ndim=1), allow_neg_inf=True)
    m = z.amax(dim=dim, keepdim=True).detach()
    _require_some_finite(z, m, dim)
    shifted = z - m
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def softmax(logits: object, *, dim: int = -1, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(z / T)`` along ``dim``; same shape as ``logits``.

    Temperature ``T > 0``: small ``T`` sharpens towards the arg-max, large ``T``
    flattens towards uniform.
    """
    t = require_positive("temperature", temperature)
    z = as_tensor("logits", logits, min_ndim=1)
    return torch.exp(log_softmax(z / t, dim=dim))


def _target_distribution(
    targets: torch.Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype
) -> torch.Tensor:
    """One-hot rows mixed with the uniform distribution: ``(1-eps) e_y + eps/K``."""
    one_hot = torch.nn.functional.one_hot(targets, num_classes).to(dtype)
    return (1.0 - label_smoothing) * one_hot + label_smoothing / num_classes


def _check_logits_targets(
    logits: object, targets: object, label_smoothing: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    z = require_finite("logits", as_tensor("logits", logits, min_ndim=1), allow_neg_inf=True)
    eps = require_in_range("label_smoothing", label_smoothing, 0.0, 1.0, closed=(True, True))
    y = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(targets)
    if tuple(y.shape) != tuple(z.shape[:-1]):
        raise ValueError(
            f"targets has shape {tuple(y.shape)} but logits has shape {tuple(z.shape)}; "
            f"expected targets of shape {tuple(z.shape[:-1])} (logits without the class dimension)"
        )
    y = require_class_indices("targets", y, z.shape[-1])
    return z, y.to(z.device), eps


def softmax_cross_entropy(
    logits: object,
    targets: object,
    *,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy of class-index ``targets`` (shape ``(...)``) under ``softmax(logits)``.

    ``logits`` has shape ``(..., K)``. With ``label_smoothing = eps`` the target
    is ``(1 - eps) * one_hot + eps / K`` (PyTorch's convention). Returns a scalar
    for ``reduction="mean"`` or ``"sum"``, shape ``(...)`` for ``"none"``. Nats.

    Classes of target probability 0 contribute exactly 0, whatever their logit: a
    logit of ``-inf``, or one so far below the maximum that its log-probability
    overflows (float16 logits of ±60000), would otherwise give ``0 * (-inf) = NaN``.
    """
    z, y, eps = _check_logits_targets(logits, targets, label_smoothing)
    target = _target_distribution(y, z.shape[-1], eps, z.dtype)
    # mask before multiplying: where the target is 0 the term is 0, not 0 * log p
    terms = torch.where(target > 0, target * log_softmax(z), torch.zeros((), dtype=z.dtype,
                                                                          device=z.device))
    per_example = -terms.sum(-1)
    return _reduce(per_example, reduction)


def softmax_cross_entropy_grad(
    logits: object,
    targets: object,
    *,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Analytic gradient of :func:`softmax_cross_entropy` w.r.t. ``logits``: shape ``(..., K)``.

    ``dL/dz = softmax(z) - target`` per example (the theorem of chapter 1),
    divided by the number of examples for ``reduction="mean"``.
    """
    z, y, eps = _check_logits_targets(logits, targets, label_smoothing)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    grad = torch.exp(log_softmax(z)) - _target_distribution(y, z.shape[-1], eps, z.dtype)
    if reduction == "mean":
        grad = grad / y.numel()
    return grad


def binary_cross_entropy_with_logits(
    logits: object, targets: object, *, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Binary cross-entropy of labels ``y`` in [0, 1] under ``sigmoid(z)``, computed stably.

    ``-[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - z*y``, with
    ``log(1 + e^z) = logaddexp(0, z)`` evaluated without overflow. ``logits`` and
    ``targets`` share one shape; the gradient is ``s(z) - y``. (The other common
    stable form, ``max(z, 0) - z*y + log(1 + e^{-|z|})``, has the same value, but
    autograd differentiates ``max`` and ``|z|`` separately and gets the wrong
    gradient at exactly ``z = 0``, the usual initial logit.)
    """
    z = require_finite("logits", as_tensor("logits", logits))
    y = as_tensor("targets", targets).to(z.dtype)
    require_same_shape("logits", z, "targets", y)
    require_finite("targets", y)
    if bool(((y < 0) | (y > 1)).any()):
        raise ValueError(
            f"targets must be labels in [0, 1]; got min {y.min().item():.6g}, max {y.max().item():.6g}"
        )
    per_example = torch.logaddexp(torch.zeros_like(z), z) - z * y
    return _reduce(per_example, reduction)


def nats_to_bits(nats: float | torch.Tensor) -> float | torch.Tensor:
    """Convert nats to bits (divide by ln 2)."""
    return nats / LN2


def perplexity(nll_nats_per_token: float | torch.Tensor) -> float | torch.Tensor:
    """Perplexity ``exp(mean NLL)`` from a mean negative log-likelihood in nats per token.

    A uniform model over ``V`` tokens has perplexity exactly ``V``.
    """
    if isinstance(nll_nats_per_token, torch.Tensor):
        require_finite("nll_nats_per_token", nll_nats_per_token)
        return torch.exp(nll_nats_per_token)
    value = require_positive("nll_nats_per_token", nll_nats_per_token, allow_zero=True)
    return math.exp(value)


def bits_per_byte(nll_nats_per_token: float, n_tokens: int, n_bytes: int) -> float:
    """Bits per UTF-8 byte: ``nll * n_tokens / (n_bytes * ln 2)``.

    Unlike loss per token, this does not depend on the tokenizer, so it compares
    models with different vocabularies on the same text.
    """
    nll = require_positive("nll_nats_per_token", nll_nats_per_token, allow_zero=True)
    tokens = require_positive("n_tokens", n_tokens)
    nbytes = require_positive("n_bytes", n_bytes)
    return nll * tokens / (nbytes * LN2)
