"""Asymptotic entropy bounds for the CHSH protocol (collective attacks, i.i.d. rounds).

Everything here is a pure function of numbers. Logarithms are base 2. ``omega`` is the CHSH
winning probability, ``omega = (4 + S) / 8``; the quantum maximum is
``OMEGA_MAX = (2 + sqrt2) / 4`` (S = 2 sqrt2) and the classical maximum is 3/4 (S = 2).

References
----------
[PAB09] S. Pironio, A. Acin, N. Brunner, N. Gisin, S. Massar, V. Scarani, "Device-independent
        quantum key distribution secure against collective attacks", NJP 11, 045021 (2009),
        Eq. (12) (the bound H(A|E) >= 1 - h((1 + sqrt((S/2)^2 - 1)) / 2)); also Acin et al.,
        PRL 98, 230501 (2007).
[HLC20] M. Ho, P. Sekatski, E. Y.-Z. Tan, R. Renner, J.-D. Bancal, N. Sangouard, "Noisy
        preprocessing facilitates a photonic realization of device-independent quantum key
        distribution", PRL 124, 230502 (2020), arXiv 2005.13015, Eq. (4) (the bound with Alice's
        bit flipped with probability p) and the rate r = H(A'|E) - h(Q + p - 2pQ).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from diqkd.errors import ConfigError

__all__ = [
    "OMEGA_MAX",
    "OMEGA_MIN",
    "S_MAX",
    "binary_entropy",
    "binary_entropy_derivative",
    "omega_from_S",
    "S_from_omega",
    "g_chsh",
    "g_omega",
    "dg_domega",
    "noisy_preprocessing_entropy",
    "d_noisy_domega",
    "asymptotic_rate",
    "optimal_noise",
]

S_MAX = 2.0 * math.sqrt(2.0)
#: Tsirelson bound on the CHSH winning probability.
OMEGA_MAX = (2.0 + math.sqrt(2.0)) / 4.0
#: Smallest quantum winning probability (anti-Tsirelson).
OMEGA_MIN = (2.0 - math.sqrt(2.0)) / 4.0


def binary_entropy(p: float) -> float:
    """Binary Shannon entropy h(p) = -p log p - (1-p) log(1-p), base 2, with h(0) = h(1) = 0.

    Standard definition (e.g. [PAB09] notation h). Values outside [0, 1] are a ConfigError.
    """
    p = float(p)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise ConfigError(f"binary_entropy: probability must lie in [0, 1], got {p!r}")
    if p == 0.0 or p == 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def binary_entropy_derivative(p: float) -> float:
    """h'(p) = log2((1 - p) / p) for p in (0, 1)."""
    return math.log2((1.0 - p) / p)


def omega_from_S(S: float) -> float:
    """CHSH winning probability omega = (4 + S) / 8 (the CHSH game with uniform inputs)."""
    return (4.0 + float(S)) / 8.0


def S_from_omega(omega: float) -> float:
    """CHSH value S = 8 omega - 4."""
    return 8.0 * float(omega) - 4.0


def _check_S(S: float) -> float:
    S = float(S)
    if math.isnan(S) or S < -S_MAX - 1e-12 or S > S_MAX + 1e-12:
        raise ConfigError(f"CHSH value S must lie in [-2 sqrt2, 2 sqrt2], got {S!r}")
    return min(S, S_MAX)


def g_chsh(S: float) -> float:
    """Pironio et al. bound on H(A|E) for Alice's key bit as a function of the CHSH value.

    g(S) = 1 - h((1 + sqrt((S/2)^2 - 1)) / 2) for 2 < S <= 2 sqrt2, and 0 for S <= 2
    ([PAB09] Eq. (12); Acin et al. 2007). ``S`` is clipped at Tsirelson's bound within 1e-12.
    """
    S = _check_S(S)
    if S <= 2.0:
        return 0.0
    u = math.sqrt(max((S / 2.0) ** 2 - 1.0, 0.0))
    return 1.0 - binary_entropy(min((1.0 + u) / 2.0, 1.0))


def _u_of_omega(omega: float) -> float:
    # (S/2)^2 - 1 = 16 omega (omega - 1) + 3 (REFERENCES.md; follows from S = 8 omega - 4).
    return math.sqrt(max(16.0 * omega * (omega - 1.0) + 3.0, 0.0))


def g_omega(omega: float) -> float:
    """The bound of [PAB09] Eq. (12) written in the winning probability: g(8 omega - 4).

    g(omega) = 1 - h((1 + u) / 2), u = sqrt(16 omega (omega - 1) + 3), for 3/4 < omega <=
    OMEGA_MAX; 0 for omega <= 3/4. It is convex and increasing on [3/4, OMEGA_MAX], which is what
    makes its tangent lines valid min-tradeoff functions (Arnon-Friedman et al. 2018, Methods).
    """
    omega = float(omega)
    if math.isnan(omega) or omega < 0.0 or omega > OMEGA_MAX + 1e-12:
        raise ConfigError(f"winning probability must lie in [0, {OMEGA_MAX:.6f}], got {omega!r}")
    if omega <= 0.75:
        return 0.0
    u = _u_of_omega(min(omega, OMEGA_MAX))
    return 1.0 - binary_entropy(min((1.0 + u) / 2.0, 1.0))


