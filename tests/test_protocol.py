"""Protocol files: parsing, validation with named keys and values, round trips, fuzzing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.errors import ConfigError
from diqkd.protocol import Epsilons, Protocol

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = sorted((ROOT / "testdata" / "protocols").glob("*.toml"))

MINIMAL = """
gamma = 0.05
[expected]
S = 2.64
qber = 0.018
"""


def test_minimal_protocol_defaults():
    p = Protocol.from_toml_string(MINIMAL)
    assert p.gamma == 0.05 and p.key_inputs == (0, 2) and p.method == "eat2"
    assert p.noisy_preprocessing == 0.0 and p.omega_threshold is None
    assert p.eps == Epsilons()
    assert math.isclose(p.expected_omega, (4 + 2.64) / 8)


def test_shipped_examples_load_and_cover_every_preset():
    assert PROTOCOLS, "testdata/protocols/*.toml missing"
    names = set()
    for path in PROTOCOLS:
        p = Protocol.from_toml(path)
        assert p.name
        names.add(path.stem)
    try:
        from diqkd.emulator import PRESETS
    except ImportError:
        pytest.skip("emulator presets not available")
    assert set(PRESETS) <= names


def test_round_trip_dict_and_toml():
    p = Protocol.from_toml_string(MINIMAL + "\n[threshold]\nomega = 0.83\n")
    assert Protocol.from_dict(p.to_dict()) == p
    q = Protocol.from_toml_string(p.to_toml())
    assert q == p and q.sha256 == p.sha256
    assert p.replace(gamma=0.1).gamma == 0.1


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("gama = 0.1\n" + MINIMAL, "'gama'"),
        ("gamma = 0.05\n[expected]\nS = 2.6\nqber = 0.01\nfoo = 1\n", "'expected.foo'"),
        (MINIMAL + "[epsilon]\neps_x = 1e-9\n", "'epsilon.eps_x'"),
        (MINIMAL + "[threshold]\nomega_min = 0.8\n", "'threshold.omega_min'"),
    ],
)
def test_unknown_keys_are_named(text, needle):
    with pytest.raises(ConfigError, match=needle) as exc:
        Protocol.from_toml_string(text, source="p.toml")
    assert "p.toml" in str(exc.value)


@pytest.mark.parametrize("gamma", ["0", "1", "1.5", "-0.1", "'x'", "true", "nan", "inf"])
def test_gamma_outside_open_unit_interval(gamma):
    with pytest.raises(ConfigError, match="gamma") as exc:
        Protocol.from_toml_string(MINIMAL.replace("gamma = 0.05", f"gamma = {gamma}"),
                                  source="p.toml")
    assert "p.toml" in str(exc.value)


@pytest.mark.parametrize("name", ["eps_s", "eps_pa", "eps_ea", "eps_cor", "eps_complete"])
@pytest.mark.parametrize("value", ["0", "1", "2.0", "-0.001"])
def test_epsilons_out_of_range(name, value):
    with pytest.raises(ConfigError, match=f"epsilon.{name}.*{value}"):
        Protocol.from_toml_string(MINIMAL + f"\n[epsilon]\n{name} = {value}\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("gamma = 0.05", "expected"),  # no [expected]
        (MINIMAL.replace("S = 2.64", "S = 1.9"), "expected.S"),
        (MINIMAL.replace("S = 2.64", "S = 3.0"), "expected.S"),
        (MINIMAL.replace("qber = 0.018", "qber = 0.5"), "expected.qber"),
        (MINIMAL + "\n[threshold]\nomega = 0.7\n", "threshold.omega"),
        (MINIMAL + "\n[threshold]\nomega = 0.9\n", "threshold.omega"),
        ("key_inputs = [1, 2]\n" + MINIMAL, "key_inputs"),
        ("key_inputs = [0]\n" + MINIMAL, "key_inputs"),
        ("method = 'renyi'\n" + MINIMAL, "method"),
        ("noisy_preprocessing = 0.5\n" + MINIMAL, "noisy_preprocessing"),
        ("min_key_bits = 0\n" + MINIMAL, "min_key_bits"),
        ("schema = 2\n" + MINIMAL, "schema"),
        ("name = 3\n" + MINIMAL, "name"),
        ("expected = 3\n gamma = 0.1", "expected"),
        ("gamma = [0.1", "not valid TOML"),
    ],
)
def test_invalid_values_are_named(text, needle):
    with pytest.raises(ConfigError, match=needle):
        Protocol.from_toml_string(text)


def test_unknown_ec_key_is_refused_when_reconciliation_exists():
    pytest.importorskip("diqkd.reconciliation", reason="reconciliation not available")
    from diqkd.protocol import _ec_fields

    if _ec_fields() is None:
        pytest.skip("ReconciliationConfig not available yet")
    with pytest.raises(ConfigError, match="ec.no_such_setting"):
        Protocol.from_toml_string(MINIMAL + "\n[ec]\nno_such_setting = 1\n")


def test_ec_table_sets_blind_start_quantile():
    """The blind start quantile is a protocol setting like the other [ec] keys: passed on to the
    reconciliation config, and an out-of-range value is refused with its name."""
    pytest.importorskip("diqkd.reconciliation", reason="reconciliation not available")
    p = Protocol.from_toml_string(MINIMAL + "\n[ec]\nblind_start_quantile = 0.9\n")
    assert p.reconciliation_config().blind_start_quantile == 0.9
    assert Protocol.from_toml_string(MINIMAL).reconciliation_config().blind_start_quantile == 0.25
    with pytest.raises(ConfigError, match="blind_start_quantile must be in"):
        Protocol.from_toml_string(MINIMAL + "\n[ec]\nblind_start_quantile = 1.5\n"
                                  ).reconciliation_config()


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        Protocol.from_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe gamma")
    with pytest.raises(ConfigError, match="UTF-8"):
        Protocol.from_toml(bad)


def test_direct_construction_validates():
    with pytest.raises(ConfigError, match="gamma"):
        Protocol(gamma=2.0, expected_S=2.6, expected_qber=0.02)
    p = Protocol(gamma=0.1, expected_S=2.6, expected_qber=0.02)
    assert p.to_dict()["threshold"] == {}


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
                    st.lists(st.integers(0, 3), max_size=3))
_keys = st.sampled_from(["gamma", "method", "key_inputs", "noisy_preprocessing", "min_key_bits",
                         "name", "schema", "bogus"])


@settings(max_examples=200, deadline=None)
@given(top=st.dictionaries(_keys, _values, max_size=4),
       eps=st.dictionaries(st.sampled_from(["eps_s", "eps_cor", "eps_x"]), _values, max_size=2),
       exp=st.dictionaries(st.sampled_from(["S", "qber", "z"]), _values, max_size=3))
def test_fuzz_only_config_errors(top, eps, exp):
    data = {"gamma": 0.1, "expected": {"S": 2.6, "qber": 0.02}, **top}
    if eps:
        data["epsilon"] = eps
    if exp:
        data["expected"] = exp
    try:
        p = Protocol.from_dict(data)
    except ConfigError:
        return
    assert 0 < p.gamma < 1 and 2 < p.expected_S
