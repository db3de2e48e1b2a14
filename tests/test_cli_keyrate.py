"""``diqkd keyrate`` command line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from diqkd_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, ["keyrate", *args])


def test_table_output():
    r = run("--S", "2.7", "--qber", "0.02", "--rounds", "1e8", "--gamma", "0.02")
    assert r.exit_code == 0, r.output
    assert "asymptotic rate" in r.output
    assert "entropy_first_order" in r.output and "leak_ec" in r.output
    assert "finite-size key" in r.output


def test_json_and_both_methods():
    r = run("--S", "2.7", "--qber", "0.02", "--rounds", "1e8", "--gamma", "0.02", "--json",
            "--method", "all")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert set(d["finite"]) == {"eat2", "geat"}
    b = d["finite"]["eat2"]
    assert b["key_bits"] > 0 and b["n"] == 10**8
    assert d["asymptotic_rate_per_key_round"] > b["key_rate"]


def test_actual_leak_and_threshold():
    r = run("--S", "2.604", "--qber", "0.018", "--rounds", "1.5e6", "--gamma", "0.05078125",
            "--omega-threshold", "0.825538", "--leak", "296517", "--eps-snd", "1e-3", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["finite"]["eat2"]["leak_ec_bits"] == 296517
    assert d["finite"]["eat2"]["key_bits"] > 80_000


def test_min_rounds():
    r = run("--S", "2.7", "--qber", "0.02", "--gamma", "0.05", "--min-rounds", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    n = d["min_rounds"]["eat2"]["n"]
    assert 1e5 < n < 1e8
    assert d["min_rounds"]["eat2"]["key_bits"] > 0


def test_plot(tmp_path):
    out = tmp_path / "rate.png"
    r = run("--S", "2.7", "--qber", "0.02", "--gamma", "0.02", "--rounds", "1e7", "--plot",
            str(out))
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 1000


def test_bad_values_exit_2():
    for args in (["--S", "3.5", "--qber", "0.02", "--rounds", "1e6"],
                 ["--S", "2.7", "--qber", "0.7", "--rounds", "1e6"],
                 ["--S", "2.7", "--qber", "0.02", "--rounds", "-5"],
                 ["--S", "2.7", "--qber", "0.02", "--rounds", "1e6", "--eps-s", "2"],
                 ["--S", "2.7", "--qber", "0.02"],
                 ["--S", "2.7", "--qber", "0.02", "--rounds", "1e6", "--p-noise", "x"],
                 ["--records", "/nonexistent-dir"]):
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)


def test_help():
    r = run("--help")
    assert r.exit_code == 0
    assert "--min-rounds" in r.output and "--records" in r.output


def test_records_dir(tmp_path):
    import numpy as np
    import pytest

    formats = pytest.importorskip("diqkd.records.formats")
    pytest.importorskip("h5py")
    from diqkd.records.model import Records

    rng = np.random.default_rng(3)
    n = 20_000
    test = rng.random(n) < 0.2
    x = np.where(test, rng.integers(0, 2, n), 0).astype(np.uint8)
    y = np.where(test, rng.integers(0, 2, n), 2).astype(np.uint8)
    a = rng.integers(0, 2, n).astype(np.uint8)
    win = rng.random(n) < 0.83
    b = np.where(test, a ^ (x * y) ^ (~win & 1), a ^ (rng.random(n) < 0.02)).astype(np.uint8) & 1
    rounds = np.arange(n, dtype=np.uint64)
    alice = Records("alice", {"round": rounds, "x": x, "a": a})
    bob = Records("bob", {"round": rounds, "y": y, "b": b})
    formats.write_records(tmp_path / "alice.h5", alice)
    formats.write_records(tmp_path / "bob.h5", bob)
    r = run("--records", str(tmp_path), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["records"]["n"] == n
    assert abs(d["S"] - (8 * 0.83 - 4)) < 0.1
    assert abs(d["qber"] - 0.02) < 0.01
    assert d["finite"]["eat2"]["key_bits"] == 0  # far too few rounds
