"""Degree-distribution design by LP on density evolution (diqkd.reconciliation.design)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from diqkd.reconciliation import design
from diqkd.reconciliation.distributions import (
    _DE,
    DISTRIBUTIONS,
    LP_DESIGN_SETTINGS,
    _check_mix,
    concentrated_rho,
    de_converges,
)


@pytest.mark.parametrize("lam", [{3: 1.0}, {2: 0.3, 3: 0.2, 8: 0.5}, {2: 0.1, 21: 0.6, 30: 0.3}])
def test_degree_errors_predict_the_next_de_iteration(lam: dict[int, float]) -> None:
    """sum_i lambda_i e_i equals the error of the DE variable update (the LP's linearisation)."""
    rho = concentrated_rho(12.4)
    de = _DE(lam, rho, delta=0.2, half=125)
    ch = de.channel([(1.0, 0.03)])
    q = ch.copy()
    for _ in range(4):
        r = _check_mix(q, de.rho_deg, de.rho_w, de.tab)
        degs = sorted(lam)
        e = design.degree_errors(de, ch, r, degs)
        q = de.var_update(ch, r)
        q /= q.sum()
        assert float(np.dot([lam[d] for d in degs], e)) == pytest.approx(de.error(q), rel=1e-9)


def test_degree_errors_unsorted_degrees() -> None:
    rho = concentrated_rho(8.0)
    de = _DE({3: 1.0}, rho, delta=0.2, half=125)
    ch = de.channel([(1.0, 0.05)])
    r = _check_mix(ch, de.rho_deg, de.rho_w, de.tab)
    fwd = design.degree_errors(de, ch, r, [2, 5, 9])
    rev = design.degree_errors(de, ch, r, [9, 2, 5])
    assert rev.tolist() == [fwd[2], fwd[0], fwd[1]]
    assert fwd[0] > fwd[1] > fwd[2]  # more check messages, fewer errors (below threshold)


def test_design_raises_rate_and_keeps_convergence() -> None:
    """LP steps from the published rate-0.5 lambda at p below its threshold: the design rate
    rises, every accepted lambda still converges under full DE, and the run is deterministic."""
    start = DISTRIBUTIONS[0.5].lam_float()
    avg_check = DISTRIBUTIONS[0.5].avg_var_degree() / 0.5
    kw = dict(degrees=(2, 3, 4, 6, 8, 12, 20), max_steps=3, delta=0.2)
    res = design.design_lambda(start, 0.095, avg_check, **kw)
    assert res.steps >= 1
    assert res.rate > res.history[0] + 1e-4
    assert list(res.history) == sorted(res.history)
    assert sum(res.lam.values()) == pytest.approx(1.0)
    rho = concentrated_rho(avg_check)
    assert res.rate == pytest.approx(design.design_rate(res.lam, rho))
    assert de_converges(res.lam, rho, 0.095, delta=0.2)
    # stability condition holds with the 2 % margin
    rho_prime = sum(r * (j - 1) for j, r in rho.items())
    assert res.lam.get(2, 0.0) * rho_prime * 2 * np.sqrt(0.095 * 0.905) <= 0.98 + 1e-9
    again = design.design_lambda(start, 0.095, avg_check, **kw)
    assert again.lam == res.lam


def test_design_rejects_a_start_above_threshold() -> None:
    start = DISTRIBUTIONS[0.5].lam_float()
    with pytest.raises(ValueError, match="does not converge"):
        design.design_lambda(start, 0.2, DISTRIBUTIONS[0.5].avg_var_degree() / 0.5, delta=0.2)


@pytest.mark.skipif(not os.environ.get("DIQKD_LONG_TESTS"), reason="set DIQKD_LONG_TESTS=1")
@pytest.mark.parametrize("rate", [0.574, 0.699, 0.764, 0.765, 0.846, 0.849])
def test_registered_lp_designs_reproduce(rate: float) -> None:
    """design_lambda with the recorded settings gives the registered lambda (to its 6 printed
    decimals); ~2-15 min each."""
    dist = DISTRIBUTIONS[rate]
    start, p, a, kw = design.registered_design_arguments(rate)
    res = design.design_lambda(start, p, a, **kw)
    want = {d: float(c) for d, c in dist.lam}
    assert set(res.lam) == set(want)
    for d, v in want.items():
        assert res.lam[d] == pytest.approx(v, abs=1.5e-6)


def test_registered_design_arguments() -> None:
    # the 0.4.0 designs use the shared settings; the 0.6.0 ones their recorded overrides
    start, p, a, kw = design.registered_design_arguments(0.765)
    s = dict(LP_DESIGN_SETTINGS)
    assert start == s.pop("start") and (p, a) == (0.037, 28.0) and kw == s
    start, p, a, kw = design.registered_design_arguments(0.849)
    assert (p, a, kw["max_deg2_per_check"], max(kw["degrees"])) == (0.021, 50.0, 1.8, 100)
    base = DISTRIBUTIONS[0.846].lam_float()
    assert start[100] == pytest.approx(0.2)
    assert all(start[d] == pytest.approx(0.8 * v) for d, v in base.items())
    for rate in (0.5, 0.6):  # registered but not an LP design; not registered at all
        with pytest.raises(KeyError, match="not an LP design.*0.574, 0.699, 0.764"):
            design.registered_design_arguments(rate)
