"""Design of variable degree distributions by linear programming on discretised density evolution.

This is the tool the DE-designed distributions in :mod:`diqkd.reconciliation.distributions` come
from; it is kept in the package so that every designed lambda can be re-derived (deterministic: no
random choice anywhere) and so that new rates can be designed the same way.

Method: the local optimisation of Richardson, Shokrollahi and Urbanke, "Design of
capacity-approaching irregular low-density parity-check codes", IEEE TIT 47, 619 (2001), Sec. IV
(also Richardson and Urbanke, *Modern Coding Theory*, Sec. 4.6 / Problem 4.52), on the sum-product
DE of :class:`~diqkd.reconciliation.distributions._DE`:

1. run DE for the current lambda on the channel (BSC(p), or a mixture of BSCs) and keep, for
   every iteration l, the check-to-variable density R_l and the bit error probability P_l of the
   variable-to-check messages;
2. for every candidate degree i compute e_(i,l) = P_e(channel * R_l^(*(i-1))), the error
   probability a degree-i variable would send after iteration l. The next error probability of any
   lambda' run on the *same* check densities is sum_i lambda'_i e_(i,l), linear in lambda';
3. solve the LP: maximise sum_i lambda'_i / i (the design rate at fixed rho) subject to
   sum_i lambda'_i e_(i,l) <= max(P_(l+1), c P_l) for every l (the error keeps falling at least as
   fast as now, or by the factor c), sum lambda' = 1, lambda' >= 0, a trust region
   |lambda' - lambda| <= step, the stability condition lambda'_2 <= 1 / (rho'(1) B(p)) (B the
   Bhattacharyya constant) and a cap on the number of degree-2 variables per check;
4. accept lambda' only if full DE converges for it on the same channel, else halve the step.

The check side is the concentrated rho of the average check degree `avg_check` (held fixed while
lambda moves, so the design rate 1 - (sum rho_j / j) / (sum lambda_i / i) grows with the LP
objective). A code of rate R is then built with the lambda found and the concentrated rho that R
implies; its threshold is measured with :func:`~diqkd.reconciliation.distributions.bsc_threshold`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .distributions import _DE, DISTRIBUTIONS, LP_DESIGN_SETTINGS, _check_mix, concentrated_rho

__all__ = ["DesignResult", "degree_errors", "design_lambda", "lp_step", "design_rate",
           "registered_design_arguments"]

#: default candidate variable degrees (the high-rate designs of the registry used this set)
DEFAULT_DEGREES: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30)


@dataclass(frozen=True)
class DesignResult:
    """Outcome of :func:`design_lambda`: the lambda, its design rate and how it was reached."""

    lam: dict[int, float]
    rate: float
    p: float
    avg_check: float
    steps: int
    history: tuple[float, ...]


def design_rate(lam: dict[int, float], rho: dict[int, float]) -> float:
    """1 - (sum_j rho_j / j) / (sum_i lambda_i / i) (edge-perspective polynomials)."""
    return 1.0 - sum(r / j for j, r in rho.items()) / sum(x / i for i, x in lam.items())


def degree_errors(de: _DE, ch: np.ndarray, r: np.ndarray, degrees: Sequence[int]) -> np.ndarray:
    """e_i = P_e(ch * r^(*(i-1))) for each degree i (FFT convolution, no saturation needed).

    Only the sign of the sum matters for the error probability, so the full-length convolution is
    used as is. Index ``i * half`` of the degree-i convolution is LLR 0 (counted half).
    """
    dmax = max(degrees)
    nfft = 1
    while nfft < dmax * de.size:
        nfft *= 2
    rf = np.fft.rfft(r, nfft)
    cf = np.fft.rfft(ch, nfft)
    out = np.empty(len(degrees))
    powr = cf.copy()
    have = 1
    for k, d in enumerate(sorted(degrees)):
        while have < d:
            powr = powr * rf
            have += 1
        full = np.fft.irfft(powr, nfft)
        zero = d * de.half
        out[k] = max(0.0, float(full[:zero].sum() + 0.5 * full[zero]))
    order = np.argsort(np.argsort(np.asarray(degrees)))
    return out[order]


def _trajectory(lam: dict[int, float], rho: dict[int, float], components, degrees, *,
                delta: float, max_iter: int, target: float):
    """DE of `lam`, returning (converged, P list, e_(i,l) rows)."""
    de = _DE(lam, rho, delta=delta, half=int(round(25.0 / delta)))
    ch = de.channel(components)
    q = ch.copy()
    errs = [de.error(ch)]
    rows = []
    best, stall = 1.0, 0
    for _ in range(max_iter):
        r = _check_mix(q, de.rho_deg, de.rho_w, de.tab)
        rows.append(degree_errors(de, ch, r, degrees))
        q = de.var_update(ch, r)
        q /= q.sum()
        e = de.error(q)
        errs.append(e)
        if e < target:
            return True, errs, rows
        if e < best * (1 - 1e-6):
            best, stall = e, 0
        else:
            stall += 1
            if stall > 50:
                break
    return False, errs, rows


def _bhattacharyya(components) -> float:
    return sum(w * 2.0 * math.sqrt(p * (1 - p)) for w, p in components)


def lp_step(lam: dict[int, float], rho: dict[int, float], components, *,
            degrees: Sequence[int] = DEFAULT_DEGREES, step: float = 0.02, shrink: float = 0.99,
            max_deg2_per_check: float = 0.9, delta: float = 0.1, max_iter: int = 3000,
            target: float = 1e-7, trajectory=None) -> dict[int, float] | None:
    """One LP step from `lam` (which must converge on `components`); None if the LP fails.

    See the module docstring for the constraints. `shrink` is the factor c by which the error
    must fall per iteration where the current lambda already falls faster. `trajectory`: the DE
    trajectory of `lam` over the same sorted degrees, if the caller already has it (it is the
    costly part of a step).
    """
    from scipy.optimize import linprog

    # the current lambda's own degrees are always candidates (else it would not be feasible)
    degs = sorted({int(d) for d in degrees} | set(lam))
    if trajectory is None:
        trajectory = _trajectory(lam, rho, components, degs, delta=delta, max_iter=max_iter,
                                 target=target)
    ok, errs, rows = trajectory
    if not ok:
        raise ValueError("lp_step needs a lambda whose DE converges on the channel")
    a_ub = np.array(rows)
    b_ub = np.array([max(errs[k + 1], shrink * errs[k]) for k in range(len(rows))])
    cur = np.array([lam.get(d, 0.0) for d in degs])
    bounds = [(max(0.0, c - step), min(1.0, c + step)) for c in cur]
    # stability: lambda_2 rho'(1) B < 1, with a 2 % margin
    rho_prime = sum(r * (j - 1) for j, r in rho.items())
    lam2_max = 0.98 / (rho_prime * _bhattacharyya(components))
    # degree-2 variables per check: n2 / m = (lambda_2 / 2) / sum_j rho_j / j
    lam2_cap = 2.0 * max_deg2_per_check * sum(r / j for j, r in rho.items())
    if 2 in degs:
        k2 = degs.index(2)
        lo, hi = bounds[k2]
        hi = min(hi, lam2_max, lam2_cap)
        bounds[k2] = (min(lo, hi), hi)
    res = linprog(-1.0 / np.array(degs, dtype=float), A_ub=a_ub, b_ub=b_ub * (1 + 1e-12) + 1e-300,
                  A_eq=np.ones((1, len(degs))), b_eq=[1.0], bounds=bounds, method="highs")
    if res.status != 0:
        return None
    x = np.maximum(res.x, 0.0)
    x /= x.sum()
    return {d: float(v) for d, v in zip(degs, x, strict=True) if v > 1e-7}


def design_lambda(start: dict[int, float], p: float | Sequence[tuple[float, float]],
                  avg_check: float, *, degrees: Sequence[int] = DEFAULT_DEGREES,
                  step: float = 0.02, min_step: float = 1e-3, max_steps: int = 60,
                  tol: float = 1e-5, delta: float = 0.1, max_deg2_per_check: float = 0.9,
                  shrink: float = 0.99, progress=None) -> DesignResult:
    """Iterate :func:`lp_step` from `start` at channel `p` and concentrated rho(`avg_check`).

    `p` is a BSC crossover probability or a mixture [(weight, p), ...] of BSCs. Stops when the
    design rate gains less than `tol` per step or the trust region falls below `min_step`.
    Deterministic: the same arguments give the same lambda on every machine that gives the same
    floating-point results for numpy's FFT and HiGHS.
    """
    if isinstance(p, (int, float)):
        components = [(1.0, float(p))]
    else:
        components = [(float(w), float(q)) for w, q in p]
    rho = concentrated_rho(float(avg_check))
    lam = {int(d): float(v) for d, v in start.items() if v > 0}
    tot = sum(lam.values())
    lam = {d: v / tot for d, v in lam.items()}
    degrees = sorted({int(d) for d in degrees} | set(lam))
    # the trajectory of the current lambda: the acceptance test of a step computes the one the
    # next LP needs (every lambda here lives on `degrees`, so the rows line up)
    traj = _trajectory(lam, rho, components, degrees, delta=delta, max_iter=3000, target=1e-7)
    if not traj[0]:
        raise ValueError(f"the start lambda does not converge at p = {p} with avg check degree "
                         f"{avg_check}; start from a lower rate")
    rate = design_rate(lam, rho)
    history = [rate]
    steps = 0
    while steps < max_steps and step >= min_step:
        new = lp_step(lam, rho, components, degrees=degrees, step=step, delta=delta,
                      max_deg2_per_check=max_deg2_per_check, shrink=shrink, trajectory=traj)
        if new is None:
            step /= 2
            continue
        new_traj = _trajectory(new, rho, components, degrees, delta=delta, max_iter=3000,
                               target=1e-7)
        new_rate = design_rate(new, rho)
        if not new_traj[0] or new_rate <= rate:
            step /= 2
            continue
        steps += 1
        gain = new_rate - rate
        lam, rate, traj = new, new_rate, new_traj
        history.append(rate)
        if progress is not None:
            progress(steps, rate, step, lam)
        if gain < tol:
            break
    return DesignResult(lam=lam, rate=rate, p=float(components[0][1]), avg_check=float(avg_check),
                        steps=steps, history=tuple(history))


def registered_design_arguments(rate: float) -> tuple[dict[int, float], float, float, dict]:
    """(start, p, avg_check, keyword arguments) with which :func:`design_lambda` made the
    registered LP-designed distribution of `rate` (``distributions._LP_DESIGNED``).

    ``design_lambda(start, p, avg_check, **kwargs).lam`` gives the registered lambda to its 6
    printed decimals (``tests/test_design.py``, ``DIQKD_LONG_TESTS=1``). A recorded start
    ``("blend", r, d, w)`` is (1 - w) x the registered lambda of rate r plus w at degree d.
    """
    dist = DISTRIBUTIONS.get(round(float(rate), 4))
    if dist is None or "design_p" not in dist.extra:
        lp = sorted(r for r, d in DISTRIBUTIONS.items() if "design_p" in d.extra)
        raise KeyError(f"rate {rate} is not an LP design of diqkd.reconciliation.design "
                       f"(those are {', '.join(f'{r:g}' for r in lp)})")
    kw = dict(LP_DESIGN_SETTINGS)
    kw.update(dist.extra.get("design_settings", {}))
    start = kw.pop("start")
    if isinstance(start, tuple) and start[0] == "blend":
        _, base, top, w = start
        lam = {d: (1.0 - w) * v for d, v in DISTRIBUTIONS[base].lam_float().items()}
        lam[int(top)] = lam.get(int(top), 0.0) + w
        start = lam
    return dict(start), float(dist.extra["design_p"]), float(dist.extra["design_avg_check"]), kw
