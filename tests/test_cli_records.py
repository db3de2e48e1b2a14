"""``diqkd records inspect`` and ``diqkd records convert``: CliRunner, plus one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from diqkd.records import read_records
from diqkd_cli.main import cli

DATA = Path(__file__).resolve().parent.parent / "testdata" / "records"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_inspect_table() -> None:
    code, out, err = run("records", "inspect", str(DATA / "valid_bob.h5"),
                         str(DATA / "valid_alice.csv"))
    assert code == 0, err
    for word in ("valid_bob.h5", "hdf5", "party", "bob", "rounds", "12", "event rate",
                 "y=2", "herald=1", "valid_alice.csv", "x=1,a=0", "run = \"fixture\""):
        assert word in out, word


def test_inspect_json() -> None:
    code, out, _ = run("records", "inspect", "--json", str(DATA / "valid_bob.npz"))
    assert code == 0
    (summary,) = json.loads(out)
    assert summary["party"] == "bob" and summary["rounds"] == 12 and summary["format"] == "npz"
    assert sum(summary["settings"].values()) == 12


@pytest.mark.parametrize(("name", "words"), [
    ("short_row.csv", ["CSV line 13", "short_row.csv"]),
    ("truncated.h5", ["truncated or corrupt HDF5", "truncated.h5"]),
    ("out_of_range.csv", ["out of range", "column 'y'", "row 6", "value 3"]),
    ("missing.h5", ["no such file"]),
])
def test_inspect_bad_file_exit_2_without_traceback(name: str, words: list[str]) -> None:
    code, out, err = run("records", "inspect", str(DATA / name))
    assert code == 2
    assert "Traceback" not in err + out
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    for w in words:
        assert w in err, (w, err)


def test_inspect_reports_good_files_and_fails_on_bad_one() -> None:
    code, out, err = run("records", "inspect", str(DATA / "valid_alice.h5"),
                         str(DATA / "empty.csv"))
    assert code == 2 and "valid_alice.h5" in out and "empty file" in err


def test_inspect_wrong_party() -> None:
    code, _, err = run("records", "inspect", "--party", "bob", str(DATA / "valid_alice.h5"))
    assert code == 2 and "wrong party" in err


@pytest.mark.parametrize("out_name", ["a.csv", "a.npz", "a.h5"])
def test_convert(tmp_path: Path, out_name: str) -> None:
    out = tmp_path / out_name
    code, _, err = run("records", "convert", str(DATA / "valid_alice.h5"), str(out),
                       "--chunk-rows", "5")
    assert code == 0, err
    src, got = read_records(DATA / "valid_alice.h5"), read_records(out)
    assert got.equals(src) and got.metadata == src.metadata
    code, _, err = run("records", "convert", str(DATA / "valid_alice.h5"), str(out))
    assert code == 2 and "--force" in err  # refuses to overwrite
    code, _, err = run("records", "convert", "--force", "--progress",
                       str(DATA / "valid_alice.csv"), str(out))
    assert code == 0 and "converting" in err


def test_convert_bad_input_leaves_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out.h5"
    code, _, err = run("records", "convert", str(DATA / "duplicate_round.csv"), str(out),
                       "--chunk-rows", "2")
    assert code == 2 and "duplicate round" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_convert_unknown_output_extension(tmp_path: Path) -> None:
    code, _, err = run("records", "convert", str(DATA / "valid_alice.h5"),
                       str(tmp_path / "out.txt"))
    assert code == 2 and "extension" in err


def test_help_texts() -> None:
    for args in (["records", "--help"], ["records", "inspect", "--help"],
                 ["records", "convert", "--help"]):
        code, out, _ = run(*args)
        assert code == 0 and "Usage" in out
    assert "Examples" in run("records", "convert", "--help")[1]


def test_installed_script_subprocess() -> None:
    script = Path(sys.executable).parent / "diqkd"
    assert script.exists(), f"console script not installed next to {sys.executable}"
    ok = subprocess.run([str(script), "records", "inspect", "--json",
                         str(DATA / "valid_bob.h5")], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["rounds"] == 12
    bad = subprocess.run([str(script), "records", "inspect", str(DATA / "truncated.h5")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "truncated" in bad.stderr
