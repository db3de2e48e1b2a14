"""Audit: replay from report and files, named mismatches, key files, Ed25519 signatures."""

from __future__ import annotations

import json

import pytest
from test_pipeline_support import fixed_key_length, protocol, sample_small, write_pair

from diqkd.audit import (
    check_keys,
    check_signature,
    compare_reports,
    keygen,
    replay,
    sign,
    verify,
)
from diqkd.errors import InputError
from diqkd.pipeline import run


@pytest.fixture(scope="module", autouse=True)
def _fixed_length():
    with fixed_key_length(4096):  # short runs: see test_pipeline_support.fixed_key_length
        yield


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, _fixed_length):
    d = tmp_path_factory.mktemp("audit")
    a, b = write_pair(d, *sample_small(seed=8))
    res = run(a, b, protocol(), seed=21)
    assert res.ok, res.abort
    res.write(d / "out")
    return d, a, b, json.loads((d / "out" / "report.json").read_text())


@pytest.fixture(scope="module")
def replayed(recorded):
    d, a, b, rep = recorded
    return replay(rep, a, b)


def test_verify_passes_on_an_untouched_run(recorded):
    d, a, b, rep = recorded
    res = verify(d / "out" / "report.json", a, b, keys_dir=d / "out")
    assert res.ok, res.to_dict()
    assert res.figures_compared > 100
    names = [c for c, _, _ in res.rows]
    assert {"input alice", "statistics", "transcript", "bound", "keys", "alice key file"} <= set(
        names)


def test_replay_reproduces_every_figure(recorded, replayed):
    _, _, _, rep = recorded
    mism, count = compare_reports(rep, replayed.report)
    assert mism == [] and count > 100
    assert replayed.key_alice.sha256 == rep["keys"]["alice_sha256"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("statistics", "S"), 2.9),
        (("statistics", "counts", "x1y1a0b0"), 1),
        (("bell_test", "wins"), 5),
        (("leakage", "total_bits"), 12),
        (("bound", "terms", "leak_ec"), -1.0),
        (("bound", "key_bits"), 10**7),
        (("transcript", "sha256_chain"), "00" * 32),
        (("seeds", "streams", "pa", "seed"), 3),
        (("amplification", "seed_sha256"), "ff" * 32),
        (("keys", "alice_sha256"), "ab" * 32),
        (("verdict",), "abort"),
    ],
)
def test_a_tampered_report_names_the_figure(recorded, replayed, path, value):
    _, _, _, rep = recorded
    bad = json.loads(json.dumps(rep))
    node = bad
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    mism, _ = compare_reports(bad, replayed.report)
    assert [m.path for m in mism] == [".".join(path)]
    assert ".".join(path) in mism[0].describe()


def test_volatile_entries_are_ignored(recorded, replayed):
    _, _, _, rep = recorded
    bad = json.loads(json.dumps(rep))
    bad["timings_s"]["reconcile"] = 99.0
    bad["created"] = "1999-01-01"
    bad["inputs"]["alice"]["path"] = "/elsewhere/alice.h5"
    assert compare_reports(bad, replayed.report)[0] == []


def test_a_tampered_input_file_is_named(recorded, tmp_path):
    d, a, b, rep = recorded
    from diqkd.records.formats import read_records, write_records

    bob = read_records(b)
    cols = {k: v.copy() for k, v in bob.columns.items()}
    cols["b"][1234] ^= 1
    from diqkd.records import Records

    tampered = tmp_path / "bob.h5"
    write_records(tampered, Records("bob", cols, bob.metadata))
    res = verify(rep, a, tampered)
    assert not res.ok
    assert res.mismatches[0].path == "inputs.bob.sha256"
    assert any(m.path.startswith("statistics.counts") for m in res.mismatches)


