"""Fitting scaling laws and using them to allocate compute (chapters 8–10).

Units throughout: ``N`` counts parameters, ``D`` training tokens, ``C`` training
FLOPs (``C ≈ 6 N D``, :func:`training_flops`), and losses are cross-entropies
in **nats per token**. Arrays hold one value per training run (shape ``(R,)``).

* :func:`fit_power_law` — ``y ≈ c · x**k`` by least squares on ``log y``.
* :func:`fit_chinchilla` — ``L(N, D) = E + A / N**α + B / D**β`` fitted as in
  Hoffmann et al. (2022), Approach 3: Huber loss on log-loss residuals, the
  log-sum-exp parameterisation, L-BFGS started from a grid of points.
* :func:`bootstrap` — percentile intervals for any of these fits.
* :func:`isoflop_minima` — Approach 2: a parabola in ``log N`` per budget;
  :func:`isoflop_bootstrap` resamples its runs and seeds for an interval on ``a``.
* :func:`envelope_optima` — Approach 1: the lowest loss any run reached at each
  compute, and the size that reached it.
* :func:`compute_optimal` — the ``(N, D)`` that minimise a fitted law at a
  fixed budget ``C = 6 N D``: ``N_opt ∝ C**a`` with ``a = β / (α + β)``.

Published coefficients to compare with live in :mod:`course_lib.scaling.published_laws`.
Bad input (non-positive or non-finite values, mismatched lengths, fewer runs
than parameters) raises an error that names the argument and the value.

>>> law = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
>>> round(law.a, 3)
0.452
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special
import threadpoolctl

from course_lib.core.validate import (as_tensor, require_finite, require_in_range,
                                      require_number, require_positive)
from course_lib.models.flops import FLOPS_PER_PARAM_TOKEN, training_flops

__all__ = [
    "FLOPS_PER_PARAM_TOKEN",
    "InferenceOptimal",
    "inference_optimal",
    "tokens_for_loss",
    "training_flops",
    "PowerLawFit",
    "fit_power_law",
    "ChinchillaLaw",
    "ChinchillaFit",
    "fit_chinchilla",
    "BootstrapResult",
    "bootstrap",
    "IsoFLOPMinimum",
    "isoflop_minima",
    "isoflop_bootstrap",
    "EnvelopeOptima",
    "envelope_optima",
    "ComputeOptimal",
    "compute_optimal",
]

# --------------------------------------------------------------------- input checks
def _positive_runs(name: str, x: object) -> np.ndarray:
    """``x`` as a 1-D float64 array of finite, positive values (one per run)."""
    t = as_tensor(name, x, min_ndim=1)
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per run); got shape {tuple(t.shape)}")
    require_finite(name, t)
    arr = t.detach().cpu().double().numpy()
    bad = np.flatnonzero(arr <= 0)
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} non-positive value(s); the first is {arr[bad[0]]:g} at "
            f"index {bad[0]}. Expected positive numbers: the fit takes their logarithm."
        )
    return arr


def _runs(function: str, n_params: int, **arrays: object) -> list[np.ndarray]:
    """Check each named array and that they have one common length > ``n_params``."""
    checked = {name: _positive_runs(name, value) for name, value in arrays.items()}
    lengths = {name: len(arr) for name, arr in checked.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {v}" for k, v in lengths.items())
        raise ValueError(f"{function}: expected one value per run in each array; {shown}")
    n = next(iter(lengths.values()))
    if n <= n_params:
        raise ValueError(
            f"{function} fits {n_params} parameters and needs more runs than that "
            f"(at least {n_params + 1}); got {n}"
        )
    return list(checked.values())


# ------------------------------------------------------------------ one power law
@dataclass(frozen=True, repr=False)
class PowerLawFit:
    """``y ≈ prefactor · x**exponent``, fitted by least squares on ``log y``.

    ``r2`` is measured in log space; ``exponent_se`` and ``log_prefactor_se``
    are the usual OLS standard errors (of ``k`` and of ``log c``).
    """

    exponent: float
    prefactor: float
    r2: float
    exponent_se: float
    log_prefactor_se: float
    n_points: int

    def predict(self, x: object) -> np.ndarray:
        return self.prefactor * np.asarray(x, dtype=float) ** self.exponent

    @property
    def params(self) -> dict[str, float]:
        return {"exponent": self.exponent, "prefactor": self.prefactor}

    def __repr__(self) -> str:
        return (f"PowerLawFit(y = {self.prefactor:.4g} · x^({self.exponent:.4f} ± "
                f"{self.exponent_se:.4f}), R² = {self.r2:.4f}, n = {self.n_points})")


def fit_power_law(x: object, y: object) -> PowerLawFit:
    """Fit ``log y = log c + k log x`` by ordinary least squares.

    ``x`` and ``y``: shape ``(R,)``, positive and finite, ``R >= 3`` (two
    parameters and one degree of freedom for the standard errors).
    """
    x, y = _runs("fit_power_law", 2, x=x, y=y)
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        raise ValueError(f"x must take at least two distinct values; every x is {x[0]:g}")
    design = np.column_stack([np.ones_like(lx), lx])
    (log_c, k), *_ = np.linalg.lstsq(design, ly, rcond=None)
    resid = ly - design @ np.array([log_c, k])
    rss, tss = float(resid @ resid), float(((ly - ly.mean()) ** 2).sum())
    cov = rss / (len(x) - 2) * np.linalg.inv(design.T @ design)
    r2 = 1.0 - rss / tss if tss > 0 else 1.0
    return PowerLawFit(float(k), float(np.exp(log_c)), r2, float(np.sqrt(cov[1, 1])),
                       float(np.sqrt(cov[0, 0])), len(x))


# ------------------------------------------------------- the Chinchilla loss surface
@dataclass(frozen=True, repr=False)
class ChinchillaLaw:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` in nats per token.

    ``E`` is the irreducible loss; ``A / N**alpha`` what a finite model adds;
    ``B / D**beta`` what finite data adds. ``source`` says where it came from.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""

    def loss(self, N: object, D: object) -> np.ndarray:
        """Predicted loss (nats/token) for ``N`` parameters trained on ``D`` tokens."""
        n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    @property
    def a(self) -> float:
        """Exponent of ``N_opt ∝ C**a`` at the compute-optimal frontier."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of ``D_opt ∝ C**b``; ``a + b = 1``."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha,
                "beta": self.beta, "a": self.a}

    def __repr__(self) -> str:
        where = f"  [{self.source}]" if self.source else ""
        return (f"{type(self).__name__}(E={self.E:.4g}, A={self.A:.4g}, B={self.B:.4g}, "
                f"α={self.alpha:.4g}, β={self.beta:.4g}; a=β/(α+β)={self.a:.3f}){where}")


