"""Degree distributions for LDPC syndrome coding over the binary symmetric channel.

A distribution is given by its edge-perspective variable polynomial lambda(x) = sum lambda_i x^(i-1)
and the design rate R; the check side is *concentrated* (every check has degree floor(a) or
floor(a) + 1 with a = average check degree fixed by R), which is what the optimisation assumes and
what PEG builds.

Tools:

* :func:`variable_degree_counts` / :func:`check_degree_counts`: exact integer node counts for a
  frame length (rational arithmetic, so identical on every machine);
* :func:`de_converges` / :func:`bsc_threshold`: discretised density evolution of sum-product BP
  (log-likelihood-ratio grid, exact channel, variable side by FFT convolution, check side by the
  quantised pairwise tanh rule), optionally over a *mixture* of BSCs (per-bit priors: key rounds at
  QBER q, a fraction of test rounds at 1 - omega);
* :mod:`diqkd.reconciliation.design`: linear programming on this discretised DE (the method the
  registry's own designs use);
* :func:`optimize_lambda`: linear programme for lambda at fixed concentrated rho in the Gaussian
  approximation of the check-to-variable messages, with the BSC channel term treated exactly
  (Chung, Richardson, Urbanke, IEEE TIT 47, 657 (2001), adapted). A design tool only: its outputs
  had clearly lower DE thresholds than the published distributions, so the registry does not use
  them.

The registry :data:`DISTRIBUTIONS` holds the BSC-optimised variable distributions of Elkouss et
al., arXiv 0901.2140, Table I (rates 0.50-0.90), each with the threshold recorded by our DE for the
concentrated check side actually built, and (construction version 2) our own DE-designed
distributions: the high rates 0.89-0.95 (``_HR_DESIGNED``) and rates 0.574, 0.699, 0.764,
0.765, 0.846 and 0.849 (``_LP_DESIGNED``, made with :mod:`diqkd.reconciliation.design` and the
settings in :data:`LP_DESIGN_SETTINGS`), whose thresholds are recorded on the finer 0.1 LLR grid
(:data:`HR_DE_DELTA`); plus the published lambdas re-used at rates 0.575-0.725
(``_MID_DESIGNED``). See docs/reconciliation-codes.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numba import njit

__all__ = [
    "DegreeDistribution", "DISTRIBUTIONS", "get_distribution", "variable_degree_counts",
    "check_degree_counts", "concentrated_rho", "de_converges", "bsc_threshold", "optimize_lambda",
    "h2", "HR_DE_DELTA", "MID_DE_DELTA", "LP_DESIGN_SETTINGS",
]


def h2(p: float) -> float:
    """Binary entropy in bits."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@dataclass(frozen=True)
class DegreeDistribution:
    """Edge-perspective variable degrees `lam` ((degree, coefficient as decimal string), ...).

    The check side is concentrated at the average degree implied by `rate`. `threshold` is the
    discretised-DE BP threshold on the BSC (crossover probability) recorded for this distribution.
    """

    name: str
    rate: float
    lam: tuple[tuple[int, str], ...]
    threshold: float | None = None
    source: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def lam_fractions(self) -> dict[int, Fraction]:
        total = sum(Fraction(c) for _, c in self.lam)
        return {int(d): Fraction(c) / total for d, c in self.lam if Fraction(c) > 0}

    def lam_float(self) -> dict[int, float]:
        return {d: float(f) for d, f in self.lam_fractions().items()}

    @property
    def max_var_degree(self) -> int:
        return max(self.lam_fractions())

    def avg_var_degree(self) -> float:
        """Node-perspective average variable degree 1 / sum(lambda_i / i)."""
        return float(1 / sum(f / d for d, f in self.lam_fractions().items()))

    def rho(self) -> dict[int, float]:
        return concentrated_rho(self.avg_var_degree() / (1.0 - self.rate))

    def to_json(self) -> dict:
        out = {"name": self.name, "rate": self.rate, "lambda": {str(d): c for d, c in self.lam},
               "rho": {str(d): round(v, 6) for d, v in self.rho().items()},
               "threshold": self.threshold, "source": self.source}
        if "de_delta" in self.extra:
            out["threshold_de_delta"] = self.extra["de_delta"]
        return out


