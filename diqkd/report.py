"""The audit report: schema, assembly, canonical form, and the output directory.

The report is one JSON object (schema ``diqkd-report/1``, see ``docs/pipeline.md``) with every
figure a run depends on and produces, except key bits: inputs (file digests), protocol, seeds,
statistics, the Bell test, the transcript (digest and every message's length, leakage and digest),
leakage itemised with the reconciliation efficiency f, the epsilon budget, every term of the
finite-size bound, the Toeplitz layout and seed digest, code digests, key digests and lengths,
per-stage timings, verdict and abort reason.

Its *canonical form* (:func:`canonical_json`: sorted keys, no whitespace, ASCII) is what a
signature covers; a report re-read from disk has the same canonical form as the one written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diqkd.errors import ConfigError, InputError
from diqkd.fileio import TMP_PREFIX, atomic_write_bytes, fsync_dir

if TYPE_CHECKING:
    from diqkd.pipeline import Result
    from diqkd.protocol import Protocol

__all__ = [
    "REPORT_SCHEMA",
    "REPORT_NAME",
    "OUTPUT_NAMES",
    "VOLATILE",
    "build_report",
    "canonical_json",
    "flatten",
    "load_report",
    "write_report",
    "write_outputs",
    "clear_outputs",
    "prepare_out_dir",
    "jsonable",
]

REPORT_SCHEMA = "diqkd-report/1"
REPORT_NAME = "report.json"
SECRET_NAME = "alice.secret.json"
#: Every file a run writes (besides the emulated records); removed before new outputs are written.
#: The order matters for crash safety: the report goes first (a report never outlives the keys it
#: names), then the sidecars, then the key bytes, so a kill at any point of the removal leaves no
#: report or sidecar that points at a missing or different key.
OUTPUT_NAMES = (REPORT_NAME, SECRET_NAME, "alice.key.json", "bob.key.json", "alice.key",
                "bob.key")
#: Report entries that legitimately differ between two runs of the same inputs (audit ignores).
VOLATILE = ("created", "timings_s", "software", "inputs.alice.path", "inputs.bob.path",
            "reconciliation.seconds")

SECTIONS = ("inputs", "protocol", "seeds", "statistics", "bell_test", "transcript", "leakage",
            "reconciliation", "epsilon", "bound", "amplification", "keys", "verdict", "abort",
            "context")


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and objects with ``to_dict`` into JSON values."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, np.ndarray):
        if obj.size > 64:  # never dump bit arrays into a report
            return {"array": str(obj.dtype), "shape": list(obj.shape)}
        return jsonable(obj.tolist())
    if isinstance(obj, bytes):
        return {"bytes": len(obj)}
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    if isinstance(obj, int | str) or obj is None:
        return obj
    return str(obj)


def _h(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _leakage_section(state: Mapping[str, Any]) -> dict[str, Any]:
    channel = state["channel"]
    tr = channel.transcript
    by_kind = tr.leak_by_kind()
    total = tr.leak_bits()
    ec_bits = sum(v for k, v in by_kind.items() if k.startswith("ec-"))
    out: dict[str, Any] = {
        "total_bits": total,
        "ec_bits": ec_bits,
        "published_statistics_bits": by_kind.get("bell-verdict", 0),
        "by_message_kind": by_kind,
        "source": "sum of leak_bits declared by the transcript messages; total_bits enters "
                  "the key-length bound",
    }
    rec = state.get("reconciliation")
    if rec is not None and getattr(rec, "leakage", None) is not None:
        lk = jsonable(rec.leakage)
        out["itemised"] = lk
        out["reconciler_total_bits"] = lk.get("total") if isinstance(lk, dict) else None
    bt = state.get("bell_test")
    if bt is not None:
        n = bt["rounds"]
        tests = bt["test_rounds"]
        keys = n - tests
        q = bt["qber_after_preprocessing"]
        w = bt["win_fraction"]
        ideal = keys * _h(q) + tests * _h(1.0 - w)
        out["ideal_ec_bits"] = ideal
        out["ideal_formula"] = ("(n - n_test) h(Q') + n_test h(1 - omega_obs), Q' after "
                                "preprocessing, omega_obs from the reconciled string")
        out["efficiency_f"] = ec_bits / ideal if ideal > 0 else None
        out["per_round"] = total / n if n else None
    return out


def build_report(protocol: Protocol, state: Mapping[str, Any]) -> dict[str, Any]:
    """Assemble the report from the pipeline's state (see :mod:`diqkd.pipeline`)."""
    from diqkd.pipeline import Seeds

    seeds: Seeds = state["seeds"]
    channel = state["channel"]
    tr = channel.transcript
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "software": {
            "name": "diqkd",
            "version": state.get("software_version"),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "inputs": jsonable(state.get("inputs", {})),
        "protocol": protocol.to_dict(),
        "protocol_sha256": protocol.sha256,
        "seeds": {
            **seeds.to_dict(),
            "noise_seed_commitment": (state.get("preprocess") or {}).get(
                "noise_seed_commitment"),
            "noise_seed_note": "Alice's noisy-preprocessing seed is secret; only its SHA-256 "
                               "commitment is public (it is in alice.secret.json)",
        },
        "statistics": jsonable(state.get("statistics")),
        "bell_test": jsonable(state.get("bell_test")),
        "transcript": {
            **tr.summary(),
            "bob_view_sha256": channel.views["bob"].digest,
            "list": [m.summary() for m in tr],
        },
        "leakage": jsonable(_leakage_section(state)),
        "reconciliation": None,
        "epsilon": {**protocol.eps.to_dict()},
        "bound": None,
        "amplification": jsonable(state.get("amplification")),
        "keys": jsonable(state.get("keys")),
        "timings_s": {k: round(v, 6) for k, v in state.get("timings", {}).items()},
        "verdict": state.get("verdict"),
        "abort": state.get("abort"),
        "context": jsonable(state.get("context") or {}),
    }
    rec = state.get("reconciliation")
    if rec is not None:
        d = jsonable(rec.to_dict()) if hasattr(rec, "to_dict") else {}
        if isinstance(d, dict):
            d.pop("bob_corrected", None)
        d["code_digests"] = jsonable(getattr(rec, "code_digests", d.get("code_digests")))
        report["reconciliation"] = d
    bound = state.get("bound")
    if bound is not None:
        report["bound"] = jsonable(bound.to_dict() if hasattr(bound, "to_dict") else bound)
        for k in ("eps_sec", "eps_cor"):
            if hasattr(bound, k):
                report["epsilon"][k] = jsonable(getattr(bound, k))
    return report


