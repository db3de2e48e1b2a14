"""Benchmark of the emulator's record generation (rounds per second), in memory, chunked.

    python bench/bench_emulator.py [--rounds 8e6] [--json]

Prints rounds/s for a direct link (ustc-atoms-11km), a repeater chain with per-event memory
dephasing (repeater-chain-300km) and the LHV device, and the ratio against a plain numpy
baseline measured in the same run: drawing the same record arrays with ``rng.integers`` (x, a,
y, b, herald as uint8, t_ns as int64, plus the round numbers), in the same chunk size, reported
as the emulator's time over the baseline's time. Target:
>= 5e6 rounds/s for the direct link.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from diqkd.emulator import iter_emulate, load_link

CHUNK = 1 << 20


def _baseline(rounds: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    done = 0
    while done < rounds:
        n = min(CHUNK, rounds - done)
        cols = [rng.integers(0, 2, n, dtype=np.uint8) for _ in range(4)]
        cols.append(rng.integers(0, 3, n, dtype=np.uint8))
        cols.append(rng.integers(0, 1 << 40, n, dtype=np.int64))
        cols.append(np.arange(done, done + n, dtype=np.uint64))
        done += n
    return time.perf_counter() - t0


def _emulator(name: str, rounds: int, seed: int, device: str = "honest") -> float:
    link = load_link(name)
    t0 = time.perf_counter()
    n = 0
    for alice, _bob in iter_emulate(link, rounds, seed=seed, device=device, chunk_rows=CHUNK):
        n += len(alice)
    assert n == rounds
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=float, default=8e6)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true", help="1e6 rounds (make bench ARGS=--quick)")
    args = ap.parse_args(argv)
    rounds = int(1e6) if args.quick else int(args.rounds)
    _emulator("ustc-atoms-11km", 1 << 17, 0)  # warm-up (imports, caches)
    base = min(_baseline(rounds, s) for s in (1, 2))
    results = {"rounds": rounds, "baseline_rounds_per_s": rounds / base}
    for label, name, device in (("direct", "ustc-atoms-11km", "honest"),
                                ("chain", "repeater-chain-300km", "honest"),
                                ("lhv", "oxford-2022", "lhv")):
        t = min(_emulator(name, rounds, s, device) for s in (1, 2))
        results[f"{label}_rounds_per_s"] = rounds / t
        results[f"{label}_time_vs_baseline"] = t / base
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"emulator benchmark, {rounds:.3g} rounds, chunks of {CHUNK} (best of 2)")
        print(f"  numpy baseline (rng.integers of the same columns): "
              f"{results['baseline_rounds_per_s']:.3g} rounds/s")
        for label in ("direct", "chain", "lhv"):
            print(f"  {label:<7} {results[f'{label}_rounds_per_s']:.3g} rounds/s "
                  f"(time {results[f'{label}_time_vs_baseline']:.2f} x the baseline's)")
        ok = results["direct_rounds_per_s"] >= 5e6
        print(f"  target >= 5e6 rounds/s (direct): {'met' if ok else 'NOT met'}")
    return results


if __name__ == "__main__":
    main()
