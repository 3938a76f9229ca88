"""course_lib.scaling.fits and course_lib.scaling.published_laws: recovery, intervals, allocation, errors."""

import functools
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats

from course_lib.scaling import fits as scaling
from course_lib.scaling.fits import (
    ChinchillaLaw,
    bootstrap,
    compute_optimal,
    fit_chinchilla,
    fit_power_law,
    isoflop_minima,
    training_flops,
)
from course_lib.scaling.published_laws import (
    BESIROGLU_2024,
    CHINCHILLA,
    GOPHER_BUDGET_FLOPS,
    HOFFMANN_2022,
    KAPLAN_2020,
    PF_DAY_FLOPS,
)

TRUTHS = {"hoffmann": HOFFMANN_2022, "besiroglu": BESIROGLU_2024}


def isoflop_design(law, budgets=np.logspace(18, 21, 7), sizes=9):
    """Runs on IsoFLOP profiles: per budget, sizes from 0.1× to 10× the optimum."""
    N, D, C = [], [], []
    for c in budgets:
        n_opt = compute_optimal(c, law).N_opt
        for f in np.logspace(-1, 1, sizes):
            N.append(n_opt * f)
            D.append(c / (6 * n_opt * f))
            C.append(c)
    return np.array(N), np.array(D), np.array(C)


# ------------------------------------------------------------------ power laws
def test_power_law_recovers_exponent_and_prefactor_without_noise():
    x = np.logspace(3, 9, 12)
    fit = fit_power_law(x, 2.5e3 * x**-0.34)
    assert fit.exponent == pytest.approx(-0.34, rel=1e-12)
    assert fit.prefactor == pytest.approx(2.5e3, rel=1e-10)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.exponent_se < 1e-12
    assert np.allclose(fit.predict(x), 2.5e3 * x**-0.34)


def test_power_law_matches_scipy_linregress_on_noisy_data():
    rng = np.random.default_rng(0)
    x = np.logspace(2, 6, 30)
    y = 7.0 * x**0.5 * np.exp(0.1 * rng.standard_normal(30))
    fit = fit_power_law(x, y)
    ref = scipy.stats.linregress(np.log(x), np.log(y))
    assert fit.exponent == pytest.approx(ref.slope, rel=1e-10)
    assert math.log(fit.prefactor) == pytest.approx(ref.intercept, rel=1e-10)
    assert fit.exponent_se == pytest.approx(ref.stderr, rel=1e-8)
    assert fit.log_prefactor_se == pytest.approx(ref.intercept_stderr, rel=1e-8)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-10)
    assert "R²" in repr(fit) and "x^(" in repr(fit)


# ---------------------------------------------------------- Chinchilla, Approach 3
@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_chinchilla_fit_recovers_every_parameter_within_1_percent_without_noise(name):
    truth = TRUTHS[name]
    N, D, _ = isoflop_design(truth)
    fit = fit_chinchilla(N, D, truth.loss(N, D))
    for key in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, key) == pytest.approx(getattr(truth, key), rel=0.01), key
    assert fit.converged and fit.n_points == len(N) and fit.n_starts == 10


def test_chinchilla_fit_recovers_truth_on_a_random_design():
    rng = np.random.default_rng(1)
    truth = ChinchillaLaw(E=0.8, A=30.0, B=90.0, alpha=0.3, beta=0.4)
    N, D = 10 ** rng.uniform(4, 7, 40), 10 ** rng.uniform(6, 9, 40)
    fit = fit_chinchilla(N, D, truth.loss(N, D))
    for key in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, key) == pytest.approx(getattr(truth, key), rel=0.01), key


def test_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    N, D, _ = isoflop_design(HOFFMANN_2022)
    x, y = np.log(N) - np.log(N).mean(), np.log(D) - np.log(D).mean()
    log_l = np.log(HOFFMANN_2022.loss(N, D)) + 0.01 * rng.standard_normal(len(N))
    delta = 0.05  # most residuals in the smooth quadratic part of the Huber loss
    for theta in ([-1.0, -0.5, 0.5, 0.3, 0.3], [0.2, 0.1, 0.4, 0.5, 0.2]):
        err = scipy.optimize.check_grad(
            lambda t: scaling._objective(t, x, y, log_l, delta)[0],
            lambda t: scaling._objective(t, x, y, log_l, delta)[1], np.array(theta))
        assert err < 1e-5


