"""Every emulator preset through the pipeline with its shipped protocol file.

The quick tests run the flow on short emulated runs (with a fixed key length, as the other flow
tests do); the full-length runs, which certify a real finite-size key for each preset, take
minutes each and run only with ``DIQKD_LONG_TESTS=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_pipeline_support import fixed_key_length

from diqkd.pipeline import run
from diqkd.protocol import Protocol

emulator = pytest.importorskip("diqkd.emulator")

ROOT = Path(__file__).resolve().parents[1]
PRESETS = tuple(emulator.PRESETS)
#: rounds at which each shipped protocol plans a positive finite-size key (see the files)
DESIGN_ROUNDS = {"oxford-2022": 5e6, "repeater-chain-300km": 1e7, "ustc-atoms-11km": 1e7,
                 "ustc-ions-10km": 2e7, "ustc-atoms-100km": 1e8}


def _proto(preset: str) -> Protocol:
    return Protocol.from_toml(ROOT / "testdata" / "protocols" / f"{preset}.toml")


def _flow(preset: str) -> Protocol:
    """The shipped protocol with the flow tests' faster EC mode (see test_pipeline_support)."""
    return _proto(preset).replace(ec={"rate_adaptation": "adaptive"})


def test_shipped_protocols_match_the_emulator():
    for preset in PRESETS:
        p = _proto(preset)
        exp = emulator.expected(emulator.load_link(preset))
        assert abs(p.expected_S - exp.S) < 0.01, preset
        assert abs(p.expected_qber - exp.qber) < 0.002, preset


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_flow_gives_equal_keys(preset):
    p = _flow(preset)
    link = emulator.load_link(preset)
    alice, bob = emulator.emulate(link, 20_000, seed=3, test_probability=p.gamma)
    with fixed_key_length(1024):
        r = run(alice, bob, p, seed=1)
    assert r.ok, r.abort
    assert r.key_alice.same_as(r.key_bob) and r.key_bits == 1024
    st = r.report["statistics"]
    assert abs(st["S"] - p.expected_S) < 0.25  # 20k rounds: loose
    assert r.report["inputs"]["alice"]["rows"] == len(alice)


def test_lhv_device_aborts():
    p = _flow("oxford-2022")
    alice, bob = emulator.emulate("oxford-2022", 30_000, seed=4, test_probability=p.gamma,
                                  device="lhv")
    r = run(alice, bob, p, seed=1)
    assert r.verdict == "abort" and r.abort["code"] == "bell-test" and r.key_alice is None


@pytest.mark.skipif(not os.environ.get("DIQKD_LONG_TESTS"), reason="set DIQKD_LONG_TESTS=1")
@pytest.mark.parametrize("preset", PRESETS)
def test_preset_full_length_certifies_a_key(preset, tmp_path):
    p = _proto(preset)
    n = int(DESIGN_ROUNDS[preset])
    a, b = emulator.emulate_to_files(emulator.load_link(preset), n, tmp_path, seed=7,
                                     test_probability=p.gamma)
    r = run(a, b, p, seed=7)
    assert r.ok, r.abort
    assert r.key_alice.same_as(r.key_bob)
    assert r.key_bits == r.report["bound"]["key_bits"] > 0
