"""``diqkd run``: files in, keys and report out; exit statuses; the default job."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_pipeline_support import (
    fixed_key_length,
    protocol,
    sample,
    sample_small,
    write_pair,
    write_protocol,
)

from diqkd_cli.main import cli

KEY_FILES = {"alice.key", "alice.key.json", "bob.key", "bob.key.json"}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module", autouse=True)
def _fixed_length():
    with fixed_key_length(4096):  # short runs: see test_pipeline_support.fixed_key_length
        yield


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    a, b = write_pair(d, *sample_small(seed=12))
    return d, a, b, write_protocol(d, protocol())


@pytest.fixture(scope="module")
def lhv(tmp_path_factory):
    d = tmp_path_factory.mktemp("lhv")
    a, b = write_pair(d, *sample(20_000, lhv=True, seed=13))
    return d, a, b, write_protocol(d, protocol())


def test_run_writes_keys_and_report(good):
    d, a, b, p = good
    out = d / "out"
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", out, "--seed", 3,
                 "-q")
    assert res.exit_code == 0, res.output
    names = {f.name for f in out.iterdir()}
    assert KEY_FILES | {"report.json"} <= names
    for f in KEY_FILES:
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o600
    rep = json.loads((out / "report.json").read_text())
    side = json.loads((out / "alice.key.json").read_text())
    assert side["bits"] == rep["keys"]["bits"] > 0
    assert (out / "alice.key").read_bytes() == (out / "bob.key").read_bytes()
    for label in ("rounds", "S", "QBER", "EC leakage", "efficiency f", "key bits",
                  "key per round", "time reconcile"):
        assert label in res.output
    assert (out / "alice.key").read_bytes().hex()[:32] not in res.output


def test_json_output_and_same_seed_same_digest(good):
    d, a, b, p = good
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", d / "out2",
                 "--seed", 3, "--json", "-q")
    assert res.exit_code == 0
    rep = json.loads(res.stdout)
    first = json.loads((d / "out" / "report.json").read_text()) if (d / "out").exists() else None
    if first is not None:
        assert rep["keys"]["alice_sha256"] == first["keys"]["alice_sha256"]


def test_abort_exits_3_with_report_and_no_keys(lhv):
    d, a, b, p = lhv
    out = d / "out"
    out.mkdir()
    (out / "alice.key").write_bytes(b"stale key from an earlier run")
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", out, "-q")
    assert res.exit_code == 3
    assert "protocol abort" in res.stderr and "Bell test failed" in res.stderr
    assert {f.name for f in out.iterdir()} == {"report.json"}
    rep = json.loads((out / "report.json").read_text())
    assert rep["verdict"] == "abort" and rep["abort"]["code"] == "bell-test"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--alice", "A"], "--alice and --bob go together"),
        (["--alice", "A", "--bob", "B"], "--protocol is required"),
        (["--alice", "A", "--bob", "B", "--protocol", "P", "--preset", "x"], "only apply"),
        (["--rounds", "abc"], "--rounds"),
        (["--rounds", "1.5"], "--rounds"),
    ],
)
def test_conflicting_or_bad_options_exit_2(args, needle, tmp_path):
    res = invoke("run", *args, "--out", tmp_path / "o")
    assert res.exit_code == 2 and needle in res.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_bad_inputs_exit_2_and_leave_nothing(good, tmp_path):
    d, a, b, p = good
    bad_proto = tmp_path / "p.toml"
    bad_proto.write_text("gamma = 1.5\n[expected]\nS = 2.6\nqber = 0.02\n")
    out = tmp_path / "o"
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", bad_proto, "--out", out)
    assert res.exit_code == 2 and "gamma" in res.stderr and "Traceback" not in res.output
    missing = invoke("run", "--alice", tmp_path / "nope.h5", "--bob", b, "--protocol", p,
                     "--out", out)
    assert missing.exit_code == 2
    garbage = tmp_path / "alice.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 50)
    res = invoke("run", "--alice", garbage, "--bob", b, "--protocol", p, "--out", out)
    assert res.exit_code == 2
    swapped = invoke("run", "--alice", b, "--bob", a, "--protocol", p, "--out", out)
    assert swapped.exit_code == 2
    assert not out.exists() or not (KEY_FILES & {f.name for f in out.iterdir()})


def test_unwritable_output_directory_exits_2(good, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    d, a, b, p = good
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", ro)
    assert res.exit_code == 2


def test_world_writable_output_directory_is_refused(good, tmp_path):
    d, a, b, p = good
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    res = invoke("run", "--alice", a, "--bob", b, "--protocol", p, "--out", ww)
    assert res.exit_code == 2 and "world-writable" in res.stderr


@pytest.mark.slow
def test_default_job_in_a_subprocess(tmp_path):
    """The installed script's default job (emulator), shortened with --rounds: it aborts with no
    key at this size, exit 3, and leaves the emulated records and the report for an audit."""
    exe = Path(sys.executable).with_name("diqkd")
    out = tmp_path / "job"
    proc = subprocess.run([str(exe), "run", "--rounds", "20000", "--seed", "4", "--out",
                           str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    assert "emulat" in proc.stderr and "Traceback" not in proc.stderr
    names = {f.name for f in out.iterdir()}
    assert {"alice.h5", "bob.h5", "report.json", "protocol.toml"} <= names
    assert not (KEY_FILES & names)
    rep = json.loads((out / "report.json").read_text())
    assert rep["context"]["emulator"]["rounds"] == 20000
    assert rep["inputs"]["alice"]["sha256"]
