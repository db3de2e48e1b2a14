"""One committed fixture per validation error (testdata/records/, see make_fixtures.py).

Each case asserts that the message names the problem and its location (file, column, row and
value where there is one), for the whole-file reader and for the chunked reader alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from diqkd.errors import InputError
from diqkd.records import align, iter_records, read_records

DATA = Path(__file__).resolve().parent.parent / "testdata" / "records"

# fixture, read kwargs, words in the message, column, row, value
CASES = [
    ("missing_column.csv", {}, ["missing required column"], "a", None, None),
    ("extra_column.h5", {}, ["unexpected column"], "z", None, None),
    ("float_column.npz", {}, ["non-integer", "float64"], "x", 4, 0.5),
    ("string_column.h5", {}, ["wrong dtype"], "a", 0, "1"),
    ("out_of_range.csv", {}, ["out of range", "0..2", "CSV line 8"], "y", 6, 3),
    ("duplicate_round.csv", {}, ["duplicate round", "CSV line 7"], "round", 5, 22),
    ("decreasing_round.h5", {}, ["decreasing round"], "round", 8, 2),
    ("nan_timestamp.csv", {}, ["NaN", "CSV line 4"], "t_ns", 2, "nan"),
    ("nan_timestamp.npz", {}, ["NaN"], "t_ns", 7, "nan"),
    ("negative_timestamp.h5", {}, ["negative timestamp"], "t_ns", 9, -4),
    ("empty.csv", {}, ["empty file", "0 bytes"], None, None, None),
    ("header_only.csv", {}, ["empty file", "no data rows"], None, None, None),
    ("empty.h5", {}, ["empty file", "no rows"], None, None, None),
    ("truncated.h5", {}, ["truncated or corrupt HDF5", "truncated file"], None, None, None),
    ("short_row.csv", {}, ["CSV line 13", "3 field(s)", "header has 4"], None, 11, "43,0,1"),
    ("non_numeric.csv", {}, ["not an integer", "CSV line 6"], "x", 4, "one"),
    ("truncated.npz", {}, ["truncated or corrupt NPZ"], None, None, None),
    ("corrupt_member.npz", {}, ["corrupt NPZ member", "CRC"], "t_ns", None, None),
    ("wrong_schema_version.h5", {}, ["schema version 2", "reads schema version 1"],
     "schema_version", None, 2),
    ("no_schema_version.h5", {}, ["no schema_version"], None, None, None),
    ("unknown_party.h5", {}, ["unknown party"], "party", None, "eve"),
    ("party_mismatch.h5", {}, ["party says bob", "alice's"], "party", None, "bob"),
    ("valid_alice.h5", {"party": "bob"}, ["wrong party", "holds alice's"], "party", None,
     "alice"),
    ("valid_bob.npz", {"party": "alice"}, ["wrong party", "holds bob's"], "party", None, "bob"),
]


def _check(exc: InputError, name: str, words: list[str], field: str | None, row: int | None,
           value: object) -> None:
    text = str(exc)
    assert name in text, text  # the file is always named
    assert exc.file is not None and exc.file.endswith(name)
    for w in words:
        assert w in text, (w, text)
    assert exc.field == field, text
    assert exc.row == row, text
    if value == "nan":
        assert exc.value != exc.value or str(exc.value) == "nan", text
    else:
        assert exc.value == value, text
    if field is not None:
        assert f"column {field!r}" in text
    if row is not None:
        assert f"row {row}" in text


@pytest.mark.parametrize(("name", "kwargs", "words", "field", "row", "value"), CASES,
                         ids=[c[0] + ("+" + c[1]["party"] if c[1] else "") for c in CASES])
def test_fixture_error(name: str, kwargs: dict, words: list[str], field: str | None,
                       row: int | None, value: object) -> None:
    path = DATA / name
    assert path.exists() and path.stat().st_size < 32_000
    with pytest.raises(InputError) as whole:
        read_records(path, **kwargs)
    _check(whole.value, name, words, field, row, value)
    with pytest.raises(InputError) as chunked:
        list(iter_records(path, chunk_rows=3, **kwargs))
    _check(chunked.value, name, words, field, row, value)


@pytest.mark.parametrize("name", ["valid_alice.h5", "valid_bob.h5", "valid_alice.csv",
                                  "valid_bob.npz", "plain_alice.csv"])
def test_valid_fixtures_read(name: str) -> None:
    rec = read_records(DATA / name)
    assert len(rec) == 12
    if not name.startswith("plain"):
        assert rec.metadata == {"run": "fixture", "link_km": 11.0}


def test_mismatched_round_sets_are_counted() -> None:
    alice = read_records(DATA / "mismatch_alice.csv")
    bob = read_records(DATA / "mismatch_bob.csv")
    with pytest.raises(InputError) as exc:
        align(alice, bob)
    text = str(exc.value)
    assert "2 round(s) only in Alice's" in text and "0 only in Bob's" in text
    assert "first round only Alice has: 19" in text and "mismatch_alice.csv" in text
    joint = align(alice, bob, drop_unmatched=True)
    assert (len(joint), joint.dropped_alice, joint.dropped_bob) == (10, 2, 0)
