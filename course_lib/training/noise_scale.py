"""The gradient noise scale {McCandlish et al. 2018}: how large a batch still pays (ch. 11).

A batch of ``B`` examples estimates the true gradient ``G`` with covariance ``Σ / B``
(``Σ``: the per-example gradients' covariance). The *simple noise scale*

    B_simple = tr(Σ) / |G|²

is the batch size at which the noise in the estimate is as large as the signal:
much smaller batches waste steps on noise, much larger ones waste examples. Neither
``|G|²`` nor ``tr(Σ)`` is observed, but the squared norm of a batch gradient is
``E|G_B|² = |G|² + tr(Σ) / B``; two batch sizes ``b < B`` give unbiased estimates of
both (McCandlish et al., appendix A)::

    |G|²  ≈ (B |G_B|² − b |G_b|²) / (B − b)
    tr Σ  ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

Here the small batches are ``k`` micro-batches of ``b`` examples and the big batch is
their union (``B = k b``), so one measurement costs ``k`` backward passes. The two
estimates are averaged separately over ``repeats`` draws and divided at the end (a
ratio of noisy estimates is biased; the paper averages the same way). An example is
one sequence of the batch; multiply by its length for tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from course_lib.core.validate import require_int

__all__ = ["NoiseScale", "noise_scale_from_norms", "measure_noise_scale"]


@dataclass(frozen=True)
class NoiseScale:
    """Estimates of ``|G|²`` and ``tr(Σ)`` (per example) and their ratio, ``b_simple``."""

    grad_sq: float
    trace_cov: float
    small_batch: int
    big_batch: int

    @property
    def b_simple(self) -> float:
        """``tr(Σ) / |G|²`` in examples (``inf`` when the estimate of ``|G|²`` is <= 0)."""
        return self.trace_cov / self.grad_sq if self.grad_sq > 0 else float("inf")


def noise_scale_from_norms(small_sq: float, big_sq: float, small: int, big: int
                           ) -> tuple[float, float]:
    """``(|G|², tr Σ)`` from the mean squared gradient norm at batch sizes ``small < big``."""
    small = require_int("small", small, 1, expected="a positive batch size")
    big = require_int("big", big, small + 1, expected=f"a batch size > small ({small})")
    grad_sq = (big * big_sq - small * small_sq) / (big - small)
    trace = (small_sq - big_sq) / (1.0 / small - 1.0 / big)
    return grad_sq, trace


def _flat_grad(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])


def measure_noise_scale(
    model: torch.nn.Module,
    get_batch: Callable[[torch.Generator], tuple[torch.Tensor, ...]],
    loss_fn: Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
    *,
    micro_batches: int = 8,
    repeats: int = 4,
    generator: torch.Generator | None = None,
) -> NoiseScale:
    """Measure ``B_simple`` of ``model`` where it stands (its weights are not changed).

    ``get_batch(generator)`` returns one micro-batch; its first tensor's first dimension
    is the micro-batch size ``b`` in examples. ``loss_fn(model, batch)`` is the mean loss
    over the batch (:func:`course_lib.training.loop.lm_loss` for a language model).
    ``repeats`` independent groups of ``micro_batches`` micro-batches are drawn.
    """
    micro_batches = require_int("micro_batches", micro_batches, 2,
                                expected="an integer >= 2 (the big batch is their union)")
    repeats = require_int("repeats", repeats, 1, expected="a positive integer")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    was_training = model.training
    model.train()
    grad_sq = trace = 0.0
    small = None
    try:
        for _ in range(repeats):
            grads = []
            for _ in range(micro_batches):
                batch = get_batch(generator)
                small = int(batch[0].shape[0])
                model.zero_grad(set_to_none=True)
                loss_fn(model, batch).backward()
                grads.append(_flat_grad(model).double())
            stacked = torch.stack(grads)  # (k, n_params)
            small_sq = stacked.pow(2).sum(1).mean().item()  # mean |G_b|^2
            big_sq = stacked.mean(0).pow(2).sum().item()  # |G_B|^2, B = k b
            g, t = noise_scale_from_norms(small_sq, big_sq, small, small * micro_batches)
            grad_sq, trace = grad_sq + g / repeats, trace + t / repeats
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return NoiseScale(grad_sq, trace, small, small * micro_batches)