def test_key_files_are_checked(recorded, replayed, tmp_path):
    d, _, _, rep = recorded
    out = d / "out"
    assert all(ok for _, ok, _ in check_keys(rep, out, replayed))
    import shutil

    copy = tmp_path / "keys"
    shutil.copytree(out, copy)
    raw = bytearray((copy / "bob.key").read_bytes())
    raw[0] ^= 0x80
    (copy / "bob.key").write_bytes(bytes(raw))
    rows = dict((c, ok) for c, ok, _ in check_keys(rep, copy, replayed))
    assert rows["alice key file"] and not rows["bob key file"]
    (copy / "alice.key").unlink()
    rows = dict((c, ok) for c, ok, _ in check_keys(rep, copy, replayed))
    assert not rows["alice key file"]


def test_unknown_report_schema(recorded, tmp_path):
    _, a, b, rep = recorded
    p = tmp_path / "r.json"
    p.write_text(json.dumps({**rep, "schema": "diqkd-report/7"}))
    with pytest.raises(InputError, match="schema"):
        verify(p, a, b)


def test_sign_and_check_signature(recorded, tmp_path):
    d, _, _, rep = recorded
    priv, pub = keygen(tmp_path / "k")
    assert (priv.stat().st_mode & 0o777) == 0o600
    report = d / "out" / "report.json"
    sig = sign(report, priv, tmp_path / "r.sig")
    ok, why = check_signature(report, sig, pub)
    assert ok, why
    # reformatting the JSON does not matter: the canonical form is signed
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(rep, indent=7))
    assert check_signature(pretty, sig, pub)[0]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**rep, "verdict": "abort"}))
    ok, why = check_signature(bad, sig, pub)
    assert not ok and "modified" in why
    _, other_pub = keygen(tmp_path / "k2")
    assert not check_signature(report, sig, other_pub)[0]
    s = json.loads(sig.read_text())
    s["signature"] = "AAAA" + s["signature"][4:]
    sig.write_text(json.dumps(s))
    assert not check_signature(report, sig, pub)[0]
    with pytest.raises(InputError):
        check_signature(report, tmp_path / "nope.sig", pub)
    with pytest.raises(InputError):
        sign(report, pub)  # a public key is not a private key


def test_noisy_preprocessing_needs_alices_secret_to_replay(tmp_path):
    from test_pipeline_support import protocol, sample

    a, b = write_pair(tmp_path, *sample(20_000, seed=9))
    proto = protocol(noisy_preprocessing=0.02, threshold={"omega": 0.8})
    res = run(a, b, proto, seed=4)
    assert res.noise_seed is not None
    commitment = res.report["seeds"]["noise_seed_commitment"]
    assert commitment and str(res.noise_seed) not in json.dumps(res.report)
    res.write(tmp_path / "out")
    assert (tmp_path / "out" / "alice.secret.json").exists()
    ok = verify(tmp_path / "out" / "report.json", a, b, keys_dir=tmp_path / "out")
    assert ok.ok, ok.to_dict()
    missing = verify(tmp_path / "out" / "report.json", a, b)
    assert not missing.ok and any(c == "noise seed" and not p for c, p, _ in missing.rows)
    wrong = verify(tmp_path / "out" / "report.json", a, b, noise_seed=res.noise_seed + 1)
    assert not wrong.ok
    assert any(m.path == "seeds.noise_seed_commitment" for m in wrong.mismatches)


def test_software_version_is_named_and_only_informational(recorded):
    """A report written by another diqkd version still passes if every figure matches; the
    row names both versions (replays are exact only within one version)."""
    d, a, b, rep = recorded
    same = verify(rep, a, b)
    row = next(r for r in same.rows if r[0] == "software version")
    assert row[1] and "same as the report" in row[2]
    older = json.loads(json.dumps(rep))
    older["software"]["version"] = "0.0.1"
    res = verify(older, a, b)
    row = next(r for r in res.rows if r[0] == "software version")
    assert row[1] and "0.0.1" in row[2] and "rerun the audit with diqkd 0.0.1" in row[2]
    assert res.ok, res.to_dict()
