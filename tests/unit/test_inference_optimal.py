"""Inference-aware allocation (Sardana et al. 2024) against a brute-force search."""

import numpy as np
import pytest

from course_lib.scaling.fits import (ChinchillaLaw, compute_optimal, inference_optimal,
                                     tokens_for_loss)
from course_lib.scaling.published_laws import BESIROGLU_2024

LAW = BESIROGLU_2024


def _brute(law, loss, d_inf):
    n = np.geomspace(1e6, 1e13, 200_001)
    d = tokens_for_loss(law, n, loss)
    cost = 6 * n * d + 2 * n * d_inf
    i = int(np.nanargmin(np.where(np.isfinite(cost), cost, np.nan)))
    return n[i], d[i]


@pytest.mark.parametrize("d_inf", [0.0, 1e12, 1e13, 1e14])
def test_matches_a_brute_force_search(d_inf):
    loss = float(LAW.loss(70e9, 1.4e12))  # Chinchilla's loss under this law
    got = inference_optimal(LAW, loss, d_inf)
    n, d = _brute(LAW, loss, d_inf)
    assert got.N == pytest.approx(n, rel=2e-3) and got.D == pytest.approx(d, rel=2e-3)
    assert float(LAW.loss(got.N, got.D)) == pytest.approx(loss, rel=1e-9)


def test_no_inference_is_the_compute_optimal_model_and_more_shrinks_it():
    loss = float(LAW.loss(70e9, 1.4e12))
    plain = inference_optimal(LAW, loss, 0.0)
    assert plain.N == pytest.approx(plain.chinchilla.N_opt, rel=1e-4)
    assert plain.D == pytest.approx(plain.chinchilla.D_opt, rel=1e-4)
    sizes = [inference_optimal(LAW, loss, t).N for t in (0, 1e12, 1e13, 1e14)]
    assert sizes == sorted(sizes, reverse=True)  # more serving: a smaller model, longer


def test_tokens_for_loss_inverts_the_law_and_refuses_the_impossible():
    law = ChinchillaLaw(E=1.0, A=10.0, B=20.0, alpha=0.5, beta=0.5)
    d = tokens_for_loss(law, 400.0, 2.0)
    assert float(law.loss(400.0, d)) == pytest.approx(2.0)
    assert np.isinf(tokens_for_loss(law, 100.0, 2.0))  # its own floor is 2.0
    with pytest.raises(ValueError, match="at or below the law's floor"):
        inference_optimal(law, 0.9, 0.0)
    with pytest.raises(ValueError, match="inference_tokens"):
        inference_optimal(law, 2.0, -1.0)
    assert compute_optimal(1e20, law).N_opt > 0
