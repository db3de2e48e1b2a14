"""Audit of published runs (docs/security.md): our certified key next to the published one.

Our EAT-family bound is MORE conservative than the published analyses (see docs/security.md,
"Audit"): the tests pin our numbers (regression) and check that we never exceed the published
figure for the same inputs.
"""

from __future__ import annotations

import pytest

from diqkd.security import EpsilonBudget, finite_key_length, optimal_gamma

NADLINGER = dict(n=1_500_000, gamma=13 / 256, omega_threshold=0.825538, leak_ec_bits=296_517)


def test_nadlinger_2022_at_their_soundness():
    b = finite_key_length(**NADLINGER, eps=EpsilonBudget.split(1e-10))
    assert b.key_bits <= 95_884
    assert b.key_bits == 0  # documented: our second-order terms are larger (docs/security.md)
    assert b.raw_bound == pytest.approx(-121_273, abs=2_000)


@pytest.mark.parametrize("eps_snd,ours", [(1e-5, 28_601), (3e-4, 87_592), (1e-3, 111_312)])
def test_nadlinger_2022_relaxed_soundness(eps_snd, ours):
    # The gap to their 95,884 bits is the epsilon dependence: between eps_snd = 3e-4 and 1e-3
    # the same inputs bracket their figure (docs/security.md, "Audit").
    b = finite_key_length(**NADLINGER, eps=EpsilonBudget.split(eps_snd))
    assert b.key_bits == pytest.approx(ours, rel=0.01)


@pytest.mark.parametrize("n,S,q", [(1_200_000, 2.612, 0.03), (405_145, 2.5758, 0.036)])
def test_lu_and_liu_2026_planned(n, S, q):
    b = optimal_gamma(n=n, S=S, qber=q, eps=EpsilonBudget.split(1e-10))
    assert b.key_bits == 0  # below our EAT threshold (min rounds 2.9e6 and 5.1e6)
    assert b.raw_bound < -150_000
