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
from diqkd.security.finite import _binomial_upper_quantile, _hmax_test_outputs

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
    e1, e2, e3 = 0.97 * eps.eps_s, 0.01 * eps.eps_s, 0.01 * eps.eps_s
    assert e1 + 2 * e2 + e3 == pytest.approx(eps.eps_s)

    def gs(e):
        return -math.log2(1 - math.sqrt(1 - e * e)) if e > 1e-7 else math.log2(2 / e**2)

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
