"""A compute budget that refuses to be overspent (chapter 10).

Scaling studies are planned in FLOPs: an exploration budget is spent on small runs,
and what they teach decides how a budget ten or a thousand times larger is used.
:class:`FlopBudget` keeps that account. :meth:`FlopBudget.charge` records a run's
training FLOPs *before* it starts and raises :class:`BudgetExceededError` — naming
the run, its cost and what is left — if the run would overdraw the budget; nothing
is charged then, so the learner can pick a cheaper run.

>>> budget = FlopBudget(1e12, name="exploration")
>>> budget.charge(4e11, "small model")
>>> budget.remaining
600000000000.0
>>> budget.charge(7e11, "big model")
Traceback (most recent call last):
...
course_lib.scaling.budget.BudgetExceededError: run 'big model' needs 7e+11 FLOPs, but only 6e+11 of the 1e+12-FLOP exploration budget remain (4e+11 spent on 1 run); choose a smaller model or fewer tokens
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BudgetExceededError", "FlopBudget"]


class BudgetExceededError(RuntimeError):
    """A run would spend more FLOPs than the budget has left."""


class FlopBudget:
    """An account of training FLOPs: ``total`` to spend, runs charged one by one.

    ``spent`` and ``remaining`` are in FLOPs; ``charges`` lists ``(label, flops)``
    in the order they were made.
    """

    def __init__(self, total: float, name: str = "compute") -> None:
        if isinstance(total, (bool, np.bool_)) or not isinstance(
                total, (int, float, np.integer, np.floating)) \
                or not math.isfinite(total) or total < 0:
            raise ValueError(f"total must be a non-negative, finite number of FLOPs (0 "
                             f"allows nothing); got {total!r}")
        self.total = float(total)
        self.name = str(name)
        self.charges: list[tuple[str, float]] = []

    @property
    def spent(self) -> float:
        return float(sum(flops for _, flops in self.charges))

    @property
    def remaining(self) -> float:
        return self.total - self.spent

    def can_afford(self, flops: float) -> bool:
        """Whether a run of ``flops`` FLOPs fits in what is left."""
        return self._checked(flops, "flops") <= self.remaining * (1 + 1e-12)

    def charge(self, flops: float, label: str = "run") -> None:
        """Record a run of ``flops`` FLOPs, or raise :class:`BudgetExceededError`."""
        flops = self._checked(flops, f"the cost of run {label!r}")
        if not self.can_afford(flops):
            runs = len(self.charges)
            raise BudgetExceededError(
                f"run {label!r} needs {flops:.3g} FLOPs, but only {self.remaining:.3g} of the "
                f"{self.total:.3g}-FLOP {self.name} budget remain ({self.spent:.3g} spent on "
                f"{runs} run{'s' if runs != 1 else ''}); choose a smaller model or fewer tokens")
        self.charges.append((str(label), flops))

    @staticmethod
    def _checked(flops: float, what: str) -> float:
        if isinstance(flops, (bool, np.bool_)) or not isinstance(
                flops, (int, float, np.integer, np.floating)) \
                or not math.isfinite(flops) or flops < 0:
            raise ValueError(f"{what} must be a non-negative, finite number of FLOPs; "
                             f"got {flops!r}")
        return float(flops)

    def __repr__(self) -> str:
        share = self.spent / self.total if self.total else 0.0
        return (f"FlopBudget({self.name}: {self.spent:.3g} of {self.total:.3g} FLOPs spent "
                f"({share:.0%}) on {len(self.charges)} runs, {self.remaining:.3g} left)")