def concentrated_rho(avg_check_degree: float) -> dict[int, float]:
    """Edge-perspective rho: checks of degree d and d + 1 with node average `avg_check_degree`."""
    d = int(math.floor(avg_check_degree))
    frac = avg_check_degree - d  # node fraction of degree d + 1
    if frac < 1e-12:
        return {d: 1.0}
    e_hi = frac * (d + 1)
    e_lo = (1 - frac) * d
    return {d: e_lo / (e_lo + e_hi), d + 1: e_hi / (e_lo + e_hi)}


def variable_degree_counts(dist: DegreeDistribution, n: int) -> dict[int, int]:
    """Number of variable nodes of each degree for length n (largest remainder, exact rationals)."""
    lam = dist.lam_fractions()
    inv = {d: f / d for d, f in lam.items()}
    tot = sum(inv.values())
    share = {d: n * v / tot for d, v in inv.items()}
    counts = {d: int(math.floor(s)) for d, s in share.items()}
    left = n - sum(counts.values())
    order = sorted(share, key=lambda d: (-(share[d] - counts[d]), d))
    for d in order[:left]:
        counts[d] += 1
    return {d: c for d, c in sorted(counts.items()) if c > 0}


def check_degree_counts(n_edges: int, m: int) -> dict[int, int]:
    """Concentrated check degrees: m checks carrying n_edges edges."""
    d, r = divmod(n_edges, m)
    out = {d: m - r}
    if r:
        out[d + 1] = r
    return {k: v for k, v in out.items() if v > 0}


# ---------------------------------------------------------------------------------------------
# discretised density evolution
# ---------------------------------------------------------------------------------------------
_DELTA = 0.2
_HALF = 125  # grid -25 .. 25 (conservative by ~2e-4 in p versus a 0.1 grid for (3, 6))


@njit(cache=True)
def _check_table(half: int, delta: float) -> np.ndarray:
    size = 2 * half + 1
    tab = np.empty((size, size), dtype=np.int32)
    for a in range(size):
        ta = math.tanh((a - half) * delta / 2.0)
        for b in range(size):
            tb = math.tanh((b - half) * delta / 2.0)
            x = ta * tb
            if x >= 1.0:
                x = 1.0 - 1e-16
            if x <= -1.0:
                x = -1.0 + 1e-16
            llr = 2.0 * math.atanh(x)
            k = int(math.floor(llr / delta + 0.5)) + half
            if k < 0:
                k = 0
            if k >= size:
                k = size - 1
            tab[a, b] = k
    return tab


@njit(cache=True)
def _box(p: np.ndarray, q: np.ndarray, tab: np.ndarray) -> np.ndarray:
    size = p.shape[0]
    out = np.zeros(size)
    for a in range(size):
        pa = p[a]
        if pa < 1e-18:
            continue
        for b in range(size):
            qb = q[b]
            if qb < 1e-18:
                continue
            out[tab[a, b]] += pa * qb
    return out


@njit(cache=True)
def _box_power(q: np.ndarray, k: int, tab: np.ndarray) -> np.ndarray:
    """q boxed with itself to k operands (k >= 1), by repeated squaring."""
    result = np.zeros(0)
    have = False
    base = q.copy()
    while k > 0:
        if k & 1:
            if have:
                result = _box(result, base, tab)
            else:
                result = base.copy()
                have = True
        k >>= 1
        if k > 0:
            base = _box(base, base, tab)
    return result


@njit(cache=True)
def _check_mix(q: np.ndarray, rho_deg: np.ndarray, rho_w: np.ndarray, tab: np.ndarray):
    """sum_j rho_j q^(box (j - 1)) for sorted check degrees rho_deg."""
    out = np.zeros(q.shape[0])
    j = rho_deg[0]
    cur = _box_power(q, j - 1, tab)
    for t in range(rho_deg.shape[0]):
        while j < rho_deg[t]:
            cur = _box(cur, q, tab)
            j += 1
        out += rho_w[t] * cur
    return out


