"""Benchmark: Toeplitz privacy amplification throughput and peak memory.

    python bench/bench_amplification.py            # n = 1e6, 1e7, 1e8 (m = n / 2)
    python bench/bench_amplification.py --quick    # n = 1e6, 1e7 only

Each (size, implementation) runs in its own subprocess so that the peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) belongs to that run alone; the table shows the
peak above the process's resident size just before the hash (inputs already allocated).

Implementations:
* ``diqkd``    -- ``diqkd.amplification.ToeplitzHash`` (method "auto": float FFT, checked, exact);
* ``baseline`` -- a plain numpy float64 FFT convolution of the whole input and seed
  (``np.fft.rfft`` / ``irfft`` at ``scipy.fft.next_fast_len`` of the full linear length
  n + L - 1, so that numpy does not fall back to its slow prime-length algorithm),
  rounded and reduced mod 2. It is measured in the same run, so the *ratio* is meaningful on a
  noisy shared machine even when the absolute Mbit/s are not. Skipped at n = 1e8 (it needs about
  10 GiB).

Throughput is input bits per second (n / wall time). Times are the best of ``--repeat`` runs
after one warm-up call (the warm-up is skipped at n = 1e8). ``cpu s`` is the process CPU time
(all threads) of the best run: on a loaded machine it shows the work done, where the wall time
mostly shows the wait for a core. The diqkd key is compared with the baseline's key whenever
both ran.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from scipy.fft import next_fast_len


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _baseline(x: np.ndarray, m: int, seed: np.ndarray) -> np.ndarray:
    n = x.size
    sp = np.concatenate([seed[m:], seed[:m]]).astype(np.float64)
    full = n + sp.size - 1
    size = next_fast_len(full, real=True)
    c = np.fft.irfft(np.fft.rfft(sp, size) * np.fft.rfft(x.astype(np.float64), size), size)
    return (np.rint(c[n - 1 : n - 1 + m]).astype(np.int64) & 1).astype(np.uint8)


def worker(impl: str, n: int, repeat: int) -> dict:
    from diqkd import amplification as amp

    m = n // 2
    rng = np.random.default_rng(12345)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, amp.seed_length(n, m), dtype=np.uint8)
    if impl == "diqkd":
        h = amp.ToeplitzHash(n, m, seed)
        amp.toeplitz_hash(x[:100_000], 50_000, seed[:149_999], method="fft")  # JIT warm-up

        def fn():
            return h(x)
    else:

        def fn():
            return _baseline(x, m, seed)

    before = _rss_mib()
    times = []
    runs = repeat if n <= 10**7 else 1
    if n <= 10**7:
        fn()  # warm-up: thread pools, FFT plans, first touch of memory
    cpus = []
    for _ in range(runs):
        t0 = time.perf_counter()
        c0 = time.process_time()
        y = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "impl": impl,
        "n": n,
        "m": m,
        "seconds": min(times),
        "all_seconds": times,
        "cpu_seconds": min(cpus),
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "key_sha256": __import__("hashlib").sha256(np.packbits(y).tobytes()).hexdigest(),
    }
    if impl == "diqkd":
        d = h.describe()
        out["method_used"] = d.get("method_used")
        out["exact"] = d.get("exact")
        out["fft_max_residual"] = d.get("fft_max_residual")
        out["fft_error_bound"] = d.get("fft_error_bound")
        out["blocks"] = d.get("blocks")
    return out


def _run(impl: str, n: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, str(n), "--repeat", str(repeat)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return {"impl": impl, "n": n, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip n = 1e8")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeat)))
        return

    sizes = [10**6, 10**7] + ([] if args.quick else [10**8])
    print(f"Toeplitz hash, m = n/2, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    hdr = (
        f"{'n':>6} {'impl':>8} {'time s':>8} {'Mbit/s':>8} {'vs base':>8} {'cpu s':>7} "
        f"{'cpu vs':>7} {'peak MiB':>9} {'+MiB':>7}  notes"
    )
    print(hdr)
    print("-" * len(hdr))
    rows = []
    for n in sizes:
        ours = _run("diqkd", n, args.repeat)
        base = _run("baseline", n, args.repeat) if n <= 10**7 else None
        for r in (base, ours):
            if r is None:
                continue
            rows.append(r)
            if "error" in r:
                print(f"{n:>6.0e} {r['impl']:>8}  failed: {r['error']}")
                continue
            rate = n / r["seconds"] / 1e6
            ratio = cratio = ""
            if base is not None and "error" not in base:
                ratio = f"{base['seconds'] / r['seconds']:.2f}x"
                cratio = f"{base['cpu_seconds'] / r['cpu_seconds']:.2f}x"
            notes = ""
            if r["impl"] == "diqkd":
                notes = (
                    f"{r['method_used']}, exact={r['exact']}, "
                    f"residual={r['fft_max_residual']:.1e}, bound={r['fft_error_bound']:.1e}"
                )
                if base is not None and "error" not in base:
                    same = r["key_sha256"] == base["key_sha256"]
                    notes += f", key==baseline: {same}"
            print(
                f"{n:>6.0e} {r['impl']:>8} {r['seconds']:>8.3f} {rate:>8.1f} {ratio:>8} "
                f"{r['cpu_seconds']:>7.3f} {cratio:>7} "
                f"{r['peak_rss_mib']:>9.0f} {r['peak_rss_mib'] - r['rss_before_mib']:>7.0f}"
                f"  {notes}",
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
