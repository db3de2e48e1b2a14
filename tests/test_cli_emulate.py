"""``diqkd emulate`` through click's CliRunner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from diqkd.emulator import emulate, load_link
from diqkd_cli.main import cli


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def test_list_presets(runner: CliRunner) -> None:
    res = runner.invoke(cli, ["emulate", "--list-presets", "--json"])
    assert res.exit_code == 0, res.output
    names = {p["name"] for p in json.loads(res.output)}
    assert {"ustc-atoms-11km", "repeater-chain-300km"} <= names
    res = runner.invoke(cli, ["emulate", "--list-presets"])
    assert res.exit_code == 0 and "oxford-2022" in res.output


def test_emulate_writes_files(runner: CliRunner, tmp_path) -> None:
    from diqkd.records.formats import read_records

    out = tmp_path / "run"
    res = runner.invoke(cli, ["emulate", "--preset", "ustc-atoms-100km", "--rounds", "2e4",
                              "--seed", "7", "--out", str(out), "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rounds"] == 20_000 and summary["seed"] == 7
    assert abs(summary["observed"]["S"] - summary["expected"]["S"]) < 5 * summary["observed"][
        "S_err"]
    alice = read_records(out / "alice.h5")
    bob = read_records(out / "bob.h5")
    ref_a, ref_b = emulate(load_link("ustc-atoms-100km"), 20_000, seed=7)
    assert alice.equals(ref_a) and bob.equals(ref_b)
    assert alice.metadata["emulator_seed"] == 7
    assert alice.metadata["emulator_preset"] == "ustc-atoms-100km"


def test_emulate_overrides_and_config(runner: CliRunner, tmp_path) -> None:
    cfg = tmp_path / "link.toml"
    cfg.write_text("[link]\nreadout_error = 0.02\n")
    out = tmp_path / "o"
    res = runner.invoke(cli, [
        "emulate", "--preset", "oxford-2022", "--config", str(cfg), "--distance", "0.5",
        "--segments", "2", "--device", "lhv", "--test-probability", "0.5", "--rounds", "5000",
        "--out", str(out), "--json", "--format", "npz", "--set", "t2_s=100"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["link"]["distance_km"] == 0.5 and s["link"]["segments"] == 2
    assert s["link"]["readout_error"] == 0.02 and s["link"]["t2_s"] == 100
    assert s["device"] == "lhv" and (out / "alice.npz").exists()
    assert s["observed"]["S"] <= 2 + 5 * s["observed"]["S_err"]


def test_sweep_json_and_plot(runner: CliRunner, tmp_path) -> None:
    png = tmp_path / "rate.png"
    res = runner.invoke(cli, ["emulate", "--preset", "repeater-chain-300km",
                              "--sweep", "distance=50:300:50", "--plot", str(png), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rows = data["sweep"]
    assert len(rows) == 6 * 3
    assert {r["segments"] for r in rows} == {1, 2, 4}
    assert png.stat().st_size > 1000
    at300 = {r["segments"]: r for r in rows if r["distance_km"] == 300}
    assert at300[4]["key_rate_hz"] > at300[1]["key_rate_hz"]
    assert all(np.isfinite(r["repeaterless_bound"]) for r in rows)
    res = runner.invoke(cli, ["emulate", "--sweep", "distance=10:30:10"])
    assert res.exit_code == 0 and "QBER" in res.output


@pytest.mark.parametrize("args,needle", [
    (["--preset", "nope", "--out", "x"], "unknown preset"),
    (["--rounds", "1e6"], "--out"),
    (["--rounds", "1.5", "--out", "x"], "--rounds"),
    (["--sweep", "speed=1:2:1"], "--sweep"),
    (["--device", "gremlin", "--out", "x"], "unknown device"),
    (["--set", "hom_visibility=3", "--out", "x"], "hom_visibility"),
    (["--preset", "oxford-2022", "--distance", "50", "--out", "x"], "years"),
])
def test_errors_exit_2(runner: CliRunner, tmp_path, args: list[str], needle: str) -> None:
    res = runner.invoke(cli, ["emulate", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output