def dg_domega(omega: float) -> float:
    """Derivative of :func:`g_omega`, needed for the tangent (min-tradeoff) lines.

    g'(omega) = [4 (2 omega - 1) / u] log2((1 + u) / (1 - u)), u = sqrt(16 omega(omega - 1) + 3)
    (differentiating [PAB09] Eq. (12) with h'(x) = log2((1 - x)/x); REFERENCES.md). Zero for
    omega < 3/4 and +inf at OMEGA_MAX (vertical tangent at Tsirelson's bound).
    """
    omega = float(omega)
    if omega <= 0.75:
        return 0.0
    if omega >= OMEGA_MAX:
        return math.inf
    u = _u_of_omega(omega)
    if u >= 1.0:
        return math.inf
    return 4.0 * (2.0 * omega - 1.0) / u * math.log2((1.0 + u) / (1.0 - u))


def noisy_preprocessing_entropy(S: float, p: float) -> float:
    """Ho et al. bound on H(A'|E), A' = Alice's key bit flipped with probability p.

    H(A'|E) >= 1 - h((1 + sqrt((S/2)^2 - 1)) / 2) + h((1 + sqrt(1 - p(1-p)(8 - S^2))) / 2)
    ([HLC20] Eq. (4), for 2 <= S <= 2 sqrt2 and 0 <= p <= 1/2). For S <= 2 the bound used is
    H(A'|E) >= H(A'|A E) = h(p), which is what the formula gives at S = 2 and holds for any device.
    At p = 0 it reduces to :func:`g_chsh`.
    """
    S = _check_S(S)
    p = float(p)
    if math.isnan(p) or not (0.0 <= p <= 0.5):
        raise ConfigError(f"noise probability p must lie in [0, 1/2], got {p!r}")
    if S <= 2.0:
        return binary_entropy(p)
    inner = max(1.0 - p * (1.0 - p) * (8.0 - S * S), 0.0)
    return g_chsh(S) + binary_entropy(min((1.0 + math.sqrt(inner)) / 2.0, 1.0))


def d_noisy_domega(omega: float, p: float) -> float:
    """Derivative in omega of ``noisy_preprocessing_entropy(8 omega - 4, p)``.

    Analytic: d/domega of [HLC20] Eq. (4) with S = 8 omega - 4:
    g'(omega) + h'((1 + v)/2) v'/2, v = sqrt(1 - p(1-p)(8 - S^2)), v' = 8 p(1-p) S / v.
    """
    omega = float(omega)
    if omega <= 0.75:
        return 0.0
    base = dg_domega(omega)
    if p == 0.0 or not math.isfinite(base):
        return base
    S = S_from_omega(omega)
    v = math.sqrt(max(1.0 - p * (1.0 - p) * (8.0 - S * S), 0.0))
    if v <= 0.0 or v >= 1.0:
        return base
    dv = 8.0 * p * (1.0 - p) * S / v
    return base + binary_entropy_derivative((1.0 + v) / 2.0) * dv / 2.0


def asymptotic_rate(S: float, qber: float, p: float | None = 0.0) -> float:
    """Asymptotic key rate per key round, Devetak-Winter with the [PAB09]/[HLC20] bound.

    r = H(A'|E) - h(Q + p - 2 p Q), with H(A'|E) from :func:`noisy_preprocessing_entropy`
    ([HLC20] rate; at p = 0 it is [PAB09] Eq. (13): r = g(S) - h(Q)). Pass ``p=None`` to optimise
    the noise over [0, 1/2] (see :func:`optimal_noise`). Negative rates are returned as they are
    (the finite-size key length is where clipping at zero belongs).
    """
    if p is None:
        return optimal_noise(S, qber)[1]
    q = _check_q(qber)
    qn = q + p - 2.0 * p * q
    return noisy_preprocessing_entropy(S, p) - binary_entropy(min(max(qn, 0.0), 1.0))


def _check_q(qber: float) -> float:
    q = float(qber)
    if math.isnan(q) or not (0.0 <= q <= 0.5):
        raise ConfigError(f"QBER must lie in [0, 1/2], got {qber!r}")
    return q


def optimal_noise(S: float, qber: float) -> tuple[float, float]:
    """Noise probability p in [0, 1/2) maximising the [HLC20] rate; returns (p, rate).

    Bounded scalar search (scipy ``minimize_scalar``) refined over a coarse grid, so a rate
    that is not unimodal in p cannot trap the search; p = 0 is always a candidate.
    """
    _check_q(qber)
    grid = np.concatenate([[0.0], np.linspace(1e-4, 0.4999, 400)])
    vals = np.array([asymptotic_rate(S, qber, float(x)) for x in grid])
    i = int(np.argmax(vals))
    lo = grid[max(i - 1, 0)]
    hi = grid[min(i + 1, len(grid) - 1)]
    best_p, best_r = float(grid[i]), float(vals[i])
    if hi > lo:
        res = optimize.minimize_scalar(
            lambda x: -asymptotic_rate(S, qber, float(x)), bounds=(lo, hi), method="bounded",
            options={"xatol": 1e-10},
        )
        if -res.fun > best_r:
            best_p, best_r = float(res.x), float(-res.fun)
    return best_p, best_r
