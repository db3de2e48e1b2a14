"""Record files: lossless round trips between HDF5, CSV and NPZ, chunked reading, the writer."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diqkd.errors import InputError
from diqkd.records import (
    FORMATS,
    SCHEMA_VERSION,
    Records,
    format_of,
    iter_records,
    open_writer,
    read_records,
    summarize,
    write_records,
)
from diqkd.records import formats as formats_mod

EXT = {"hdf5": ".h5", "csv": ".csv", "npz": ".npz"}

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
metadata_st = st.dictionaries(
    st.text(min_size=1, max_size=8),
    st.one_of(json_leaf, st.lists(json_leaf, max_size=3)),
    max_size=4,
)


@st.composite
def records_st(draw: st.DrawFn) -> Records:
    party = draw(st.sampled_from(["alice", "bob"]))
    n = draw(st.integers(1, 40))
    start = draw(st.integers(0, 2**64 - 1 - 41 * 2**20))
    steps = draw(st.lists(st.integers(1, 2**20), min_size=n, max_size=n))
    rounds = start + np.cumsum(np.array(steps, dtype=np.uint64)) - np.uint64(steps[0])
    small = st.lists(st.integers(0, 1), min_size=n, max_size=n)
    cols: dict[str, np.ndarray] = {"round": rounds.astype(np.uint64)}
    if party == "alice":
        cols["x"] = np.array(draw(small), np.uint8)
        cols["a"] = np.array(draw(small), np.uint8)
    else:
        cols["y"] = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.uint8)
        cols["b"] = np.array(draw(small), np.uint8)
        if draw(st.booleans()):
            cols["herald"] = np.array(draw(small), np.uint8)
    if draw(st.booleans()):
        t = draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n))
        cols["t_ns"] = np.array(t, np.int64)
    return Records(party, cols, draw(metadata_st))


def _json_norm(meta: dict) -> dict:
    return json.loads(json.dumps(meta))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rec=records_st(), fmt1=st.sampled_from(FORMATS), fmt2=st.sampled_from(FORMATS))
def test_round_trip_between_formats(rec: Records, fmt1: str, fmt2: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        p1 = Path(d) / f"one{EXT[fmt1]}"
        p2 = Path(d) / f"two{EXT[fmt2]}"
        write_records(p1, rec)
        got1 = read_records(p1)
        write_records(p2, got1)
        got2 = read_records(p2, party=rec.party)
        for got in (got1, got2):
            assert got.equals(rec)
            assert got.metadata == _json_norm(dict(rec.metadata))
            assert all(got[c].dtype == rec[c].dtype for c in rec.columns)
        chunks = list(iter_records(p2, chunk_rows=7))
        assert Records.concat(chunks).equals(rec)
        assert [c.first_row for c in chunks] == list(range(0, len(rec), 7))


@pytest.mark.parametrize("fmt", FORMATS)
def test_streaming_writer_many_chunks(tmp_path: Path, fmt: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats_mod, "HDF5_CHUNK_ROWS", 64)  # many HDF5 chunks, partial last one
    rng = np.random.default_rng(0)
    n = 1000
    full = Records("bob", {
        "round": np.cumsum(rng.integers(1, 5, n)).astype(np.uint64),
        "y": rng.integers(0, 3, n), "b": rng.integers(0, 2, n),
        "t_ns": np.arange(n, dtype=np.int64) * 17,
    }, {"run": 3})
    path = tmp_path / f"bob{EXT[fmt]}"
    with open_writer(path, "bob", metadata={"run": 3}) as w:
        for start in range(0, n, 37):
            w.append(full.slice(start, start + 37))
        assert not path.exists()  # atomic: nothing at the target until the end
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp or spool file left
    got = read_records(path)
    assert got.equals(full) and got.metadata == {"run": 3}
    for chunk_rows in (1, 100, 10**6):
        assert Records.concat(iter_records(path, chunk_rows=chunk_rows)).equals(full)
    if fmt == "hdf5":
        with h5py.File(path) as f:
            assert f.attrs["schema_version"] == SCHEMA_VERSION and f.attrs["party"] == "bob"
            assert f["t_ns"].attrs["unit"] == "ns" and f["round"].chunks == (64,)


def test_writer_refuses_disorder_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    with pytest.raises(InputError, match="duplicate round") as exc:
        with open_writer(path, "alice") as w:
            w.append({"round": [1, 2, 3], "x": [0, 1, 0], "a": [1, 1, 0]})
            w.append({"round": [3, 4], "x": [0, 1], "a": [1, 1]})
    assert exc.value.row == 3 and exc.value.value == 3
    assert list(tmp_path.iterdir()) == []  # no file, no temp file left behind


def test_writer_refuses_wrong_party_and_column_change(tmp_path: Path) -> None:
    bob = Records("bob", {"round": [1], "y": [2], "b": [0]})
    with pytest.raises(InputError, match="cannot append bob"):
        with open_writer(tmp_path / "a.csv", "alice") as w:
            w.append(bob)
    with pytest.raises(InputError, match="chunk has columns"):
        with open_writer(tmp_path / "b.npz", "bob") as w:
            w.append(bob)
            w.append({"round": [2], "y": [2], "b": [0], "t_ns": [5]})
    assert list(tmp_path.iterdir()) == []


def test_order_checked_across_chunk_borders_with_absolute_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    rows = [(r, 0, 1) for r in range(10)]
    rows[6] = (5, 0, 1)  # duplicate of row 5
    path.write_text("round,x,a\n" + "".join(f"{r},{x},{a}\n" for r, x, a in rows))
    for chunk_rows in (1, 3, 6, 100):
        with pytest.raises(InputError) as exc:
            list(iter_records(path, chunk_rows=chunk_rows))
        assert exc.value.row == 6 and exc.value.field == "round" and exc.value.value == 5
        assert "line 8" in str(exc.value)


def test_chunked_errors_give_absolute_rows_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "a.h5"
    n = 50
    x = np.zeros(n, np.uint8)
    x[41] = 7
    write_records(path, Records("alice", {"round": np.arange(n), "x": np.zeros(n), "a": x % 2}))
    with h5py.File(path, "r+") as f:
        f["x"][41] = 7
    with pytest.raises(InputError) as exc:
        list(iter_records(path, chunk_rows=8))
    assert (exc.value.field, exc.value.row, exc.value.value) == ("x", 41, 7)


def test_format_of_and_unknown_extension(tmp_path: Path) -> None:
    assert format_of("a.HDF5") == "hdf5" and format_of("x.npz") == "npz"
    assert format_of("x.dat", "h5") == "hdf5"
    with pytest.raises(InputError, match="extension"):
        write_records(tmp_path / "a.txt", Records("alice", {"round": [0], "x": [0], "a": [0]}))


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="JSON"):
        open_writer(tmp_path / "a.h5", "alice", metadata={"f": object()})


def test_summarize(tmp_path: Path) -> None:
    rec = Records("bob", {
        "round": [0, 1, 2, 5], "y": [0, 2, 2, 1], "b": [1, 0, 1, 1], "herald": [0, 1, 1, 1],
        "t_ns": [1_000, 2_000, 3_000, 1_001_000],
    }, {"run": "s"})
    path = tmp_path / "b.h5"
    write_records(path, rec)
    s = summarize(path)
    assert s["rounds"] == 4 and (s["first_round"], s["last_round"]) == (0, 5)
    assert s["settings"] == {"y=0": 1, "y=1": 1, "y=2": 2}
    assert s["setting_outcome"]["y=2,b=1"] == 1 and s["setting_outcome"]["y=2,b=0"] == 1
    assert s["herald"] == {"herald=0": 1, "herald=1": 3}
    assert s["time"]["span_s"] == pytest.approx(1e-3)
    assert s["time"]["event_rate_hz"] == pytest.approx(3 / 1e-3)
    assert s["format"] == "hdf5" and s["file_size"] == path.stat().st_size
    assert s["metadata"] == {"run": "s"} and s["schema_version"] == SCHEMA_VERSION
    assert summarize(rec)["settings"] == s["settings"]
    assert summarize(iter_records(path, chunk_rows=1))["setting_outcome"] == s["setting_outcome"]
    assert len(summarize([path, path])["files"]) == 2
    json.dumps(s)


def test_foreign_hdf5_attributes_become_metadata(tmp_path: Path) -> None:
    path = tmp_path / "lab.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = 1
        f.attrs["operator"] = "lab A"
        f.attrs["wavelength_nm"] = np.float64(780.0)
        f["round"] = np.arange(3, dtype=np.int32)
        f["x"] = np.array([0, 1, 1], np.int64)
        f["a"] = np.array([1, 1, 0], np.uint8)
    rec = read_records(path)
    assert rec.party == "alice" and rec["round"].dtype == np.uint64
    assert rec.metadata == {"operator": "lab A", "wavelength_nm": 780.0}


def test_csv_dialect_tolerance(tmp_path: Path) -> None:
    """BOM, CRLF, spaces, column order, blank and comment lines: rows and lines still counted."""
    path = tmp_path / "lab.csv"
    text = "\ufeffa, round ,x\r\n1,0,1\r\n\r\n# pause\r\n0,5,0\r\n1,5,1\r\n"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError) as exc:
        read_records(path)
    assert (exc.value.row, exc.value.value) == (2, 5) and "CSV line 6" in str(exc.value)
    path.write_bytes(text.replace("1,5,1", "1,6,1").encode("utf-8"))
    rec = read_records(path, party="alice")
    assert rec["round"].tolist() == [0, 5, 6] and rec["x"].tolist() == [1, 0, 1]
    assert list(rec.columns) == ["round", "x", "a"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_same_records_give_identical_bytes(tmp_path: Path, fmt: str) -> None:
    """Deterministic files (no timestamps inside): file digests in audit reports are stable."""
    rec = Records("alice", {"round": [3, 4, 9], "x": [0, 1, 1], "a": [1, 0, 1]}, {"k": 1})
    one, two = tmp_path / f"1{EXT[fmt]}", tmp_path / f"2{EXT[fmt]}"
    write_records(one, rec)
    write_records(two, rec)
    assert one.read_bytes() == two.read_bytes()
    if fmt == "npz":  # zip members carry a time stamp: it must be a fixed one
        with zipfile.ZipFile(one) as zf:
            assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_hdf5_checksum_catches_a_flipped_bit(tmp_path):
    """A bit flipped on disk inside a chunk is a corrupt-file error, not altered data.

    Without Fletcher-32, a flip that keeps the value in range (any 0/1 outcome column) would
    read back as valid records with a different outcome.
    """
    import h5py

    from diqkd.errors import InputError
    from diqkd.records import Records, read_records, write_records

    n = 50_000
    rng = np.random.default_rng(3)
    rec = Records("alice", {"round": np.arange(n, dtype=np.uint64),
                            "x": rng.integers(0, 2, n), "a": rng.integers(0, 2, n)})
    path = tmp_path / "alice.h5"
    write_records(path, rec)
    with h5py.File(path) as f:
        assert f["a"].fletcher32
        offset = f["a"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 40] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        read_records(path)
    assert "corrupt" in str(err.value) and "'a'" in str(err.value)
