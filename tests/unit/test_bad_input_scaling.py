"""Bad input to the scaling layer (fits, budgets, run specs, sweeps, results) gets an
error that names the argument, shows the value and says what was expected — before a
fit takes the logarithm of a negative number or a sweep spends compute on a typo."""

import math

import numpy as np
import pytest
from bad_input_table import assert_clear_error, case_ids

from course_lib.scaling import budget, fits, results, runs, sweep

INF, NAN = math.inf, math.nan
N = [1e6, 2e6, 4e6, 8e6, 1.6e7, 3.2e7]
D = [1e8] * 6
L = [3.0, 2.9, 2.8, 2.7, 2.6, 2.5]
LAW = fits.ChinchillaLaw(1.69, 406.4, 410.7, 0.34, 0.28)
RUN = dict(name="r", n_layer=1, d_model=8, n_head=2, tokens=4096, lr=1e-3)


def run(**changes) -> runs.RunSpec:
    return runs.RunSpec(**(RUN | changes))


CASES = [
    # --- power laws and Chinchilla fits -------------------------------------------------
    (lambda: fits.fit_power_law([1, 2], [1, 2]), ValueError, ["fit_power_law", "at least 3", "2"]),
    (lambda: fits.fit_power_law([1, 2, -3], [1, 2, 3]), ValueError,
     ["x", "non-positive", "-3", "index 2", "logarithm"]),
    (lambda: fits.fit_power_law([1, 1, 1], [1, 2, 3]), ValueError, ["x", "distinct", "1"]),
    (lambda: fits.fit_power_law([1, 2, NAN], [1, 2, 3]), ValueError, ["x", "non-finite", "nan"]),
    (lambda: fits.fit_power_law([[1, 2, 3]], [[1, 2, 3]]), ValueError, ["x", "1-D", "(1, 3)"]),
    (lambda: fits.fit_power_law([1, 2, 3, 4], [1, 2, 3]), ValueError, ["x has 4", "y has 3"]),
    (lambda: fits.fit_power_law("abc", [1, 2, 3]), TypeError, ["x", "numbers", "str"]),
    (lambda: fits.training_flops(0, 1e9), ValueError, ["positive", "0"]),
    (lambda: fits.training_flops(1e6, INF), ValueError, ["inf"]),
    (lambda: fits.fit_chinchilla(N[:5], D[:5], L[:5]), ValueError,
     ["fit_chinchilla", "at least 6", "5"]),
    (lambda: fits.fit_chinchilla(N, D, L, delta=0), ValueError, ["delta", "> 0", "0"]),
    (lambda: fits.fit_chinchilla(N, D, L, n_refine=0), ValueError,
     ["n_refine", "positive integer or None", "0"]),
    (lambda: fits.fit_chinchilla(N, D, L, grid={"Q": [1]}), ValueError,
     ["grid", "'Q'", "'alpha'"]),
    (lambda: fits.fit_chinchilla(N, D, L, random_starts=-1), ValueError,
     ["random_starts", "non-negative integer", "-1"]),
    (lambda: fits.fit_chinchilla(N, D, L, bounds={"E": (2, 1)}), ValueError,
     ["bounds['E']", "low < high", "(2, 1)"]),
    (lambda: fits.fit_chinchilla(N, D, L, bounds={"Z": (1, 2)}), ValueError,
     ["bounds", "'Z'", "'alpha'"]),
    (lambda: fits.fit_chinchilla(N, D, [3.0, 2.9, 2.8, 2.7, 2.6, -1.0]), ValueError,
     ["L", "non-positive", "-1", "index 5"]),
    (lambda: fits.bootstrap(fits.fit_power_law, [1, 2, 3], [1, 2, 3], n_resamples=1),
     ValueError, ["n_resamples", ">= 2", "1"]),
    (lambda: fits.bootstrap(fits.fit_power_law, [1, 2, 3], [1, 2], n_resamples=10),
     ValueError, ["runs", "one common length", "[3, 2]"]),
    (lambda: fits.isoflop_minima([1, 2, 1, 2], [3, 2, 3, 2], [1, 1, 2, 2]), ValueError,
     ["IsoFLOP profile", "2 distinct sizes", "3"]),
    (lambda: fits.envelope_optima([], [1e10]), ValueError, ["curves", "empty"]),
    (lambda: fits.envelope_optima([(1, [1, 2])], [1e10]), ValueError,
     ["curves[0]", "(N, C_points, L_points)"]),
    (lambda: fits.compute_optimal(1e20, "law"), TypeError, ["law", "ChinchillaLaw", "str"]),
    (lambda: fits.compute_optimal(-1.0, LAW), ValueError, ["C", "non-positive", "-1"]),
    (lambda: fits.compute_optimal([1e20, NAN], LAW), ValueError, ["C", "non-finite", "nan"]),
    # --- compute budgets ----------------------------------------------------------------
    (lambda: budget.FlopBudget(-1), ValueError, ["total", "non-negative", "-1"]),
    (lambda: budget.FlopBudget(NAN), ValueError, ["total", "finite", "nan"]),
    (lambda: budget.FlopBudget(1e9).charge(INF), ValueError, ["cost of run 'run'", "inf"]),
    (lambda: budget.FlopBudget(1e9).charge("1"), ValueError, ["cost of run", "'1'"]),
    (lambda: budget.FlopBudget(1e9).charge(2e9, "big"), budget.BudgetExceededError,
     ["'big'", "2e+09", "1e+09", "smaller model"]),
    # --- run specs, data specs, shards and results --------------------------------------
    (lambda: run(name=""), ValueError, ["name", "non-empty", "''"]),
    (lambda: run(n_layer=0), ValueError, ["run 'r'", "n_layer", "positive integer", "0"]),
    (lambda: run(lr=INF), ValueError, ["run 'r'", "lr", "finite", "inf"]),
    (lambda: run(tokens=10), ValueError, ["tokens", "one batch (2048)", "10"]),
    (lambda: run(norm="rms"), ValueError, ["run 'r'", "norm", "'rmsnorm'", "'rms'"]),
    (lambda: run(position="rope", n_head=8), ValueError, ["run 'r'", "rope", "even", "1"]),
    (lambda: run(bias="no"), ValueError, ["run 'r'", "bias", "True or False", "'no'"]),
    (lambda: run(tokens=4096.0), ValueError, ["tokens", "integer", "4096.0"]),
    (lambda: run(weight_decay=-1), ValueError, ["weight_decay", "non-negative", "-1"]),
    (lambda: run(n_head=3), ValueError, ["d_model (8)", "divisible by n_head", "3"]),
    (lambda: run(warmup_fraction=1.0), ValueError, ["warmup_fraction", "[0, 1)", "1.0"]),
    (lambda: run(budget=-1.0), ValueError, ["budget", "positive", "-1.0"]),
    (lambda: run(eval_tokens=(10,)), ValueError, ["eval_tokens", "[2048, tokens=4096]", "[10]"]),
    (lambda: runs.data_from_dict({"kind": "nope"}), ValueError, ["kind", "'markov'", "'nope'"]),
    (lambda: runs.data_from_dict("x"), ValueError, ["data", "JSON object", "'x'"]),
    (lambda: sweep.parse_shard("3"), ValueError, ["--shard", "i/n", "'3'"]),
    (lambda: sweep.parse_shard("4/4"), ValueError, ["--shard", "'4/4'", "0 <= i < n"]),
    (lambda: results.append_record("/nonexistent-dir/r.jsonl", {"run_id": "a", "loss": NAN}),
     ValueError, ["record 'a'", "NaN or infinity", "None"]),
    (lambda: results.append_record("/nonexistent-dir/r.jsonl", {"loss": 1.0}), ValueError,
     ["record", "'run_id'"]),
    (lambda: results.load_results(), ValueError, ["at least one path"]),
    (lambda: results.load_results("/nonexistent-dir/r.jsonl"), FileNotFoundError,
     ["/nonexistent-dir/r.jsonl"]),
]


@pytest.mark.parametrize("call, exc, words", CASES, ids=case_ids(CASES, "scaling"))
def test_bad_input_gets_a_clear_error(call, exc, words):
    assert_clear_error(call, exc, words)


def test_numpy_numbers_make_a_run_spec_of_python_numbers():
    spec = run(n_layer=np.int64(2), lr=np.float32(0.5), tokens=np.int64(4096))
    assert (type(spec.n_layer), type(spec.lr), type(spec.tokens)) == (int, float, int)
    assert budget.FlopBudget(np.float64(1e9)).remaining == 1e9
