"""diqkd.estimation: counting, CHSH statistics and intervals."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.errors import ConfigError, InputError
from diqkd.estimation import Counts, binomial_interval, count_rounds


def _joint(x, y, a, b):
    return SimpleNamespace(x=np.asarray(x, np.uint8), y=np.asarray(y, np.uint8),
                           a=np.asarray(a, np.uint8), b=np.asarray(b, np.uint8))


def _naive(x, y, a, b):
    out = np.zeros((2, 3, 2, 2), np.int64)
    for xi, yi, ai, bi in zip(x, y, a, b, strict=True):
        out[xi, yi, ai, bi] += 1
    return out


rounds = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(0, 1),
                            st.integers(0, 1)), max_size=200)


@given(rounds)
@settings(max_examples=60, deadline=None)
def test_counts_match_naive(rows):
    cols = [np.array([r[i] for r in rows], np.uint8) for i in range(4)]
    assert np.array_equal(count_rounds(*cols), _naive(*cols))


@given(rounds, rounds)
@settings(max_examples=30, deadline=None)
def test_chunked_accumulation(r1, r2):
    j1 = _joint(*zip(*r1, strict=True)) if r1 else _joint([], [], [], [])
    j2 = _joint(*zip(*r2, strict=True)) if r2 else _joint([], [], [], [])
    both = r1 + r2
    jall = _joint(*zip(*both, strict=True)) if both else _joint([], [], [], [])
    c = Counts.from_joint(j1)
    c.update(j2)
    assert np.array_equal(c.counts, Counts.from_joint(jall).counts)
    assert np.array_equal((Counts.from_joint(j1) + Counts.from_joint(j2)).counts, c.counts)


def test_statistics_of_ideal_device():
    # Sample a Tsirelson-optimal device: win prob cos^2(pi/8) in each test setting pair.
    rng = np.random.default_rng(7)
    n = 400_000
    test = rng.random(n) < 0.5
    x = np.where(test, rng.integers(0, 2, n), 0)
    y = np.where(test, rng.integers(0, 2, n), 2)
    a = rng.integers(0, 2, n)
    win = rng.random(n) < math.cos(math.pi / 8) ** 2
    b_test = a ^ (x * y) ^ (~win)
    b_key = a ^ (rng.random(n) < 0.02)
    b = np.where(test, b_test, b_key) & 1
    c = Counts.from_joint(_joint(x, y, a, b))
    assert c.total == n
    assert c.test_rounds + c.key_rounds == n
    assert c.S == pytest.approx(2 * math.sqrt(2), abs=0.02)
    assert c.win_fraction == pytest.approx(math.cos(math.pi / 8) ** 2, abs=0.003)
    assert c.S == pytest.approx(8 * c.win_fraction - 4, abs=0.02)
    assert c.qber == pytest.approx(0.02, abs=0.002)
    assert c.wins + c.losses == c.test_rounds
    iv = c.intervals(0.99)
    lo, hi = iv["S"]
    assert lo <= c.S <= hi
    lo, hi = iv["qber"]
    assert lo <= c.qber <= hi
    d = c.to_dict()
    assert d["rounds"] == n and len(d["intervals"]["S"]) == 2


def test_empty_and_invalid():
    c = Counts()
    assert math.isnan(c.S) and math.isnan(c.qber) and math.isnan(c.win_fraction)
    assert c.to_dict()["S"] is None
    with pytest.raises(InputError):
        count_rounds(np.array([2], np.uint8), np.array([0], np.uint8), np.array([0], np.uint8),
                     np.array([0], np.uint8))
    with pytest.raises(InputError):
        count_rounds(np.array([0], np.uint8), np.array([0], np.uint8), np.array([0], np.uint8),
                     np.array([2], np.uint8))
    with pytest.raises(InputError):
        Counts(np.zeros((2, 2)))


def test_binomial_intervals():
    lo, hi = binomial_interval(0, 10)
    assert lo == 0.0 and 0 < hi < 1
    lo, hi = binomial_interval(10, 10, method="wilson")
    assert hi == pytest.approx(1.0) and lo < 1
    lo, hi = binomial_interval(50, 100, 0.95)
    assert lo < 0.5 < hi
    assert all(math.isnan(v) for v in binomial_interval(5, 0))
    with pytest.raises(ConfigError):
        binomial_interval(1, 2, 1.5)
    with pytest.raises(ConfigError):
        binomial_interval(1, 2, method="bogus")