def test_grid_objective_agrees_with_the_single_point_objective():
    N, D, _ = isoflop_design(HOFFMANN_2022)
    x, y, log_l = np.log(N), np.log(D), np.log(HOFFMANN_2022.loss(N, D))
    pts = np.array([[5.0, 6.0, 0.5, 0.3, 0.3], [1.0, 2.0, 0.0, 0.1, 0.8]])
    many = scaling._grid_objective(pts, x, y, log_l, 1e-3)
    one = [scaling._objective(p, x, y, log_l, 1e-3)[0] for p in pts]
    assert np.allclose(many, one, rtol=1e-12)


def test_warm_start_from_the_answer_stays_there():
    N, D, _ = isoflop_design(BESIROGLU_2024)
    fit = fit_chinchilla(N, D, BESIROGLU_2024.loss(N, D), init=BESIROGLU_2024)
    assert fit.n_starts == 1
    assert fit.alpha == pytest.approx(BESIROGLU_2024.alpha, rel=1e-6)


# ------------------------------------------------------------------- bootstrap
def test_bootstrap_is_deterministic_given_a_seed_and_reports_intervals():
    rng = np.random.default_rng(3)
    x = np.logspace(1, 4, 15)
    y = 3 * x**-0.5 * np.exp(0.05 * rng.standard_normal(15))
    first = bootstrap(fit_power_law, x, y, n_resamples=50, seed=7)
    again = bootstrap(fit_power_law, x, y, n_resamples=50, seed=7)
    assert np.array_equal(first.samples, again.samples)
    assert first.samples.shape == (50, 2) and first.names == ("exponent", "prefactor")
    lo, hi = first.interval("exponent")
    assert lo < first.estimate[0] < hi
    assert "80% intervals" in repr(first)
    with pytest.raises(KeyError, match="'slope'"):
        first.interval("slope")


def test_bootstrap_redraws_resamples_the_fit_rejects():
    x = [1.0, 1.0, 2.0, 4.0]  # a resample of only 1.0s has no slope
    result = bootstrap(fit_power_law, x, [3.0, 3.1, 2.0, 1.2], n_resamples=200, seed=0)
    assert result.n_failed > 0 and len(result.samples) == 200
    assert "redrawn" in repr(result)


def test_power_law_bootstrap_intervals_cover_the_truth_at_about_their_level():
    rng = np.random.default_rng(0)
    x = np.logspace(6, 9, 20)
    hits = []
    for i in range(100):
        y = 5e3 * x**-0.3 * np.exp(0.05 * rng.standard_normal(20))
        result = bootstrap(fit_power_law, x, y, n_resamples=100, level=0.8, seed=i)
        hits += result.covers({"exponent": -0.3, "prefactor": 5e3}).values()
    assert 0.7 <= np.mean(hits) <= 0.9  # nominal 0.8


def test_chinchilla_bootstrap_intervals_cover_the_truth_at_about_their_level():
    truth = HOFFMANN_2022
    N, D, _ = isoflop_design(truth)
    rng = np.random.default_rng(123)
    hits = []
    for i in range(24):
        L = truth.loss(N, D) * np.exp(0.01 * rng.standard_normal(len(N)))
        fit = fit_chinchilla(N, D, L, n_refine=3)
        refit = functools.partial(fit_chinchilla, init=fit)
        result = bootstrap(refit, N, D, L, n_resamples=60, level=0.8, seed=i)
        hits += result.covers(truth.params).values()
    assert 0.65 <= np.mean(hits) <= 0.95  # nominal 0.8; 0.85 with 100 × 200 resamples


# ------------------------------------------------------- Approach 2: IsoFLOPs
def test_isoflop_parabola_vertex_is_exact_for_parabolic_data():
    N = np.logspace(7, 9, 5)
    L = 3.0 + 0.05 * (np.log(N) - np.log(3e8)) ** 2
    (m,) = isoflop_minima(N, L, np.full(5, 1e19))
    assert m.N_opt == pytest.approx(3e8, rel=1e-9)
    assert m.loss == pytest.approx(3.0, abs=1e-12)
    assert m.D_opt == pytest.approx(1e19 / (6 * 3e8), rel=1e-9)
    assert m.inside and m.n_points == 5 and m.parabola[0] == pytest.approx(0.05)


