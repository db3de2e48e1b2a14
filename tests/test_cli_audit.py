"""``diqkd audit``: verify (pass table, named mismatch, exit 4), keygen, sign, check-signature."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_pipeline_support import (
    fixed_key_length,
    protocol,
    sample_small,
    write_pair,
    write_protocol,
)

from diqkd_cli.main import cli


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module", autouse=True)
def _fixed_length():
    with fixed_key_length(4096):  # short runs: see test_pipeline_support.fixed_key_length
        yield


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, _fixed_length):
    d = tmp_path_factory.mktemp("cliaudit")
    a, b = write_pair(d, *sample_small(seed=14))
    p = write_protocol(d, protocol())
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", d / "out", "-q")
    assert res.exit_code == 0, res.output
    return d, a, b


def test_verify_pass_and_tampered_report(run_dir, tmp_path):
    d, a, b = run_dir
    report = d / "out" / "report.json"
    res = invoke("audit", "verify", report, "--alice", a, "--bob", b, "--keys", d / "out")
    assert res.exit_code == 0, res.output
    assert "PASS" in res.stdout and "FAIL" not in res.stdout
    rep = json.loads(report.read_text())
    rep["leakage"]["total_bits"] += 1
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps(rep))
    res = invoke("audit", "verify", bad, "--alice", a, "--bob", b, "--json")
    assert res.exit_code == 4
    out = json.loads(res.stdout)
    assert [m["figure"] for m in out["mismatches"]] == ["leakage.total_bits"]
    assert "leakage.total_bits" in res.stderr


def test_verify_bad_inputs_exit_2(run_dir, tmp_path):
    d, a, b = run_dir
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"schema": "diqkd-report/0"}))
    res = invoke("audit", "verify", p, "--alice", a, "--bob", b)
    assert res.exit_code == 2 and "schema" in res.stderr
    res = invoke("audit", "verify", tmp_path / "none.json", "--alice", a, "--bob", b)
    assert res.exit_code == 2


def test_keygen_sign_check(run_dir, tmp_path):
    d, _, _ = run_dir
    report = d / "out" / "report.json"
    res = invoke("audit", "keygen", "--out", tmp_path / "k")
    assert res.exit_code == 0
    priv, pub = tmp_path / "k" / "diqkd-ed25519.pem", tmp_path / "k" / "diqkd-ed25519.pub.pem"
    assert (priv.stat().st_mode & 0o777) == 0o600
    res = invoke("audit", "sign", report, "--key", priv, "--out", tmp_path / "r.sig")
    assert res.exit_code == 0
    res = invoke("audit", "check-signature", report, "--sig", tmp_path / "r.sig", "--pubkey", pub)
    assert res.exit_code == 0 and "VALID" in res.stdout
    rep = json.loads(report.read_text())
    rep["statistics"]["S"] = 2.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rep))
    res = invoke("audit", "check-signature", bad, "--sig", tmp_path / "r.sig", "--pubkey", pub)
    assert res.exit_code == 4 and "INVALID" in res.stdout
    res = invoke("audit", "sign", report, "--key", pub)
    assert res.exit_code == 2