@dataclass(frozen=True, repr=False)
class ChinchillaFit(ChinchillaLaw):
    """A :class:`ChinchillaLaw` fitted to runs, with the fit's diagnostics.

    ``objective`` is the summed Huber loss at the optimum, ``delta`` its
    threshold, ``n_points`` the number of runs, ``n_starts`` the number of
    L-BFGS runs, ``converged`` whether the best one met its tolerances.
    """

    delta: float = 1e-3
    objective: float = float("nan")
    n_points: int = 0
    n_starts: int = 0
    converged: bool = False
    at_bound: tuple[str, ...] = ()

    def __repr__(self) -> str:
        text = super().__repr__()
        if self.at_bound:
            text += f"  (at a bound: {', '.join(self.at_bound)})"
        return text


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss: ``r²/2`` for ``|r| <= delta``, else ``delta (|r| - delta/2)``."""
    return scipy.special.huber(delta, r)


def _objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, log_l: np.ndarray,
               delta: float) -> tuple[float, np.ndarray]:
    """Summed Huber loss of log-loss residuals and its gradient.

    ``theta = (a, b, e, alpha, beta)`` with ``A = exp(a)`` etc.; ``x`` and ``y``
    are centred ``log N`` and ``log D``, so ``a`` here is ``log A - alpha·mean(log N)``.
    """
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * x, b - beta * y, np.full_like(x, e)])  # (3, R)
    top = terms.max(axis=0)
    lse = top + np.log(np.exp(terms - top).sum(axis=0))  # log of predicted loss, (R,)
    r = lse - log_l
    w = np.exp(terms - lse)  # share of each term in the loss, (3, R)
    g = np.clip(r, -delta, delta)  # derivative of the Huber loss
    grad = np.array([g @ w[0], g @ w[1], g @ w[2], -(g * w[0]) @ x, -(g * w[1]) @ y])
    return float(_huber(r, delta).sum()), grad


def _grid_objective(pts: np.ndarray, x: np.ndarray, y: np.ndarray, log_l: np.ndarray,
                    delta: float) -> np.ndarray:
    """:func:`_objective`'s value at many points ``pts`` of shape ``(S, 5)`` at once."""
    a, b, e, alpha, beta = (pts[:, i, None] for i in range(5))  # each (S, 1)
    terms = np.stack([a - alpha * x, b - beta * y, np.broadcast_to(e, a.shape[:1] + x.shape)])
    return _huber(scipy.special.logsumexp(terms, axis=0) - log_l, delta).sum(axis=1)


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    """Inspect the loaded BLAS libraries once (each inspection takes milliseconds)."""
    return threadpoolctl.ThreadpoolController()


