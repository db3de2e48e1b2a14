"""Benchmark of the CHSH counting in diqkd.estimation (rounds per second).

Prints the throughput of ``count_rounds`` and of a plain-numpy baseline (boolean masks per
(x, y, a, b) cell, 24 passes) measured in the same run, and their ratio. No assertions.
Usage: python bench/bench_estimation.py [--quick] [ROUNDS]   (--quick: 2e6 rounds)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from diqkd.estimation import count_rounds


def baseline(x, y, a, b):
    out = np.zeros((2, 3, 2, 2), dtype=np.int64)
    for i in range(2):
        for j in range(3):
            m = (x == i) & (y == j)
            for k in range(2):
                for ll in range(2):
                    out[i, j, k, ll] = np.count_nonzero(m & (a == k) & (b == ll))
    return out


def best(fn, *args, repeat=3):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn(*args)
        t.append(time.perf_counter() - t0)
    return min(t), r


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--quick"]
    n = int(float(args[0])) if args else (2_000_000 if "--quick" in sys.argv else 20_000_000)
    rng = np.random.default_rng(1)
    test = rng.random(n) < 0.1
    x = np.where(test, rng.integers(0, 2, n), 0).astype(np.uint8)
    y = np.where(test, rng.integers(0, 2, n), 2).astype(np.uint8)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    b = (a ^ (rng.random(n) < 0.03)).astype(np.uint8)
    t_fast, c1 = best(count_rounds, x, y, a, b)
    t_base, c2 = best(baseline, x, y, a, b)
    assert np.array_equal(c1, c2)
    print(f"rounds: {n:,}")
    print(f"count_rounds (bincount): {n / t_fast:,.0f} rounds/s")
    print(f"numpy mask baseline    : {n / t_base:,.0f} rounds/s")
    print(f"ratio                  : {t_base / t_fast:.1f}x")


if __name__ == "__main__":
    main()
