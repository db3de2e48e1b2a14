"""Tests of the repeater-link emulator: parameters, physics, statistics, devices, determinism.

Statistical checks use 5-sigma tolerances and modest round counts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from diqkd.emulator import (
    BLOCK_ROWS,
    PRESETS,
    LinkParams,
    Tally,
    emulate,
    expected,
    iter_emulate,
    load_link,
    parse_device,
    preset_info,
)
from diqkd.emulator.physics import _chain_waiting, _g, _h, link_model, optimal_angles
from diqkd.emulator.sampler import lhv_strategies
from diqkd.errors import ConfigError
from diqkd.records.model import Records, align

TSIRELSON = 2 * math.sqrt(2)
PERFECT = LinkParams(scheme="tpi", distance_km=1.0, hom_visibility=1.0, collection_efficiency=0.5,
                     detector_efficiency=1.0, test_probability=0.5)


def tally(alice: Records, bob: Records) -> Tally:
    return Tally().add(alice, bob)


def within(value: float, target: float, sigma: float, k: float = 5.0) -> bool:
    return abs(value - target) <= k * sigma


# -- parameters ---------------------------------------------------------------------------------
def test_presets_present() -> None:
    assert set(PRESETS) >= {"ustc-atoms-11km", "ustc-atoms-100km", "ustc-ions-10km",
                            "oxford-2022", "repeater-chain-300km"}
    for name in PRESETS:
        link = load_link(name)
        assert link.name == name
        assert "source" in preset_info(name)["published"]


@pytest.mark.parametrize("field,value", [
    ("hom_visibility", 1.5), ("distance_km", -1.0), ("segments", 0), ("segments", 1.5),
    ("scheme", "xyz"), ("readout_error", 0.5), ("t2_s", 0.0), ("test_probability", 0.0),
    ("excitation_probability", 0.0), ("collection_efficiency", math.nan),
    ("angles_rad", (0.0, 1.0)),
])
def test_validation_names_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        LinkParams(**{field: value})
    assert field in str(err.value)


def test_replace_and_overrides() -> None:
    link = load_link("ustc-atoms-11km", distance_km=50)
    assert link.distance_km == 50
    assert link.replace(segments=2).segments == 2
    with pytest.raises(ConfigError, match="nonsense"):
        link.replace(nonsense=1)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_link("no-such-preset")
    with pytest.raises(ConfigError, match="hom_visibility"):
        link.replace(hom_visibility=2.0)


def test_toml_file_and_roundtrip(tmp_path) -> None:
    path = tmp_path / "my.toml"
    path.write_text('[link]\nscheme = "tpi"\ndistance_km = 3.0\nt2_s = "inf"\n')
    link = load_link(path, segments=2)
    assert (link.scheme, link.distance_km, link.segments, link.t2_s) == ("tpi", 3.0, 2, math.inf)
    again = LinkParams.from_dict(link.to_dict())
    assert again == link
    bad = tmp_path / "bad.toml"
    bad.write_text("[link]\nbogus = 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_link(bad)


# -- physics, analytic -----------------------------------------------------------------------
def test_perfect_state_reaches_tsirelson() -> None:
    e = expected(PERFECT)
    assert e.S == pytest.approx(TSIRELSON, abs=1e-9)
    assert e.qber == pytest.approx(0.0, abs=1e-12)
    assert e.fidelity == pytest.approx(1.0, abs=1e-12)
    alice, bob = emulate(PERFECT, 40_000, seed=3)
    t = tally(alice, bob)
    assert within(t.S, TSIRELSON, t.S_err)
    assert t.qber == 0.0


def test_small_excitation_gives_unit_fidelity() -> None:
    base = LinkParams(scheme="spi", distance_km=10, hom_visibility=1.0)
    infid = [1 - expected(base.replace(excitation_probability=a)).fidelity
             for a in (0.1, 0.01, 0.001, 1e-5)]
    assert all(x > y for x, y in zip(infid, infid[1:], strict=False))
    assert infid[-1] < 1e-4
    assert infid[0] == pytest.approx(0.1, rel=0.2)  # double-excitation penalty ~ alpha


@pytest.mark.parametrize("scheme,power", [("spi", 0.5), ("tpi", 1.0)])
def test_herald_probability_scaling(scheme: str, power: float) -> None:
    base = LinkParams(scheme=scheme, excitation_probability=0.01, fiber_loss_db_per_km=0.2)
    p1, p2 = (expected(base.replace(distance_km=d)) for d in (20.0, 120.0))
    eta_ratio = p2.link_transmittance / p1.link_transmittance   # full-link eta ratio
    assert p2.herald_probability / p1.herald_probability == pytest.approx(
        eta_ratio ** power, rel=0.02)


def test_short_t2_drives_S_down_through_2() -> None:
    base = LinkParams(scheme="tpi", distance_km=50, hom_visibility=1.0)
    storage = base.segment_km * 1e3 / base.fiber_speed_m_per_s
    values = [expected(base.replace(t2_s=storage * f)).S for f in (1e4, 10, 3, 1, 0.1)]
    assert all(x > y for x, y in zip(values, values[1:], strict=False))
    assert values[0] > 2.8 and values[-1] < 2.0
    # in a chain, memories wait for the slower segment: short T2 kills the violation
    chain = LinkParams(scheme="tpi", distance_km=100, segments=2, hom_visibility=1.0)
    assert expected(chain.replace(t2_s=math.inf)).S > 2.8
    assert expected(chain.replace(t2_s=1e-3)).S < 2.0


def test_chain_waiting_against_monte_carlo() -> None:
    rng = np.random.default_rng(5)
    for p, n, x in [(0.3, 2, 0.9), (0.05, 4, 0.99)]:
        k = rng.geometric(p, (100_000, n))
        w = (k.max(axis=1, keepdims=True) - k).sum(axis=1)
        mean_k, mean_d = _chain_waiting(p, n, x)
        assert mean_k == pytest.approx(k.max(axis=1).mean(), rel=0.02)
        assert mean_d == pytest.approx(np.mean(x ** w), abs=0.01)


def test_optimal_angles_beat_fixed_ones() -> None:
    link = LinkParams(bitflip_error=0.05, phase_noise_rad=0.2)
    e_opt = expected(link)
    fixed = (0.0, math.pi / 2, math.pi / 4, -math.pi / 4, 0.0)
    e_fix = expected(link.replace(angles_rad=fixed))
    assert e_opt.S > e_fix.S
    assert e_opt.qber == pytest.approx(e_fix.qber, abs=1e-12)
    rho = link_model(link).rho_static
    assert optimal_angles(rho)[4] == pytest.approx(optimal_angles(rho)[0], abs=1e-9)


def test_key_rate_reference_values() -> None:
    # REFERENCES.md reference values
    for s, g in ((2.2, 0.157288), (2.5, 0.456436), (2.8, 0.918531)):
        assert _g(s) == pytest.approx(g, abs=1e-6)
    assert _g(2.677) - _h(0.0144) == pytest.approx(0.583414, abs=1e-6)
    # oxford-2022 is calibrated to S = 2.677, Q = 0.0144 (to the rounding of its parameters)
    e = expected(load_link("oxford-2022"))
    assert e.key_rate_per_event == pytest.approx(0.583414, abs=1e-4)


# -- presets vs published figures -------------------------------------------------------------
def _published(name: str) -> dict:
    return preset_info(name)["published"]


@pytest.mark.parametrize("name", ["ustc-atoms-11km", "ustc-atoms-100km", "ustc-ions-10km",
                                  "oxford-2022"])
def test_presets_reproduce_published_figures(name: str) -> None:
    e = expected(load_link(name))
    pub = _published(name)
    checked = 0
    for key, attr in (("S", "S"), ("qber", "qber"), ("event_rate_hz", "event_rate_hz"),
                      ("fidelity", "fidelity")):
        if key in pub:
            assert abs(getattr(e, attr) - pub[key]) <= pub[f"{key}_err"], (key, getattr(e, attr))
            checked += 1
    assert checked >= 1
    if "S_101km" in pub:
        far = expected(load_link(name, distance_km=101))
        assert abs(far.S - pub["S_101km"]) <= pub["S_101km_err"]
        assert abs(far.qber - pub["qber_101km"]) <= pub["qber_101km_err"]
    if "key_rate_per_event" in pub:
        assert e.key_rate_per_event == pytest.approx(pub["key_rate_per_event"], abs=0.005)


def test_100km_keeps_positive_asymptotic_rate() -> None:
    assert expected(load_link("ustc-atoms-100km")).key_rate_per_event > 0


def test_repeater_chain_preset_beats_direct_link() -> None:
    link = load_link("repeater-chain-300km")
    e = expected(link)
    assert link.segments >= 2
    assert e.key_rate_per_event > 0.3 and e.event_rate_hz > 100
    direct = expected(link.replace(segments=1))
    assert e.key_rate_hz > 100 * direct.key_rate_hz
    try:
        from diqkd.security.finite import EpsilonBudget, plan_key_length
    except ImportError:  # pragma: no cover - the security package is optional here
        return
    bound = plan_key_length(n=10 ** 7, S=e.S, qber=e.qber, gamma=link.test_probability,
                            eps=EpsilonBudget())
    assert bound.key_bits > 0


@pytest.mark.parametrize("name,rounds", [("oxford-2022", 150_000), ("ustc-ions-10km", 100_000)])
def test_presets_empirical(name: str, rounds: int) -> None:
    link = load_link(name, test_probability=0.5)
    e = expected(link)
    t = tally(*emulate(link, rounds, seed=11))
    assert within(t.S, e.S, t.S_err)
    assert within(t.qber, e.qber, t.qber_err)


# -- statistics of the sampler ----------------------------------------------------------------
@pytest.mark.parametrize("link", [
    LinkParams(scheme="spi", distance_km=30, excitation_probability=0.05, phase_noise_rad=0.2,
               bitflip_error=0.02, readout_error=0.01, dark_count_probability=1e-5,
               test_probability=0.5),
    LinkParams(scheme="tpi", distance_km=200, segments=4, hom_visibility=0.98, t2_s=0.05,
               multiplexing=50, collection_efficiency=0.5, swap_error=0.01,
               test_probability=0.5),
], ids=["spi-noisy", "tpi-chain-dephasing"])
def test_empirical_matches_expected(link: LinkParams) -> None:
    e = expected(link)
    alice, bob = emulate(link, 120_000, seed=21)
    t = tally(alice, bob)
    assert within(t.S, e.S, t.S_err), (t.S, e.S, t.S_err)
    assert within(t.qber, e.qber, t.qber_err), (t.qber, e.qber)
    # event timing: mean time between events = 1 / event rate
    dt = np.diff(alice["t_ns"].astype(np.float64)) * 1e-9
    sigma = dt.std() / math.sqrt(len(dt))
    assert within(dt.mean(), 1 / e.event_rate_hz, sigma)
    # round types: a test round with probability gamma
    frac = float(np.mean(bob["y"] != 2))
    assert within(frac, link.test_probability, math.sqrt(0.25 / len(bob)))


def test_herald_inverts_bob_raw_outcome() -> None:
    alice, bob = emulate(PERFECT.replace(test_probability=0.2), 20_000, seed=4)
    key = bob["y"] == 2
    raw_agree = np.mean(alice["a"][key] == bob["b"][key])
    assert 0.45 < raw_agree < 0.55                     # raw b: psi- rounds are inverted
    assert np.array_equal(alice["a"][key], (bob["b"] ^ bob["herald"])[key])
    assert 0.48 < bob["herald"].mean() < 0.52
    joint = align(alice, bob)
    assert np.all(joint.a[joint.y == 2] == joint.b[joint.y == 2])


def test_record_columns_and_types() -> None:
    alice, bob = emulate(load_link("ustc-atoms-11km"), 1000, seed=1)
    assert set(alice.columns) == {"round", "x", "a", "t_ns"}
    assert set(bob.columns) == {"round", "y", "b", "herald", "t_ns"}
    assert np.array_equal(alice["round"], np.arange(1000, dtype=np.uint64))
    assert np.all(np.diff(alice["t_ns"]) > 0)
    assert np.all((alice["x"] == 0) | (bob["y"] != 2))
    assert alice.metadata["emulator_seed"] == 1
    assert alice.metadata["emulator_link"]["name"] == "ustc-atoms-11km"


# -- devices -----------------------------------------------------------------------------------
def test_lhv_strategies_are_local_and_classical() -> None:
    strat = lhv_strategies()
    assert len(strat) == 8
    for a0, a1, b0, b1, b2 in strat.astype(int):
        e = [1 - 2 * (a ^ b) for a, b in ((a0, b0), (a0, b1), (a1, b0), (a1, b1))]
        assert e[0] + e[1] + e[2] - e[3] == 2 and b2 == a0


def test_lhv_never_exceeds_2() -> None:
    link = load_link("oxford-2022", test_probability=0.5)
    for seed in (1, 2, 3):
        t = tally(*emulate(link, 60_000, seed=seed, device="lhv"))
        assert t.S <= 2.0 + 5 * t.S_err
        assert t.S == pytest.approx(2.0, abs=5 * t.S_err)


def test_drift_lowers_S_over_the_run() -> None:
    link = load_link("oxford-2022", test_probability=0.5)
    n = 200_000
    alice, bob = emulate(link, n, seed=8, device="drift:amount=0.4")
    first = tally(alice.slice(0, n // 5), bob.slice(0, n // 5))
    last = tally(alice.slice(n - n // 5, n), bob.slice(n - n // 5, n))
    assert first.S - last.S > 5 * math.hypot(first.S_err, last.S_err)
    assert last.S < 2.4


def test_burst_and_outage() -> None:
    link = load_link("oxford-2022", test_probability=0.5)
    n = 100_000
    honest = tally(*emulate(link, n, seed=9))
    burst = tally(*emulate(link, n, seed=9, device="burst:count=5,length=4000,level=1.0"))
    assert burst.S < honest.S - 5 * math.hypot(honest.S_err, burst.S_err)
    alice, bob = emulate(link, n, seed=9, device="outage:start=0.4,fraction=0.2")
    window = tally(alice.slice(45_000, 55_000), bob.slice(45_000, 55_000))
    assert abs(window.S) < 5 * window.S_err + 0.05
    assert abs(window.qber - 0.5) < 5 * window.qber_err
    a_gap, _ = emulate(link, n, seed=9, device="outage:start=0.5,mode=gap,gap_s=3600")
    jumps = np.diff(a_gap["t_ns"])
    assert int(np.argmax(jumps)) == n // 2 - 1 and jumps.max() >= 3600e9


def test_device_parsing_errors() -> None:
    assert parse_device("drift:amount=0.3").params["amount"] == 0.3
    with pytest.raises(ConfigError, match="unknown device"):
        parse_device("gremlin")
    with pytest.raises(ConfigError, match="bogus"):
        parse_device("drift:bogus=1")
    with pytest.raises(ConfigError, match="amount"):
        parse_device("drift:amount=3")


# -- determinism ------------------------------------------------------------------------------
def _same(p: tuple[Records, Records], q: tuple[Records, Records]) -> bool:
    return p[0].equals(q[0]) and p[1].equals(q[1])


@pytest.mark.parametrize("name,device", [("ustc-atoms-11km", "honest"),
                                         ("repeater-chain-300km", "honest"),
                                         ("oxford-2022", "burst"), ("oxford-2022", "lhv")])
def test_same_seed_same_records_whatever_the_chunk_size(name: str, device: str) -> None:
    link = load_link(name)
    n = 2 * BLOCK_ROWS + 123
    ref = emulate(link, n, seed=42, device=device)
    for chunk in (1000, BLOCK_ROWS, BLOCK_ROWS + 7, 1 << 20):
        assert _same(emulate(link, n, seed=42, device=device, chunk_rows=chunk), ref)
    parts = list(iter_emulate(link, n, seed=42, device=device, chunk_rows=5000))
    assert all(len(a) <= 5000 for a, _ in parts)
    joined = (Records.concat([a for a, _ in parts]), Records.concat([b for _, b in parts]))
    assert _same(joined, ref)
    other = emulate(link, n, seed=43, device=device)
    assert not np.array_equal(other[0]["a"], ref[0]["a"])
    # a shorter run is a prefix of a longer one
    short = emulate(link, 1000, seed=42, device="honest" if device == "burst" else device)
    if device != "burst":
        assert np.array_equal(short[0]["a"], ref[0]["a"][:1000])


def test_bad_arguments() -> None:
    link = load_link("oxford-2022")
    with pytest.raises(ConfigError, match="rounds"):
        emulate(link, -1, seed=1)
    with pytest.raises(ConfigError, match="seed"):
        emulate(link, 10, seed=-1)
    with pytest.raises(ConfigError, match="test_probability"):
        emulate(link, 10, seed=1, test_probability=1.5)
    with pytest.raises(ConfigError, match="chunk_rows"):
        emulate(link, 10, seed=1, chunk_rows=0)
    a, b = emulate(link, 0, seed=1)
    assert len(a) == len(b) == 0


def test_swap_of_werner_states_multiplies_visibilities() -> None:
    from diqkd.emulator.physics import _PSI_PLUS, _proj, swap

    def werner(v: float) -> np.ndarray:
        return v * _proj(_PSI_PLUS) + (1 - v) * np.eye(4) / 4

    out = swap(werner(0.9), werner(0.8))
    assert np.allclose(out, werner(0.72), atol=1e-12)
    assert np.allclose(swap(_proj(_PSI_PLUS), _proj(_PSI_PLUS)), _proj(_PSI_PLUS), atol=1e-12)


def test_emulate_to_files_progress_and_metadata(tmp_path) -> None:
    from diqkd.emulator import emulate_to_files
    from diqkd.records.formats import read_records

    calls: list[tuple[int, int]] = []
    link = load_link("ustc-ions-10km")
    a_path, b_path = emulate_to_files(link, 5000, tmp_path, seed=5, fmt="h5",
                                      progress=lambda d, t: calls.append((d, t)),
                                      chunk_rows=2000)
    assert calls == [(2000, 5000), (4000, 5000), (5000, 5000)]
    alice = read_records(a_path)
    ref = emulate(link, 5000, seed=5)[0]
    assert alice.equals(ref)
    meta = alice.metadata
    assert meta["emulator_device"] == "honest" and meta["emulator_seed"] == 5
    assert LinkParams.from_dict(meta["emulator_link"]) == link


def test_same_seed_byte_identical_files(tmp_path) -> None:
    import hashlib

    from diqkd.emulator import emulate_to_files

    link = load_link("oxford-2022")
    digests = []
    for chunk in (1000, 1 << 20):
        out = tmp_path / str(chunk)
        paths = emulate_to_files(link, 70_000, out, seed=3, chunk_rows=chunk)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    assert digests[0] == digests[1]