#: Starting grid modelled on Hoffmann et al.'s (2022): 6 × 6 × 5 × 5 × 5 = 4,500 points.
DEFAULT_GRID = {"alpha": np.arange(0.0, 2.01, 0.5), "beta": np.arange(0.0, 2.01, 0.5),
                "e": np.arange(-1.0, 1.01, 0.5), "a": np.arange(0.0, 26.0, 5.0),
                "b": np.arange(0.0, 26.0, 5.0)}


#: Bounds a fit may be given, in the law's own units (``E`` in nats per token).
BOUNDED = ("E", "alpha", "beta")


def fit_chinchilla(N: object, D: object, L: object, delta: float = 1e-3, *,
                   init: ChinchillaLaw | None = None, n_refine: int | None = 10,
                   grid: Mapping[str, Sequence[float]] | None = None,
                   bounds: Mapping[str, tuple[float, float]] | None = None,
                   random_starts: int = 0) -> ChinchillaFit:
    """Fit ``L = E + A/N**α + B/D**β`` by Hoffmann et al.'s Approach 3.

    Minimises ``Σ_i Huber_δ(LSE(a - α log N_i, b - β log D_i, e) - log L_i)``
    over ``(a, b, e, α, β)`` with L-BFGS, where ``A, B, E = exp(a), exp(b), exp(e)``.
    The Huber loss is *summed*, not averaged: averaging shrinks the objective
    and makes L-BFGS stop before it converges (Besiroglu et al., 2024).

    Starts: ``init`` (a law, e.g. the full-data fit when bootstrapping) gives
    one start; otherwise the objective is evaluated on ``grid`` (default
    :data:`DEFAULT_GRID`) and L-BFGS runs from its ``n_refine`` best points
    (``None``: from every point, as in the paper, which is slow).
    ``random_starts`` adds that many starts drawn uniformly from the grid's box, with a
    seed taken from the data — so each bootstrap resample gets starts of its own.
    ``bounds`` (``{"E": (lo, hi), "alpha": ..., "beta": ...}``) confines those
    parameters; a fitted value within 0.1% of a bound, or an ``E`` below a millionth of
    the smallest loss, is listed in the result's ``at_bound``: it is a limit of the
    search, not an estimate. ``N``, ``D``, ``L``: shape ``(R,)``, positive, ``R >= 6``.
    """
    n, d, loss = _runs("fit_chinchilla", 5, N=N, D=D, L=L)
    delta = require_positive("delta", delta)
    if n_refine is not None and (not isinstance(n_refine, int) or n_refine < 1):
        raise ValueError(f"n_refine must be a positive integer or None; got {n_refine!r}")
    unknown = set(grid or {}) - set(DEFAULT_GRID)
    if unknown:
        raise ValueError(f"grid has unknown key(s) {sorted(unknown)}; expected some of "
                         f"{sorted(DEFAULT_GRID)}")
    if not isinstance(random_starts, (int, np.integer)) \
            or isinstance(random_starts, (bool, np.bool_)) or random_starts < 0:
        raise ValueError(f"random_starts must be a non-negative integer; got {random_starts!r}")
    box = _bounds(bounds)
    mx, my = np.log(n).mean(), np.log(d).mean()
    x, y, log_l = np.log(n) - mx, np.log(d) - my, np.log(loss)

    def centred(a, b, e, alpha, beta):  # paper's coordinates -> centred ones
        return np.array([a - alpha * mx, b - beta * my, e, alpha, beta], dtype=float)

    if init is not None:
        starts = [centred(np.log(init.A), np.log(init.B), np.log(init.E),
                          init.alpha, init.beta)]
    else:
        g = {**DEFAULT_GRID, **(grid or {})}
        pts = np.array([centred(*p) for p in itertools.product(
            g["a"], g["b"], g["e"], g["alpha"], g["beta"])])  # (S, 5)
        order = np.argsort(_grid_objective(pts, x, y, log_l, delta), kind="stable")
        starts = list(pts[order[: n_refine or len(pts)]])
        if random_starts:
            seed = int.from_bytes(np.asarray(loss, dtype=np.float64).tobytes()[-8:], "little")
            rng = np.random.default_rng([seed, len(loss)])
            low = [min(g[k]) for k in ("a", "b", "e", "alpha", "beta")]
            high = [max(g[k]) for k in ("a", "b", "e", "alpha", "beta")]
            starts += [centred(*p) for p in rng.uniform(low, high, (random_starts, 5))]
    if box is not None:  # starts inside the box (alpha and beta shift the centred a, b)
        starts = [np.clip(st, [-np.inf, -np.inf, box[2][0], box[3][0], box[4][0]],
                          [np.inf, np.inf, box[2][1], box[3][1], box[4][1]]) for st in starts]

    fun = functools.partial(_objective, x=x, y=y, log_l=log_l, delta=delta)
    best = None
    # L-BFGS does tiny matrix products: one BLAS thread is several times faster.
    with _blas_controller().limit(limits=1, user_api="blas"):
        for start in starts:
            res = scipy.optimize.minimize(
                fun, start, jac=True, method="L-BFGS-B", bounds=box,
                options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12})
            if best is None or res.fun < best.fun:
                best = res
    a, b, e, alpha, beta = best.x
    at = []
    if np.exp(e) < 1e-6 * loss.min():
        at.append("E")
    if box is not None:
        for name, value, (lo, hi) in zip(BOUNDED, (e, alpha, beta), box[2:]):
            span = hi - lo if np.isfinite(hi - lo) else 1.0
            near = [abs(value - side) <= 1e-3 * span for side in (lo, hi) if np.isfinite(side)]
            if name not in at and any(near):
                at.append(name)
    return ChinchillaFit(
        E=float(np.exp(e)), A=float(np.exp(a + alpha * mx)), B=float(np.exp(b + beta * my)),
        alpha=float(alpha), beta=float(beta), source=f"fit to {len(n)} runs",
        delta=delta, objective=float(best.fun), n_points=len(n), n_starts=len(starts),
        converged=bool(best.success), at_bound=tuple(at))


