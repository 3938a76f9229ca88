"""Published scaling-law coefficients, as data, with their sources (chapters 8–10).

Every number here is copied from the paper named beside it; losses are in nats
per token on each paper's own data and tokenizer, so absolute losses do not
transfer between papers (exponents and allocations are what we compare).

* Kaplan et al. (2020), "Scaling Laws for Neural Language Models":
  WebText2, non-embedding parameters, equations (1.1)–(1.5) and Table 2.
* Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models":
  MassiveText, all parameters; the Approach-3 fit and the allocation
  exponents of Table 2.
* Besiroglu et al. (2024), "Chinchilla Scaling: A Replication Attempt": their
  refit of Approach 3 to data reconstructed from Hoffmann et al.'s figure,
  with the standard errors they report (see ``BESIROGLU_2024`` for which of
  their two estimators the five constants come from).

>>> round(HOFFMANN_2022.a, 3), round(BESIROGLU_2024.a, 3)
(0.452, 0.513)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from course_lib.scaling.fits import ChinchillaLaw

__all__ = [
    "PF_DAY_FLOPS",
    "KaplanLaws",
    "KAPLAN_2020",
    "HOFFMANN_2022",
    "HOFFMANN_2022_UNROUNDED_EXPONENTS",
    "HOFFMANN_2022_ALLOCATION",
    "BESIROGLU_2024",
    "BESIROGLU_2024_SE",
    "CHINCHILLA",
    "GOPHER",
    "GOPHER_BUDGET_FLOPS",
]

#: One petaflop/s-day, Kaplan et al.'s unit of compute: 10^15 FLOP/s × 86,400 s.
PF_DAY_FLOPS = 1e15 * 86_400


@dataclass(frozen=True)
class KaplanLaws:
    """Kaplan et al. (2020): pure power laws without an irreducible term.

    ``N`` counts non-embedding parameters, ``D`` tokens, ``C_min`` compute in
    PF-days; each single-variable law holds when the other factors do not limit.
    """

    alpha_N: float = 0.076       # L(N) = (N_c / N)**alpha_N, eq. (1.1)
    N_c: float = 8.8e13
    alpha_D: float = 0.095       # L(D) = (D_c / D)**alpha_D, eq. (1.2)
    D_c: float = 5.4e13
    alpha_C_min: float = 0.050   # L(C_min) = (C_c / C_min)**alpha_C, eq. (1.3)
    C_c_min_pf_days: float = 3.1e8
    joint_alpha_N: float = 0.076  # L(N, D), eq. (1.5), Table 2
    joint_alpha_D: float = 0.103
    joint_N_c: float = 6.4e13
    joint_D_c: float = 1.8e13
    n_opt_exponent: float = 0.73  # N_opt ∝ C_min**0.73 (compute-efficient training)
    source: str = "Kaplan et al. 2020"

    def loss_n(self, N: object) -> np.ndarray:
        """Loss (nats/token) of a model with ``N`` non-embedding parameters, data unlimited."""
        return (self.N_c / np.asarray(N, dtype=float)) ** self.alpha_N

    def loss_d(self, D: object) -> np.ndarray:
        """Loss after ``D`` tokens for a large model stopped early."""
        return (self.D_c / np.asarray(D, dtype=float)) ** self.alpha_D

    def loss_nd(self, N: object, D: object) -> np.ndarray:
        """Joint law ``[(N_c/N)**(α_N/α_D) + D_c/D]**α_D`` with the Table 2 values."""
        n, d = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        ratio = self.joint_alpha_N / self.joint_alpha_D
        return ((self.joint_N_c / n) ** ratio + self.joint_D_c / d) ** self.joint_alpha_D

    def loss_c_min(self, C_flops: object) -> np.ndarray:
        """Loss at compute-efficient training with ``C_flops`` FLOPs."""
        pf_days = np.asarray(C_flops, dtype=float) / PF_DAY_FLOPS
        return (self.C_c_min_pf_days / pf_days) ** self.alpha_C_min


KAPLAN_2020 = KaplanLaws()

#: Hoffmann et al. (2022), Approach 3, as printed in the paper (rounded).
HOFFMANN_2022 = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
                              source="Hoffmann et al. 2022, Approach 3")

#: The same fit with the exponents of the paper's TeX source, α = 0.3392 and
#: β = 0.2849, as reported by Besiroglu et al. (2024); E, A, B as printed.
HOFFMANN_2022_UNROUNDED_EXPONENTS = ChinchillaLaw(
    E=1.69, A=406.4, B=410.7, alpha=0.3392, beta=0.2849,
    source="Hoffmann et al. 2022, exponents from the TeX source")

#: Hoffmann et al. (2022), Table 2: N_opt ∝ C**a and D_opt ∝ C**b, with the
#: intervals they report (None where the table gives none).
HOFFMANN_2022_ALLOCATION = {
    "Approach 1 (minimum over training curves)": (0.50, (0.488, 0.502), 0.50, (0.501, 0.512)),
    "Approach 2 (IsoFLOP profiles)": (0.49, (0.462, 0.534), 0.51, (0.483, 0.529)),
    "Approach 3 (parametric loss)": (0.46, (0.454, 0.455), 0.54, (0.542, 0.543)),
    "Kaplan et al. 2020": (0.73, None, 0.27, None),
}

#: Besiroglu et al. (2024): Approach 3 refitted to 240 reconstructed runs, all
#: five constants from one estimator, the maximum-likelihood fit (a Huber
#: likelihood on log-loss residuals with a fitted scale) whose A, B, α, β the
#: paper prints: A = 482.01, B = 2085.43, α = 0.3478, β = 0.3658. The paper
#: prints E = 1.8172 beside them, but that E belongs to their other estimator,
#: the summed-Huber-loss L-BFGS fit (E = 1.8172 with A ≈ 477.8, B ≈ 2143.9,
#: α ≈ 0.3473, β ≈ 0.3672); the maximum-likelihood fit's own E is 1.8169
#: (1.81686), as their replication notebook (epochai.org/code/
#: analyzing-chinchilla-repo, data_analysis.ipynb) prints it. The two E differ
#: by 3e-4 nats, far inside E's standard error of 0.03.
BESIROGLU_2024 = ChinchillaLaw(E=1.8169, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
                               source="Besiroglu et al. 2024, refit")

#: Their standard errors for the same parameters.
BESIROGLU_2024_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}

#: (parameters, training tokens) of the two models Hoffmann et al. compare.
CHINCHILLA = (70e9, 1.4e12)
GOPHER = (280e9, 300e9)

#: The training budget of Gopher, which Chinchilla was given too (FLOPs).
GOPHER_BUDGET_FLOPS = 5.76e23
