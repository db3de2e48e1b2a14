"""Finite-size key length of the spot-checking CHSH protocol (entropy accumulation).

The protocol is the one of Arnon-Friedman, Dupuis, Fawzi, Renner, Vidick, Nat Commun 9, 459
(2018) [AF18] (full version: Arnon-Friedman, Renner, Vidick, SIAM J. Comput. 48, 181 (2019),
arXiv 1607.01797 [ARV19]): each of the n rounds is a test round with probability gamma (x, y
uniform in {0, 1}) or a key round (x, y) = (0, 2). Alice's WHOLE n-bit string (key and test
rounds) is error-corrected (Bob's guess of it is what he uses to score the test rounds) and
privacy-amplified. With noisy preprocessing Alice flips her key-round bits with probability p.

Acceptance rule assumed by the proof (see :func:`max_losses`): the protocol accepts iff the
number L of LOST test games satisfies  L <= gamma n (1 - omega_threshold). Counting losses (not
wins) is what makes the affine min-tradeoff function below depend on the losses only, which keeps
Max f - Min_Sigma f = f'(t)(2 + sqrt2)/4 small (the third-order term depends on it
exponentially).

Key length (all logs base 2), [AF18] Methods / [ARV19] Sec. 5 structure, EAT with the improved
second-order term in place of the original EAT's:

    H_min^{eps_s}(A|XYE) >= H_min^{e1}(A Bt|XYE) - H_max^{e2}(Bt|A XYE) - 3 theta(e3)
        (chain rule [VDTR13] as used in [AF18]); the smoothing parameters are combined as
        e1 + e2 + e3 + max(e1, e2, e3) <= eps_s, which is valid whichever of the three carries
        the factor 2 of the chain rule's "e + 2e' + e''" (that assignment could not be read
        from the statement; [AF18] sidestep it with e1 = e2 = e3 = eps_s/4).
    H_min^{e1}(A Bt|XYE)_{rho|Omega} >= n h - n b (ln2/2) V^2
                                     - (theta(e1) + a log(1/eps_EA)) / (a-1) - n b^2 K_a
    H_max^{e2}(Bt|A XYE)_{rho|Omega} <= M, the (1 - eps_EA e2^2 / 2)-quantile of
        Binomial(n, gamma) (proved in :func:`_hmax_test_outputs`)
    ell = floor( H_min^{eps_s}(A|XYE) - leak_EC - 2 log(1/eps_PA) )              [TSSR11]

with b = (a-1)/(2-a), a = alpha in (1, 3/2), theta(eps) = log(2/eps^2),
V = log(2 d^2 + 1) + sqrt(2 + Var_Sigma f), and
K_a = (2-a)^3 / (6 (3-2a)^3 ln2) 2^{b (2 log d + Max f - Min_Sigma f)}
      ln^3(2^{2 log d + Max f - Min_Sigma f} + e^2),
where d = 6 = |A_i Bt_i| (Bt_i = B_i in test rounds, "no test" otherwise) and h is the
min-tradeoff function at the acceptance threshold.

Verification record (what the constants rest on)
------------------------------------------------
The theorem statements themselves could NOT be read: the stored copies of [DF19] (ar5iv
1805.11652), [MFSR22] (ar5iv 2203.04989 and PMC11470903), [N22] (ar5iv 2109.14600) and [AF18]
(nature.com) are truncated after the abstract / first section, and no other stored source quotes
the statements first-hand. The GEAT statement used here is [MFSR22] Theorem 4.3, Eq. (4.4)
(with Lemma 4.7 for the crossover min-tradeoff function and [DF19] Corollary IV.2 as the
single-round bound inside its proof) as transcribed in a reading note of the paper (repository
RoyalTeng/AI4QKD, docs/literature/GEAT-2024.md, section 4.2); the theorem numbers are from that
note, not checked against the paper. The constants agree with three independent public
implementations:

* DF19 form, in Steffinlongo et al., arXiv 2409.17075, App. C, Eq. (C16) (repository
  AnnaSteffinlongo/DIQKD-with-single-photons, finite_size_key.py): second order
  n (a-1)(ln2/2) V^2, V = log(2 d^2 + 1) + sqrt(2 + Var f), third order n (a-1)^2 K with
  K = 1/(6 (2-a)^3 ln2) 2^{(a-1)(log d + Max f - Min_Sigma f)} ln^3(2^{log d + Max f -
  Min_Sigma f} + e^2), smoothing (theta(eps) + a log(1/eps_EA))/(a-1), theta = log(2/eps^2),
  Var f = (2+sqrt2)/(4 gamma) (Delta g)^2 (worst case over the quantum set), the 3 theta chain
  rule term and a separate EAT for H_max(Bt).
* GEAT form ([MFSR22] arXiv 2203.04989v2), in perambluate/ZPConstr2CHSH
  (ZPConstr2CHSH/finiteRateCalculator.py, written with beta = (a-1)/(2-a)) and in an
  independent Julia module (FiniteSize.h_GEAT): the form above, with (a-1)/(2-a),
  (2-a)^3/(3-2a)^3 and 2 log d, and Var/Min taken over Sigma ("Var_Sigma(f)",
  ZPConstr2CHSH/minTradeoffProp).
For every alpha in (1, 3/2) the GEAT-form penalty is at least the DF19-form penalty (termwise:
(a-1)/(2-a) >= a-1, (2-a)^4 >= (3-2a)^3, 2 log d >= log d), so using it is conservative under
either reading; theta(eps) = log(2/eps^2) >= -log(1 - sqrt(1 - eps^2)) likewise. The variance
is the worst case over all quantum strategies (all three implementations do the same).

Method "llr21" replaces the second-order term n b (ln2/2) V^2 (worst-case variance) by
n T_alpha(f) of Liu et al. 2021 [LLR21] (see :func:`_llr21_T`; statement from a secondary source,
not the default, not in METHODS).

Epsilons (composition, [AF18] Methods "soundness"; [TSSR11] for the hashing step): the key is
eps_sec-secret with eps_sec = 2 eps_s + eps_PA + eps_EA (either Pr[accept] < eps_EA, or the EAT
bound holds for the state conditioned on acceptance), and eps_cor-correct with eps_cor from the
verification hash; the protocol is (eps_sec + eps_cor)-sound.

References
----------
[AF18]   Arnon-Friedman et al., Nat Commun 9, 459 (2018).
[ARV19]  Arnon-Friedman, Renner, Vidick, SIAM J. Comput. 48, 181 (2019), arXiv 1607.01797.
[DFR20]  Dupuis, Fawzi, Renner, "Entropy accumulation", CMP 379, 867 (2020), arXiv 1607.01796.
[DF19]   Dupuis, Fawzi, "Entropy accumulation with improved second-order term", IEEE TIT 65,
         7596 (2019), arXiv 1805.11652.
[MFSR22] Metger, Fawzi, Sutter, Renner, "Generalised entropy accumulation", CMP 405, 261
         (2024), arXiv 2203.04989.
[TSSR11] Tomamichel, Schaffner, Smith, Renner, IEEE TIT 57, 5524 (2011) (leftover hash lemma
         with quantum side information).
[VDTR13] Vitanov, Dupuis, Tomamichel, Renner, IEEE TIT 59, 2603 (2013) (chain rules).
[TMPE17] Tomamichel, Martinez-Mateo, Pacher, Elkouss, QIP 16, 280 (2017), Eq. (24)
         (finite-length EC leakage, normal approximation).
[N22]    Nadlinger et al., Nature 607, 682 (2022), arXiv 2109.14600.
[SNC24]  Steffinlongo et al., arXiv 2409.17075 (App. C: the same [AF18]-style analysis).
[LLR21]  Liu et al., "Device-independent randomness expansion against quantum side information"
         (2021), Supplementary Theorem 2; as stated in Kamin, Arqand, George, Luetkenhaus, Tan,
         arXiv 2406.10198, Theorem 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import optimize, stats

from diqkd.errors import ConfigError
from diqkd.security.entropy import (
    OMEGA_MAX,
    OMEGA_MIN,
    binary_entropy,
    d_noisy_domega,
    dg_domega,
    g_omega,
    noisy_preprocessing_entropy,
    omega_from_S,
)

__all__ = [
    "METHODS",
    "EpsilonBudget",
    "FiniteKeyBound",
    "CompletenessThreshold",
    "finite_key_length",
    "max_losses",
    "ec_leakage_estimate",
    "protocol_leakage_estimate",
    "threshold_for_completeness",
    "plan_key_length",
    "optimal_gamma",
    "min_rounds",
    "smoothing_penalty",
    "smoothing_theta",
]

METHODS = ("eat2", "geat")
# Methods accepted by finite_key_length. "llr21" (improved second-order term of Liu et al. 2021 as
# stated in Kamin et al. 2025, Theorem 1; see _llr21_T) is not yet in METHODS because the CLI
# lists METHODS for "--method all"; the lead decides when to expose it.
ALL_METHODS = METHODS + ("llr21",)
# Number of cells of [OMEGA_MIN, OMEGA_MAX] on which the infimum T_alpha is lower-bounded.
_T_CELLS = 4000

# Dimension of the register A_i Bt_i on which entropy is accumulated ([AF18]: A_i in {0,1},
# Bt_i in {0, 1, no-test}).
_D_ACC = 6
# |Bt_i| for the max-entropy EAT on Bt ([AF18]: log(1 + 2 d_O) = log 7).
_D_BT = 3
# Fractions (e1, e2, e3) of eps_s in the chain rule. The chain rule combines its three smoothing
# parameters as e + 2e' + e''; which of ours carries the 2 is not verified, so the split satisfies
# e1 + e2 + e3 + max(e1, e2, e3) = 1, valid for every assignment (see _bound_terms).
_SPLIT = (0.49, 0.01, 0.01)


# --------------------------------------------------------------------------------------------
# epsilons
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EpsilonBudget:
    """Security parameters of one run, each an explicit protocol parameter.

    Parameters
    ----------
    eps_s
        Smoothing parameter of the smooth min-entropy (the chain rule splits it as
        e1 + 2 e2 + e3, [AF18] Methods).
    eps_pa
        Privacy-amplification (leftover hash lemma) error [TSSR11].
    eps_ea
        Entropy-accumulation / Bell-test soundness: the bound holds for any state whose
        acceptance probability is at least eps_ea ([DFR20], p_Omega >= eps_ea).
    eps_cor
        Correctness: probability that the verification hash passes while the keys differ
        (a t-bit two-universal tag gives eps_cor <= 2^-t).
    eps_complete
        Optional completeness target: the probability that an honest device aborts (used to set
        the acceptance threshold for planning; not part of soundness).

    Composition ([AF18] Methods; [TSSR11] leftover hash lemma for the hashing step):
    ``eps_sec = 2 eps_s + eps_pa + eps_ea`` (secrecy), ``eps_cor`` (correctness), and
    ``eps_snd = eps_sec + eps_cor`` (overall soundness).
    """

    eps_s: float = 1e-10
    eps_pa: float = 1e-10
    eps_ea: float = 1e-10
    eps_cor: float = 1e-10
    eps_complete: float | None = 1e-2

    def __post_init__(self) -> None:
        for name in ("eps_s", "eps_pa", "eps_ea", "eps_cor"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not (0.0 < float(v) < 1.0) or math.isnan(v):
                raise ConfigError(f"{name} must lie in (0, 1), got {v!r}")
        c = self.eps_complete
        if c is not None and (not (0.0 < float(c) < 1.0) or math.isnan(c)):
            raise ConfigError(f"eps_complete must lie in (0, 1) or be None, got {c!r}")

    @property
    def eps_sec(self) -> float:
        """Secrecy: 2 eps_s + eps_pa + eps_ea ([AF18] Methods, [TSSR11])."""
        return 2.0 * self.eps_s + self.eps_pa + self.eps_ea

    @property
    def eps_snd(self) -> float:
        """Overall soundness eps_sec + eps_cor (composable security, [AF18] Definition 1)."""
        return self.eps_sec + self.eps_cor

    @classmethod
    def split(cls, eps_snd: float, eps_complete: float | None = 1e-2) -> EpsilonBudget:
        """Split a total soundness budget evenly: eps_s = eps_pa = eps_ea = eps_cor = eps_snd/5.

        Then 2 eps_s + eps_pa + eps_ea + eps_cor = eps_snd exactly.
        """
        if not (0.0 < eps_snd < 1.0):
            raise ConfigError(f"eps_snd must lie in (0, 1), got {eps_snd!r}")
        e = eps_snd / 5.0
        return cls(eps_s=e, eps_pa=e, eps_ea=e, eps_cor=e, eps_complete=eps_complete)

    @classmethod
    def allocate(cls, eps_snd: float, eps_cor: float | None = None, pa_share: float = 0.01,
                 eps_complete: float | None = 1e-2) -> EpsilonBudget:
        """Split a total soundness budget to maximise the certified key (same composition).

        The bound depends on eps_s and eps_EA only through theta(e1) + alpha log(1/eps_EA) ~
        2 log(1/eps_s) + log(1/eps_EA) (divided by alpha - 1), while eps_sec charges 2 eps_s +
        eps_EA; equal marginal cost per unit of budget gives eps_s = eps_EA. eps_PA only enters
        as 2 log(1/eps_PA) bits and gets ``pa_share`` of the budget; eps_cor is set by the
        verification tag (``eps_cor``; default ``pa_share`` of the budget). Then
        2 eps_s + eps_pa + eps_ea + eps_cor = eps_snd (up to float rounding, never above).
        """
        if not (0.0 < eps_snd < 1.0):
            raise ConfigError(f"eps_snd must lie in (0, 1), got {eps_snd!r}")
        if not (0.0 < pa_share < 0.5):
            raise ConfigError(f"pa_share must lie in (0, 1/2), got {pa_share!r}")
        cor = pa_share * eps_snd if eps_cor is None else float(eps_cor)
        pa = pa_share * eps_snd
        rest = eps_snd - cor - pa
        if not rest > 0.0:
            raise ConfigError("eps_cor leaves no budget for secrecy")
        e = rest / 3.0 * (1.0 - 1e-12)  # 2 eps_s + eps_ea = rest, rounded down
        return cls(eps_s=e, eps_pa=pa, eps_ea=e, eps_cor=cor, eps_complete=eps_complete)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(eps_sec=self.eps_sec, eps_snd=self.eps_snd,
                 composition="eps_sec = 2 eps_s + eps_pa + eps_ea; eps_snd = eps_sec + eps_cor")
        return d


def smoothing_theta(eps: float) -> float:
    """theta(eps) = log2(2 / eps^2), the smoothing term used in the bound.

    Two forms appear in the implementations the constants were checked against: log(2/eps^2)
    ([SNC24] Eq. (C16); FiniteSize.h_GEAT) and -log(1 - sqrt(1 - eps^2)) (ZPConstr2CHSH). Since
    1 - sqrt(1 - x) >= x/2, log(2/eps^2) is the larger, hence the conservative choice.
    """
    return 1.0 - 2.0 * math.log2(eps)


def smoothing_penalty(eps: float) -> float:
    """g(eps) = -log2(1 - sqrt(1 - eps^2)), the smoothing term of [DF19]/[VDTR13].

    Computed stably as -log2(eps^2 / (1 + sqrt(1 - eps^2))) (for small eps, ~ log2(2/eps^2)).
    """
    return -math.log2(eps * eps / (1.0 + math.sqrt(1.0 - eps * eps)))


# --------------------------------------------------------------------------------------------
# the result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FiniteKeyBound:
    """Certified key length and how it was obtained.

    ``terms`` maps the name of every term of the bound to its signed value in bits; their sum is
    ``raw_bound`` and ``key_bits = max(0, floor(raw_bound))``.
    """

    key_bits: int
    raw_bound: float
    terms: dict[str, float]
    n: int
    gamma: float
    omega_threshold: float
    leak_ec_bits: float
    eps: EpsilonBudget
    method: str
    p_noise: float
    params: dict[str, float] = field(default_factory=dict)

    @property
    def eps_sec(self) -> float:
        return self.eps.eps_sec

    @property
    def eps_cor(self) -> float:
        return self.eps.eps_cor

    @property
    def eps_snd(self) -> float:
        return self.eps.eps_snd

    @property
    def key_rate(self) -> float:
        """Key bits per round (key_bits / n)."""
        return self.key_bits / self.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_bits": self.key_bits,
            "key_rate": self.key_rate,
            "raw_bound": self.raw_bound,
            "terms": dict(self.terms),
            "n": self.n,
            "gamma": self.gamma,
            "omega_threshold": self.omega_threshold,
            "max_losses": max_losses(self.n, self.gamma, self.omega_threshold),
            "leak_ec_bits": self.leak_ec_bits,
            "method": self.method,
            "p_noise": self.p_noise,
            "params": dict(self.params),
            "eps": self.eps.to_dict(),
            "eps_sec": self.eps_sec,
            "eps_cor": self.eps_cor,
            "eps_snd": self.eps_snd,
        }


# --------------------------------------------------------------------------------------------
# acceptance rule and completeness
# --------------------------------------------------------------------------------------------
def max_losses(n: int, gamma: float, omega_threshold: float) -> int:
    """Largest number of lost test games the protocol may accept: floor(gamma n (1 - omega_thr)).

    Exact rational arithmetic on the float inputs, so that ``L <= max_losses(...)`` implies
    ``L / n <= gamma (1 - omega_thr)`` exactly, which is what the min-tradeoff bound needs
    (event Omega of [AF18], written in losses; see the module docstring).
    """
    x = Fraction(float(gamma)) * int(n) * (1 - Fraction(float(omega_threshold)))
    return max(math.floor(x), -1)


@dataclass(frozen=True)
class CompletenessThreshold:
    """Acceptance threshold chosen for completeness (:func:`threshold_for_completeness`)."""

    omega_threshold: float
    max_losses: int
    abort_probability: float
    expected_losses: float


def threshold_for_completeness(
    n: int, gamma: float, expected_omega: float, eps_complete: float
) -> CompletenessThreshold:
    """Acceptance threshold such that an honest i.i.d. device aborts with prob. <= eps_complete.

    In the honest i.i.d. model each round is a lost test game independently with probability
    q = gamma (1 - omega), so the number of losses is Binomial(n, q) and the protocol aborts iff
    L > L_max. L_max is the smallest integer with P[L > L_max] <= eps_complete (exact binomial
    tail, ``scipy.stats.binom.sf``; the Hoeffding bound exp(-2 n delta^2) of REFERENCES.md is
    looser). The returned ``omega_threshold`` is the largest float with
    ``max_losses(n, gamma, omega_threshold) == L_max``-compatible rounding (it is never larger
    than 1 - L_max / (gamma n)).
    """
    n = _check_n(n)
    gamma = _check_gamma(gamma)
    if not (0.0 < expected_omega <= OMEGA_MAX + 1e-12):
        raise ConfigError(f"expected winning probability must lie in (0, {OMEGA_MAX:.6f}]")
    if not (0.0 < eps_complete < 1.0):
        raise ConfigError(f"eps_complete must lie in (0, 1), got {eps_complete!r}")
    q = gamma * (1.0 - min(expected_omega, OMEGA_MAX))
    dist = stats.binom(n, q)
    L = int(dist.isf(eps_complete))
    L = max(L, 0)
    while L > 0 and dist.sf(L - 1) <= eps_complete:
        L -= 1
    while dist.sf(L) > eps_complete:
        L += 1
    omega = 1.0 - L / (gamma * n)
    while max_losses(n, gamma, omega) < L:
        omega = math.nextafter(omega, -math.inf)
    return CompletenessThreshold(omega_threshold=omega, max_losses=L,
                                 abort_probability=float(dist.sf(L)), expected_losses=n * q)


# --------------------------------------------------------------------------------------------
# error-correction leakage (planning only: the pipeline passes the ACTUAL leakage)
# --------------------------------------------------------------------------------------------
def _v(q: float) -> float:
    if q <= 0.0 or q >= 1.0:
        return 0.0
    return q * (1.0 - q) * math.log2((1.0 - q) / q) ** 2


def ec_leakage_estimate(n: float, qber: float, eps_cor: float, efficiency: float = 1.0) -> float:
    """Finite-length one-way EC leakage on a BSC, normal approximation of [TMPE17] Eq. (24).

    leak ~ f n h(Q) + sqrt(n v) Phi^-1(1 - eps) - (1/2) log2 n,  v = Q(1-Q) log2^2((1-Q)/Q),
    with f = ``efficiency`` (1.0 = the [TMPE17] second-order limit; real codes need f > 1) and
    eps = ``eps_cor`` used as the failure probability. For planning only: a run's key length
    must use the leakage actually published (syndrome + revealed + tag bits).
    REFERENCES.md: n = 1e5, Q = 2 %: 14,904 bits at eps = 1e-3, 15,317 at eps = 1e-6.
    """
    if n <= 0:
        raise ConfigError(f"n must be positive, got {n!r}")
    if not (0.0 <= qber <= 0.5):
        raise ConfigError(f"QBER must lie in [0, 1/2], got {qber!r}")
    if efficiency < 1.0:
        raise ConfigError(f"EC efficiency must be >= 1, got {efficiency!r}")
    z = float(stats.norm.isf(eps_cor))
    return efficiency * n * binary_entropy(qber) + math.sqrt(n * _v(qber)) * z - 0.5 * math.log2(n)


def protocol_leakage_estimate(
    n: float, gamma: float, S: float, qber: float, eps_cor: float, efficiency: float = 1.0,
    p_noise: float = 0.0,
) -> float:
    """Planning estimate of the EC leakage for Alice's whole string (key and test rounds).

    Bob's prior error on Alice's bit is Q' = Q + p - 2pQ in key rounds (noisy preprocessing,
    [HLC20]) and 1 - omega = (4 - S)/8 in test rounds (he guesses a = b XOR xy), cf. the syndrome
    size n[(1-gamma) h(Q) + gamma h((4-S)/8)] + 50 sqrt(n) of [N22]. The [TMPE17] normal
    approximation is applied to the mixture: mean n[(1-gamma) h(Q') + gamma h(1-omega)], variance
    n[(1-gamma) v(Q') + gamma v(1-omega)] + n gamma(1-gamma)(h(Q') - h(1-omega))^2 (law of total
    variance: the round types are random). Plus the verification tag, ceil(log2(1/eps_cor)) bits.
    """
    gamma = _check_gamma(gamma)
    omega = min(omega_from_S(S), OMEGA_MAX)
    qn = qber + p_noise - 2.0 * p_noise * qber
    qt = 1.0 - omega
    hk, ht = binary_entropy(qn), binary_entropy(qt)
    mean = n * ((1.0 - gamma) * hk + gamma * ht)
    var = n * ((1.0 - gamma) * _v(qn) + gamma * _v(qt)) + n * gamma * (1.0 - gamma) * (hk - ht) ** 2
    z = float(stats.norm.isf(eps_cor))
    tag = math.ceil(math.log2(1.0 / eps_cor))
    return efficiency * mean + math.sqrt(var) * z - 0.5 * math.log2(n) + tag


# --------------------------------------------------------------------------------------------
# the finite-size bound
# --------------------------------------------------------------------------------------------
def _check_n(n: Any) -> int:
    try:
        nf = float(n)
    except (TypeError, ValueError):
        raise ConfigError(f"number of rounds must be a number, got {n!r}") from None
    if not math.isfinite(nf) or nf < 1 or nf != math.floor(nf):
        raise ConfigError(f"number of rounds must be a positive integer, got {n!r}")
    return int(nf)


def _check_gamma(gamma: float) -> float:
    g = float(gamma)
    if math.isnan(g) or not (0.0 < g <= 1.0):
        raise ConfigError(f"test probability gamma must lie in (0, 1], got {gamma!r}")
    return g


class _Tradeoff:
    """Rate function r(omega) = (1-gamma) H_key(omega) + gamma g(omega) and its tangents.

    H_key is the [HLC20] bound (= g at p = 0); test rounds contribute g (Alice's test bit obeys
    the same [PAB09] bound by the symmetry of CHSH). For p > 0 r need not be convex, so a tangent
    is accepted only if it stays below r on a fine grid of [OMEGA_MIN, OMEGA_MAX] (for
    omega <= 3/4 the bound used is (1-gamma) h(p), valid for any device).
    """

    def __init__(self, gamma: float, p: float) -> None:
        self.gamma, self.p = gamma, p
        if p > 0.0:
            w = np.linspace(0.75, OMEGA_MAX, 4001)
            self.grid = w
            self.grid_r = np.array([self.r(float(x)) for x in w])
            self.low_r = (1.0 - gamma) * binary_entropy(p)

    def r(self, w: float) -> float:
        if w <= 0.75:
            return (1.0 - self.gamma) * binary_entropy(self.p) if self.p > 0 else 0.0
        hk = noisy_preprocessing_entropy(8.0 * w - 4.0, self.p) if self.p > 0 else g_omega(w)
        return (1.0 - self.gamma) * hk + self.gamma * g_omega(w)

    def slope(self, w: float) -> float:
        dk = d_noisy_domega(w, self.p) if self.p > 0 else dg_domega(w)
        return (1.0 - self.gamma) * dk + self.gamma * dg_domega(w)

    @property
    def cells(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid omega_0 = OMEGA_MIN < ... < omega_N = OMEGA_MAX and r on it (cached)."""
        if not hasattr(self, "_cells"):
            w = np.linspace(OMEGA_MIN, OMEGA_MAX, _T_CELLS + 1)
            self._cells = (w, np.array([self.r(float(x)) for x in w]))
        return self._cells

    def valid(self, t: float, r_t: float, s: float) -> bool:
        if self.p == 0.0:
            return True  # g convex on [3/4, OMEGA_MAX], max(0, g) convex: tangents lie below.
        f = r_t + s * (self.grid - t)
        if np.any(f > self.grid_r + 1e-12):
            return False
        return r_t + s * (0.75 - t) <= self.low_r + 1e-12


def _bound_terms(
    n: int, gamma: float, omega_thr: float, leak: float, eps: EpsilonBudget, method: str,
    trade: _Tradeoff, t: float, alpha: float,
) -> tuple[float, dict[str, float], dict[str, float]]:
    """All terms of the bound at tangent point t and Renyi parameter alpha (see module doc)."""
    r_t = trade.r(t)
    s = trade.slope(t)
    if not (math.isfinite(s) and s > 0.0) or not trade.valid(t, r_t, s):
        return -math.inf, {}, {}
    # min-tradeoff f: f(win) = f(no test) = G(1), f(lose) = G(1) - s/gamma,
    # G(w) = r(t) + s (w - t); on Omega (losses <= gamma n (1 - omega_thr)): f >= h.
    h = r_t + s * (omega_thr - t)
    # Var_q(f) = (s/gamma)^2 x(1 - x), x = Pr[lose] <= gamma (1 - OMEGA_MIN) over quantum
    # strategies (Sigma); x(1 - x) is maximal at min(x_max, 1/2).
    x_lose = min(gamma * (1.0 - OMEGA_MIN), 0.5)
    var_f = (s / gamma) ** 2 * x_lose * (1.0 - x_lose)
    spread = s * (1.0 - OMEGA_MIN)  # Max f - Min_Sigma f = s (2 + sqrt2)/4
    # Smoothing split of the chain rule [VDTR13] as used in [AF18]: H_min^{e1}(A Bt),
    # H_max^{e2}(Bt|...), 3 theta(e3), with e1 + e2 + e3 + max(e1, e2, e3) = eps_s (valid for
    # any placement of the chain rule's factor 2). Only e1 is divided by alpha - 1, so it gets
    # the largest share.
    e1, e2, e3 = _SPLIT[0] * eps.eps_s, _SPLIT[1] * eps.eps_s, _SPLIT[2] * eps.eps_s
    a = alpha
    d = _D_ACC
    # Second- and third-order constants in the GEAT form, which dominates the DF19 form for every
    # alpha in (1, 3/2) (module docstring, "Verification record"); both methods use them.
    V = math.sqrt(var_f + 2.0) + math.log2(2.0 * d * d + 1.0)
    x = 2.0 * math.log2(d) + spread
    b = (a - 1.0) / (2.0 - a)
    log2_pref = b * x  # exponent of 2 in K_alpha
    if log2_pref > 1000 or a >= 1.5:
        return -math.inf, {}, {}
    ln_term = np.logaddexp(x * math.log(2.0), 2.0)  # ln(2^x + e^2)
    K = (2.0 - a) ** 3 / (6.0 * (3.0 - 2.0 * a) ** 3 * math.log(2.0)) * 2.0**log2_pref * ln_term**3
    hmax_excess = _hmax_test_outputs(n, gamma, e2, eps.eps_ea) - gamma * n
    if method == "llr21":
        T, w_star = _llr21_T(trade, gamma, t, r_t, s, b, math.log2(2.0 * d * d + 1.0))
        second = n * T
    else:
        second = -n * b * (math.log(2.0) / 2.0) * V * V
    terms = {
        "entropy_first_order": n * h,
        "eat_second_order": second,
        "eat_smoothing_and_acceptance": -(smoothing_theta(e1)
                                          + a * math.log2(1.0 / eps.eps_ea)) / (a - 1.0),
        "eat_third_order": -n * b * b * K,
        "hmax_test_outputs_first_order": -gamma * n,
        "hmax_test_outputs_second_order": -hmax_excess,
        "chain_rule": -3.0 * smoothing_theta(e3),
        "leak_ec": -float(leak),
        "privacy_amplification": -2.0 * math.log2(1.0 / eps.eps_pa),
    }
    params = {
        "tangent_point": t,
        "alpha": a,
        "eps_smooth_hmin": e1,
        "eps_smooth_hmax": e2,
        "eps_chain_rule": e3,
        "entropy_rate_at_threshold": h,
        "tradeoff_slope": s,
        "var_f_bound": var_f,
        "max_minus_min_f": spread,
        "V": V,
        "K_alpha": K,
    }
    if method == "llr21":
        params.update(T_alpha=T, T_alpha_argmin_omega=w_star)
    return math.fsum(terms.values()), terms, params


def _llr21_T(trade: _Tradeoff, gamma: float, t: float, r_t: float, s: float, b: float,
             log_term: float) -> tuple[float, float]:
    """Rigorous lower bound on T_alpha(f) of the improved second-order term; returns (T, omega*).

    Liu et al. 2021 [LLR21] (Supplementary Theorem 2), as stated in Kamin, Arqand, George,
    Luetkenhaus, Tan, arXiv 2406.10198, Theorem 1 (Eqs. (10)-(11)):

        H_alpha^up(A^n|E_n)_{rho|Omega} >= n h + n T_alpha(f)
                                           - alpha/(alpha-1) log(1/Pr[Omega]) - n b^2 K(alpha),
        T_alpha(f) = inf_{p in Q} [rate(p) - f(p) - b (ln2/2) (log(1 + 2 d) + sqrt(2 + Var_p f))^2],

    b = (alpha-1)/(2-alpha), Q the achievable (quantum) statistics, d = |A_i| for classical A_i,
    K(alpha) the K' of [MFSR22] Theorem 4.3. With H_min^eps >= H_alpha^up - theta(eps)/(alpha-1)
    ([DFR20] Lemma B.10, as cited in [MFSR22]) this gives the smooth min-entropy bound used in
    :func:`_bound_terms`. ``log_term`` is passed as log(2 d^2 + 1) (the constant of [MFSR22]
    Theorem 4.3, larger than the log(1 + 2 d) of the transcription): the larger of the two
    readings.
    SOURCE CAVEAT: the statement above is taken from a reading note of arXiv 2406.10198
    (repository RoyalTeng/AI4QKD, docs/literature/Kamin-2025 memo, section 4.2), not from the
    paper or from [LLR21] itself; it must be checked against them before certifying keys.
    Here p is fixed by omega (the winning probability): Pr[lose] = x = gamma (1 - omega),
    Pr[no test] = 1 - gamma, so f(p) = G(omega) = r(t) + s (omega - t) and
    Var_p f = (s/gamma)^2 x (1 - x), omega in [OMEGA_MIN, OMEGA_MAX].

    The infimum over the continuum is bounded from below cell by cell on a fixed grid: on
    [a, c] the penalty is at most its value at the largest x(1-x) (x = gamma (1 - a), capped at
    1/2), and the slack r - G is at least 0 if t is in the cell, else its value at the endpoint
    nearest t (r - G is convex for p = 0: r = max(0, g) is convex). For noisy preprocessing
    (p > 0) r need not be convex and the slack is bounded below by 0 (no gain from it).
    """
    w, rw = trade.cells
    a, c = w[:-1], w[1:]
    x_hi = np.minimum(gamma * (1.0 - a), 0.5)
    var_hi = (s / gamma) ** 2 * x_hi * (1.0 - x_hi)
    pen = b * (math.log(2.0) / 2.0) * (log_term + np.sqrt(2.0 + var_hi)) ** 2
    if trade.p == 0.0:
        gap_a = rw[:-1] - (r_t + s * (a - t))
        gap_c = rw[1:] - (r_t + s * (c - t))
        slack = np.where(c < t, gap_c, np.where(a > t, gap_a, 0.0))
        slack = np.maximum(slack, 0.0)  # f <= r on Q (tangent of a convex function)
    else:
        slack = np.zeros_like(a)
    vals = slack - pen
    i = int(np.argmin(vals))
    return float(vals[i]), float(a[i])


def _hmax_test_outputs_eat(n: int, eps: float, eps_ea: float) -> float:
    """Second-order term of the original EAT for H_max(Bt|A X Y E) ([AF18] Methods, [DFR20]
    with a constant max-tradeoff function): 2 log(7) sqrt(1 - 2 log(eps eps_EA)) sqrt n.
    Kept for comparison only (constants as recalled, not verified; not used in the bound)."""
    return 2.0 * math.log2(1.0 + 2.0 * _D_BT) * math.sqrt(1.0 - 2.0 * math.log2(eps * eps_ea)) \
        * math.sqrt(n)


@lru_cache(maxsize=4096)
def _hmax_test_outputs(n: int, gamma: float, eps: float, eps_ea: float) -> float:
    """Upper bound on H_max^eps(Bt | A X Y E)_{rho|Omega}, Bt = Bob's test-round outputs.

    Bt_i is a bit in test rounds and a fixed symbol otherwise, and the test flags T (part of the
    public X Y) are drawn by the honest parties i.i.d. Bernoulli(gamma), independently of the
    devices. Data processing gives H_max^eps(Bt|A X Y E) <= H_max^eps(Bt|T). Conditioning on the
    acceptance event Omega with Pr[Omega] >= eps_EA raises the probability of any set of test
    patterns by at most 1/eps_EA. Cutting the patterns with more than M test rounds, where
    Pr[Binomial(n, gamma) > M] <= eps_EA eps^2 / 2, is a sub-normalised state at purified distance
    <= sqrt(2 mu) <= eps (generalised fidelity of a classical cut), and on the rest Bt takes at
    most 2^M values given T, so H_max^eps(Bt|A X Y E)_{rho|Omega} <= M.
    (Bt has at most 2^n values in any case, so the bound is also capped at n.) The original-EAT
    bound of [AF18] (:func:`_hmax_test_outputs_eat`) is larger in every regime checked and its
    constants were not verified, so it is not used.
    """
    log_mu = math.log(eps_ea) + 2.0 * math.log(eps) - math.log(2.0)
    M = _binomial_upper_quantile(n, gamma, log_mu)
    return float(min(M, n))


def _kl(q: float, p: float) -> float:
    """Binary relative entropy D(q || p) in nats."""
    out = 0.0
    if q > 0.0:
        out += q * math.log(q / p)
    if q < 1.0:
        out += (1.0 - q) * math.log((1.0 - q) / (1.0 - p))
    return out


def _binomial_upper_quantile(n: int, p: float, log_mu: float) -> int:
    """Smallest integer M >= n p with Pr[Binomial(n, p) > M] <= exp(log_mu), certified by the
    Chernoff-Hoeffding bound Pr[X >= k] <= exp(-n D(k/n || p)) for k >= n p (robust for tails far
    below double precision, where scipy's quantiles are not)."""
    lo = math.ceil(n * p)  # candidate M; Pr[X > M] = Pr[X >= M + 1]
    if lo >= n:
        return n

    def ok(m: int) -> bool:
        return m >= n or -n * _kl((m + 1) / n, p) <= log_mu

    hi = n
    if ok(lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _alpha_max(method: str) -> float:
    # K_alpha has (3 - 2 alpha)^3 in its denominator, so the third-order term is only meaningful
    # for alpha < 3/2; restricting a free parameter can only lower the bound (conservative).
    return 1.5


def finite_key_length(
    *,
    n: int,
    gamma: float,
    omega_threshold: float,
    leak_ec_bits: float,
    eps: EpsilonBudget,
    method: str = "eat2",
    p_noise: float = 0.0,
    tangent_point: float | None = None,
    alpha: float | None = None,
) -> FiniteKeyBound:
    """Certified secret-key length of the [AF18] spot-checking CHSH protocol.

    Parameters
    ----------
    n
        Number of rounds (all of them: key and test).
    gamma
        Test-round probability.
    omega_threshold
        Acceptance threshold: the protocol accepted because the number of lost test games was at
        most ``max_losses(n, gamma, omega_threshold)`` = floor(gamma n (1 - omega_threshold)).
    leak_ec_bits
        ACTUAL public information about Alice's string: syndrome + revealed bits + verification
        tag bits (the chain rule H_min(A|EC) >= H_min(A|E) - log|C|, [TSSR11]).
    eps
        :class:`EpsilonBudget`; the result is eps.eps_sec-secret and eps.eps_cor-correct.
    method
        ``"eat2"``: EAT with the improved second order of [DF19], evaluated with the GEAT-form
        constants of [MFSR22] Theorem 4.3, which dominate the DF19 form (alpha in (1, 3/2));
        ``"geat"``: [MFSR22] Theorem 4.3 on the same registers A_i Bt_i -- identical to eat2
        here (module docstring). ``"llr21"``: the improved second-order term of [LLR21]
        (:func:`_llr21_T`), in ``ALL_METHODS`` but not in ``METHODS``; its statement comes from
        a secondary source and must be checked before it certifies production keys.
    p_noise
        Noisy-preprocessing flip probability of Alice's key-round bits [HLC20].
    tangent_point, alpha
        Fix the free parameters instead of optimising them (for audits and tests).

    Returns
    -------
    FiniteKeyBound
        ``key_bits = max(0, floor(sum(terms)))`` with every term named (see module docstring for
        the formula: [AF18] Methods eqs. for the chain rule and H_max(Bt) term, [DF19] for the
        second-order term, [TSSR11] for hashing). The tangent point t of the min-tradeoff
        function and alpha are optimised numerically (grid, then Nelder-Mead) and recorded in
        ``params``.
    """
    n = _check_n(n)
    gamma = _check_gamma(gamma)
    if method not in ALL_METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {ALL_METHODS}")
    w = float(omega_threshold)
    if math.isnan(w) or not (0.0 <= w <= 1.0):
        raise ConfigError(f"omega_threshold must lie in [0, 1], got {omega_threshold!r}")
    leak = float(leak_ec_bits)
    if math.isnan(leak) or leak < 0:
        raise ConfigError(f"leak_ec_bits must be >= 0, got {leak_ec_bits!r}")
    if not isinstance(eps, EpsilonBudget):
        raise ConfigError("eps must be an EpsilonBudget")
    p = float(p_noise)
    if math.isnan(p) or not (0.0 <= p < 0.5):
        raise ConfigError(f"p_noise must lie in [0, 1/2), got {p_noise!r}")
    a_max = _alpha_max(method)
    if alpha is not None and not (1.0 < alpha < a_max):
        raise ConfigError(f"alpha must lie in (1, {a_max}) for {method}, got {alpha!r}")
    if tangent_point is not None and not (0.75 < tangent_point < OMEGA_MAX):
        raise ConfigError(f"tangent point must lie in (3/4, {OMEGA_MAX:.6f})")

    trade = _Tradeoff(gamma, p)
    w_eff = min(w, OMEGA_MAX)

    def evaluate(t: float, a: float) -> tuple[float, dict[str, float], dict[str, float]]:
        return _bound_terms(n, gamma, w_eff, leak, eps, method, trade, t, a)

    t_lo, t_hi = 0.75 + 1e-9, OMEGA_MAX - 1e-9
    la_lo, la_hi = math.log(1e-7), math.log(a_max - 1.0 - 1e-9)

    def unpack(z: np.ndarray) -> tuple[float, float]:
        t = tangent_point if tangent_point is not None else min(max(float(z[0]), t_lo), t_hi)
        a = alpha if alpha is not None else 1.0 + math.exp(min(max(float(z[1]), la_lo), la_hi))
        return t, a

    def objective(z: np.ndarray) -> float:
        # per-round rate, so that the tolerances below are relative to n
        val = evaluate(*unpack(z))[0]
        return -val / n if math.isfinite(val) else 1e300

    # coarse grid, then local refinement
    ts = [tangent_point] if tangent_point is not None else list(
        np.linspace(max(0.7501, min(w_eff, t_hi) - 0.08), min(t_hi, max(w_eff, 0.7501) + 0.04), 13)
    )
    las = [math.log(alpha - 1.0)] if alpha is not None else list(np.linspace(la_lo, la_hi, 16))
    best = None
    for t in ts:
        for la in las:
            v = -objective(np.array([t, la]))  # rate per round
            if best is None or v > best[0]:
                best = (v, t, la)
    assert best is not None
    z0 = np.array([best[1], best[2]])
    if tangent_point is None or alpha is None:
        res = optimize.minimize(objective, z0, method="Nelder-Mead",
                                options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 800})
        if -res.fun > best[0]:
            z0 = res.x
    t, a = unpack(z0)
    raw, terms, params = evaluate(t, a)
    if not math.isfinite(raw):
        # No admissible parameters (e.g. threshold at or below 3/4): no entropy certified.
        terms = {"entropy_first_order": 0.0, "leak_ec": -leak,
                 "privacy_amplification": -2.0 * math.log2(1.0 / eps.eps_pa)}
        raw = math.fsum(terms.values())
        params = {"tangent_point": float("nan"), "alpha": float("nan"),
                  "entropy_rate_at_threshold": 0.0}
    key = max(0, math.floor(raw))
    if w <= 0.75:
        key = 0
    return FiniteKeyBound(key_bits=int(key), raw_bound=float(raw), terms=terms, n=n, gamma=gamma,
                          omega_threshold=w, leak_ec_bits=leak, eps=eps, method=method,
                          p_noise=p, params=params)


# --------------------------------------------------------------------------------------------
# planning
# --------------------------------------------------------------------------------------------
def plan_key_length(
    *, n: int, S: float, qber: float, gamma: float, eps: EpsilonBudget, method: str = "eat2",
    p_noise: float = 0.0, efficiency: float = 1.0,
) -> FiniteKeyBound:
    """Expected certified key of an honest run with CHSH value S and key-round QBER ``qber``.

    The acceptance threshold comes from :func:`threshold_for_completeness` with the expected
    omega = (4 + S)/8 and ``eps.eps_complete`` (1e-2 if None); the leakage from
    :func:`protocol_leakage_estimate`. The chosen threshold and leakage are in ``params``.
    """
    n = _check_n(n)
    ec = eps.eps_complete if eps.eps_complete is not None else 1e-2
    omega = min(omega_from_S(S), OMEGA_MAX)
    thr = threshold_for_completeness(n, gamma, omega, ec)
    leak = protocol_leakage_estimate(n, gamma, S, qber, eps.eps_cor, efficiency, p_noise)
    leak_bits = math.ceil(max(leak, 0.0))
    b = finite_key_length(n=n, gamma=gamma, omega_threshold=max(thr.omega_threshold, 0.0),
                          leak_ec_bits=leak_bits, eps=eps, method=method, p_noise=p_noise)
    b.params.update(expected_omega=omega, max_losses=thr.max_losses,
                    honest_abort_probability=thr.abort_probability, planned_qber=qber,
                    ec_efficiency=efficiency)
    return b


def optimal_gamma(
    *, n: int, S: float, qber: float, eps: EpsilonBudget, method: str = "eat2",
    p_noise: float = 0.0, efficiency: float = 1.0,
) -> FiniteKeyBound:
    """Test probability gamma maximising :func:`plan_key_length` (grid in log gamma + bounded
    scalar refinement); the optimum is recorded as the bound's ``gamma``."""

    def key(lg: float) -> float:
        b = plan_key_length(n=n, S=S, qber=qber, gamma=math.exp(lg), eps=eps, method=method,
                            p_noise=p_noise, efficiency=efficiency)
        return b.raw_bound

    grid = np.linspace(math.log(1e-4), math.log(0.5), 16)
    vals = [key(float(x)) for x in grid]
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(lambda x: -key(float(x)), bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-3})
    lg = float(res.x) if -res.fun > vals[i] else float(grid[i])
    return plan_key_length(n=n, S=S, qber=qber, gamma=math.exp(lg), eps=eps, method=method,
                           p_noise=p_noise, efficiency=efficiency)


def min_rounds(
    *, S: float, qber: float, eps: EpsilonBudget, gamma: float | None = None,
    method: str = "eat2", p_noise: float = 0.0, efficiency: float = 1.0,
    n_max: float = 1e13,
) -> FiniteKeyBound | None:
    """Smallest n (to 1 %) with a positive planned key; None if none up to ``n_max``.

    Bisection on log n of :func:`plan_key_length` (or :func:`optimal_gamma` when ``gamma`` is
    None). The key grows with n in this model, so the bisection is sound up to the 1 % tolerance
    of the search, and the returned bound is at an n whose key is verified positive.
    """

    def at(n: int) -> FiniteKeyBound:
        if gamma is None:
            return optimal_gamma(n=n, S=S, qber=qber, eps=eps, method=method, p_noise=p_noise,
                                 efficiency=efficiency)
        return plan_key_length(n=n, S=S, qber=qber, gamma=gamma, eps=eps, method=method,
                               p_noise=p_noise, efficiency=efficiency)

    hi_b = at(int(n_max))
    if hi_b.key_bits <= 0:
        return None
    lo, hi = 1e3, float(n_max)
    if at(int(lo)).key_bits > 0:
        return at(int(lo))
    while hi / lo > 1.01:
        mid = math.sqrt(lo * hi)
        if at(int(mid)).key_bits > 0:
            hi = mid
        else:
            lo = mid
    return at(int(math.ceil(hi)))
