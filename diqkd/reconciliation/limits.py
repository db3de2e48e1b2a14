"""What no one-way reconciliation can beat: the finite-length limit on the binary symmetric channel.

A one-shot syndrome scheme (Alice sends l bits computed from her n bits, Bob decodes once; any code,
any decoder) on errors that are i.i.d. Bernoulli(p) with frame error rate at most ``fer`` must
disclose at least :func:`one_way_leak_bound` bits. The reason is counting: a deterministic decoder
maps each of the 2^l messages (for Bob's fixed string) to one error pattern, so it is right on at
most 2^l patterns; their total probability is at most that of the 2^l most likely patterns, the
lightest ones. So 2^l must be at least the number N of lightest patterns whose probability reaches
1 - fer (a randomised decoder is a mixture of deterministic ones and does no better). This is the
exact, non-asymptotic form of the bound whose expansion

    l >= n h(p) + sqrt(n V(p)) Phi^{-1}(1 - fer) + O(log n),   V(p) = p (1 - p) log2^2((1 - p) / p)

Tomamichel, Martinez-Mateo, Pacher and Elkouss derive and test against LDPC codes ("Fundamental
finite key limits for one-way information reconciliation in quantum key distribution", Quantum
Inf. Process. 16, 280 (2017), arXiv:1401.5194); :func:`efficiency_normal_approximation` is that
expansion without the O(log n) term (an approximation, not a bound).

In efficiency units, f >= f*(n, p, fer) = l_min / (n h(p)). At n = 99,000 and FER 1e-2 it is
1.041 / 1.029 / 1.024 / 1.017 at QBER 2 / 3.6 / 5 / 8 %: the error count of a frame fluctuates
(1,980 +- 44 errors at 2 %), and a one-shot code has to be sized for the unlucky frames. Blind
(interactive) reconciliation is not one-shot: it discloses more only for the frames that need it,
so its realised f is not bounded by f* (only by 1 in the mean).

These are reference numbers for benchmarks and reports; no key length depends on them.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from .leakage import h2

__all__ = ["efficiency_bound", "efficiency_normal_approximation", "one_way_leak_bound"]


def _check(n: int, p: float, fer: float) -> tuple[int, float, float]:
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, not {n}")
    p = float(p)
    if not 0.0 < p < 0.5:
        raise ValueError(f"p must be in (0, 1/2), not {p}")
    fer = float(fer)
    if not 0.0 < fer < 1.0:
        raise ValueError(f"fer must be in (0, 1), not {fer}")
    return n, p, fer


def one_way_leak_bound(n: int, p: float, fer: float) -> float:
    """log2 N: the fewest bits a one-shot reconciliation of n bits can disclose on a BSC(p) with
    frame error rate <= ``fer`` (module docstring).

    N counts every error pattern of weight < t, where t is the smallest weight with
    P[Bin(n, p) > t] <= fer, plus the r patterns of weight t that make up the rest of 1 - fer.
    r is not rounded up, so the value is at most the true minimum (a valid lower bound).

    Parameters
    ----------
    n
        Bits per frame.
    p
        Error probability of each bit, in (0, 1/2).
    fer
        Frame error rate allowed, in (0, 1).

    Returns
    -------
    float
        The bound in bits.
    """
    n, p, fer = _check(n, p, fer)
    # smallest t with sf(t) = P[W > t] <= fer (sf, not 1 - cdf: exact in the tail)
    t = int(stats.binom.isf(fer, n, p))
    while t > 0 and stats.binom.sf(t - 1, n, p) <= fer:
        t -= 1
    while stats.binom.sf(t, n, p) > fer:
        t += 1
    i = np.arange(t, dtype=np.float64)
    log_c = special.gammaln(n + 1.0) - special.gammaln(i + 1.0) - special.gammaln(n - i + 1.0)
    # probability still missing after every pattern lighter than t: P[W >= t] - fer > 0
    missing = float(stats.binom.sf(t - 1, n, p)) - fer
    log_one = t * math.log(p) + (n - t) * math.log1p(-p)  # one pattern of weight t
    terms = np.append(log_c, math.log(missing) - log_one) if missing > 0.0 else log_c
    if terms.size == 0:
        return 0.0
    # at least one pattern is always needed (r < 1 when the all-zero pattern alone suffices)
    return max(0.0, float(special.logsumexp(terms) / math.log(2.0)))


def efficiency_bound(n: int, p: float, fer: float) -> float:
    """f* = :func:`one_way_leak_bound` / (n h(p)): no one-shot reconciliation of frames of n bits
    reaches a smaller efficiency at this frame error rate on a BSC(p)."""
    n, p, fer = _check(n, p, fer)
    return one_way_leak_bound(n, p, fer) / (n * float(h2(p)))


def efficiency_normal_approximation(n: int, p: float, fer: float) -> float:
    """1 + sqrt(n V(p)) Phi^{-1}(1 - fer) / (n h(p)), V(p) = p (1 - p) log2^2((1 - p) / p):
    the second-order expansion of :func:`efficiency_bound` (Tomamichel et al. 2017, module
    docstring), without its O(log n) term."""
    n, p, fer = _check(n, p, fer)
    v = p * (1.0 - p) * math.log2((1.0 - p) / p) ** 2
    return 1.0 + math.sqrt(n * v) * float(stats.norm.isf(fer)) / (n * float(h2(p)))
