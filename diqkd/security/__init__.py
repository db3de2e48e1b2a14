"""diqkd.security: entropy bounds and certified finite-size key lengths (pure functions).

See :mod:`diqkd.security.entropy` (asymptotic bounds: Pironio et al. 2009, Ho et al. 2020) and
:mod:`diqkd.security.finite` (spot-checking CHSH protocol of Arnon-Friedman et al. 2018 with the
improved second-order EAT of Dupuis-Fawzi 2019 / the GEAT of Metger et al. 2024).
"""

from diqkd.security.entropy import (
    OMEGA_MAX,
    OMEGA_MIN,
    S_MAX,
    S_from_omega,
    asymptotic_rate,
    binary_entropy,
    d_noisy_domega,
    dg_domega,
    g_chsh,
    g_omega,
    noisy_preprocessing_entropy,
    omega_from_S,
    optimal_noise,
)
from diqkd.security.finite import (
    METHODS,
    CompletenessThreshold,
    EpsilonBudget,
    FiniteKeyBound,
    ec_leakage_estimate,
    finite_key_length,
    max_losses,
    min_rounds,
    optimal_gamma,
    plan_key_length,
    protocol_leakage_estimate,
    smoothing_penalty,
    threshold_for_completeness,
)

__all__ = [
    "OMEGA_MAX", "OMEGA_MIN", "S_MAX", "S_from_omega", "asymptotic_rate", "binary_entropy",
    "d_noisy_domega", "dg_domega", "g_chsh", "g_omega", "noisy_preprocessing_entropy",
    "omega_from_S", "optimal_noise", "METHODS", "CompletenessThreshold", "EpsilonBudget",
    "FiniteKeyBound", "ec_leakage_estimate", "finite_key_length", "max_losses", "min_rounds",
    "optimal_gamma", "plan_key_length", "protocol_leakage_estimate", "smoothing_penalty",
    "threshold_for_completeness",
]
