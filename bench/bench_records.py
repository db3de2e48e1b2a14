"""Benchmark: read and validate records from HDF5, against loading the same arrays from .npy.

Writes N rounds of Alice's and Bob's records (with timestamps, Bob with heralds) to HDF5 in a
temporary directory, plus every column as a plain ``.npy`` file, then times (best of 3):

* ``np.load`` of the ``.npy`` files (no validation): the baseline;
* ``read_records`` (whole file, full validation: dtypes, ranges, strict round order);
* ``iter_records`` (chunks of 2**20 rows, same validation, bounded memory);

and reports rounds per second per party file and per round of *both* parties (Alice's file and
Bob's file read), with the ratio against the ``.npy`` baseline of the same run. A second table
compares HDF5 filters for the same data (the library uses ``formats.HDF5_FILTERS``).
No assertions; the target is >= 2e7 rounds/s read-and-validate.

Usage: python bench/bench_records.py [--quick] [--rounds N] [--no-filters]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.records import Records, iter_records, read_records, write_records
from diqkd.records import formats as formats_mod

TARGET = 2e7


def make(n: int, seed: int = 1) -> tuple[Records, Records]:
    rng = np.random.default_rng(seed)
    # Heralded rounds of a repeater link: a sparse increasing subset of attempts, in time order.
    rounds = np.cumsum(rng.geometric(0.3, n)).astype(np.uint64)
    t_ns = (rounds.astype(np.int64) * 2_000 + rng.integers(0, 50, n)).astype(np.int64)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    y = np.where(x == 0, rng.integers(0, 3, n, dtype=np.uint8), rng.integers(0, 2, n,
                                                                           dtype=np.uint8))
    alice = Records("alice", {"round": rounds, "x": x, "a": rng.integers(0, 2, n, dtype=np.uint8),
                              "t_ns": t_ns}, {"bench": True})
    bob = Records("bob", {"round": rounds, "y": y, "b": rng.integers(0, 2, n, dtype=np.uint8),
                          "herald": rng.integers(0, 2, n, dtype=np.uint8), "t_ns": t_ns + 3},
                  {"bench": True})
    return alice, bob


def best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1e6 rounds instead of 1e7")
    ap.add_argument("--rounds", type=float, default=None)
    ap.add_argument("--no-filters", action="store_true", help="skip the filter comparison")
    args = ap.parse_args()
    n = int(args.rounds or (1e6 if args.quick else 1e7))
    alice, bob = make(n)
    with tempfile.TemporaryDirectory(prefix="diqkd-bench-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        write_records(tmp / "alice.h5", alice)
        write_records(tmp / "bob.h5", bob)
        t_write = time.perf_counter() - t0
        npy = []
        for rec in (alice, bob):
            for name, arr in rec.columns.items():
                p = tmp / f"{rec.party}_{name}.npy"
                np.save(p, arr)
                npy.append(p)
        size_h5 = sum(os.path.getsize(tmp / f) for f in ("alice.h5", "bob.h5"))
        size_npy = sum(os.path.getsize(p) for p in npy)
        del alice, bob

        def load_npy() -> None:
            for p in npy:
                np.load(p)

        def full() -> None:
            for f in ("alice.h5", "bob.h5"):
                assert len(read_records(tmp / f)) == n

        def chunked() -> None:
            for f in ("alice.h5", "bob.h5"):
                assert sum(len(c) for c in iter_records(tmp / f)) == n

        load_npy()  # warm the page cache for all three
        t_npy = best(load_npy)
        t_full = best(full)
        t_chunk = best(chunked)

        print(f"records read-and-validate, {n:.3g} rounds per party, HDF5 filter "
              f"{formats_mod.HDF5_FILTERS}, chunk {formats_mod.HDF5_CHUNK_ROWS} rows")
        print(f"HDF5 {size_h5 / 1e6:.1f} MB (npy {size_npy / 1e6:.1f} MB), "
              f"write both {t_write:.2f} s; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        print(f"{'method':<32}{'time s':>9}{'rounds/s (per file)':>22}"
              f"{'rounds/s (A+B)':>17}{'x npy time':>12}")
        for label, t in (("np.load .npy (no validation)", t_npy),
                         ("read_records (HDF5, validated)", t_full),
                         ("iter_records 2^20 (validated)", t_chunk)):
            print(f"{label:<32}{t:>9.3f}{2 * n / t:>22.3g}{n / t:>17.3g}{t / t_npy:>12.2f}")
        print(f"target {TARGET:.0e} rounds/s per file: "
              f"{'met' if 2 * n / t_full >= TARGET else 'NOT met'} (whole file), "
              f"{'met' if 2 * n / t_chunk >= TARGET else 'NOT met'} (chunked); "
              f"both parties' rounds: {'met' if n / t_full >= TARGET else 'NOT met'}")

        if args.no_filters:
            return
        print()
        print("HDF5 filter comparison (read_records of both files, validated)")
        print(f"(load average {os.getloadavg()[0]:.1f})")
        print(f"{'filter':<28}{'MB':>8}{'time s':>9}{'rounds/s (per file)':>22}")
        alice, bob = make(n)
        options: list[tuple[str, dict[str, Any]]] = [
            ("none", {}),
            ("scaleoffset", {"scaleoffset": 0}),
            ("shuffle+lzf", {"shuffle": True, "compression": "lzf"}),
            ("shuffle+gzip1", {"shuffle": True, "compression": "gzip", "compression_opts": 1}),
            ("shuffle+gzip1+fletcher32 (library)", formats_mod.HDF5_FILTERS),
        ]
        saved = formats_mod.HDF5_FILTERS
        try:
            for label, filt in options:
                formats_mod.HDF5_FILTERS = filt
                sub = tmp / label.split()[0]
                sub.mkdir()
                write_records(sub / "alice.h5", alice)
                write_records(sub / "bob.h5", bob)
                size = sum(os.path.getsize(sub / f) for f in ("alice.h5", "bob.h5"))

                def read(sub: Path = sub) -> None:
                    for f in ("alice.h5", "bob.h5"):
                        read_records(sub / f)

                t = best(read)
                print(f"{label:<28}{size / 1e6:>8.1f}{t:>9.3f}{2 * n / t:>22.3g}")
                for f in ("alice.h5", "bob.h5"):
                    (sub / f).unlink()
        finally:
            formats_mod.HDF5_FILTERS = saved


if __name__ == "__main__":
    main()