def test_isoflop_minima_recover_the_allocation_exponent():
    truth = HOFFMANN_2022
    N, D, C = isoflop_design(truth, sizes=15)
    minima = isoflop_minima(N, truth.loss(N, D), C)
    assert len(minima) == 7 and all(m.inside for m in minima)
    slope = fit_power_law([m.C for m in minima], [m.N_opt for m in minima]).exponent
    assert slope == pytest.approx(truth.a, abs=0.01)


# -------------------------------------------------- compute-optimal allocation
@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_compute_optimal_matches_a_numerical_minimum_on_the_budget_line(name):
    law, C = TRUTHS[name], 1e22
    best = scipy.optimize.minimize_scalar(
        lambda logn: law.loss(np.exp(logn), C / (6 * np.exp(logn))),
        bounds=(np.log(1e6), np.log(1e13)), method="bounded",
        options={"xatol": 1e-10})
    opt = compute_optimal(C, law)
    assert opt.N_opt == pytest.approx(np.exp(best.x), rel=1e-5)
    assert 6 * opt.N_opt * opt.D_opt == pytest.approx(C)
    assert opt.tokens_per_param == pytest.approx(opt.D_opt / opt.N_opt)
    assert opt.loss == pytest.approx(law.loss(opt.N_opt, opt.D_opt))


def test_compute_optimal_scales_as_c_to_the_a_and_accepts_arrays():
    opt = compute_optimal(np.array([1e20, 1e21]), HOFFMANN_2022)
    assert opt.N_opt.shape == (2,)
    assert opt.N_opt[1] / opt.N_opt[0] == pytest.approx(10**HOFFMANN_2022.a)
    assert opt.D_opt[1] / opt.D_opt[0] == pytest.approx(10**HOFFMANN_2022.b)
    assert HOFFMANN_2022.a + HOFFMANN_2022.b == pytest.approx(1.0)
    assert repr(opt).count("tokens/param") == 2


def test_training_flops_grow_with_the_product_of_n_and_d():
    assert training_flops(1e9, 2e10) == pytest.approx(1.2e20)
    assert training_flops(2e9, 4e10) / training_flops(1e9, 2e10) == pytest.approx(4.0)


# ------------------------------------------------------------ published values
def test_published_laws_reproduce_known_allocations():
    besiroglu = compute_optimal(GOPHER_BUDGET_FLOPS, BESIROGLU_2024)
    assert 15 < besiroglu.tokens_per_param < 25  # close to Chinchilla's 20
    assert BESIROGLU_2024.a == pytest.approx(0.5126, abs=1e-4)
    assert HOFFMANN_2022.a == pytest.approx(0.4516, abs=1e-4)
    assert KAPLAN_2020.loss_n(1e9) == pytest.approx(2.376, abs=1e-3)
    assert KAPLAN_2020.loss_c_min(3.1e8 * PF_DAY_FLOPS) == pytest.approx(1.0)
    assert "Besiroglu" in repr(BESIROGLU_2024) and "α=" in repr(BESIROGLU_2024)


def test_besiroglu_constants_come_from_one_estimator():
    """A, B, α, β as the paper prints them, with the E of the same (maximum-
    likelihood) fit, 1.8169 — not the 1.8172 of their L-BFGS Huber fit."""
    law = BESIROGLU_2024
    assert (law.A, law.B, law.alpha, law.beta) == (482.01, 2085.43, 0.3478, 0.3658)
    assert law.E == 1.8169
    # Chinchilla (70B parameters, 1.4T tokens): 1.8169 + 0.0815 + 0.0752 nats.
    assert law.loss(*CHINCHILLA) == pytest.approx(1.9736, abs=1e-4)


# --------------------------------------------------------------- clear errors
def fits_once():
    """A fit that accepts the full data, then rejects every resample."""
    calls = []

    def fit(x, y):
        calls.append(1)
        if len(calls) > 1:
            raise ValueError("no refits")
        return fit_power_law(x, y)
    return fit


