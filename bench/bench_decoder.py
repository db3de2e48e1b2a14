"""Decoder-only benchmark: the scalar and the SIMD (frame-interleaved) kernel on the SAME frames.

For every QBER: the library code and puncturing the adaptive protocol would use at a target
efficiency f (default 1.15: syndrome net of the punctured pad bits = f k h(Q) for k = 0.9 n
payload bits, mother code = the smallest m >= f k h(Q) among the library's codes of the newest
construction version offered at that length (``codes.available_codes``: the DE-designed
version-2 codes from 1e5 bits, the version-1 codes below; ``--version 1`` gives the version-1
codes, rates 0.50-0.90, which the benchmark used up to 0.6.2), shortened positions fill the rest),
``--frames`` random frames (BSC(Q) on the payload, prior LLR 0 on punctured and +LLR_KNOWN on
shortened positions, exactly as ``protocol.BobReconciler._llr`` builds them). Both kernels decode
the same batch with 1 and 2 threads, alternately, ``--repeat`` times (the minimum time is kept:
the machine is shared, so only ratios within one run mean anything).

Printed per (QBER, threads, kernel): payload Mbit/s (wall), ns per edge and frame-iteration
(process CPU time / (E x sum of iterations)), mean iterations, FER (frames not converged to
Alice's bits), and the SIMD / scalar throughput ratio; plus the agreement of the two kernels on
the frames both decoded (decoded bits identical). The SIMD kernel also runs a third time with
``prefetch=0`` (no software prefetch of the next check's posteriors): the "prefetch" column is
the SIMD throughput with prefetching over that without, and the run fails unless both give the
same bits and iterations for every frame (prefetching is a hint; it changes no result).

Usage: python bench/bench_decoder.py [--quick] [--qber 2 3.6 5] [--f 1.15] [--frames 24]
       [--n 100000] [--threads 1 2] [--algorithm sum-product] [--repeat 2] [--version V]
       [--json out.json]
Set NUMBA_NUM_THREADS >= the largest --threads value (default: all cores).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diqkd.reconciliation import codes as code_lib  # noqa: E402
from diqkd.reconciliation import decode, h2  # noqa: E402
from diqkd.reconciliation.decoder import LLR_KNOWN, llr_from_error_prob  # noqa: E402
from diqkd.reconciliation.protocol import _layout, _short_perm, punctured_order  # noqa: E402


def library_rates(n: int, version: int | None = None) -> list[float]:
    """Rates of the library's codes at length n of one construction version (default: newest)."""
    specs = code_lib.available_codes((n,))
    by_version: dict[int, list[float]] = {}
    for s in specs:
        by_version.setdefault(code_lib.construction_version(s.family, s.rate), []).append(s.rate)
    if not by_version:
        raise SystemExit(f"no library code at n = {n}")
    v = max(by_version) if version is None else version
    if v not in by_version:
        raise SystemExit(f"no library code of version {v} at n = {n} (have {sorted(by_version)})")
    return sorted(by_version[v])


def make_frames(n: int, q: float, f: float, frames: int, seed: int, modulation: float = 0.1,
                version: int | None = None):
    """Code, frames and priors as the adaptive protocol builds them at target efficiency f."""
    k = n - int(round(modulation * n))
    hk = f * k * h2(q)
    fits = [r for r in library_rates(n, version) if round(n * (1 - r)) >= hk]
    if not fits:
        raise SystemExit(f"no library code at n = {n} has m >= f k h(Q) = {hk:.0f}")
    rate = max(fits)  # smallest m >= f k h(Q)
    code = code_lib.get_code(rate, n)
    pun = punctured_order(code, 0)
    short = _short_perm(code, pun, 0)
    p = int(min(n - k, pun.size, max(0, math.floor(code.m - hk))))
    lay = _layout(code, k, p, pun, short)
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, (frames, n), dtype=np.uint8)
    X[:, lay.shortened] = 0
    Y = X ^ (rng.random((frames, n)) < q).astype(np.uint8)
    llr = llr_from_error_prob(Y, np.full(n, q))
    llr[:, lay.punctured] = 0.0
    llr[:, lay.shortened] = LLR_KNOWN
    syn = np.stack([code.syndrome(x) for x in X])
    f_real = (code.m - p) / (k * h2(q))
    return code, X, syn, llr, {"rate": rate, "k": k, "punctured": p, "code": code.name,
                               "shortened": int(lay.shortened.size), "f": f_real}


#: the decoder configurations timed against each other (name -> decode keywords)
VARIANTS: dict[str, dict] = {"scalar": {"kernel": "scalar"}, "simd": {"kernel": "simd"},
                             "simd-noprefetch": {"kernel": "simd", "prefetch": 0}}


