"""Report schema, canonical form, output directory and key files."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from diqkd.errors import ConfigError, InputError
from diqkd.keys import Key, key_id_for, read_key, write_key
from diqkd.pipeline import Result
from diqkd.report import (
    OUTPUT_NAMES,
    REPORT_SCHEMA,
    canonical_json,
    flatten,
    jsonable,
    load_report,
    prepare_out_dir,
    write_outputs,
    write_report,
)


def _key(n=37, seed=0):
    bits = np.random.default_rng(seed).integers(0, 2, n).astype(np.uint8)
    return Key(bits, key_id_for("00" * 32))


def _report(verdict="key", bits=37):
    return {"schema": REPORT_SCHEMA, "verdict": verdict, "transcript": {"sha256_chain": "ab"},
            "keys": {"bits": bits} if verdict == "key" else None,
            "abort": None if verdict == "key" else {"code": "bell-test", "reason": "x"},
            "seeds": {"noise_seed_commitment": None}, "statistics": {"S": 2.5, "list": [1, 2.5]}}


def test_canonical_json_is_stable_across_a_file_round_trip(tmp_path):
    rep = _report()
    rep["statistics"]["S"] = 2.0 / 3.0
    path = write_report(tmp_path / "r.json", rep)
    assert canonical_json(load_report(path)) == canonical_json(rep)
    assert canonical_json({"b": 1, "a": [1, 2]}) == b'{"a":[1,2],"b":1}'


def test_flatten_and_jsonable():
    f = flatten({"a": {"b": [1, {"c": 2}]}, "d": {}, "e": []})
    assert f == {"a.b.0": 1, "a.b.1.c": 2, "d": {}, "e": []}
    j = jsonable({"x": np.int64(3), "y": np.float32(0.5), "z": (1, 2), "w": np.zeros(100),
                  "v": float("nan"), "u": np.bool_(True), "b": b"secret"})
    assert j["x"] == 3 and j["z"] == [1, 2] and j["w"] == {"array": "float64", "shape": [100]}
    assert j["v"] == "nan" and j["u"] is True and j["b"] == {"bytes": 6}
    json.dumps(j)


def test_load_report_rejects_unknown_schema_and_garbage(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema": "diqkd-report/99"}))
    with pytest.raises(InputError, match="unknown report schema"):
        load_report(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_report(p)
    p.write_text("[]")
    with pytest.raises(InputError, match="object"):
        load_report(p)
    with pytest.raises(InputError, match="not found"):
        load_report(tmp_path / "missing.json")


def test_key_files_round_trip_mode_0600_and_msb_first(tmp_path):
    k = _key(11)
    kp, sp = write_key(tmp_path, "alice", k, "ab")
    assert stat.S_IMODE(os.stat(kp).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sp).st_mode) == 0o600
    raw = kp.read_bytes()
    assert len(raw) == 2 and raw[0] >> 7 == k.bits[0] and raw[1] & 0x1F == 0
    side = json.loads(sp.read_text())
    assert side["bits"] == 11 and side["sha256"] == k.sha256 and side["role"] == "alice"
    k2, _ = read_key(tmp_path, "alice")
    assert k2.same_as(k)
    kp.write_bytes(bytes([raw[0] ^ 1, raw[1]]))
    with pytest.raises(InputError, match="digest"):
        read_key(tmp_path, "alice")


def test_key_repr_hides_bits():
    k = _key(256)
    assert k.to_bytes().hex()[:8] not in repr(k) and "256" in str(k)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(k)


def test_write_outputs_key_then_abort_removes_old_keys(tmp_path):
    out = tmp_path / "out"
    k = _key(37)
    paths = write_outputs(out, Result(k, Key(k.bits.copy(), k.key_id), _report()))
    assert {p.name for p in paths.values()} == {"alice.key", "alice.key.json", "bob.key",
                                                "bob.key.json", "report.json"}
    assert stat.S_IMODE(out.stat().st_mode) & stat.S_IWOTH == 0
    (out / ".diqkd-tmp-report.json.x").write_text("leftover")
    write_outputs(out, Result(None, None, _report("abort")))
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert json.loads((out / "report.json").read_text())["verdict"] == "abort"


def test_noise_secret_is_private(tmp_path):
    rep = _report()
    rep["seeds"]["noise_seed_commitment"] = "cc"
    k = _key(8)
    write_outputs(tmp_path, Result(k, Key(k.bits.copy(), k.key_id), rep, noise_seed=123))
    s = tmp_path / "alice.secret.json"
    assert stat.S_IMODE(s.stat().st_mode) == 0o600
    assert json.loads(s.read_text())["noise_seed"] == "123"
    assert "123" not in (tmp_path / "report.json").read_text()


def test_output_dir_checks(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        prepare_out_dir(f)
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(ConfigError, match="world-writable"):
        prepare_out_dir(d)
    assert set(OUTPUT_NAMES) >= {"report.json", "alice.key"}


def test_a_failed_write_leaves_no_outputs(tmp_path, monkeypatch):
    import diqkd.report as report_mod

    k = _key(16)
    calls = {"n": 0}
    real = report_mod.write_report

    def failing(path, rep):
        calls["n"] += 1
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(report_mod, "write_report", failing)
    with pytest.raises(OSError):
        write_outputs(tmp_path, Result(k, Key(k.bits.copy(), k.key_id), _report()))
    assert calls["n"] == 1 and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(report_mod, "write_report", real)