NAN = float("nan")
X5 = [1.0, 2.0, 3.0, 4.0, 5.0]
ERRORS = [
    (lambda: fit_power_law([1, 2, 0], [1, 2, 3]), ValueError, ["x", "non-positive", "0", "index 2"]),
    (lambda: fit_power_law([1, 2, 3], [1, -2, 3]), ValueError, ["y", "-2", "index 1", "logarithm"]),
    (lambda: fit_power_law([1, 2, NAN], [1, 2, 3]), ValueError, ["x", "non-finite", "nan"]),
    (lambda: fit_power_law([1, 2, 3], [1, 2]), ValueError, ["x has 3", "y has 2"]),
    (lambda: fit_power_law([1, 2], [1, 2]), ValueError, ["2 parameters", "at least 3", "got 2"]),
    (lambda: fit_power_law([2, 2, 2], [1, 2, 3]), ValueError, ["x", "two distinct", "2"]),
    (lambda: fit_power_law([[1, 2, 3]], [[1, 2, 3]]), ValueError, ["x", "1-D", "(1, 3)"]),
    (lambda: fit_power_law("abc", [1, 2, 3]), TypeError, ["x", "numbers", "str"]),
    (lambda: fit_chinchilla(X5, X5, X5), ValueError, ["5 parameters", "at least 6", "got 5"]),
    (lambda: fit_chinchilla(X5 + [6], X5 + [6], X5 + [math.inf]), ValueError, ["L", "non-finite", "inf"]),
    (lambda: fit_chinchilla(X5 + [6], X5, X5 + [6]), ValueError, ["N has 6", "D has 5"]),
    (lambda: fit_chinchilla(X5 + [6], X5 + [6], X5 + [6], delta=0), ValueError, ["delta", "> 0", "0"]),
    (lambda: isoflop_minima([1, 2, 3], [3, 2, 3], [1, 1, 2]), ValueError, ["C=1", "2 distinct sizes", "3"]),
    (lambda: isoflop_minima([1, 2, 3], [1, 2, 1], [5, 5, 5]), ValueError, ["C=5", "curves downwards", "no minimum"]),
    (lambda: compute_optimal(-1.0, HOFFMANN_2022), ValueError, ["C", "-1", "non-positive"]),
    (lambda: compute_optimal(1e20, {"E": 1}), TypeError, ["law", "ChinchillaLaw", "dict"]),
    (lambda: compute_optimal(1e20, ChinchillaLaw(1.0, 1.0, 1.0, 0.0, 0.3)), ValueError,
     ["law.alpha", "> 0", "0.0"]),
    (lambda: training_flops(0, 1e9), ValueError, ["n_params", "positive", "got 0"]),
    (lambda: bootstrap(fit_power_law, X5, X5, n_resamples=1), ValueError, ["n_resamples", ">= 2", "1"]),
    (lambda: bootstrap(fit_power_law, X5, X5, level=1.5), ValueError, ["level", "(0.0, 1.0)", "1.5"]),
    (lambda: bootstrap(fit_power_law, X5, X5[:4]), ValueError, ["runs", "common length", "[5, 4]"]),
    (lambda: bootstrap(fits_once(), X5, X5, n_resamples=2), RuntimeError,
     ["rejected 3 resamples", "no refits", "Too few runs"]),
    (lambda: fit_chinchilla(X5 + [6], X5 + [6], X5 + [6], n_refine=0), ValueError,
     ["n_refine", "positive integer", "0"]),
    (lambda: fit_chinchilla(X5 + [6], X5 + [6], X5 + [6], grid={"E": [1.0]}), ValueError,
     ["grid", "'E'", "'alpha'"]),
]


@pytest.mark.parametrize("call, exc, words", ERRORS, ids=[f"case{i}" for i in range(len(ERRORS))])
def test_bad_input_gets_a_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value), f"{word!r} missing from: {info.value}"