def _bounds(bounds: Mapping[str, tuple[float, float]] | None) -> list | None:
    """L-BFGS-B bounds for ``(a, b, e, alpha, beta)``; ``a`` and ``b`` stay free."""
    if bounds is None:
        return None
    unknown = set(bounds) - set(BOUNDED)
    if unknown:
        raise ValueError(f"bounds has unknown key(s) {sorted(unknown)}; expected some of "
                         f"{list(BOUNDED)}")
    box = [(None, None), (None, None), (None, None), (0.0, None), (0.0, None)]
    for i, name in zip((2, 3, 4), BOUNDED):
        if name not in bounds:
            continue
        lo, hi = bounds[name]
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi) or (name == "E" and lo <= 0):
            raise ValueError(f"bounds[{name!r}] must be (low, high) with low < high"
                             f"{' and low > 0' if name == 'E' else ''}; got {bounds[name]!r}")
        box[i] = (float(np.log(lo)), float(np.log(hi))) if name == "E" else (lo, hi)
    return [(lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
            for lo, hi in box]


# -------------------------------------------------------------------- bootstrap
@dataclass(frozen=True, repr=False, eq=False)
class BootstrapResult:
    """Percentile bootstrap of a fit: the full-data estimate and resampled refits.

    ``samples`` has shape ``(n_resamples, len(names))``; ``level`` is the
    coverage the intervals aim at (e.g. 0.8 for 10th–90th percentiles);
    ``n_failed`` counts resamples the fit rejected (they were redrawn).
    """

    names: tuple[str, ...]
    estimate: np.ndarray
    samples: np.ndarray
    level: float
    n_failed: int = 0
    estimate_at_bound: tuple[str, ...] = ()
    bound_share: Mapping[str, float] | None = None

    def interval(self, name: str) -> tuple[float, float]:
        if name not in self.names:
            raise KeyError(f"name must be one of {self.names}; got {name!r}")
        col = self.samples[:, self.names.index(name)]
        tail = (1.0 - self.level) / 2
        lo, hi = np.quantile(col, [tail, 1.0 - tail])
        return float(lo), float(hi)

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        return {name: self.interval(name) for name in self.names}

    def at_bound(self, name: str) -> bool:
        """Whether ``name`` is a limit of the search rather than an estimate: the full-data
        fit sits at a bound, or more than a tail's share of resamples do."""
        if name not in self.names:
            raise KeyError(f"name must be one of {self.names}; got {name!r}")
        share = (self.bound_share or {}).get(name, 0.0)
        return name in self.estimate_at_bound or share > (1.0 - self.level) / 2

    def covers(self, truth: Mapping[str, float]) -> dict[str, bool]:
        """For each name in ``truth``: does its interval contain the true value?"""
        return {k: self.interval(k)[0] <= v <= self.interval(k)[1] for k, v in truth.items()}

    def __repr__(self) -> str:
        failed = f", {self.n_failed} redrawn" if self.n_failed else ""
        lines = [f"BootstrapResult({len(self.samples)} resamples{failed}, "
                 f"{self.level:.0%} intervals)"]
        for name, est in zip(self.names, self.estimate):
            lo, hi = self.interval(name)
            if self.at_bound(name):
                share = (self.bound_share or {}).get(name, 0.0)
                lines.append(f"  {name:>9s} = {est:<10.4g} at a bound of the search "
                             f"({share:.0%} of resamples): no interval")
            else:
                lines.append(f"  {name:>9s} = {est:<10.4g} [{lo:.4g}, {hi:.4g}]")
        return "\n".join(lines)


def bootstrap(fit: Callable[..., object], *runs: object, n_resamples: int = 1000,
              level: float = 0.8, seed: int = 0, progress: bool = False) -> BootstrapResult:
    """Refit on ``n_resamples`` resamples of the runs, drawn with replacement.

    ``fit(*runs)`` must return an object with a ``params`` dict (every fit in
    this module does); ``runs`` are arrays of shape ``(R,)`` (e.g. ``N, D, L``).
    For :func:`fit_chinchilla`, pass ``functools.partial(fit_chinchilla,
    init=full_fit)`` so each refit starts at the full-data optimum. A resample
    the fit rejects with ``ValueError`` (say, every run of the same size) is
    redrawn; more than ``n_resamples`` such failures raise ``RuntimeError``.
    """
    if not isinstance(n_resamples, int) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2; got {n_resamples!r}")
    level = require_in_range("level", level, 0.0, 1.0, closed=(False, False))
    arrays = [np.asarray(r, dtype=float) for r in runs]
    if not arrays or len({len(a) for a in arrays}) != 1:
        raise ValueError(f"runs must be arrays of one common length; got lengths "
                         f"{[len(a) for a in arrays]}")
    full_fit = fit(*arrays)
    full = full_fit.params
    rng = np.random.default_rng(seed)
    steps = range(n_resamples)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="bootstrap", leave=False)
    samples, failed, bound_counts = [], 0, dict.fromkeys(full, 0)
    for _ in steps:
        while True:
            idx = rng.integers(0, len(arrays[0]), size=len(arrays[0]))
            try:
                refit = fit(*(a[idx] for a in arrays))
                samples.append(list(refit.params.values()))
                for name in getattr(refit, "at_bound", ()):
                    bound_counts[name] += 1
                break
            except ValueError as err:
                failed += 1
                if failed > n_resamples:
                    raise RuntimeError(f"the fit rejected {failed} resamples, the last "
                                       f"with: {err}. Too few runs to bootstrap?") from err
    return BootstrapResult(tuple(full), np.array(list(full.values())), np.array(samples),
                           level, failed, tuple(getattr(full_fit, "at_bound", ())),
                           {k: v / n_resamples for k, v in bound_counts.items()})


