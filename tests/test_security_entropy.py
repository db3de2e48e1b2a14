"""Reference values (REFERENCES.md) and independent oracles for diqkd.security.entropy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.errors import ConfigError
from diqkd.security import (
    OMEGA_MAX,
    asymptotic_rate,
    binary_entropy,
    d_noisy_domega,
    dg_domega,
    g_chsh,
    g_omega,
    noisy_preprocessing_entropy,
    optimal_noise,
)

TOL = 1e-6


def _h_oracle(p: float) -> float:
    # independent slow oracle: natural-log entropy converted to bits
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)


def _g_oracle(S: float) -> float:
    # direct numeric formula with a different parametrisation: eigen-splitting of the
    # Pironio bound via cos/sin of the angle, (1 + sqrt(S^2/4 - 1))/2
    x = 0.5 + 0.5 * math.sqrt(S * S / 4 - 1)
    return 1 - _h_oracle(x)


def _depol_S(q: float) -> float:
    return 2 * math.sqrt(2) * (1 - 2 * q)


@pytest.mark.parametrize("S,ref", [(2.2, 0.157288), (2.4, 0.346112), (2.5, 0.456436),
                                   (2.6, 0.581580), (2.7, 0.728482), (2.8, 0.918531)])
def test_g_reference(S, ref):
    assert abs(g_chsh(S) - ref) < TOL
    assert abs(g_chsh(S) - _g_oracle(S)) < 1e-12
    assert abs(g_omega((4 + S) / 8) - g_chsh(S)) < 1e-12


@pytest.mark.parametrize("q,ref", [(0.01, 0.776598), (0.02, 0.612291), (0.05, 0.224950)])
def test_depolarizing_rate(q, ref):
    assert abs(asymptotic_rate(_depol_S(q), q) - ref) < TOL


def test_zero_rate_qber():
    from scipy.optimize import brentq

    q = brentq(lambda q: asymptotic_rate(_depol_S(q), q), 0.05, 0.1, xtol=1e-14)
    assert abs(q - 0.0714918) < TOL
    assert abs(_depol_S(q) - 2.42401) < 1e-5


@pytest.mark.parametrize("q,ref,p_ref", [(0.05, 0.226366, 0.003), (0.07, 0.042462, 0.057),
                                         (0.075, 0.014346, 0.119)])
def test_noisy_preprocessing_best_p(q, ref, p_ref):
    p, r = optimal_noise(_depol_S(q), q)
    assert abs(r - ref) < TOL
    assert abs(p - p_ref) < 0.002
    assert asymptotic_rate(_depol_S(q), q, None) == pytest.approx(r, abs=1e-12)


@pytest.mark.parametrize("S,p,ref", [(2.5, 0.1, 0.703571), (2.7, 0.2, 0.919129),
                                     (2.2, 0.45, 0.993833)])
def test_noisy_entropy_reference(S, p, ref):
    assert abs(noisy_preprocessing_entropy(S, p) - ref) < TOL


def test_ions_reference():
    assert abs(g_chsh(2.677) - 0.692135) < TOL
    assert abs(binary_entropy(0.0144) - 0.108721) < TOL
    assert abs(asymptotic_rate(2.677, 0.0144) - 0.583414) < TOL


def test_g_and_derivative_at_083():
    assert abs(g_omega(0.83) - 0.637118) < TOL
    assert abs(dg_domega(0.83) - 11.48966) < 1e-5


@given(st.floats(0.7505, OMEGA_MAX - 1e-3))
@settings(max_examples=40, deadline=None)
def test_derivative_matches_numeric(w):
    hstep = 1e-6
    num = (g_omega(w + hstep) - g_omega(w - hstep)) / (2 * hstep)
    assert dg_domega(w) == pytest.approx(num, rel=1e-4, abs=1e-4)


@given(st.floats(0.7505, OMEGA_MAX - 1e-3), st.floats(0.0, 0.45))
@settings(max_examples=40, deadline=None)
def test_noisy_derivative_matches_numeric(w, p):
    hstep = 1e-6
    f = lambda x: noisy_preprocessing_entropy(8 * x - 4, p)  # noqa: E731
    num = (f(w + hstep) - f(w - hstep)) / (2 * hstep)
    assert d_noisy_domega(w, p) == pytest.approx(num, rel=1e-4, abs=1e-4)


@given(st.floats(0.001, 0.999))
@settings(max_examples=50, deadline=None)
def test_binary_entropy_oracle(p):
    assert binary_entropy(p) == pytest.approx(_h_oracle(p), abs=1e-12)


def test_zero_at_or_below_classical_bound():
    for S in (-2.5, 0.0, 1.9, 2.0):
        assert g_chsh(S) == 0.0
        assert asymptotic_rate(S, 0.0) <= 0.0
    assert noisy_preprocessing_entropy(2.0, 0.1) == pytest.approx(binary_entropy(0.1))


def test_convexity_of_g():
    w = np.linspace(0.7501, OMEGA_MAX - 1e-6, 2000)
    g = np.array([g_omega(x) for x in w])
    assert np.all(np.diff(g, 2) >= -1e-12)


def test_bad_inputs():
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ConfigError):
            binary_entropy(bad)
    with pytest.raises(ConfigError):
        g_chsh(3.0)
    with pytest.raises(ConfigError):
        noisy_preprocessing_entropy(2.5, 0.6)
    with pytest.raises(ConfigError):
        asymptotic_rate(2.5, 0.7)
