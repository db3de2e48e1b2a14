"""Tampering and leaks (issue 8).

* A man in the middle on the public channel (the pipeline's ``tamper`` hook on
  :class:`diqkd.transcript.Channel`) flips, drops, duplicates, reorders or injects a message of
  every kind of an honest run's transcript: each is detected and no key is released, with the
  per-message authentication on, and with it off (the later defences: verification, transcript
  comparison, key confirmation).
* Tampered reports (the transcript section, every message kind): ``diqkd audit verify`` names the
  figure that differs.
* Everything the tool writes or prints (reports, sidecars, stdout, stderr, abort messages,
  checkpoints, reprs) holds no key bytes (raw or hex, any 8-byte window) and no run of 64 key bits;
  key files are 0600 and output directories not world-writable.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import stat
import zlib
from pathlib import Path

import numpy as np
import pytest
from hardening_support import check_consistent, cli_invoke, count, key_protocol, write_inputs

from diqkd.pipeline import run
from diqkd.transcript import Message

SEED = 7
ACTIONS = ("flip", "drop", "duplicate", "reorder", "inject")


@pytest.fixture(scope="module")
def sequence(key_result):
    """(index, kind) of every message of the honest run, in order."""
    return [(i, m["kind"]) for i, m in enumerate(key_result.report["transcript"]["list"])]


def _kinds(sequence) -> list[str]:
    return list(dict.fromkeys(k for _, k in sequence))


def _flip_payload(msg: Message, rng: np.random.Generator) -> Message:
    p = bytearray(msg.payload)
    if not p:
        p = bytearray(b"\x00")
    i = int(rng.integers(len(p)))
    p[i] ^= 1 << int(rng.integers(8))
    return Message(msg.sender, msg.kind, bytes(p), msg.leak_bits, dict(msg.meta))


def make_tamper(action: str, target: int, total: int, seed: int = 0):
    """An adversary acting on the ``target``-th message on the wire (0-based)."""
    rng = np.random.default_rng(seed)
    state = {"n": 0, "held": None}

    def tamper(msg: Message):
        i = state["n"]
        state["n"] += 1
        if action == "reorder":
            # swap message target with its successor (the last one: with its predecessor)
            first = target if target + 1 < total else target - 1
            if i == first:
                state["held"] = msg
                return []
            if i == first + 1 and state["held"] is not None:
                held, state["held"] = state["held"], None
                return [msg, held]
            return [msg]
        if i != target:
            return [msg]
        if action == "flip":
            return [_flip_payload(msg, rng)]
        if action == "drop":
            return []
        if action == "duplicate":
            return [msg, msg]
        if action == "inject":  # a forged message of the same kind first, then the real one
            forged = Message(msg.sender, msg.kind, rng.bytes(max(1, len(msg.payload))),
                             msg.leak_bits, dict(msg.meta))
            return [forged, msg]
        raise ValueError(action)

    return tamper


def _cases(authenticate: bool):
    return [(a, authenticate) for a in (ACTIONS if authenticate else ("flip", "drop"))]


@pytest.mark.parametrize(("action", "authenticate"), _cases(True) + _cases(False),
                         ids=lambda v: str(v))
def test_tampered_message_of_every_kind_is_detected(key_records, key_result, sequence, action,
                                                    authenticate):
    """The first message of every kind (and a seeded random one of the multi-message kinds)."""
    rng = np.random.default_rng(zlib.crc32(f"{action}/{authenticate}".encode()))
    targets: list[tuple[str, int]] = []
    for kind in _kinds(sequence):
        idx = [i for i, k in sequence if k == kind]
        targets.append((kind, idx[0]))
        if len(idx) > 2 and authenticate:
            targets.append((kind, int(rng.choice(idx[1:]))))
    undetected = []
    codes: dict[str, int] = {}
    for kind, target in targets:
        r = run(*key_records, key_protocol(), seed=SEED, authenticate=authenticate,
                tamper=make_tamper(action, target, len(sequence), seed=target))
        released = r.key_alice is not None or r.key_bob is not None or r.ok
        same = r.ok and r.key_alice.sha256 == key_result.key_alice.sha256
        if released and not same:
            undetected.append(f"{action} {kind}#{target}: key released")
        elif released:
            # the adversary changed nothing that matters (e.g. a duplicated verdict that the
            # receiver ignores): acceptable only if the run is bit-identical
            undetected.append(f"{action} {kind}#{target}: not detected (same key released)")
        else:
            code = (r.abort or {}).get("code", "?")
            codes[code] = codes.get(code, 0) + 1
            assert r.report["keys"] is None and r.report["verdict"] == "abort"
    mode = "auth" if authenticate else "noauth"
    count(f"tamper-{mode}", trials=len(targets), detected=len(targets) - len(undetected),
          **{f"abort_{k}": v for k, v in codes.items()})
    assert not undetected, undetected


# -------------------------------------------------------------------------------------------------
# tampered reports: the audit names what differs
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audited_run(tmp_path_factory, key_records):
    """A CLI run (files + report) and one replay of it, shared by the report-tampering tests."""
    from diqkd.audit import replay

    d = tmp_path_factory.mktemp("audit")
    a, b, p = write_inputs(d, *key_records, key_protocol())
    out = d / "out"
    code, _, err = cli_invoke(["run", "--alice", str(a), "--bob", str(b), "--protocol", str(p),
                               "--out", str(out), "--seed", str(SEED), "-q"])
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    again = replay(report, a, b)
    return {"alice": a, "bob": b, "out": out, "report": report, "replayed": again.report}


def _tampered_reports(report):
    """(name, tampered report) for flip/drop/duplicate/reorder of every transcript entry kind."""
    out = []
    lst = report["transcript"]["list"]
    kinds = list(dict.fromkeys(m["kind"] for m in lst))
    for kind in kinds:
        i = next(j for j, m in enumerate(lst) if m["kind"] == kind)
        r = copy.deepcopy(report)
        d = r["transcript"]["list"][i]["sha256"]
        r["transcript"]["list"][i]["sha256"] = ("0" if d[0] != "0" else "1") + d[1:]
        out.append((f"flip {kind}", r))
        r = copy.deepcopy(report)
        del r["transcript"]["list"][i]
        out.append((f"drop {kind}", r))
        r = copy.deepcopy(report)
        r["transcript"]["list"].insert(i, copy.deepcopy(lst[i]))
        out.append((f"duplicate {kind}", r))
        r = copy.deepcopy(report)
        j = i + 1 if i + 1 < len(lst) else i - 1
        lst2 = r["transcript"]["list"]
        lst2[i], lst2[j] = lst2[j], lst2[i]
        out.append((f"reorder {kind}", r))
        r = copy.deepcopy(report)
        lb = lst[i]["leak_bits"]
        r["transcript"]["list"][i]["leak_bits"] = lb - 1 if lb > 0 else 1
        out.append((f"misstate leak {kind}", r))
    for path, value in (("leakage.total_bits", -1), ("keys.bits", 1), ("bound.key_bits", 10**9),
                        ("transcript.sha256_chain", "0" * 64), ("statistics.S", 2.83),
                        ("bell_test.losses", 0), ("verdict", "abort")):
        r = copy.deepcopy(report)
        node = r
        *head, last = path.split(".")
        for k in head:
            node = node[k]
        node[last] = value if value != -1 else node[last] - 1
        out.append((f"edit {path}", r))
    return out


def test_tampered_reports_are_named_by_the_audit(audited_run):
    from diqkd.audit import compare_reports

    undetected = []
    cases = _tampered_reports(audited_run["report"])
    for name, rep in cases:
        mism, _ = compare_reports(rep, audited_run["replayed"])
        if not mism:
            undetected.append(name)
    mism, _ = compare_reports(audited_run["report"], audited_run["replayed"])
    assert not mism, [m.describe() for m in mism]  # the untouched report passes
    count("tamper-report", cases=len(cases), detected=len(cases) - len(undetected))
    assert len(cases) >= 40
    assert not undetected, undetected


@pytest.mark.parametrize("which", ["flip ec-syndrome", "reorder pa-seed", "edit keys.bits"])
def test_audit_verify_cli_fails_on_a_tampered_report(audited_run, tmp_path, which):
    rep = dict(_tampered_reports(audited_run["report"]))[which]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep))
    code, out, err = cli_invoke(["audit", "verify", str(path), "--alice",
                                 str(audited_run["alice"]), "--bob", str(audited_run["bob"]),
                                 "--keys", str(audited_run["out"])])
    assert code == 4, (code, out, err)
    assert "FAIL" in out and "audit failed" in err
    section = which.split()[-1].split(".")[0]
    assert ("transcript" if " " in which and "." not in which else section) in err + out


def test_audit_verify_cli_passes_on_the_untouched_run(audited_run):
    code, out, err = cli_invoke(["audit", "verify", str(audited_run["out"] / "report.json"),
                                 "--alice", str(audited_run["alice"]), "--bob",
                                 str(audited_run["bob"]), "--keys", str(audited_run["out"])])
    assert code == 0, (out, err)
    assert "PASS" in out


# -------------------------------------------------------------------------------------------------
# leaks
# -------------------------------------------------------------------------------------------------
class KeyScanner:
    """Finds key material: any 8-byte window of the key bytes (raw, hex lower/upper) or any run
    of 64 consecutive key bits written as 0/1 digits (optionally separated by , or spaces)."""

    WINDOW = 8
    BITS = 64

    def __init__(self, key_bytes: bytes, key_bits: np.ndarray) -> None:
        self.raw = key_bytes
        w = self.WINDOW
        win = np.lib.stride_tricks.sliding_window_view(np.frombuffer(key_bytes, np.uint8), w)
        self.windows = np.unique(np.ascontiguousarray(win).view("<u8").ravel())
        h = key_bytes.hex()
        self.hex_windows = {h[i:i + 2 * w] for i in range(0, len(h) - 2 * w + 1, 2)}
        self.bits = "".join(map(str, key_bits.tolist()))

    def raw_hit(self, data: bytes) -> bool:
        w = self.WINDOW
        for o in range(w):
            k = (len(data) - o) // w
            if k <= 0:
                continue
            v = np.frombuffer(data[o:o + k * w], dtype="<u8")
            if np.isin(v, self.windows).any():
                return True
        return False

    def text_hit(self, text: str) -> str | None:
        w2 = 2 * self.WINDOW
        for m in re.finditer(r"[0-9a-fA-F]{" + str(w2) + ",}", text):
            s = m.group(0).lower()
            for i in range(len(s) - w2 + 1):
                if s[i:i + w2] in self.hex_windows:
                    return f"hex window {s[i:i + w2]}"
        for m in re.finditer(r"(?:[01][,\s]*){" + str(self.BITS) + ",}", text):
            s = re.sub(r"[,\s]", "", m.group(0))
            for i in range(len(s) - self.BITS + 1):
                if s[i:i + self.BITS] in self.bits:
                    return "run of key bits"
        return None

    def check(self, name: str, data: bytes | str) -> str | None:
        if isinstance(data, str):
            text, raw = data, data.encode("utf-8", "replace")
        else:
            raw, text = data, data.decode("latin-1")
        if self.raw_hit(raw):
            return f"{name}: raw key bytes"
        hit = self.text_hit(text)
        return f"{name}: {hit}" if hit else None


def test_scanner_finds_planted_key_material(key_result):
    k = key_result.key_alice
    sc = KeyScanner(k.to_bytes(), k.bits)
    kb = k.to_bytes()
    assert sc.check("raw", b"xx" + kb[100:108] + b"yy")
    assert sc.check("hex", "report " + kb[200:208].hex().upper() + " end")
    assert sc.check("bits", json.dumps(k.bits[300:364].tolist()))
    assert sc.check("bits2", "".join(map(str, k.bits[500:600].tolist())))
    assert not sc.check("clean", json.dumps(key_result.report))


def _walk_files(*dirs: Path):
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if p.is_file():
                yield p


def test_nothing_the_tool_writes_or_prints_holds_key_material(tmp_path, key_records,
                                                              key_result):
    """CLI run (with --json, progress on), both keys' outputs, a tampered run's abort report,
    a noisy-preprocessing run's files, a Session checkpoint, error messages and reprs."""
    from diqkd.records import read_records
    from diqkd.session import Session

    a, b, p = write_inputs(tmp_path / "in", *key_records, key_protocol())
    out = tmp_path / "out"
    code, stdout, stderr = cli_invoke(["run", "--alice", str(a), "--bob", str(b), "--protocol",
                                       str(p), "--out", str(out), "--seed", str(SEED), "--json"])
    assert code == 0, stderr
    key_bytes = (out / "alice.key").read_bytes()
    side = json.loads((out / "alice.key.json").read_text())
    bits = np.unpackbits(np.frombuffer(key_bytes, np.uint8))[: side["bits"]]
    assert key_bytes == key_result.key_alice.to_bytes()  # the same seed: the same key
    sc = KeyScanner(key_bytes, bits)
    texts: dict[str, bytes | str] = {"stdout": stdout, "stderr": stderr}

    # a tampered run (abort): its report and message; an unauthenticated one too
    r = run(*key_records, key_protocol(), seed=SEED,
            tamper=make_tamper("flip", len(key_result.report["transcript"]["list"]) - 1,
                               10**9))
    assert not r.ok
    texts["abort report"] = json.dumps(r.report)
    texts["abort reason"] = str(r.abort)
    texts["repr"] = repr(key_result) + repr(key_result.key_alice) + str(key_result.key_bob)
    try:
        r.raise_for_abort()
    except Exception as exc:  # noqa: BLE001
        texts["exception"] = f"{type(exc).__name__}: {exc!r} {exc}"

    # noisy preprocessing: Alice's secret file, mode 0600
    out_noisy = tmp_path / "noisy"
    pn = tmp_path / "noisy.toml"
    pn.write_text(key_protocol(noisy_preprocessing=0.02).to_toml())
    code, so, se = cli_invoke(["run", "--alice", str(a), "--bob", str(b), "--protocol",
                               str(pn), "--out", str(out_noisy), "--seed", str(SEED)])
    assert code in (0, 3), se
    texts["noisy stdout"], texts["noisy stderr"] = so, se
    secret = out_noisy / "alice.secret.json"
    assert secret.exists() and stat.S_IMODE(secret.stat().st_mode) == 0o600

    # a Session checkpoint of the same rounds (raw outcomes, never the key)
    ck = tmp_path / "ckpt"
    s = Session(key_protocol(), checkpoint_dir=ck, seed=SEED)
    ra, rb = read_records(a), read_records(b)
    half = len(ra) // 2
    s.feed(ra.slice(0, half), rb.slice(0, half))
    s.feed(ra.slice(half, len(ra)), rb.slice(half, len(rb)))
    res = s.finish()
    assert res.ok and res.key_alice.sha256 == key_result.key_alice.sha256
    assert stat.S_IMODE(ck.stat().st_mode) == 0o700
    for f in ck.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f.name

    hits = []
    scanned = 0
    for path in _walk_files(out, out_noisy, ck):
        if path.name in ("alice.key", "bob.key"):
            continue
        if path.suffix in (".h5", ".npz") and path.parent == ck:
            pass
        hit = sc.check(str(path.relative_to(tmp_path)), path.read_bytes())
        scanned += 1
        if hit:
            hits.append(hit)
    for name, data in texts.items():
        scanned += 1
        hit = sc.check(name, data)
        if hit:
            hits.append(hit)
    count("leak-scan", items=scanned, key_bytes=len(key_bytes), hits=len(hits))
    assert not hits, hits

    # permissions
    for name in ("alice.key", "alice.key.json", "bob.key", "bob.key.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    for d in (out, out_noisy):
        assert not d.stat().st_mode & stat.S_IWOTH
    assert check_consistent(out)["verdict"] == "key"


def test_fresh_output_directory_is_private_despite_a_permissive_umask(tmp_path, key_records):
    """Created with umask 000, the output directory is still not world-writable and keys 0600."""
    old = os.umask(0)
    try:
        a, b, p = write_inputs(tmp_path / "in", *key_records, key_protocol())
        out = tmp_path / "deep" / "out"
        code, _, err = cli_invoke(["run", "--alice", str(a), "--bob", str(b), "--protocol",
                                   str(p), "--out", str(out), "--seed", str(SEED), "-q"])
    finally:
        os.umask(old)
    assert code == 0, err
    assert not out.stat().st_mode & stat.S_IWOTH, oct(out.stat().st_mode)
    for name in ("alice.key", "bob.key", "alice.key.json", "bob.key.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("how", ["flip-byte", "truncate", "other-key", "no-sidecar",
                                 "edit-sidecar-digest"])