# ---------------------------------------------------------- Approach 2: IsoFLOPs
@dataclass(frozen=True)
class IsoFLOPMinimum:
    """Vertex of a parabola ``L ≈ c2 (log N)² + c1 log N + c0`` at one budget ``C``.

    ``parabola`` is ``(c2, c1, c0)``, the order ``np.polyval`` takes. ``inside``
    is False when the vertex lies outside the sampled sizes: the minimum is
    then an extrapolation and the budget's sizes should be widened.
    """

    C: float
    N_opt: float
    D_opt: float
    loss: float
    parabola: tuple[float, float, float]
    n_points: int
    inside: bool


def isoflop_minima(N: object, L: object, C: object,
                   flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN
                   ) -> tuple[IsoFLOPMinimum, ...]:
    """Hoffmann et al.'s Approach 2: one parabola in ``log N`` per compute budget.

    ``C`` labels each run with its budget (FLOPs); runs with the same label form
    one IsoFLOP profile and need at least 3 sizes. ``D_opt = C / (6 N_opt)``.
    """
    n, loss, c = _runs("isoflop_minima", 2, N=N, L=L, C=C)
    out = []
    for budget in np.unique(c):
        mask = c == budget
        x = np.log(n[mask])
        if len(np.unique(x)) < 3:
            raise ValueError(f"the IsoFLOP profile at C={budget:.3g} has "
                             f"{len(np.unique(x))} distinct sizes; a parabola needs 3")
        c2, c1, c0 = np.polyfit(x, loss[mask], 2)
        if c2 <= 0:
            raise ValueError(f"the IsoFLOP profile at C={budget:.3g} curves downwards "
                             f"(c2={c2:.3g}); it has no minimum. Sample sizes on both sides")
        x_opt = -c1 / (2 * c2)
        n_opt = float(np.exp(x_opt))
        out.append(IsoFLOPMinimum(float(budget), n_opt,
                                  float(budget / (flops_per_param_token * n_opt)),
                                  float(c0 - c1**2 / (4 * c2)),
                                  (float(c2), float(c1), float(c0)), int(mask.sum()),
                                  bool(x.min() <= x_opt <= x.max())))
    return tuple(out)