class _DE:
    def __init__(self, lam: dict[int, float], rho: dict[int, float], delta: float = _DELTA,
                 half: int = _HALF):
        self.delta, self.half = delta, half
        self.size = 2 * half + 1
        self.lam = lam
        self.rho_deg = np.array(sorted(rho), dtype=np.int64)
        self.rho_w = np.array([rho[d] for d in sorted(rho)])
        self.tab = _check_table(half, delta)
        dv = max(lam)
        nfft = 1
        while nfft < dv * self.size:
            nfft *= 2
        self.nfft = nfft

    def channel(self, components: list[tuple[float, float]]) -> np.ndarray:
        """Density of a mixture [(weight, crossover p)] of BSCs, mass split between grid points."""
        ch = np.zeros(self.size)
        for w, p in components:
            llr = math.log((1 - p) / p)
            for sign, mass in ((1.0, 1 - p), (-1.0, p)):
                x = sign * llr / self.delta + self.half
                k = int(math.floor(x))
                frac = x - k
                ch[min(max(k, 0), self.size - 1)] += w * mass * (1 - frac)
                ch[min(max(k + 1, 0), self.size - 1)] += w * mass * frac
        return ch

    def _fold(self, full: np.ndarray, offset: int) -> np.ndarray:
        # full[i] is the mass at grid index i - offset (relative to -half); saturate into range
        full = np.maximum(full, 0.0)
        out = full[offset:offset + self.size].copy()
        out[0] += full[:offset].sum()
        out[-1] += full[offset + self.size:].sum()
        return out

    def var_update(self, ch: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Density of channel + (d - 1) check messages, mixed over lambda (FFT, saturated)."""
        nfft, dmax = self.nfft, max(self.lam)
        rf = np.fft.rfft(r, nfft)
        cf = np.fft.rfft(ch, nfft)
        freq = np.arange(rf.size)
        acc = np.zeros_like(rf)
        powr = np.ones_like(rf)
        for d in range(1, dmax + 1):
            if d >= 2:
                powr = powr * rf
            w = self.lam.get(d, 0.0)
            if w:
                # the d-term has LLR 0 at index d*half: delay it to dmax*half
                delay = (dmax - d) * self.half
                acc += w * powr * np.exp(-2j * np.pi * freq * delay / nfft)
        full = np.fft.irfft(acc * cf, nfft)[: 2 * dmax * self.half + 1]
        return self._fold(full, (dmax - 1) * self.half)

    def error(self, dens: np.ndarray) -> float:
        return float(dens[: self.half].sum() + 0.5 * dens[self.half])

    def run(self, ch: np.ndarray, max_iter: int = 2000, target: float = 1e-7) -> tuple[bool, int]:
        q = ch.copy()
        best = 1.0
        stall = 0
        for it in range(max_iter):
            r = _check_mix(q, self.rho_deg, self.rho_w, self.tab)
            q = self.var_update(ch, r)
            s = q.sum()
            q /= s
            e = self.error(q)
            if e < target:
                return True, it + 1
            if e < best * (1 - 1e-6):
                best = e
                stall = 0
            else:
                stall += 1
                if stall > 50:
                    return False, it + 1
        return False, max_iter


def de_converges(lam: dict[int, float], rho: dict[int, float], p: float, *,
                 mix: tuple[float, float] | None = None, max_iter: int = 2000,
                 delta: float = _DELTA) -> bool:
    """Whether discretised DE of sum-product BP drives the error probability to ~0 on BSC(p).

    `mix=(alpha, p2)`: a fraction alpha of the bits sees BSC(p2) instead (per-bit priors).
    `delta`: LLR grid step (range +-25 either way); 0.2 is the historical default, the high-rate
    distributions (check degrees 50-110) are specified with 0.1 (the 0.2 grid rounds their small
    check-to-variable messages and is not reliable there).
    """
    de = _DE(lam, rho, delta=delta, half=int(round(25.0 / delta)))
    comps = [(1.0, p)] if mix is None else [(1 - mix[0], p), (mix[0], mix[1])]
    return de.run(de.channel(comps), max_iter=max_iter)[0]


def bsc_threshold(lam: dict[int, float], rho: dict[int, float], *, lo: float = 0.001,
                  hi: float = 0.2, tol: float = 2e-4, mix: tuple[float, float] | None = None,
                  max_iter: int = 2000, delta: float = _DELTA) -> float:
    """Largest BSC crossover probability for which :func:`de_converges` (bisection to `tol`)."""
    de = _DE(lam, rho, delta=delta, half=int(round(25.0 / delta)))
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        comps = [(1.0, mid)] if mix is None else [(1 - mix[0], mid), (mix[0], mix[1])]
        if de.run(de.channel(comps), max_iter=max_iter)[0]:
            lo = mid
        else:
            hi = mid
    return lo


# ---------------------------------------------------------------------------------------------
# optimisation (Gaussian approximation of check messages, exact BSC channel term, LP for lambda)
# ---------------------------------------------------------------------------------------------
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)
_GH_W = _GH_W / _GH_W.sum()


def _phi_mix(mu: np.ndarray, shift: np.ndarray, shift_w: np.ndarray) -> np.ndarray:
    """1 - E tanh(U/2), U = shift + N(mu, 2 mu), shift drawn from (shift, shift_w)."""
    mu = np.asarray(mu, dtype=float)[..., None, None]
    u = shift[None, :, None] + mu + np.sqrt(2 * mu) * _GH_X[None, None, :]
    val = np.tanh(u / 2) @ _GH_W
    return 1.0 - (val @ shift_w)


def _phi(mu: np.ndarray) -> np.ndarray:
    return _phi_mix(mu, np.zeros(1), np.ones(1))


_MU_GRID = np.concatenate([np.linspace(1e-6, 1, 400), np.linspace(1.001, 60, 3000)])
_PHI_GRID = _phi(_MU_GRID)


def _phi_inv(y: np.ndarray) -> np.ndarray:
    y = np.clip(y, _PHI_GRID[-1], 1 - 1e-12)
    return np.interp(-y, -_PHI_GRID, _MU_GRID)


def optimize_lambda(rate: float, p: float, *, degrees=(2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20, 25),
                    margin: float = 0.0, mix: tuple[float, float] | None = None
                    ) -> tuple[dict[int, float], float] | None:
    """Max-rate lambda at channel BSC(p) for each concentrated rho, return best with rate >= rate.

    Scans average check degrees; for each, solves the LP (maximise sum lambda_i / i subject to
    the GA fixed-point condition on a grid of check-message means) and returns the lambda (and
    its design rate) whose rate exceeds `rate` by the most, or None if none reaches `rate`.
    """
    from scipy.optimize import linprog

    llr = math.log((1 - p) / p)
    comps = [(1.0, p)] if mix is None else [(1 - mix[0], p), (mix[0], mix[1])]
    shift, shift_w = [], []
    for w, pp in comps:
        ll = math.log((1 - pp) / pp)
        shift += [ll, -ll]
        shift_w += [w * (1 - pp), w * pp]
    del llr
    shift_a, shift_wa = np.array(shift), np.array(shift_w)
    xs = np.concatenate([np.geomspace(1e-4, 0.5, 60), np.linspace(0.5, 40, 300)])
    degs = np.array(degrees)
    A = np.stack([_phi_mix(xs * (d - 1), shift_a, shift_wa) for d in degs], axis=1)
    best = None
    for avg_c in np.arange(3.0, 120.0, 0.1):
        rho = concentrated_rho(float(avg_c))
        # g(w) = sum_j rho_j phi^-1(1 - (1 - w)^(j-1)); need w <= g^-1(x) - margin at each x
        wgrid = np.geomspace(1e-9, 0.999, 3000)
        g = np.zeros_like(wgrid)
        for j, r in rho.items():
            g += r * _phi_inv(1 - (1 - wgrid) ** (j - 1))
        # g decreasing in w: invert
        ginv = np.interp(xs, g[::-1], wgrid[::-1])
        b = ginv * (1 - margin)
        res = linprog(-1.0 / degs, A_ub=A, b_ub=b, A_eq=np.ones((1, degs.size)), b_eq=[1.0],
                      bounds=[(0, 1)] * degs.size, method="highs")
        if res.status != 0:
            continue
        lam = {int(d): float(x) for d, x in zip(degs, res.x, strict=True) if x > 1e-6}
        s = sum(x / d for d, x in lam.items())
        r_design = 1 - sum(r / j for j, r in rho.items()) / s
        if r_design >= rate and (best is None or r_design > best[1]):
            best = (lam, r_design, float(avg_c))
        if best is not None and r_design < best[1] - 0.02:
            break
    if best is None:
        return None
    return best[0], best[1]


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
_ELKOUSS = "Elkouss, Leverrier, Alleaume, Boutros, arXiv 0901.2140 (ISIT 2009), Table I"
# (rate, published DE threshold, edge-perspective lambda as printed: degree = exponent + 1).
# The thresholds recorded in _DE_THRESHOLDS are OUR discretised DE (bsc_threshold, 0.2 LLR grid,
# tolerance 0.2 % of p) with the concentrated rho that PEG builds; see docs/reconciliation-codes.md.
_PUBLISHED: tuple[tuple[float, float, tuple[tuple[int, str], ...]], ...] = (
    (0.5, 0.1071, (
        (2, "0.14438"), (3, "0.19026"), (4, "0.01836"), (5, "0.00233"), (6, "0.04697"), (8,
        "0.053943"), (9, "0.05590"), (10, "0.01290"), (11, "0.00162"), (14, "0.06159"), (15,
        "0.13115"), (17, "0.01481"), (47, "0.00879"), (49, "0.00650"), (55, "0.00210"), (56,
        "0.00099"), (57, "0.11178"), (58, "0.06238"), (59, "0.05094"), (66, "0.02230")
    )),
    (0.55, 0.0904, (
        (2, "0.16880"), (3, "0.20994"), (6, "0.18095"), (15, "0.03846"), (16, "0.02635"), (18,
        "0.23454"), (19, "0.05815"), (31, "0.08280")
    )),
    (0.6, 0.0766, (
        (2, "0.11040"), (3, "0.20804"), (8, "0.14163"), (9, "0.14858"), (26, "0.14438"), (27,
        "0.08909"), (46, "0.00748"), (71, "0.15038")
    )),
    (0.65, 0.0633, (
        (2, "0.10451"), (3, "0.15652"), (4, "0.08057"), (5, "0.00056"), (9, "0.12151"), (13,
        "0.10485"), (15, "0.10719"), (21, "0.00771"), (51, "0.31656")
    )),
    (0.7, 0.0504, (
        (2, "0.05343"), (3, "0.29406"), (6, "0.00896"), (9, "0.15571"), (12, "0.12189"), (25,
        "0.19872"), (46, "0.09572"), (62, "0.02741"), (65, "0.04056"), (73, "0.00354")
    )),
    (0.75, 0.0392, (
        (2, "0.10805"), (3, "0.09511"), (4, "0.01449"), (5, "0.13764"), (6, "0.10667"), (7,
        "0.05288"), (28, "0.01107"), (31, "0.47408")
    )),
    (0.8, 0.0298, (
        (2, "0.09420"), (3, "0.18088"), (6, "0.11972"), (7, "0.08550"), (8, "0.09816"), (17,
        "0.07194"), (26, "0.34960")
    )),
    (0.85, 0.0199, (
        (2, "0.04528"), (3, "0.20537"), (4, "0.05878"), (5, "0.094274"), (6, "0.08454"), (7,
        "0.01176"), (9, "0.05137"), (21, "0.50015")
    )),
    (0.9, 0.0109, (
        (2, "0.07689"), (3, "0.28096"), (5, "0.08933"), (9, "0.19620"), (12, "0.30631"), (21,
        "0.05031")
    )),
)

# our DE thresholds (concentrated rho, 0.2 LLR grid; see bsc_threshold), keyed by rate
_DE_THRESHOLDS: dict[float, float] = {
    0.5: 0.10579, 0.55: 0.08981, 0.6: 0.0747, 0.65: 0.06226, 0.7: 0.04993, 0.75: 0.0363,
    0.8: 0.02952, 0.85: 0.01955, 0.9: 0.01083,
}

DISTRIBUTIONS: dict[float, DegreeDistribution] = {
    r: DegreeDistribution(
        name=f"elkouss2009-r{r:.2f}", rate=r, lam=lam, threshold=_DE_THRESHOLDS.get(r),
        source=f"{_ELKOUSS}; published threshold {t} (their rho); concentrated rho here",
        extra={"published_threshold": t},
    )
    for r, t, lam in _PUBLISHED
}
# Note: the rate-0.85 lambda as printed sums to 1.0515 (likely a typo in lambda_5); it is
# normalised here, which gives design rate 0.8507 with the printed rho.

# ---------------------------------------------------------------------------------------------
# high-rate distributions designed here by density evolution (docs/reconciliation-codes.md)
# ---------------------------------------------------------------------------------------------
_HR_METHOD = (
    "diqkd DE design 2026-11-28: iterative linear programming on discretised DE (BSC, concentrated "
    "rho; Richardson-Shokrollahi-Urbanke local optimisation): at a fixed channel p and check "
    "average a, maximise sum lambda_i / i subject to, for every DE iteration l of the current "
    "lambda, sum_i lambda_i P_e(ch + (i-1) R_l) <= max(P_(l+1), 0.99 P_l), trust region, "
    "lambda_2 below the stability bound; deterministic (no random seed), degree set "
    "{2,3,4,5,6,7,8,9,10,12,15,20,25,30}"
)
#: LLR grid step of the DE that the high-rate thresholds are recorded with (see de_converges)
HR_DE_DELTA = 0.1
# (rate, lambda (degree, coefficient), threshold on the 0.1 LLR grid, design notes)
_HR_DESIGNED: tuple[tuple[float, tuple[tuple[int, str], ...], float, str], ...] = (
    # rates 0.89 and 0.901: the rate-0.90 design (LP on the 0.1 grid at p = 0.0112, a = 58,
    # started from the 0.2-grid LP optimum at p = 0.012, a = 58, from the uniform lambda; design
    # rate 0.90398 at p = 0.0112; f 1.074 at threshold at rate 0.90). Rate 0.90 itself is the
    # Elkouss code (version 1); these two rates take over the QBER band ~1.05-1.35 % that the
    # protocol's code choice (smallest syndrome above 1.069 N h(Q) in blind mode) gave to it
    (0.89, (
        (2, "0.082946"), (3, "0.190657"), (6, "0.135529"), (7, "0.194642"), (15, "0.26013"),
        (20, "0.136095")
    ), 0.013306, "rate-0.90 LP design (p=0.0112, a=58, 0.1 grid) at rate 0.89; threshold by "
                 "bisection to 0.4 % of p"),
    (0.901, (
        (2, "0.082946"), (3, "0.190657"), (6, "0.135529"), (7, "0.194642"), (15, "0.26013"),
        (20, "0.136095")
    ), 0.01175, "rate-0.90 LP design (p=0.0112, a=58, 0.1 grid) at rate 0.901; threshold by "
                "bisection to 0.4 % of p"),
    # rate 0.91: LP at p = 0.0100, a = 62, started from the LP optimum at p = 0.0112, a = 58
    # (0.1 grid), itself started from the 0.2-grid LP optimum at p = 0.012, a = 58 from the
    # uniform lambda; design rate 0.91177 at p = 0.0100
    (0.91, (
        (2, "0.082298"), (3, "0.192429"), (6, "0.201843"), (7, "0.12106"), (15, "0.387791"),
        (20, "0.014579")
    ), 0.010353, "LP at p=0.0100, a=62 (0.1 grid); threshold by bisection to 0.4 % of p"),
    # rate 0.92: 0.2-grid LP optimum at p = 0.0078, a = 74 from the uniform lambda (design rate
    # 0.92698 there), used at rate 0.92 (a = 67.5)
    (0.92, (
        (2, "0.07778"), (3, "0.199268"), (6, "0.144691"), (7, "0.233747"), (15, "0.301919"),
        (20, "0.042596")
    ), 0.008794, "LP at p=0.0078, a=74 (0.2 grid); threshold by bisection to 0.4 % of p"),
    # rate 0.93: LP at p = 0.0072, a = 77 (0.1 grid) started from the rate-0.92 lambda; design
    # rate 0.93116 at p = 0.0072
    (0.93, (
        (2, "0.077736"), (3, "0.201269"), (6, "0.295229"), (12, "0.305933"), (15, "0.119833")
    ), 0.007436, "LP at p=0.0072, a=77 (0.1 grid); threshold by bisection to 0.4 % of p"),
    # rate 0.95: 0.2-grid LP optimum at p = 0.0052, a = 90 from the uniform lambda (design rate
    # 0.94514 on the 0.2 grid, which is optimistic here), then lambda_2 0.0774 -> 0.060 (mass to
    # degree 3): at rate 0.95 (a = 100.2) the original lambda_2 made the stability condition the
    # limit (threshold 0.00441, f 1.22). Weak: f = 1.17 at threshold
    (0.95, (
        (2, "0.060"), (3, "0.240038"), (5, "0.127874"), (7, "0.130113"), (9, "0.359935"),
        (15, "0.08204")
    ), 0.004662, "LP at p=0.0052, a=90 (0.2 grid), lambda_2 cut to 0.060; threshold by "
                 "bisection to 0.4 % of p"),
)

for _r, _lam, _thr, _how in _HR_DESIGNED:
    DISTRIBUTIONS[_r] = DegreeDistribution(
        name=f"diqkd-de-r{_r:.2f}", rate=_r, lam=_lam, threshold=_thr,
        source=f"{_HR_METHOD}; {_how}",
        extra={"construction_version": 2, "staircase": True, "de_delta": HR_DE_DELTA,
               "design": _how},
    )

# ---------------------------------------------------------------------------------------------
# intermediate rates: published lambdas re-used one half-step above their design rate
# ---------------------------------------------------------------------------------------------
#: LLR grid step of the DE that the intermediate-rate thresholds are recorded with
MID_DE_DELTA = 0.2
_MID_METHOD = (
    "diqkd 2026-11-28: the variable distribution lambda of Elkouss, Leverrier, Alleaume, "
    "Boutros, arXiv 0901.2140, Table I, at a design rate 0.025 above the one it was published "
    "for, with the concentrated rho of the new rate; built with construction version 2 "
    "(staircase degree-2 chain, 4-cycle-breaking lift). Threshold: our discretised DE "
    "(bsc_threshold, 0.2 LLR grid, tolerance 0.2 % of p)"
)
# (rate, source rate of lambda, threshold): chosen among the two neighbouring published lambdas
# by DE threshold (the other neighbour: f at threshold 1.054 / 1.053 / 1.060 / 1.054 at rates
# 0.575 / 0.625 / 0.675 / 0.725). The rate-0.675 code decoded 64 / 64 frames of 1e5 bits at
# QBER 5 % and f = 1.08 (2.3 % punctured), where the rate-0.65 code (5.9 % punctured) failed
# 9 / 64 and the rate-0.70 code (3 % shortened) 29 / 64 (docs/reconciliation-codes.md).
_MID_DESIGNED: tuple[tuple[float, float, float], ...] = (
    (0.575, 0.55, 0.08172),
    (0.625, 0.6, 0.06927),
    (0.675, 0.65, 0.05716),
    (0.725, 0.7, 0.04436),
)
_PUBLISHED_LAM = {r: lam for r, _, lam in _PUBLISHED}
for _r, _src, _thr in _MID_DESIGNED:
    DISTRIBUTIONS[_r] = DegreeDistribution(
        name=f"elkouss2009-r{_src:.2f}-at-r{_r:.3f}", rate=_r, lam=_PUBLISHED_LAM[_src],
        threshold=_thr, source=f"{_MID_METHOD}; lambda of rate {_src}",
        extra={"construction_version": 2, "staircase": True, "de_delta": MID_DE_DELTA,
               "design": f"published rate-{_src} lambda at rate {_r}"},
    )

# ---------------------------------------------------------------------------------------------
# rates 0.574, 0.699, 0.764, 0.765, 0.846, 0.849: designed with diqkd.reconciliation.design
# ---------------------------------------------------------------------------------------------
#: the start, degree set and settings of :func:`diqkd.reconciliation.design.design_lambda` that
#: produced the LP-designed distributions below (each entry adds its channel p and avg check, and
#: may override these settings: see ``_LP_DESIGNED``)
LP_DESIGN_SETTINGS: dict = {
    "start": {3: 0.2, 10: 0.2, 20: 0.2, 30: 0.2, 50: 0.2},
    "degrees": (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50),
    "step": 0.02, "max_steps": 80, "tol": 2e-6, "shrink": 0.99, "max_deg2_per_check": 0.99,
    "delta": 0.1,
}
#: the degree set of the 0.6.0 designs (up to 100: they are meant for frames of 1e5-1e6 bits)
LP_WIDE_DEGREES: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 50, 60,
                                    70, 80, 100)
_LP_METHOD = (
    "diqkd.reconciliation.design.design_lambda (LP on discretised DE, Richardson, "
    "Shokrollahi, Urbanke, IEEE TIT 47, 619 (2001), Sec. IV), settings LP_DESIGN_SETTINGS with "
    "the entry's overrides; coefficients rounded to 6 decimals. Threshold: bsc_threshold on the "
    "0.1 LLR grid, bisection to 0.4 % of p"
)
# (rate, design channel p, design average check degree, lambda, threshold on the 0.1 grid,
# overrides of LP_DESIGN_SETTINGS). A start ("blend", r, d, w) is (1 - w) x the registered lambda
# of rate r plus w at degree d (the smallest w of 0, 0.1, 0.2, ... whose DE converges at p: the
# uniform start does not converge at these check degrees). Measured (docs/reconciliation-codes.md):
# * 0.765 at QBER 3.6 %, 1e5 bits: 1 / 48 frames failed at f = 1.08 (2.4 % shortened), 0 / 48 at
#   1.10 with 22 iterations per frame, where the rate-0.75 code (f 1.111 at threshold) needs 27;
# * 0.846 at QBER 2 %, 1e5 bits: 2 / 100 at f = 1.11, 0 / 100 at 1.12 and 1.13, where the
#   rate-0.85 code (f 1.082 at threshold) needed f = 1.154;
# * 0.849 (2 %), 0.764 (3.6 %), 0.699 (5 %), 0.574 (8 %), version 0.6.0: f 1.0175 / 1.0155 /
#   1.0151 / 1.0195 at threshold (the codes they replace there: 0.846 1.037, 0.765 1.027, 0.675
#   1.028, 0.575 1.041). Frames of 1e6 bits (bench, 100 frames): FER <= 1e-2 at f 1.055 / 1.050
#   / 1.060 / 1.060 at 2 / 3.6 / 5 / 8 % (8 %: 300 iterations), where 0.5.0 needed 1.070-1.080;
#   at 1e5 bits FER <= 1e-2 at 1.114 / 1.082 / 1.092 / 1.081 (0.5.0: 1.134 / 1.100 / 1.092 /
#   1.091). The 0.849 and 0.764 designs let up to 1.8 and 1.5 degree-2 variables per check
#   (0.849: lambda_2 0.070; the stability bound is 0.071): capped at 0.99 (a staircase without
#   cycles) the LP gives f 1.037 at p at rate 0.849, no better than the 0.846 code, and the
#   rate-0.91 code measured better uncapped than capped (docs/reconciliation-codes.md).
_LP_DESIGNED: tuple[tuple[float, float, float, tuple[tuple[int, str], ...], float, dict], ...] = (
    (0.574, 0.084, 14.0, (
        (2, "0.135883"), (3, "0.157175"), (6, "0.11207"), (7, "0.042744"), (12, "0.188819"),
        (50, "0.36331")
    ), 0.0845, {"start": ("blend", 0.575, 50, 0.3),
                "degrees": tuple(d for d in LP_WIDE_DEGREES if d <= 50)}),
    (0.699, 0.052, 24.0, (
        (2, "0.0825"), (3, "0.171153"), (8, "0.140614"), (9, "0.099199"), (25, "0.157024"),
        (30, "0.071131"), (100, "0.278378")
    ), 0.05240625, {"start": ("blend", 0.675, 100, 0.2), "degrees": LP_WIDE_DEGREES}),
    (0.764, 0.0372, 32.0, (
        (2, "0.083486"), (3, "0.134651"), (6, "0.030532"), (7, "0.166109"), (12, "0.004196"),
        (15, "0.132898"), (20, "0.01272"), (30, "0.140243"), (40, "0.029658"), (80, "0.097442"),
        (100, "0.168064")
    ), 0.037859375, {"start": ("blend", 0.765, 100, 0.2), "degrees": LP_WIDE_DEGREES,
                     "max_deg2_per_check": 1.5}),
    (0.765, 0.037, 28.0, (
        (2, "0.070714"), (3, "0.215116"), (8, "0.082785"), (9, "0.152213"), (10, "0.041456"),
        (20, "0.130046"), (40, "0.069691"), (50, "0.237979")
    ), 0.037116, {}),
    (0.846, 0.021, 44.0, (
        (2, "0.045"), (3, "0.235365"), (9, "0.174489"), (10, "0.168394"), (30, "0.17354"),
        (40, "0.159707"), (50, "0.043504")
    ), 0.021263, {}),
    (0.849, 0.021, 50.0, (
        (2, "0.069743"), (3, "0.136909"), (6, "0.051677"), (7, "0.153889"), (12, "0.077998"),
        (15, "0.039468"), (20, "0.049658"), (25, "0.112355"), (30, "0.04231"), (60, "0.087373"),
        (70, "0.134248"), (80, "0.044373")
    ), 0.02125, {"start": ("blend", 0.846, 100, 0.2), "degrees": LP_WIDE_DEGREES,
                 "max_deg2_per_check": 1.8}),
)
for _r, _p, _a, _lam, _thr, _over in _LP_DESIGNED:
    _how = f"design_lambda at p={_p}, avg_check={_a}, overrides {_over}"
    DISTRIBUTIONS[_r] = DegreeDistribution(
        name=f"diqkd-lp-r{_r:.3f}", rate=_r, lam=_lam, threshold=_thr,
        source=f"{_LP_METHOD}; {_how}",
        extra={"construction_version": 2, "staircase": True, "de_delta": HR_DE_DELTA,
               "design": _how, "design_p": _p, "design_avg_check": _a,
               "design_settings": dict(_over)},
    )
DISTRIBUTIONS = dict(sorted(DISTRIBUTIONS.items()))


def get_distribution(rate: float) -> DegreeDistribution:
    """The registered distribution for a mother-code rate (keys of :data:`DISTRIBUTIONS`)."""
    key = round(float(rate), 4)
    for r, d in DISTRIBUTIONS.items():
        if abs(r - key) < 1e-9:
            return d
    raise KeyError(f"no degree distribution for rate {rate}; have {sorted(DISTRIBUTIONS)}")