def test_tampered_key_files_fail_the_audit(audited_run, tmp_path, how):
    """``audit verify --keys``: a key file that is not the replayed key is named."""
    import shutil
    from types import SimpleNamespace

    from diqkd.audit import check_keys
    keys = tmp_path / "keys"
    shutil.copytree(audited_run["out"], keys)
    k = keys / "alice.key"
    if how == "flip-byte":
        raw = bytearray(k.read_bytes())
        raw[len(raw) // 2] ^= 0x04
        k.write_bytes(bytes(raw))
    elif how == "truncate":
        k.write_bytes(k.read_bytes()[:-1])
    elif how == "other-key":  # a self-consistent key file + sidecar of another key
        raw = bytearray(k.read_bytes())
        raw[0] ^= 0xFF
        k.write_bytes(bytes(raw))
        side = json.loads((keys / "alice.key.json").read_text())
        side["sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
        (keys / "alice.key.json").write_text(json.dumps(side))
    elif how == "no-sidecar":
        (keys / "alice.key.json").unlink()
    else:
        side = json.loads((keys / "alice.key.json").read_text())
        side["sha256"] = "0" * 64
        (keys / "alice.key.json").write_text(json.dumps(side))
    from diqkd.keys import read_key

    try:
        fresh_a, _ = read_key(audited_run["out"], "alice")
        fresh_b, _ = read_key(audited_run["out"], "bob")
    except Exception as exc:  # pragma: no cover
        pytest.fail(f"untouched keys unreadable: {exc}")
    replayed = SimpleNamespace(key_alice=fresh_a, key_bob=fresh_b)
    rows = check_keys(audited_run["report"], keys, replayed)
    bad = [r for r in rows if not r[1]]
    count("tamper-key-files", cases=1, detected=int(bool(bad)))
    assert bad and bad[0][0] == "alice key file", rows


def test_an_abort_after_a_key_run_removes_the_old_keys(tmp_path, key_inputs):
    """Same output directory: a key run, then an LHV run (abort, exit 3): the old keys must go,
    the new report says abort."""
    from diqkd.emulator import emulate, load_link

    out = tmp_path / "out"
    a, b, p = key_inputs
    code, _, err = cli_invoke(["run", "--alice", str(a), "--bob", str(b), "--protocol", str(p),
                               "--out", str(out), "--seed", str(SEED), "-q"])
    assert code == 0, err
    la, lb = emulate(load_link("oxford-2022"), 100_000, seed=4, test_probability=0.05,
                     device="lhv")
    a2, b2, _ = write_inputs(tmp_path / "lhv", la, lb, key_protocol())
    code, _, err = cli_invoke(["run", "--alice", str(a2), "--bob", str(b2), "--protocol", str(p),
                               "--out", str(out), "--seed", str(SEED), "-q"])
    assert code == 3, err
    assert "Traceback" not in err and "protocol abort" in err
    st = check_consistent(out)
    assert st["verdict"] == "abort"
    assert not [n for n in os.listdir(out) if n.endswith((".key", ".key.json"))]
    count("abort-after-key", runs=1, old_keys_removed=1)