def isoflop_bootstrap(N: object, L: object, C: object, *, n_resamples: int = 1000,
                      level: float = 0.8, seed: int = 0,
                      flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> BootstrapResult:
    """Approach 2 with an interval that includes the noise of the runs behind it.

    Runs with the same budget ``C`` and size ``N`` are repeats (seeds). Each resample
    redraws, for every budget and size, as many repeats as it has, with replacement —
    and, so that the choice of sizes counts too, redraws the sizes of each budget —
    then fits the parabolas and ``N_opt = G C**a`` through their minima. Resamples
    whose parabola has no minimum, or whose minimum falls outside the sampled sizes,
    are redrawn (``n_failed`` counts them). The result's names are ``a`` and
    ``log_G`` (natural log of the prefactor).
    """
    n, loss, c = _runs("isoflop_bootstrap", 2, N=N, L=L, C=C)
    if not isinstance(n_resamples, int) or n_resamples < 2:
        raise ValueError(f"n_resamples must be an integer >= 2; got {n_resamples!r}")
    level = require_in_range("level", level, 0.0, 1.0, closed=(False, False))
    budgets = np.unique(c)
    if len(budgets) < 3:
        raise ValueError(f"isoflop_bootstrap needs at least 3 budgets to fit a frontier "
                         f"with an error; got {len(budgets)}")
    cells = {b: [np.flatnonzero((c == b) & (n == size)) for size in np.unique(n[c == b])]
             for b in budgets}

    def frontier(idx: np.ndarray) -> tuple[float, float]:
        minima = isoflop_minima(n[idx], loss[idx], c[idx], flops_per_param_token)
        if not all(m.inside for m in minima):
            raise ValueError("a resampled minimum fell outside the sampled sizes")
        law = fit_power_law([m.C for m in minima], [m.N_opt for m in minima])
        return law.exponent, float(np.log(law.prefactor))

    full = frontier(np.arange(len(n)))
    rng = np.random.default_rng(seed)
    samples, failed = [], 0
    while len(samples) < n_resamples:
        idx = []
        for b in budgets:
            chosen = rng.integers(0, len(cells[b]), size=len(cells[b]))
            for cell in (cells[b][i] for i in chosen):
                idx.extend(rng.choice(cell, size=len(cell), replace=True))
        try:
            samples.append(frontier(np.asarray(idx)))
        except ValueError:
            failed += 1
            if failed > 10 * n_resamples:
                raise RuntimeError(f"{failed} resamples had no interior minimum: the "
                                   f"budgets' sizes do not bracket their optima") from None
    return BootstrapResult(("a", "log_G"), np.array(full), np.array(samples), level, failed)


# ------------------------------------------------------------- Approach 1: envelope
@dataclass(frozen=True, repr=False, eq=False)
class EnvelopeOptima:
    """Approach 1: at each compute ``C`` (FLOPs), the lowest loss any run reached there
    and the size ``N`` of the run that reached it. Arrays of shape ``(K,)``."""

    C: np.ndarray
    N_opt: np.ndarray
    loss: np.ndarray

    def frontier(self) -> PowerLawFit:
        """``N_opt ≈ G · C**a`` fitted through the envelope's points."""
        return fit_power_law(self.C, self.N_opt)

    def __repr__(self) -> str:
        sizes = len(np.unique(self.N_opt))
        return (f"EnvelopeOptima({len(self.C)} budgets from {self.C[0]:.3g} to "
                f"{self.C[-1]:.3g} FLOPs; {sizes} distinct optimal sizes)")


def envelope_optima(curves: Sequence[tuple[float, object, object]], C: object
                    ) -> EnvelopeOptima:
    """Hoffmann et al.'s Approach 1 on training curves.

    ``curves`` holds one ``(N, C_points, L_points)`` per run: its size and the loss it
    had after ``C_points`` FLOPs (increasing). At each budget of ``C`` the loss of
    every run whose curve spans it is read off by linear interpolation in
    ``(log C, log L)``; the lowest gives the envelope and its run's ``N`` the optimum.
    Budgets no curve spans are dropped.
    """
    grid = _positive_runs("C", np.atleast_1d(np.asarray(C, dtype=float)))
    prepared = []
    for i, curve in enumerate(curves):
        if len(curve) != 3:
            raise ValueError(f"curves[{i}] must be (N, C_points, L_points); got {curve!r}")
        size = float(curve[0])
        cx = _positive_runs(f"curves[{i}] C_points", curve[1])
        ly = _positive_runs(f"curves[{i}] L_points", curve[2])
        if len(cx) != len(ly) or np.any(np.diff(cx) <= 0):
            raise ValueError(f"curves[{i}]: C_points must increase and match L_points in "
                             f"length; got {len(cx)} and {len(ly)} points")
        prepared.append((size, np.log(cx), np.log(ly)))
    if not prepared:
        raise ValueError("curves is empty; expected one (N, C_points, L_points) per run")
    out_c, out_n, out_l = [], [], []
    for budget in grid:
        x = np.log(budget)
        best = None
        for size, cx, ly in prepared:
            if cx[0] <= x <= cx[-1]:
                value = float(np.interp(x, cx, ly))
                if best is None or value < best[1]:
                    best = (size, value)
        if best is not None:
            out_c.append(budget)
            out_n.append(best[0])
            out_l.append(np.exp(best[1]))
    return EnvelopeOptima(np.array(out_c), np.array(out_n), np.array(out_l))


# ------------------------------------------------- compute-optimal allocation
@dataclass(frozen=True, repr=False, eq=False)
class ComputeOptimal:
    """The loss-minimising split of budgets ``C`` (FLOPs) under a law.

    Fields are floats for a scalar ``C``, arrays for an array of budgets.
    """

    C: np.ndarray | float
    N_opt: np.ndarray | float
    D_opt: np.ndarray | float
    tokens_per_param: np.ndarray | float
    loss: np.ndarray | float

    def __repr__(self) -> str:
        rows = np.broadcast_arrays(*(np.atleast_1d(v) for v in (
            self.C, self.N_opt, self.D_opt, self.tokens_per_param, self.loss)))
        lines = [f"C = {c:.3g} FLOPs → N_opt = {n:.3g} params, D_opt = {d:.3g} tokens "
                 f"({t:.1f} tokens/param), loss {l:.3f} nats/token"
                 for c, n, d, t, l in zip(*rows)]
        return "\n".join(lines)


def compute_optimal(C: object, law: ChinchillaLaw,
                    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN) -> ComputeOptimal:
    """Minimise ``law.loss(N, D)`` subject to ``6 N D = C``.

    Closed form: ``N_opt = G (C/6)**a``, ``D_opt = (C/6)**b / G`` with
    ``a = β/(α+β)``, ``b = α/(α+β)`` and ``G = (α A / (β B))**(1/(α+β))``.
    """
    if not isinstance(law, ChinchillaLaw):
        raise TypeError(f"law must be a ChinchillaLaw (or a fit); got {type(law).__name__}")
    for name in ("A", "B", "alpha", "beta"):
        require_positive(f"law.{name}", getattr(law, name))
    scalar = np.ndim(C) == 0
    c = _positive_runs("C", np.atleast_1d(np.asarray(C)))
    k = c / flops_per_param_token
    s = law.alpha + law.beta
    g = (law.alpha * law.A / (law.beta * law.B)) ** (1.0 / s)
    n_opt = g * k ** law.a
    d_opt = k / n_opt
    fields = (c, n_opt, d_opt, d_opt / n_opt, law.loss(n_opt, d_opt))
    if scalar:
        fields = tuple(float(f[0]) for f in fields)
    return ComputeOptimal(*fields)


# ------------------------------------------- beyond compute-optimal: inference demand
@dataclass(frozen=True)
class InferenceOptimal:
    """The cheapest model to train *and serve* at one loss (Sardana et al. 2024).

    ``training_flops = 6 N D`` and ``inference_flops = 2 N inference_tokens``;
    ``chinchilla`` is the compute-optimal model of the same loss (no inference).
    """

    loss: float
    inference_tokens: float
    N: float
    D: float
    training_flops: float
    inference_flops: float
    chinchilla: ComputeOptimal

    @property
    def total_flops(self) -> float:
        return self.training_flops + self.inference_flops

    @property
    def tokens_per_param(self) -> float:
        return self.D / self.N


def tokens_for_loss(law: ChinchillaLaw, N: object, loss: float) -> np.ndarray:
    """The training tokens ``D`` at which a model of ``N`` parameters reaches ``loss``
    under ``law``: ``(B / (loss - E - A N^-α))^(1/β)``; ``inf`` where the model's
    own floor ``E + A N^-α`` is at or above ``loss``."""
    n = np.asarray(N, dtype=float)
    room = loss - law.E - law.A * n ** -law.alpha
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(room > 0, (law.B / np.where(room > 0, room, 1.0)) ** (1 / law.beta),
                        np.inf)


def inference_optimal(law: ChinchillaLaw, loss: float, inference_tokens: float, *,
                      flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN,
                      inference_flops_per_param_token: float = 2.0) -> InferenceOptimal:
    """Minimise training plus lifetime inference FLOPs, ``6 N D + 2 N D_inf``, subject to
    ``law.loss(N, D) = loss`` {Sardana et al. 2024}.

    ``inference_tokens`` (``D_inf``) is the number of tokens the model will process in
    its lifetime (prompts and generations; 0 gives back the compute-optimal model of
    that loss). One-dimensional: ``D`` follows from ``N`` by :func:`tokens_for_loss`,
    and the cost is minimised over ``log N`` (bounded, so it cannot run off).
    """
    if not isinstance(law, ChinchillaLaw):
        raise TypeError(f"law must be a ChinchillaLaw (or a fit); got {type(law).__name__}")
    loss = float(require_number("loss", loss, expected="a finite loss in nats per token"))
    if loss <= law.E:
        raise ValueError(f"loss={loss:g} is at or below the law's floor E={law.E:g}: no "
                         f"model reaches it")
    d_inf = float(require_number("inference_tokens", inference_tokens, 0,
                                 expected="a number of tokens >= 0"))
    # the smallest model that can reach the loss at all, with infinite data
    n_min = (law.A / (loss - law.E)) ** (1 / law.alpha)

    def cost(log_n: float) -> float:
        n = np.exp(log_n)
        d = float(tokens_for_loss(law, n, loss))
        return np.log(flops_per_param_token * n * d + inference_flops_per_param_token
                      * n * d_inf)

    lo = np.log(n_min) + 1e-9
    best = scipy.optimize.minimize_scalar(cost, bounds=(lo, lo + 40), method="bounded",
                                          options={"xatol": 1e-10})
    n = float(np.exp(best.x))
    d = float(tokens_for_loss(law, n, loss))
    # the compute-optimal model of this loss: minimise training FLOPs alone
    plain = scipy.optimize.minimize_scalar(
        lambda log_n: np.log(np.exp(log_n) * float(tokens_for_loss(law, np.exp(log_n), loss))),
        bounds=(lo, lo + 40), method="bounded", options={"xatol": 1e-10})
    c = float(flops_per_param_token * np.exp(plain.x)
              * tokens_for_loss(law, np.exp(plain.x), loss))
    return InferenceOptimal(loss, d_inf, n, d, flops_per_param_token * n * d,
                            inference_flops_per_param_token * n * d_inf,
                            compute_optimal(c, law, flops_per_param_token))
