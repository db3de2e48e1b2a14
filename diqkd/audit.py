"""Audit: replay a run from its report and inputs, and sign/check reports with Ed25519.

:func:`verify` reruns every stage from the recorded inputs, protocol and seeds and compares every
figure of the new report with the recorded one (all leaves of the JSON except the volatile entries
of :data:`diqkd.report.VOLATILE`: creation time, timings, software and file paths). It also checks
the input files' digests and, given the key directory, the key files against the report.

Signatures: :func:`sign` writes a detached Ed25519 signature over the report's canonical JSON
(:func:`diqkd.report.canonical_json`) as a small JSON file; :func:`check_signature` verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diqkd.errors import InputError
from diqkd.fileio import atomic_write_bytes
from diqkd.report import SECTIONS, VOLATILE, canonical_json, flatten, load_report

__all__ = [
    "AuditResult",
    "Mismatch",
    "SIGNATURE_FORMAT",
    "verify",
    "replay",
    "check_keys",
    "compare_reports",
    "keygen",
    "sign",
    "check_signature",
]

SIGNATURE_FORMAT = "diqkd-signature/1"


@dataclass(frozen=True)
class Mismatch:
    """One figure that differs: its path in the report, the recorded and the recomputed value."""

    path: str
    recorded: Any
    recomputed: Any

    def describe(self) -> str:
        return (f"{self.path}: recorded {_short(self.recorded)}, "
                f"recomputed {_short(self.recomputed)}")


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 70 else s[:67] + "..."


@dataclass
class AuditResult:
    """Rows of (check, passed, detail) and every mismatching figure."""

    rows: list[tuple[str, bool, str]] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    figures_compared: int = 0

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.rows) and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "figures_compared": self.figures_compared,
            "checks": [{"check": c, "pass": ok, "detail": d} for c, ok, d in self.rows],
            "mismatches": [{"figure": m.path, "recorded": m.recorded, "recomputed": m.recomputed}
                           for m in self.mismatches],
        }


def _volatile(path: str) -> bool:
    return any(path == v or path.startswith(v + ".") for v in VOLATILE)


def compare_reports(recorded: dict[str, Any], recomputed: dict[str, Any]) -> tuple[
        list[Mismatch], int]:
    """Every non-volatile leaf that differs (missing on either side counts), and the count."""
    fa = {k: v for k, v in flatten(recorded).items() if not _volatile(k)}
    fb = {k: v for k, v in flatten(recomputed).items() if not _volatile(k)}
    out = []
    missing = object()
    for k in sorted(set(fa) | set(fb)):
        a, b = fa.get(k, missing), fb.get(k, missing)
        if not _equal(a, b):
            out.append(Mismatch(k, None if a is missing else a, None if b is missing else b))
    return out, len(set(fa) | set(fb))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (isinstance(a, float) and isinstance(b, float) and repr(a) == repr(b))
    return bool(a == b) and type(a) is type(b)


def _section(path: str) -> str:
    return path.split(".", 1)[0]


def _report_protocol(rec: Mapping[str, Any], report: Any) -> Any:
    """The protocol recorded in a report; errors name the report file and the section."""
    from diqkd.protocol import Protocol

    name = "report" if isinstance(report, dict) else str(report)
    try:
        return Protocol.from_dict(rec["protocol"], source=f"{name} [protocol]")
    except (KeyError, TypeError) as exc:
        raise InputError("report has no valid protocol section", file=name,
                         field="protocol") from exc


def replay(
    report: str | os.PathLike[str] | dict[str, Any],
    alice: str | os.PathLike[str],
    bob: str | os.PathLike[str],
    *,
    noise_seed: int | None = None,
    progress: Any = None,
) -> Any:
    """Rerun the recorded run on the files ``alice`` and ``bob``; returns the new Result.

    The protocol comes from the report's ``protocol`` section, the master seed (and its recorded
    source) from ``seeds``, ``drop_unmatched`` from ``inputs`` and the context as recorded.
    """
    from diqkd.pipeline import Seeds, run

    rec = load_report(report) if not isinstance(report, dict) else report
    proto = _report_protocol(rec, report)
    seeds = rec.get("seeds") or {}
    master = seeds.get("master")
    if not isinstance(master, int) or isinstance(master, bool) or master < 0:
        raise InputError("report has no valid master seed", field="seeds.master", value=master)
    drop = bool((rec.get("inputs") or {}).get("drop_unmatched", False))
    return run(alice, bob, proto, seed=Seeds(master, str(seeds.get("master_source", "given"))),
               drop_unmatched=drop, noise_seed=noise_seed, progress=progress,
               context=rec.get("context") or None)


def _software_row(recorded: Mapping[str, Any], replayed: Mapping[str, Any]
                  ) -> tuple[str, bool, str]:
    """Informational row: which diqkd versions wrote and replayed the report.

    Replays are exact within one version. Between versions the reconciliation schedule (when a
    blind attempt stops, which mother code is chosen) and the decoder's float arithmetic may
    change, and with them the transcript, the leakage and the key; an audit of an older report
    should use the version the report names (``pip install diqkd==VERSION``). The row never fails
    by itself: differing figures are reported figure by figure.
    """
    was = (recorded.get("software") or {}).get("version")
    now = (replayed.get("software") or {}).get("version")
    if was == now:
        return ("software version", True, f"diqkd {now} (same as the report)")
    if not was or not isinstance(was, str) or "unknown" in was:
        return ("software version", True,
                f"the report does not name the diqkd version that wrote it; replayed by {now}")
    return ("software version", True,
            f"report written by diqkd {was}, replayed by {now}: if figures differ, rerun the "
            f"audit with diqkd {was}")


def _noise_seed_from(keys_dir: str | os.PathLike[str] | None) -> int | None:
    if keys_dir is None:
        return None
    secret = Path(keys_dir) / "alice.secret.json"
    if not secret.exists():
        return None
    try:
        return int(json.loads(secret.read_text())["noise_seed"])
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InputError(f"Alice's secret file is malformed ({exc})", file=str(secret)) from None


def check_keys(report: dict[str, Any], keys_dir: str | os.PathLike[str],
               replayed: Any = None) -> list[tuple[str, bool, str]]:
    """Rows checking the key files in ``keys_dir`` against the report (and a replay's keys)."""
    from diqkd.keys import read_key

    rows: list[tuple[str, bool, str]] = []
    keys = report.get("keys") or {}
    if report.get("verdict") != "key":
        present = [r for r in ("alice", "bob") if (Path(keys_dir) / f"{r}.key").exists()]
        rows.append(("key files", not present, "no key files (abort)" if not present
                     else f"key files present after an abort: {present}"))
        return rows
    for role in ("alice", "bob"):
        try:
            k, side = read_key(keys_dir, role)
        except InputError as exc:
            rows.append((f"{role} key file", False, str(exc)))
            continue
        want = keys.get(f"{role}_sha256")
        fresh = None if replayed is None else (
            replayed.key_alice if role == "alice" else replayed.key_bob)
        ok = (k.sha256 == want and k.nbits == keys.get("bits")
              and side.get("key_id") == keys.get("key_id")
              and (replayed is None or (fresh is not None and k.same_as(fresh))))
        rows.append((f"{role} key file", ok,
                     f"{k.nbits} bits, sha256 {k.sha256[:16]}..." if ok else
                     f"key file differs from the report or the replay (sha256 "
                     f"{k.sha256[:16]}..., report {str(want)[:16]}...)"))
    return rows


def verify(
    report: str | os.PathLike[str] | dict[str, Any],
    alice: str | os.PathLike[str],
    bob: str | os.PathLike[str],
    *,
    keys_dir: str | os.PathLike[str] | None = None,
    noise_seed: int | None = None,
    progress: Any = None,
) -> AuditResult:
    """Rerun the run recorded in ``report`` on the files ``alice`` and ``bob`` and compare.

    Checks, in order: the input files' digests, the protocol digest, every figure of a replay
    (:func:`replay`, :func:`compare_reports`), and with ``keys_dir`` the key files
    (:func:`check_keys`). ``noise_seed``: Alice's secret noisy-preprocessing seed (needed when
    the protocol has p > 0); if None it is read from ``keys_dir/alice.secret.json``.
    """
    from diqkd.pipeline import file_digest

    rec = load_report(report) if not isinstance(report, dict) else report
    res = AuditResult()

    for role, path in (("alice", alice), ("bob", bob)):
        want = (rec.get("inputs") or {}).get(role, {}).get("sha256")
        got = file_digest(path)["sha256"]
        ok = want == got
        res.rows.append((f"input {role}", ok, f"sha256 {got[:16]}..." if ok else
                         f"file {str(path)!r} has sha256 {got[:16]}..., report says "
                         f"{str(want)[:16]}..."))
        if not ok:
            res.mismatches.append(Mismatch(f"inputs.{role}.sha256", want, got))
    proto = _report_protocol(rec, report)
    res.rows.append(("protocol digest", proto.sha256 == rec.get("protocol_sha256"),
                     proto.sha256[:16] + "..."))

    if noise_seed is None:
        noise_seed = _noise_seed_from(keys_dir)
    if proto.noisy_preprocessing > 0 and noise_seed is None:
        res.rows.append(("noise seed", False, "protocol uses noisy preprocessing: the replay "
                         "needs Alice's secret seed (--keys DIR with alice.secret.json)"))
        return res
    again = replay(rec, alice, bob, noise_seed=noise_seed, progress=progress)
    res.rows.append(_software_row(rec, again.report))
    mism, count = compare_reports(rec, again.report)
    res.figures_compared = count
    res.mismatches.extend(m for m in mism if m.path not in {x.path for x in res.mismatches})
    bad_sections = {_section(m.path) for m in mism}
    listed = SECTIONS + ("protocol_sha256", "schema")
    for sec in listed:
        if sec not in rec and sec not in again.report:
            continue
        first = next((m for m in mism if _section(m.path) == sec), None)
        res.rows.append((sec, sec not in bad_sections,
                         "all figures match" if first is None else "differs: " + first.describe()))
    for sec in sorted(bad_sections - set(listed)):
        first = next(m for m in mism if _section(m.path) == sec)
        res.rows.append((sec, False, "differs: " + first.describe()))
    if keys_dir is not None:
        res.rows.extend(check_keys(rec, keys_dir, again))
    return res


# ------------------------------------------------------------------------------------------------
# signatures
# ------------------------------------------------------------------------------------------------
def keygen(out_dir: str | os.PathLike[str], name: str = "diqkd-ed25519") -> tuple[Path, Path]:
    """Create an Ed25519 key pair: ``NAME.pem`` (private, PKCS8, mode 0600), ``NAME.pub.pem``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    priv = Ed25519PrivateKey.generate()
    priv_pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    pub_pem = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    priv_path, pub_path = d / f"{name}.pem", d / f"{name}.pub.pem"
    atomic_write_bytes(priv_path, priv_pem, 0o600)
    atomic_write_bytes(pub_path, pub_pem, 0o644)
    return priv_path, pub_path


def _load_private(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise InputError("private key file not found", file=str(path)) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"not an unencrypted PEM private key ({exc})", file=str(path)) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError("private key is not an Ed25519 key", file=str(path))
    return key


def _load_public(path: str | os.PathLike[str]) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise InputError("public key file not found", file=str(path)) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"not a PEM public key ({exc})", file=str(path)) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InputError("public key is not an Ed25519 key", file=str(path))
    return key


def _pub_fingerprint(pub: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(report: str | os.PathLike[str], key: str | os.PathLike[str],
         out: str | os.PathLike[str] | None = None) -> Path:
    """Sign the canonical JSON of ``report``; writes ``REPORT.sig`` (or ``out``) and returns it."""
    data = canonical_json(load_report(report))
    priv = _load_private(key)
    sig = priv.sign(data)
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "signed": "canonical JSON of the report (sorted keys, no whitespace, ASCII)",
        "report_sha256": hashlib.sha256(data).hexdigest(),
        "public_key_sha256": _pub_fingerprint(priv.public_key()),
        "signature": base64.b64encode(sig).decode(),
    }
    path = Path(out) if out is not None else Path(str(report) + ".sig")
    atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode(), 0o644)
    return path


def check_signature(report: str | os.PathLike[str], sig: str | os.PathLike[str],
                    pubkey: str | os.PathLike[str]) -> tuple[bool, str]:
    """(valid, explanation) for a detached signature of ``report`` by ``pubkey``."""
    from cryptography.exceptions import InvalidSignature

    data = canonical_json(load_report(report))
    pub = _load_public(pubkey)
    try:
        doc = json.loads(Path(sig).read_text())
    except FileNotFoundError:
        raise InputError("signature file not found", file=str(sig)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("signature file is not valid JSON", file=str(sig)) from None
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        raise InputError(f"signature file format is not {SIGNATURE_FORMAT!r}", file=str(sig))
    try:
        raw = base64.b64decode(str(doc.get("signature", "")), validate=True)
    except ValueError:
        return False, "signature field is not valid base64"
    if doc.get("public_key_sha256") not in (None, _pub_fingerprint(pub)):
        return False, "signature was made with a different key"
    try:
        pub.verify(raw, data)
    except InvalidSignature:
        digest = hashlib.sha256(data).hexdigest()
        why = ("report was modified after signing" if digest != doc.get("report_sha256")
               else "signature bytes are invalid")
        return False, why
    return True, f"valid Ed25519 signature over report sha256 {hashlib.sha256(data).hexdigest()}"
