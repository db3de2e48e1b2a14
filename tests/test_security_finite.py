"""Finite-size key length: structure, conservativeness, properties, planning helpers, audit."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from diqkd.errors import ConfigError
from diqkd.security import (
    METHODS,
    OMEGA_MAX,
    EpsilonBudget,
    binary_entropy,
    dg_domega,
    ec_leakage_estimate,
    finite_key_length,
    g_omega,
    max_losses,
    optimal_gamma,
    plan_key_length,
    protocol_leakage_estimate,
    smoothing_penalty,
    threshold_for_completeness,
)
from diqkd.security.finite import _binomial_upper_quantile, _hmax_test_outputs, smoothing_theta

EPS = EpsilonBudget()


def _key(n, w=0.83, gamma=0.05, leak_rate=0.2, method="eat2", **kw):
    return finite_key_length(n=int(n), gamma=gamma, omega_threshold=w,
                             leak_ec_bits=leak_rate * int(n), eps=EPS, method=method, **kw)


# -- structure and conservativeness -----------------------------------------------------------
def test_terms_sum_and_floor():
    b = _key(1e8)
    assert b.key_bits > 0
    assert math.fsum(b.terms.values()) == pytest.approx(b.raw_bound, abs=1e-6)
    assert b.key_bits == math.floor(b.raw_bound)
    d = b.to_dict()
    json.dumps(d)
    assert d["eps_sec"] == pytest.approx(4e-10)
    assert d["eps_snd"] == pytest.approx(5e-10)
    assert set(d["params"]) >= {"tangent_point", "alpha"}
    assert d["max_losses"] == max_losses(b.n, b.gamma, b.omega_threshold)


def test_never_above_first_order_minus_leak():
    for n in (1e6, 1e8, 1e10):
        b = _key(n)
        assert b.key_bits <= n * g_omega(0.83) - 0.2 * n


def _oracle_raw(n, gamma, w, leak, eps, t, a):
    """Independent re-implementation of the bound at fixed (t, alpha), written from the
    module docstring formulas (p = 0)."""
    s = dg_domega(t)
    h = g_omega(t) + s * (w - t)
    x_lose = min(gamma * (2 + math.sqrt(2)) / 4, 0.5)
    var = (s / gamma) ** 2 * x_lose * (1 - x_lose)
    V = math.sqrt(var + 2) + math.log2(73)
    spread = s * (2 + math.sqrt(2)) / 4
    X = 2 * math.log2(6) + spread
    b = (a - 1) / (2 - a)
    K = (2 - a) ** 3 / (6 * (3 - 2 * a) ** 3 * math.log(2)) * 2 ** (b * X) \
        * math.log(2 ** X + math.e ** 2) ** 3
    e1, e2, e3 = 0.49 * eps.eps_s, 0.01 * eps.eps_s, 0.01 * eps.eps_s
    # valid whichever smoothing parameter carries the chain rule's factor 2
    for c in ((2, 1, 1), (1, 2, 1), (1, 1, 2)):
        assert c[0] * e1 + c[1] * e2 + c[2] * e3 <= eps.eps_s * (1 + 1e-12)

    def gs(e):
        return math.log2(2 / e**2)

    M = _hmax_test_outputs(n, gamma, e2, eps.eps_ea)
    return (n * h - n * b * math.log(2) / 2 * V * V
            - (gs(e1) + a * math.log2(1 / eps.eps_ea)) / (a - 1)
            - n * b * b * K - M - 3 * gs(e3) - leak - 2 * math.log2(1 / eps.eps_pa))


@pytest.mark.parametrize("t,a,gamma", [(0.8, 1.001, 0.03), (0.82, 1.0003, 0.03),
                                       (0.79, 1.01, 0.03), (0.8, 1.001, 0.9)])
def test_fixed_parameters_match_oracle(t, a, gamma):
    n, w, leak = 10**8, 0.83, 2.0e7
    b = finite_key_length(n=n, gamma=gamma, omega_threshold=w, leak_ec_bits=leak, eps=EPS,
                          tangent_point=t, alpha=a)
    assert b.raw_bound == pytest.approx(_oracle_raw(n, gamma, w, leak, EPS, t, a), rel=1e-9)
    opt = finite_key_length(n=n, gamma=gamma, omega_threshold=w, leak_ec_bits=leak, eps=EPS)
    assert opt.raw_bound >= b.raw_bound - 1e-6  # the optimiser finds at least as much


def test_theta_dominates_both_smoothing_forms():
    for e in (1e-3, 1e-6, 1e-11, 1e-20):
        assert smoothing_theta(e) == pytest.approx(math.log2(2 / e**2), rel=1e-12)
        assert smoothing_theta(e) >= smoothing_penalty(e) - 1e-12


def _penalties(form, a, n, var, spread, d=6):
    """(second-order, third-order) penalty of the DF19 form ([SNC24] Eq. (C16)) and of the GEAT
    form (ZPConstr2CHSH / FiniteSize.h_GEAT), written independently of finite.py."""
    V = math.log2(2 * d * d + 1) + math.sqrt(2 + var)
    if form == "df19":
        X = math.log2(d) + spread
        K = 2 ** ((a - 1) * X) * math.log(2**X + math.e**2) ** 3 / (6 * (2 - a) ** 3 * math.log(2))
        return n * (a - 1) * math.log(2) / 2 * V**2, n * (a - 1) ** 2 * K
    b = (a - 1) / (2 - a)
    X = 2 * math.log2(d) + spread
    K = (2 - a) ** 3 / (6 * (3 - 2 * a) ** 3 * math.log(2)) * 2 ** (b * X) \
        * math.log(2**X + math.e**2) ** 3
    return n * b * math.log(2) / 2 * V**2, n * b * b * K


@pytest.mark.parametrize("a", [1 + 1e-6, 1 + 1e-4, 1.001, 1.01, 1.1, 1.3, 1.45])
@pytest.mark.parametrize("slope", [6.0, 10.0, 20.0])
def test_geat_form_dominates_df19_form(a, slope):
    # the module uses the GEAT form because it is the larger penalty under either reading
    gamma = 0.05
    var = (slope / gamma) ** 2 * gamma * 0.854 * (1 - gamma * 0.854)
    spread = slope * 0.854
    for d in (4, 6):
        s2, s3 = _penalties("df19", a, 10**6, var, spread, d)
        g2, g3 = _penalties("geat", a, 10**6, var, spread, d)
        assert g2 >= s2 and g3 >= s3


def test_epsilon_allocate():
    e = EpsilonBudget.allocate(1e-10)
    assert e.eps_snd <= 1e-10
    assert e.eps_snd == pytest.approx(1e-10, rel=1e-9)
    assert e.eps_s == pytest.approx(e.eps_ea)
    e2 = EpsilonBudget.allocate(1e-10, eps_cor=2.0**-40)
    assert e2.eps_cor == 2.0**-40 and e2.eps_snd <= 1e-10
    for bad in (dict(eps_snd=0.0), dict(eps_snd=1e-10, pa_share=0.6),
                dict(eps_snd=1e-10, eps_cor=1e-10)):
        with pytest.raises(ConfigError):
            EpsilonBudget.allocate(**bad)
    # moving budget from eps_PA / eps_cor to eps_s / eps_EA certifies more key
    kw = dict(n=10**7, gamma=0.05, omega_threshold=0.83, leak_ec_bits=1.5e6)
    assert finite_key_length(**kw, eps=EpsilonBudget.allocate(1e-10)).raw_bound > \
        finite_key_length(**kw, eps=EpsilonBudget.split(1e-10)).raw_bound


def test_smoothing_penalty_small_eps():
    assert smoothing_penalty(1e-3) == pytest.approx(-math.log2(1 - math.sqrt(1 - 1e-6)), rel=1e-6)
    assert smoothing_penalty(1e-20) == pytest.approx(math.log2(2 / 1e-40), abs=1e-9)


def test_hmax_bound_is_a_valid_quantile():
    n, gamma = 100_000, 0.05
    for mu in (1e-3, 1e-6, 1e-9):
        M = _binomial_upper_quantile(n, gamma, math.log(mu))
        assert stats.binom.sf(M, n, gamma) <= mu
        assert M >= n * gamma


# -- properties ----------------------------------------------------------------------------
def test_zero_at_or_below_classical():
    for w in (0.5, 0.7, 0.75):
        assert _key(1e10, w=w, leak_rate=0.0).key_bits == 0
    for S in (1.5, 2.0):
        assert plan_key_length(n=10**10, S=S, qber=0.0, gamma=0.01, eps=EPS).key_bits == 0


@given(st.floats(5.5, 10.5), st.floats(0.2, 1.5))
@settings(max_examples=12, deadline=None)
def test_monotone_in_n(log_n, factor):
    n1 = int(10**log_n)
    n2 = int(n1 * (1 + factor))
    k1, k2 = _key(n1, leak_rate=0.15), _key(n2, leak_rate=0.15)
    assert k2.key_bits >= k1.key_bits
    assert k2.raw_bound / n2 >= k1.raw_bound / n1 - 1e-7


@given(st.floats(0.78, 0.85), st.floats(0.001, 0.02))
@settings(max_examples=12, deadline=None)
def test_monotone_in_threshold(w, dw):
    # a larger acceptance threshold (equivalently a larger S) never certifies less
    k1, k2 = _key(1e8, w=w), _key(1e8, w=min(w + dw, OMEGA_MAX - 1e-3))
    assert k2.raw_bound >= k1.raw_bound - 1e-6


def test_monotone_in_S_planning():
    keys = [plan_key_length(n=10**8, S=S, qber=0.02, gamma=0.02, eps=EPS).key_bits
            for S in (2.5, 2.6, 2.7, 2.8)]
    assert keys == sorted(keys)


def test_approaches_asymptotic():
    S, q = 2.7, 0.02
    w = (4 + S) / 8
    n = 10**12
    b = finite_key_length(n=n, gamma=0.002, omega_threshold=w, leak_ec_bits=n * binary_entropy(q),
                          eps=EPS)
    asym = g_omega(w) - binary_entropy(q)
    assert b.key_rate <= asym
    assert b.key_rate >= 0.97 * asym


def test_geat_never_exceeds_eat2_and_noise_is_valid():
    for n in (1e7, 1e9):
        assert _key(n, method="geat").key_bits <= _key(n, method="eat2").key_bits
    bn = _key(1e9, p_noise=0.05, leak_rate=0.1)
    assert bn.key_bits > 0
    assert bn.params["tangent_point"] > 0.75


# -- planning helpers -----------------------------------------------------------------------
def test_ec_leakage_reference():
    assert round(ec_leakage_estimate(1e5, 0.02, 1e-3)) == 14904
    assert round(ec_leakage_estimate(1e5, 0.02, 1e-6)) == 15317
    assert ec_leakage_estimate(1e5, 0.02, 1e-3, efficiency=1.1) > 14904


def test_protocol_leakage_reduces_to_nadlinger_shape():
    n, gamma, S, q = 1.5e6, 13 / 256, 2.64, 0.018
    est = protocol_leakage_estimate(n, gamma, S, q, 1e-10)
    ref = n * ((1 - gamma) * binary_entropy(q) + gamma * binary_entropy((4 - S) / 8))
    assert ref < est < ref + 50 * math.sqrt(n) + 100


def test_threshold_for_completeness():
    n, gamma, omega, ec = 10**6, 0.05, 0.84, 1e-3
    thr = threshold_for_completeness(n, gamma, omega, ec)
    q = gamma * (1 - omega)
    assert stats.binom.sf(thr.max_losses, n, q) <= ec
    assert stats.binom.sf(thr.max_losses - 1, n, q) > ec
    assert max_losses(n, gamma, thr.omega_threshold) == thr.max_losses
    assert thr.omega_threshold < omega


def test_optimal_gamma_records_optimum():
    b = optimal_gamma(n=10**8, S=2.7, qber=0.02, eps=EPS)
    assert 1e-4 < b.gamma < 0.5
    for g in (b.gamma / 3, b.gamma * 3):
        assert plan_key_length(n=10**8, S=2.7, qber=0.02, gamma=g, eps=EPS).raw_bound \
            <= b.raw_bound + 1e-6


# -- validation --------------------------------------------------------------------------------
def test_epsilon_budget():
    e = EpsilonBudget.split(1e-10)
    assert 2 * e.eps_s + e.eps_pa + e.eps_ea + e.eps_cor == pytest.approx(1e-10)
    assert e.eps_snd == pytest.approx(1e-10)
    for bad in (0.0, 1.0, -1e-3, float("nan")):
        with pytest.raises(ConfigError):
            EpsilonBudget(eps_s=bad)


@pytest.mark.parametrize("kw", [dict(n=0), dict(n=1.5), dict(gamma=0.0), dict(gamma=1.5),
                                dict(omega_threshold=1.2), dict(leak_ec_bits=-1),
                                dict(method="bogus"), dict(p_noise=0.6), dict(alpha=2.5)])
def test_bad_arguments(kw):
    args = dict(n=10**6, gamma=0.05, omega_threshold=0.83, leak_ec_bits=0, eps=EPS)
    args.update(kw)
    with pytest.raises(ConfigError):
        finite_key_length(**args)


def test_methods_listed():
    assert METHODS == ("eat2", "geat")


def test_optimiser_beats_dense_grid():
    import numpy as np

    n, gamma, w, leak = 10**7, 0.05, 0.83, 1.5e6
    opt = finite_key_length(n=n, gamma=gamma, omega_threshold=w, leak_ec_bits=leak, eps=EPS)
    best = -math.inf
    for t in np.linspace(0.76, 0.84, 41):
        for la in np.linspace(math.log(1e-5), math.log(0.1), 41):
            b = finite_key_length(n=n, gamma=gamma, omega_threshold=w, leak_ec_bits=leak,
                                  eps=EPS, tangent_point=float(t), alpha=1 + math.exp(la))
            best = max(best, b.raw_bound)
    assert opt.raw_bound >= best - 1e-6 * n


@given(st.integers(200, 10**7), st.floats(0.01, 0.5), st.floats(0.76, 0.85),
       st.floats(1e-12, 0.2))
@settings(max_examples=15, deadline=None)
def test_threshold_for_completeness_property(n, gamma, omega, ec):
    thr = threshold_for_completeness(n, gamma, omega, ec)
    q = gamma * (1 - omega)
    assert stats.binom.sf(thr.max_losses, n, q) <= ec * (1 + 1e-9)
    if thr.max_losses > 0:
        assert stats.binom.sf(thr.max_losses - 1, n, q) > ec
    assert max_losses(n, gamma, thr.omega_threshold) == thr.max_losses


# -- llr21: improved second-order term (Liu et al. 2021 / Kamin et al. 2025 Thm 1) ---------------
def test_llr21_listed_but_not_default():
    from diqkd.security.finite import ALL_METHODS

    assert "llr21" in ALL_METHODS and "llr21" not in METHODS


@pytest.mark.parametrize("t,a", [(0.79, 1.0005), (0.81, 1.0003), (0.83, 1.002)])
def test_llr21_never_below_eat2_at_same_parameters(t, a):
    # T_alpha >= -b (ln2/2) V_worst^2 because the slack r - f is >= 0 and Var_p <= Var_Sigma
    kw = dict(n=10**7, gamma=0.05, omega_threshold=0.83, leak_ec_bits=1.5e6, eps=EPS,
              tangent_point=t, alpha=a)
    e = finite_key_length(**kw)
    llr = finite_key_length(**kw, method="llr21")
    assert llr.terms["eat_second_order"] >= e.terms["eat_second_order"]
    for k in e.terms:
        if k != "eat_second_order":
            assert llr.terms[k] == pytest.approx(e.terms[k], rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("t,a,gamma", [(0.79, 1.0005, 0.05), (0.82, 1.01, 0.2), (0.845, 1.1, 0.6)])
def test_llr21_infimum_is_a_lower_bound(t, a, gamma):
    # the cellwise bound never exceeds the function at any point of a much finer grid
    import numpy as np

    from diqkd.security.entropy import OMEGA_MIN
    from diqkd.security.finite import _llr21_T, _Tradeoff

    trade = _Tradeoff(gamma, 0.0)
    s = dg_domega(t)
    b = (a - 1) / (2 - a)
    c = math.log2(73)
    T, _ = _llr21_T(trade, gamma, t, g_omega(t), s, b, c)
    w = np.linspace(OMEGA_MIN, OMEGA_MAX, 200_001)
    r = np.array([g_omega(float(x)) if x > 0.75 else 0.0 for x in w[::50]])
    w = w[::50]
    x = gamma * (1 - w)
    phi = r - (g_omega(t) + s * (w - t)) \
        - b * math.log(2) / 2 * (c + np.sqrt(2 + (s / gamma) ** 2 * x * (1 - x))) ** 2
    assert T <= phi.min() + 1e-12
    assert T >= phi.min() - 0.01 * abs(phi.min()) - 1e-3  # and it is not much below


def test_llr21_with_noise_is_valid():
    kw = dict(n=10**9, gamma=0.05, omega_threshold=0.83, leak_ec_bits=1e8, eps=EPS, p_noise=0.05)
    assert finite_key_length(**kw, method="llr21").raw_bound >= \
        finite_key_length(**kw).raw_bound - 1e-6 * 10**9
