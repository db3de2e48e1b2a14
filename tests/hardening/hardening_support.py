"""Shared helpers of the hardening tests (issue 8): records that yield a key fast, CLI runners,
the output-directory invariants, and the counters that end up in ``docs/reliability.md``.

Counts: every test that tries cases, trials or detections calls :func:`count`; at the end of the
session ``conftest.py`` writes them to ``$DIQKD_HARDENING_COUNTS`` (default:
``hardening-counts.json`` in pytest's base temp directory) and prints them in the terminal
summary (visible without ``-s``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from test_pipeline_support import sample as pipeline_sample

from diqkd.fileio import TMP_PREFIX
from diqkd.protocol import Protocol
from diqkd.records import Records

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: The installed console script (the real product entry point).
DIQKD = str(Path(sys.executable).with_name("diqkd"))

#: Names of everything a run writes besides the records (see diqkd.report.OUTPUT_NAMES).
KEY_FILES = ("alice.key", "alice.key.json", "bob.key", "bob.key.json")
OUTPUT_FILES = KEY_FILES + ("alice.secret.json", "report.json")

# -------------------------------------------------------------------------------------------------
# counters
# -------------------------------------------------------------------------------------------------
_COUNTS: dict[str, dict[str, int]] = {}
_LOCK = threading.Lock()


def count(section: str, **items: int) -> None:
    """Add to the named counters of ``section`` (e.g. count("kill", trials=1, clean=1))."""
    with _LOCK:
        sec = _COUNTS.setdefault(section, {})
        for k, v in items.items():
            sec[k] = sec.get(k, 0) + int(v)


def counts() -> dict[str, dict[str, int]]:
    with _LOCK:
        return {k: dict(v) for k, v in _COUNTS.items()}


# -------------------------------------------------------------------------------------------------
# records and protocols
# -------------------------------------------------------------------------------------------------
#: A link and protocol that certify a (small) key quickly with the current code library: 3e5
#: i.i.d. rounds at S = 2.828, QBER 0.1 %, gamma 0.05, epsilons 1e-2, 10^4-bit frames (about
#: 60 kbit of key in ~1.5 s). Test-only epsilons; the point is a real key through every stage.
KEY_N = 300_000
KEY_LINK = {"S": 2.828, "qber": 0.001}
KEY_GAMMA = 0.05
KEY_EPS = 1e-2
FRAME = 10_000


def sample(n: int, *, S: float = KEY_LINK["S"], qber: float = KEY_LINK["qber"],
           gamma: float = KEY_GAMMA, seed: int = 0, lhv: bool = False,
           first_round: int = 5, step: int = 2) -> tuple[Records, Records]:
    """Alice's and Bob's records of n i.i.d. rounds with CHSH value S and key-round QBER, with
    timestamps (the pipeline tests' sampler, with the hardening defaults)."""
    return pipeline_sample(n, S=S, qber=qber, gamma=gamma, seed=seed, lhv=lhv,
                           first_round=first_round, step=step, timestamps=True)


def protocol_dict(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "hardening",
        "gamma": KEY_GAMMA,
        "expected": dict(KEY_LINK),
        "epsilon": {"eps_s": KEY_EPS, "eps_pa": KEY_EPS, "eps_ea": KEY_EPS, "eps_cor": KEY_EPS,
                    "eps_complete": 1e-2},
        "ec": {"frame_length": FRAME},
    }
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return data


def key_protocol(**changes: Any) -> Protocol:
    return Protocol.from_dict(protocol_dict(**changes))


def write_inputs(directory: Path, alice: Records, bob: Records, proto: Protocol,
                 fmt: str = "h5") -> tuple[Path, Path, Path]:
    from diqkd.records import write_records

    directory.mkdir(parents=True, exist_ok=True)
    a, b, p = directory / f"alice.{fmt}", directory / f"bob.{fmt}", directory / "protocol.toml"
    write_records(a, alice)
    write_records(b, bob)
    p.write_text(proto.to_toml())
    return a, b, p


# -------------------------------------------------------------------------------------------------
# running the CLI
# -------------------------------------------------------------------------------------------------
def cli_invoke(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the click application in-process (the same code as the script); (code, out, err).

    An exception escaping the click application (which maps every exception to an exit code)
    is re-raised: it would be a traceback for the user.
    """
    from diqkd_cli.main import cli

    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def cli_subprocess(args: Sequence[str], *, timeout: float = 300, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None,
                   preexec_fn: Any = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e.pop("DIQKD_DEBUG", None)
    e.update(env or {})
    return subprocess.run([DIQKD, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=e, preexec_fn=preexec_fn)


# -------------------------------------------------------------------------------------------------
# output-directory invariants
# -------------------------------------------------------------------------------------------------
def leftovers(out_dir: Path, allowed: Sequence[str] = ()) -> list[str]:
    """Files in ``out_dir`` that a failed command must not leave behind: key files, sidecars,
    report, secret, temp files (and anything else not in ``allowed``)."""
    if not out_dir.exists():
        return []
    return sorted(p.name for p in out_dir.iterdir() if p.name not in allowed)


def check_consistent(out_dir: Path) -> dict[str, Any]:
    """The crash invariant of an output directory, whatever moment a run was stopped at.

    * every key file present is complete: its sidecar exists, parses, and its length and SHA-256
      match the key bytes (a sidecar without its key, or the reverse, is a violation);
    * a report present parses, has the known schema, and when its verdict is "key" both keys
      and sidecars are present and match the report's digests; after an abort no key file exists;
    * temp files (``.diqkd-tmp-*``) are tolerated (never under a real output name).

    Returns a small summary (which files were present) or raises AssertionError.
    """
    import hashlib

    names = {p.name for p in out_dir.iterdir()} if out_dir.exists() else set()
    state: dict[str, Any] = {"files": sorted(n for n in names if not n.startswith(TMP_PREFIX)),
                             "tmp": sorted(n for n in names if n.startswith(TMP_PREFIX))}
    for role in ("alice", "bob"):
        k, s = f"{role}.key", f"{role}.key.json"
        if s in names:
            side = json.loads((out_dir / s).read_text())
            assert k in names, f"{s} without {k}"
            raw = (out_dir / k).read_bytes()
            assert len(raw) == side["bytes"] == (side["bits"] + 7) // 8, f"{k} is partial"
            assert hashlib.sha256(raw).hexdigest() == side["sha256"], f"{k} digest != sidecar"
            state[role] = side["sha256"]
        elif k in names:
            # the key is renamed into place before its sidecar is written: a key without a
            # sidecar is only acceptable when it is complete, which we cannot check; flag it
            state[f"{role}_orphan"] = True
    if "report.json" in names:
        rep = json.loads((out_dir / "report.json").read_text())
        assert rep.get("schema") == "diqkd-report/1"
        state["verdict"] = rep.get("verdict")
        if rep.get("verdict") == "key":
            for role in ("alice", "bob"):
                assert state.get(role) == rep["keys"][f"{role}_sha256"], \
                    f"report says key, {role}'s key file missing or different"
        else:
            assert not (names & set(KEY_FILES)), "key files next to an abort report"
    return state
