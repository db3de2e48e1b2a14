"""Bounded fuzzing of the record readers and the protocol parser with hypothesis (issue 8).

Any exception other than :class:`~diqkd.errors.InputError` (readers) or
:class:`~diqkd.errors.ConfigError` (protocol) is a bug: it would reach the user as "internal
error" (exit 1) instead of a located message (exit 2). Inputs are mutations of valid files
(byte flips, truncation, insertion, cell edits) and free-form text; examples are bounded so that
the module runs in seconds. For longer local sessions, raise ``DIQKD_FUZZ_EXAMPLES``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from corpus import PROTOCOL, alice_cols, bob_cols, csv_text
from hardening_support import count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diqkd.errors import ConfigError, InputError
from diqkd.protocol import Protocol
from diqkd.records import Records, read_records, write_records
from diqkd.records.formats import iter_records

EXAMPLES = int(os.environ.get("DIQKD_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_DIR = Path(tempfile.mkdtemp(prefix="diqkd-fuzz-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def _valid_bytes(fmt: str, party: str = "alice", n: int = 40) -> bytes:
    cols = alice_cols(n) if party == "alice" else bob_cols(n)
    rec = Records(party, {k: v for k, v in cols.items() if not k.startswith("_")},
                  {"run": "fuzz"})
    path = _DIR / f"valid-{party}-{n}.{fmt}"
    if not path.exists():
        write_records(path, rec)
    return path.read_bytes()


_COUNTS = {"records": 0, "records_ok": 0, "records_rejected": 0, "protocol": 0,
           "protocol_ok": 0, "protocol_rejected": 0}


def _read(data: bytes, ext: str) -> Records | None:
    """read_records and iter_records on ``data``: a valid Records or an InputError, nothing
    else; an accepted file must satisfy the schema."""
    fd, name = tempfile.mkstemp(suffix="." + ext, dir=_DIR)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    _COUNTS["records"] += 1
    try:
        try:
            rec = read_records(name)
        except InputError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            _COUNTS["records_rejected"] += 1
            return None
        _COUNTS["records_ok"] += 1
        r = np.asarray(rec["round"])
        assert r.size > 0 and np.all(r[1:] > r[:-1])
        for col in rec.schema:
            if col.name in rec and col.high is not None:
                assert int(np.asarray(rec[col.name]).max()) <= col.high
        # the chunked reader agrees
        parts = list(iter_records(name, chunk_rows=7))
        assert sum(len(p) for p in parts) == len(rec)
        return rec
    finally:
        os.unlink(name)


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, pos, val in ops:
        if not b:
            break
        i = pos % len(b)
        if kind == 0:
            b[i] ^= 1 << (val % 8)
        elif kind == 1:
            b[i] = val % 256
        elif kind == 2:
            del b[i:i + 1 + val % 64]
        elif kind == 3:
            b[i:i] = bytes([val % 256]) * (1 + val % 5)
        else:
            del b[i:]
    return bytes(b)


_ops = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)),
                min_size=1, max_size=6)


@pytest.mark.parametrize("fmt", ["h5", "npz", "csv"])
def test_fuzz_mutated_record_files(fmt):
    base = {p: _valid_bytes(fmt, p) for p in ("alice", "bob")}
    orig = {p: read_records(_DIR / f"valid-{p}-40.{fmt}") for p in base}
    altered = [0]

    @FUZZ
    @given(party=st.sampled_from(["alice", "bob"]), ops=_ops)
    def inner(party, ops):
        rec = _read(_mutate(base[party], ops), fmt)
        if rec is not None and not rec.equals(orig[party]):
            altered[0] += 1  # corrupted data read as valid (no checksum in the format)

    inner()
    count(f"fuzz-readers-{fmt}", examples=_COUNTS["records"], accepted=_COUNTS["records_ok"],
          rejected=_COUNTS["records_rejected"], accepted_but_altered=altered[0])
    _COUNTS.update(records=0, records_ok=0, records_rejected=0)
    if fmt == "npz":  # zip members carry a CRC-32: a changed array must not read as valid
        assert altered[0] == 0


_cell = st.one_of(st.integers(-3, 5).map(str), st.sampled_from(
    ["", " ", "nan", "1.0", "1e3", "0x1", "+1", "-0", "18446744073709551616", "١", "1_0",
     "\"1\"", "inf", "True"]), st.text(max_size=4))


@FUZZ
@given(rows=st.lists(st.tuples(st.integers(0, 45), st.integers(0, 4), _cell), max_size=5),
       header=st.sampled_from(["round,x,a,t_ns", "round,y,b,herald,t_ns", "round,x,a",
                               "x,round,a", "round,x,a,a", "round,,a", "", "round;x;a"]),
       comments=st.lists(st.sampled_from(["# schema_version: 1", "# schema_version: 2",
                                          "# party: bob", "# party: alice", "# metadata: {",
                                          "# metadata: []", "#", "", "# party: eve"]),
                         max_size=3))
def test_fuzz_csv_cells(rows, header, comments):
    """CSV edits at the cell level: headers, comment lines, odd cells."""
    party = "bob" if "y" in header else "alice"
    text = csv_text(alice_cols(40) if party == "alice" else bob_cols(40))
    lines = text.splitlines()
    lines[0] = header
    for r, c, cell in rows:
        r %= len(lines) - 1
        cells = lines[1 + r].split(",")
        cells[c % len(cells)] = cell
        lines[1 + r] = ",".join(cells)
    _read(("\n".join(comments + lines) + "\n").encode("utf-8", "surrogatepass"), "csv")


@FUZZ
@given(data=st.binary(max_size=600), ext=st.sampled_from(["h5", "npz", "csv", "hdf5"]))
def test_fuzz_arbitrary_bytes(data, ext):
    _read(data, ext)


def _protocol_check(fn) -> None:
    _COUNTS["protocol"] += 1
    try:
        p = fn()
    except ConfigError as exc:
        assert str(exc)
        _COUNTS["protocol_rejected"] += 1
        return
    _COUNTS["protocol_ok"] += 1
    assert 0 < p.gamma < 1
    assert Protocol.from_dict(p.to_dict()).sha256 == p.sha256  # round trip
    Protocol.from_toml_string(p.to_toml())


@FUZZ
@given(ops=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)),
                    min_size=1, max_size=4))
def test_fuzz_mutated_protocol_text(ops):
    data = _mutate(PROTOCOL.encode(), ops)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        path = _DIR / "p.toml"
        path.write_bytes(data)
        _protocol_check(lambda: Protocol.from_toml(path))
        return
    _protocol_check(lambda: Protocol.from_toml_string(text))


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6)
_KEYS = ["schema", "name", "description", "gamma", "key_inputs", "method",
         "noisy_preprocessing", "min_key_bits", "expected", "threshold", "epsilon", "ec"]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(_KEYS + ["bogus"]), _value, max_size=4),
       sub=st.dictionaries(st.sampled_from(["S", "qber", "omega", "eps_s", "eps_pa", "eps_ea",
                                             "eps_cor", "eps_complete", "frame_length",
                                             "decoder", "efficiency", "modulation"]),
                           _scalar, max_size=3),
       table=st.sampled_from(["expected", "threshold", "epsilon", "ec"]))
def test_fuzz_protocol_dicts(changes, sub, table):
    base = tomllib.loads(PROTOCOL)
    base.update(changes)
    if isinstance(base.get(table), dict):
        base[table] = {**base[table], **sub}
    _protocol_check(lambda: Protocol.from_dict(base, source="fuzz"))


def test_fuzz_protocol_ec_values_are_checked_when_used():
    """The [ec] values reach ReconciliationConfig when the run starts: ConfigError there too."""
    bad = [{"frame_length": -1}, {"frame_length": "x"}, {"decoder": 3}, {"efficiency": 9.0},
           {"modulation": 0.7}, {"max_iterations": 0}, {"rate_adaptation": "psychic"},
           {"on_failure": "shrug"}, {"frame_length": None}, {"threads": "many"},
           {"family": ""}, {"ms_scaling": float("nan")}]
    escaped = []
    for ec in bad:
        try:
            p = Protocol.from_dict({**tomllib.loads(PROTOCOL), "ec": ec}, source="fuzz")
            p.reconciliation_config()
        except ConfigError:
            continue
        except Exception as exc:  # noqa: BLE001
            escaped.append(f"{ec}: {type(exc).__name__}: {exc}")
            continue
        escaped.append(f"{ec}: accepted")
    count("fuzz-protocol", ec_values=len(bad), ec_escaped=len(escaped))
    assert not escaped, escaped


def test_zz_fuzz_counts():
    count("fuzz-protocol", examples=_COUNTS["protocol"], accepted=_COUNTS["protocol_ok"],
          rejected=_COUNTS["protocol_rejected"])
    count("fuzz-readers", examples=_COUNTS["records"], accepted=_COUNTS["records_ok"],
          rejected=_COUNTS["records_rejected"])
    assert _COUNTS["protocol"] > 0 or os.environ.get("PYTEST_XDIST_WORKER")



# -------------------------------------------------------------------------------------------------
# the receivers' parsers, without the channel's authentication (defence in depth)
# -------------------------------------------------------------------------------------------------
_SMALL: dict[str, object] = {}


def _small_run_inputs():
    if not _SMALL:
        from hardening_support import key_protocol, sample

        _SMALL["records"] = sample(30_000, seed=99)
        # few BP iterations: a mangled syndrome makes every decoding attempt fail, and the blind
        # protocol retries (about 14 s per 10^4-bit frame with the default 100 iterations)
        _SMALL["protocol"] = key_protocol(ec={"max_iterations": 10})
        from diqkd.pipeline import run

        honest = run(*_SMALL["records"], _SMALL["protocol"], seed=5)
        _SMALL["kinds"] = [m["kind"] for m in honest.report["transcript"]["list"]]
    return _SMALL


@settings(max_examples=max(8, EXAMPLES // 15), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(target=st.integers(0, 10_000), ops=_ops)
def test_fuzz_unauthenticated_messages_never_crash(target, ops):
    """A mangled public message, with per-message authentication off, is an abort (or changes
    nothing); never an exception out of ``run`` and never a key after a changed message."""
    from diqkd.pipeline import run
    from diqkd.transcript import Message

    s = _small_run_inputs()
    n = len(s["kinds"])
    t = target % n
    seen = {"i": 0, "changed": False}

    def tamper(msg):
        i = seen["i"]
        seen["i"] += 1
        if i != t:
            return [msg]
        payload = _mutate(msg.payload or b"\x00", ops)
        seen["changed"] = payload != msg.payload
        return [Message(msg.sender, msg.kind, payload, msg.leak_bits, dict(msg.meta))]

    r = run(*s["records"], s["protocol"], seed=5, tamper=tamper, authenticate=False)
    count("fuzz-channel", examples=1, aborted=int(not r.ok))
    if seen["changed"]:
        assert not r.ok and r.key_alice is None and r.key_bob is None, s["kinds"][t]