def run_point(code, X, syn, llr, k: int, threads: int, algorithm: str, max_iter: int,
              repeat: int) -> dict:
    out: dict = {}
    results = {}
    for kw in VARIANTS.values():  # compile / warm up outside the timing
        decode(code, syn[:1], llr[:1], max_iterations=1, threads=threads, algorithm=algorithm,
               **kw)
    for _ in range(repeat):
        for kernel, kw in VARIANTS.items():
            t0, c0 = time.perf_counter(), time.process_time()
            res = decode(code, syn, llr, algorithm=algorithm, max_iterations=max_iter,
                         threads=threads, **kw)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best = out.get(kernel)
            if best is None or wall < best["wall_s"]:
                ok = res.converged & (res.bits == X).all(axis=1)
                its = int(res.iterations.sum())
                out[kernel] = {
                    "wall_s": wall, "cpu_s": cpu, "mbps": X.shape[0] * k / wall / 1e6,
                    "ns_per_edge_iter": cpu / (code.edges * max(its, 1)) * 1e9,
                    "iterations_mean": its / X.shape[0], "fer": float(1 - ok.mean()),
                    "failed": int((~ok).sum()),
                }
            results[kernel] = res
    a, b = results["scalar"], results["simd"]
    both = a.converged & b.converged
    out["ratio"] = out["simd"]["mbps"] / out["scalar"]["mbps"]
    out["both_converged"] = int(both.sum())
    out["bits_identical"] = int(sum(np.array_equal(a.bits[i], b.bits[i])
                                    for i in np.flatnonzero(both)))
    out["converged_only_scalar"] = int((a.converged & ~b.converged).sum())
    out["converged_only_simd"] = int((b.converged & ~a.converged).sum())
    c = results["simd-noprefetch"]
    if not (np.array_equal(b.bits, c.bits) and np.array_equal(b.iterations, c.iterations)):
        raise RuntimeError("prefetching changed the SIMD kernel's result")
    out["prefetch_gain"] = out["simd"]["mbps"] / out["simd-noprefetch"]["mbps"]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 1e4, QBER 2 and 5 %%, 16 frames")
    ap.add_argument("--qber", type=float, nargs="*", help="percent (default 2 3.6 5)")
    ap.add_argument("--f", type=float, default=1.15, help="target efficiency (default 1.15)")
    ap.add_argument("--frames", type=int)
    ap.add_argument("--n", type=int)
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--algorithm", default="sum-product")
    ap.add_argument("--max-iterations", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--version", type=int,
                    help="code construction version (default: the newest offered at n; "
                         "1: the rates 0.50-0.90)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    n = args.n or (10_000 if args.quick else 100_000)
    qbers = args.qber or ([2.0, 5.0] if args.quick else [2.0, 3.6, 5.0])
    frames = args.frames or (16 if args.quick else 24)
    rows = []
    print(f"decoder-only, {args.algorithm}, n = {n}, {frames} frames / point, target f = "
          f"{args.f}, max {args.max_iterations} iterations, best of {args.repeat}")
    print(f"{'QBER%':>6} {'code':>6} {'f':>6} {'thr':>3} | {'scalar Mbit/s':>13} "
          f"{'ns/e-it':>7} {'iters':>6} {'FER':>6} | {'simd Mbit/s':>11} {'ns/e-it':>7} "
          f"{'iters':>6} {'FER':>6} | {'ratio':>5} | {'prefetch':>8} | bits identical")
    for qp in qbers:
        code, X, syn, llr, info = make_frames(n, qp / 100, args.f, frames, args.seed,
                                             version=args.version)
        for th in args.threads:
            r = run_point(code, X, syn, llr, info["k"], th, args.algorithm,
                          args.max_iterations, args.repeat)
            s, v = r["scalar"], r["simd"]
            print(f"{qp:>6} {info['rate']:>6} {info['f']:>6.3f} {th:>3} | {s['mbps']:>13.3f} "
                  f"{s['ns_per_edge_iter']:>7.2f} {s['iterations_mean']:>6.1f} "
                  f"{s['fer']:>6.3f} | {v['mbps']:>11.3f} {v['ns_per_edge_iter']:>7.2f} "
                  f"{v['iterations_mean']:>6.1f} {v['fer']:>6.3f} | {r['ratio']:>5.2f} | "
                  f"{r['prefetch_gain']:>8.2f} | "
                  f"{r['bits_identical']}/{r['both_converged']}"
                  + (f" (only scalar {r['converged_only_scalar']}, only simd "
                     f"{r['converged_only_simd']})"
                     if r["converged_only_scalar"] or r["converged_only_simd"] else ""),
                  flush=True)
            rows.append({"qber": qp, "n": n, "threads": th, "frames": frames,
                         "code_digest": code.digest, **info, **r})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
