"""The one-way finite-length limit against a brute-force count and its normal approximation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from diqkd.reconciliation.limits import (
    efficiency_bound,
    efficiency_normal_approximation,
    one_way_leak_bound,
)


def brute_force_patterns(n: int, p: float, fer: float) -> int:
    """The fewest error patterns whose total probability reaches 1 - fer, by enumerating all 2^n
    patterns and taking the most likely first."""
    probs = sorted((p ** sum(e) * (1 - p) ** (n - sum(e))
                    for e in itertools.product((0, 1), repeat=n)), reverse=True)
    total = 0.0
    for count, pr in enumerate(probs, start=1):
        total += pr
        if total >= 1.0 - fer - 1e-12:
            return count
    return len(probs)


@pytest.mark.parametrize("n,p,fer", [(8, 0.1, 0.05), (12, 0.02, 0.01), (12, 0.2, 0.3),
                                     (14, 0.05, 0.001), (14, 0.3, 0.1), (10, 0.45, 0.5),
                                     (10, 0.001, 0.1), (6, 0.01, 0.06)])
def test_bound_matches_brute_force_count(n: int, p: float, fer: float) -> None:
    count = brute_force_patterns(n, p, fer)
    bound = one_way_leak_bound(n, p, fer)
    # r (the patterns of the last weight) is not rounded up: within one pattern, never above
    assert math.log2(max(count - 1, 1)) - 1e-9 <= bound <= math.log2(count) + 1e-9
    assert bound >= 0.0


def test_bound_sits_just_below_the_normal_approximation() -> None:
    # the expansion n h + sqrt(nV) Phi^-1(1 - fer) omits an O(log n) term that is negative
    for n in (10_000, 99_000, 990_000):
        for p in (0.01, 0.02, 0.036, 0.05, 0.08):
            exact = efficiency_bound(n, p, 1e-2)
            approx = efficiency_normal_approximation(n, p, 1e-2)
            assert 1.0 < exact < approx < exact + 0.006


def test_bound_moves_the_right_way() -> None:
    f = [efficiency_bound(n, 0.02, 1e-2) for n in (1_000, 10_000, 100_000, 1_000_000)]
    assert np.all(np.diff(f) < 0) and f[-1] > 1.0  # longer frames: closer to 1, never below
    assert efficiency_bound(99_000, 0.02, 1e-3) > efficiency_bound(99_000, 0.02, 1e-2)
    # the values quoted in the module docstring (n = 99,000, FER 1e-2)
    got = [round(efficiency_bound(99_000, q, 1e-2), 3) for q in (0.01, 0.02, 0.036, 0.05, 0.08)]
    assert got == [1.060, 1.041, 1.029, 1.024, 1.017]
    # and the rows of the table in docs/reconciliation.md
    qs = (0.01, 0.02, 0.036, 0.05, 0.08)
    assert [round(efficiency_bound(990_000, q, 1e-2), 3) for q in qs] == [
        1.019, 1.013, 1.009, 1.008, 1.006]
    assert [round(efficiency_bound(9_900, q, 1e-2), 3) for q in qs] == [
        1.186, 1.125, 1.089, 1.073, 1.053]


@pytest.mark.parametrize("kw", [dict(n=0, p=0.1, fer=0.1), dict(n=10, p=0.5, fer=0.1),
                                dict(n=10, p=0.0, fer=0.1), dict(n=10, p=0.1, fer=0.0),
                                dict(n=10, p=0.1, fer=1.0)])
def test_bound_rejects_bad_arguments(kw) -> None:
    with pytest.raises(ValueError):
        one_way_leak_bound(**kw)