# ------------------------------------------- bounds, resampled IsoFLOPs, envelopes
def test_a_parameter_stuck_at_a_bound_is_reported_as_such_not_as_an_interval():
    rng = np.random.default_rng(0)
    N = np.repeat(np.logspace(3, 5, 6), 3)
    D = np.tile(np.logspace(6, 8, 3), 6)
    L = (2.0 * N**-0.2 + 5.0 * D**-0.3) * np.exp(rng.normal(0, 0.002, N.size))  # no floor
    fit = fit_chinchilla(N, D, L, bounds={"E": (0.05, 10.0), "beta": (0.0, 3.0)})
    assert fit.at_bound == ("E",) and "at a bound: E" in repr(fit)
    assert fit.E == pytest.approx(0.05)
    boot = bootstrap(functools.partial(fit_chinchilla, bounds={"E": (0.05, 10.0)},
                                       random_starts=4), N, D, L, n_resamples=20, seed=0)
    assert boot.at_bound("E") and "E = " in repr(boot) and "no interval" in repr(boot)
    assert not boot.at_bound("alpha")


def test_random_starts_differ_per_resample_and_never_collapse_an_interval():
    truth = HOFFMANN_2022
    N, D, _ = isoflop_design(truth, sizes=5)
    rng = np.random.default_rng(1)
    L = truth.loss(N, D) * np.exp(rng.normal(0, 0.01, N.size))
    refit = functools.partial(fit_chinchilla, n_refine=3, random_starts=3,
                              bounds={"E": (0.1, 5.0)})
    boot = bootstrap(refit, N, D, L, n_resamples=40, seed=0)
    lo, hi = boot.interval("E")
    assert hi - lo > 1e-3 and lo <= truth.E * 1.1 and not boot.at_bound("E")


@pytest.mark.parametrize("bounds, message", [
    ({"A": (1, 2)}, "unknown key"), ({"E": (0.0, 1.0)}, "low > 0"),
    ({"alpha": (1.0, 0.5)}, "low < high")])
def test_bad_bounds_are_refused(bounds, message):
    with pytest.raises(ValueError, match=message):
        fit_chinchilla(X6, X6, X6, bounds=bounds)


X6 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_isoflop_bootstrap_resamples_seeds_and_covers_the_true_exponent():
    truth = HOFFMANN_2022
    N, D, C = isoflop_design(truth, budgets=np.logspace(18, 21, 4), sizes=7)
    rng = np.random.default_rng(0)
    N, D, C = (np.repeat(a, 3) for a in (N, D, C))  # three seeds per run
    L = truth.loss(N, D) * np.exp(rng.normal(0, 0.003, N.size))
    boot = scaling.isoflop_bootstrap(N, L, C, n_resamples=200, seed=0)
    lo, hi = boot.interval("a")
    assert lo < truth.a < hi and hi - lo < 0.1
    again = scaling.isoflop_bootstrap(N, L, C, n_resamples=200, seed=0)
    assert np.array_equal(boot.samples, again.samples)
    with pytest.raises(ValueError, match="at least 3 budgets"):
        scaling.isoflop_bootstrap(N[C < 1e19], L[C < 1e19], C[C < 1e19])


def test_the_envelope_picks_the_run_lowest_at_each_compute():
    # two runs: the small one is better early, the large one later
    curves = [(1e3, [1e9, 1e10, 1e11], [3.0, 2.0, 1.8]),
              (1e4, [1e10, 1e11, 1e12], [2.5, 1.6, 1.2])]
    env = scaling.envelope_optima(curves, [1e9, 1e10, 3e10, 1e11, 1e12, 1e13])
    assert env.C.tolist() == [1e9, 1e10, 3e10, 1e11, 1e12]  # 1e13: no curve reaches it
    assert env.N_opt.tolist() == [1e3, 1e3, 1e3, 1e4, 1e4]
    assert env.loss[0] == pytest.approx(3.0) and env.loss[-1] == pytest.approx(1.2)
    with pytest.raises(ValueError, match=r"curves\[0\]: C_points must increase"):
        scaling.envelope_optima([(1e3, [2.0, 1.0], [1.0, 1.0])], [1.5])


def test_the_envelope_of_a_known_law_recovers_its_allocation_exponent():
    truth = HOFFMANN_2022
    curves = []
    for n in np.logspace(7, 10, 16):
        d = np.logspace(8, 12, 60)
        curves.append((n, 6 * n * d, truth.loss(n, d)))
    env = scaling.envelope_optima(curves, np.logspace(19, 22, 12))
    assert env.frontier().exponent == pytest.approx(truth.a, abs=0.05)
