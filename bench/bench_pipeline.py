"""End-to-end pipeline benchmark: rounds/s of ``diqkd.run`` on emulated records, per stage.

    python bench/bench_pipeline.py            # 1e7 rounds (oxford-2022 link)
    python bench/bench_pipeline.py --quick    # 1e6 rounds
    python bench/bench_pipeline.py --json

The records are emulated into a temporary directory first (not part of the timed pipeline).
Baseline, measured in the same run: reading and validating both record files
(``diqkd.records.formats.read_records``), i.e. the least any pipeline must do; the table gives
the end-to-end time as a multiple of it. Target: >= 1e6 rounds/s end to end (issue 7).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1e6


class _Collect:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def stage_start(self, stage: str) -> None:
        pass

    def stage_end(self, stage: str, seconds: float, info: str = "") -> None:
        self.rows.append((stage, seconds, info))

    def update(self, stage: str, done: float, total: float) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1e6 rounds instead of 1e7")
    ap.add_argument("--rounds", type=float, default=None, help="rounds (overrides --quick)")
    ap.add_argument("--preset", default="oxford-2022")
    ap.add_argument("--protocol", default=None, help="protocol TOML (default: the default job's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--keep", default=None, help="directory for records/outputs (kept)")
    args = ap.parse_args(argv)
    n = int(args.rounds if args.rounds else (1e6 if args.quick else 1e7))

    from diqkd.emulator import emulate_to_files, load_link
    from diqkd.pipeline import load_protocol, run
    from diqkd.records.formats import read_records
    from diqkd_cli.run import default_protocol

    link = load_link(args.preset)
    proto = load_protocol(args.protocol) if args.protocol else default_protocol(args.preset, link)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="diqkd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    a, b = emulate_to_files(link, n, work, seed=args.seed, test_probability=proto.gamma)
    t_emulate = time.perf_counter() - t0

    # warm-up on a small slice so that one-off JIT compilation is not charged to the run
    from diqkd.emulator import emulate

    wa, wb = emulate(link, 20_000, seed=args.seed + 1, test_probability=proto.gamma)
    run(wa, wb, proto, seed=0)

    t0 = time.perf_counter()
    ra = read_records(a, party="alice")
    rb = read_records(b, party="bob")
    t_read = time.perf_counter() - t0
    del ra, rb

    col = _Collect()
    t0 = time.perf_counter()
    res = run(a, b, proto, seed=args.seed, progress=col)
    t0w = time.perf_counter()
    res.write(work / "out")
    col.rows.append(("write", time.perf_counter() - t0w, ""))
    total = time.perf_counter() - t0
    rate = n / total
    out = {
        "rounds": n,
        "preset": args.preset,
        "cpus": os.cpu_count(),
        "emulate_s": t_emulate,
        "baseline_read_s": t_read,
        "baseline_rounds_per_s": n / t_read,
        "total_s": total,
        "rounds_per_s": rate,
        "ratio_to_baseline": total / t_read,
        "target_rounds_per_s": TARGET,
        "meets_target": rate >= TARGET,
        "stages": {s: t for s, t, _ in col.rows},
        "verdict": res.verdict,
        "key_bits": res.key_bits,
        "leak_bits": res.report["leakage"]["total_bits"],
        "efficiency_f": res.report["leakage"].get("efficiency_f"),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"diqkd pipeline benchmark: {n:,} rounds of {args.preset} "
              f"(emulated in {t_emulate:.1f} s, not timed below)")
        print(f"{'stage':<12} {'seconds':>9} {'share':>7} {'rounds/s':>12}")
        for s, t, _ in col.rows:
            print(f"{s:<12} {t:9.3f} {t / total:7.1%} {n / t if t > 0 else float('inf'):12.3g}")
        print(f"{'total':<12} {total:9.3f} {1:7.0%} {rate:12.3g}")
        print(f"baseline: read + validate both files {t_read:.3f} s ({n / t_read:.3g} rounds/s); "
              f"end to end = {total / t_read:.1f} x baseline")
        print(f"verdict {res.verdict}, key {res.key_bits:,} bits, leakage "
              f"{out['leak_bits']:,} bits, f = {out['efficiency_f']}")
        print(f"target >= {TARGET:.0e} rounds/s: {'MET' if rate >= TARGET else 'NOT MET'} "
              f"({rate:.3g} rounds/s)")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
