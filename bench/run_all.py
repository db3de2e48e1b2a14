"""Run every ``bench/bench_*.py`` in its own subprocess, in name order, and print their tables.

Usage: python bench/run_all.py [--quick]
``--quick`` is passed through to every benchmark (smaller sizes). Exits non-zero if any
benchmark fails (the others still run).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    unknown = [a for a in argv if a != "--quick"]
    if unknown:
        print(f"usage: {Path(__file__).name} [--quick] (unknown: {' '.join(unknown)})",
              file=sys.stderr)
        return 2
    scripts = sorted(HERE.glob("bench_*.py"))
    failed = []
    for script in scripts:
        print(f"=== {script.name}{' --quick' if quick else ''}", flush=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, str(script)] + (["--quick"] if quick else [])
        rc = subprocess.run(cmd, cwd=HERE.parent).returncode
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"--- {script.name}: {status} in {time.perf_counter() - t0:.1f} s\n", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"{len(failed)} of {len(scripts)} benchmark(s) failed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    print(f"all {len(scripts)} benchmark(s) ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