def canonical_json(report: Mapping[str, Any]) -> bytes:
    """The canonical byte form of a report (what a signature covers)."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.0.c": value}`` for every leaf of a JSON value."""
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        if not obj and prefix:
            out[prefix] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        if not obj and prefix:
            out[prefix] = []
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix] = obj
    return out


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a report; unknown schema versions and malformed files are :class:`InputError`."""
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise InputError("report file not found", file=str(p)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"report is not valid JSON: {exc}", file=str(p)) from None
    if not isinstance(data, dict):
        raise InputError("report must be a JSON object", file=str(p))
    schema = data.get("schema")
    if schema != REPORT_SCHEMA:
        raise InputError(f"unknown report schema version (this diqkd reads {REPORT_SCHEMA!r})",
                         file=str(p), field="schema", value=schema)
    return data


def write_report(path: str | os.PathLike[str], report: Mapping[str, Any]) -> Path:
    text = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode(), 0o644)
    return Path(path)


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` (mode 0750) if needed; refuse a world-writable directory."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise ConfigError(f"output path {str(d)!r} exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True, mode=0o750)
    mode = d.stat().st_mode
    if mode & stat.S_IWOTH:
        raise ConfigError(f"output directory {str(d)!r} is world-writable (mode "
                          f"{stat.S_IMODE(mode):o}); keys are not written there")
    if not os.access(d, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {str(d)!r} is not writable")
    return d


def clear_outputs(out_dir: str | os.PathLike[str]) -> None:
    """Remove a previous run's outputs and crash leftovers (temp files) from ``out_dir``."""
    d = Path(out_dir)
    for name in OUTPUT_NAMES:
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()
    for stale in d.glob(TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            stale.unlink()
    fsync_dir(d)  # the removals reach the disk before any new output is written


def write_outputs(out_dir: str | os.PathLike[str], result: Result) -> dict[str, Path]:
    """Write a run's outputs: keys and sidecars (only with a key), Alice's secret, the report.

    Previous outputs are removed first, so an abort never leaves an older key behind; every file
    is written atomically, keys with mode 0600, and the report last.
    """
    from diqkd.keys import write_key

    d = prepare_out_dir(out_dir)
    clear_outputs(d)
    paths: dict[str, Path] = {}
    digest = result.report.get("transcript", {}).get("sha256_chain")
    try:
        if result.ok:
            if result.key_alice is None or result.key_bob is None:  # pragma: no cover
                raise RuntimeError("a run with verdict 'key' has no keys")
            if not result.key_alice.same_as(result.key_bob):  # pragma: no cover - checked
                raise RuntimeError("refusing to write keys that differ")
            paths["alice_key"], paths["alice_sidecar"] = write_key(d, "alice", result.key_alice,
                                                                   digest)
            paths["bob_key"], paths["bob_sidecar"] = write_key(d, "bob", result.key_bob, digest)
        if result.noise_seed is not None:
            secret = {"format": "diqkd-secret/1", "role": "alice",
                      "noise_seed": str(result.noise_seed),
                      "commitment": result.report["seeds"].get("noise_seed_commitment")}
            atomic_write_bytes(d / SECRET_NAME, (json.dumps(secret, indent=2) + "\n").encode(),
                               0o600)
            paths["alice_secret"] = d / SECRET_NAME
        paths["report"] = write_report(d / REPORT_NAME, result.report)
    except BaseException:
        # disk full, permission denied, interrupted: leave no incomplete set of outputs
        clear_outputs(d)
        raise
    return paths
