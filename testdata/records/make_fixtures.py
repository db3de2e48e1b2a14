"""Regenerate the record fixtures in this directory: one small file per validation error.

Run from the repository root: ``.venv/bin/python testdata/records/make_fixtures.py``. The outputs
are committed; ``tests/test_records_fixtures.py`` asserts the message each one produces (which
file, column, row and value). Valid files are written with diqkd's own writer; broken ones are
written directly with h5py / numpy / plain text, since diqkd refuses to write them.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np

from diqkd.records import Records, write_records

HERE = Path(__file__).resolve().parent
N = 12


def alice_cols(n: int = N, t: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    cols = {
        "round": np.arange(n, dtype=np.uint64) * 3 + 10,
        "x": rng.integers(0, 2, n).astype(np.uint8),
        "a": rng.integers(0, 2, n).astype(np.uint8),
    }
    if t:
        cols["t_ns"] = (np.arange(n, dtype=np.int64) * 1000 + 5).astype(np.int64)
    return cols


def bob_cols(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {
        "round": np.arange(n, dtype=np.uint64) * 3 + 10,
        "y": rng.integers(0, 3, n).astype(np.uint8),
        "b": rng.integers(0, 2, n).astype(np.uint8),
        "herald": rng.integers(0, 2, n).astype(np.uint8),
        "t_ns": (np.arange(n, dtype=np.int64) * 1000 + 7).astype(np.int64),
    }


META = {"run": "fixture", "link_km": 11.0}


def raw_h5(name: str, cols: dict[str, np.ndarray], *, party: str | None = "alice",
           schema_version: int | None = 1) -> Path:
    """An HDF5 file with the canonical layout but arbitrary (possibly invalid) contents."""
    path = HERE / name
    with h5py.File(path, "w") as f:
        if schema_version is not None:
            f.attrs["schema_version"] = schema_version
        if party is not None:
            f.attrs["party"] = party
        f.attrs["metadata"] = json.dumps(META)
        for k, v in cols.items():
            f.create_dataset(k, data=v)
    return path


def raw_csv(name: str, text: str) -> Path:
    path = HERE / name
    path.write_text(text)
    return path


def csv_text(cols: dict[str, np.ndarray]) -> str:
    names = list(cols)
    lines = [",".join(names)]
    lines += [",".join(str(cols[c][i]) for c in names) for i in range(len(cols["round"]))]
    return "\n".join(lines) + "\n"


def raw_npz(name: str, cols: dict[str, np.ndarray], *, party: str = "alice") -> Path:
    path = HERE / name
    np.savez(path, party=np.array(party), schema_version=np.array(1),
             metadata=np.array(json.dumps(META)), **cols)
    return path


def main() -> None:
    # Valid files (the CLI tests inspect and convert these).
    write_records(HERE / "valid_alice.h5", Records("alice", alice_cols(), META))
    write_records(HERE / "valid_bob.h5", Records("bob", bob_cols(), META))
    write_records(HERE / "valid_alice.csv", Records("alice", alice_cols(), META))
    write_records(HERE / "valid_bob.npz", Records("bob", bob_cols(), META))
    # A plain lab CSV: no comment lines, party from the columns.
    raw_csv("plain_alice.csv", csv_text(alice_cols(t=False)))

    # Missing / extra columns.
    cols = alice_cols()
    del cols["a"]
    raw_csv("missing_column.csv", csv_text(cols))
    raw_h5("extra_column.h5", {**alice_cols(), "z": np.zeros(N, np.uint8)})

    # Wrong dtypes: float and string in integer columns.
    cols = alice_cols()
    x = cols["x"].astype(np.float64)
    x[4] = 0.5
    raw_npz("float_column.npz", {**cols, "x": x})
    raw_h5("string_column.h5", {**alice_cols(), "a": np.array([b"1"] * N)})

    # Value out of range (Bob's setting 3), in CSV.
    cols = bob_cols()
    cols["y"][6] = 3
    raw_csv("out_of_range.csv", csv_text(cols))

    # Duplicate round (CSV) and decreasing round (HDF5).
    cols = alice_cols()
    cols["round"][5] = cols["round"][4]
    raw_csv("duplicate_round.csv", csv_text(cols))
    cols = alice_cols()
    cols["round"][8] = 2
    raw_h5("decreasing_round.h5", cols)

    # NaN timestamp (CSV cell 'nan', and a float column in NPZ) and a negative one (HDF5).
    text = csv_text(alice_cols()).splitlines()
    text[3] = ",".join(text[3].split(",")[:3] + ["nan"])
    raw_csv("nan_timestamp.csv", "\n".join(text) + "\n")
    cols = alice_cols()
    t = cols["t_ns"].astype(np.float64)
    t[7] = np.nan
    raw_npz("nan_timestamp.npz", {**cols, "t_ns": t})
    cols = alice_cols()
    cols["t_ns"][9] = -4
    raw_h5("negative_timestamp.h5", cols)

    # Empty files: 0 bytes, a header without rows, an HDF5 file with 0 rows.
    raw_csv("empty.csv", "")
    raw_csv("header_only.csv", "round,x,a\n")
    raw_h5("empty.h5", {k: v[:0] for k, v in alice_cols().items()})

    # Truncated / corrupt files.
    good = (HERE / "valid_bob.h5").read_bytes()
    (HERE / "truncated.h5").write_bytes(good[: len(good) // 2])
    text = csv_text(alice_cols())
    raw_csv("short_row.csv", text[: text.rindex(",")])  # last row cut inside its last cell
    text = csv_text(alice_cols()).splitlines()
    text[5] = text[5].replace(text[5].split(",")[1], "one", 1)
    raw_csv("non_numeric.csv", "\n".join(text) + "\n")
    good = (HERE / "valid_bob.npz").read_bytes()
    (HERE / "truncated.npz").write_bytes(good[: len(good) - 200])
    with zipfile.ZipFile(HERE / "valid_bob.npz") as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    data = bytearray(members["t_ns.npy"])
    data[-3] ^= 0xFF  # flip one byte of the data, keep the archive's stored CRC
    with zipfile.ZipFile(HERE / "corrupt_member.npz", "w") as zout:
        for n, b in members.items():
            info = zipfile.ZipInfo(n, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
            zout.writestr(info, bytes(data) if n == "t_ns.npy" else b)
    _patch_crc(HERE / "corrupt_member.npz", "t_ns.npy", zipfile.crc32(members["t_ns.npy"]))

    # Schema version and party.
    raw_h5("wrong_schema_version.h5", alice_cols(), schema_version=2)
    raw_h5("no_schema_version.h5", alice_cols(), schema_version=None)
    raw_h5("unknown_party.h5", alice_cols(), party="eve")
    # The file says bob, the columns are Alice's.
    raw_h5("party_mismatch.h5", alice_cols(), party="bob")

    # Alice and Bob with different round sets (for align): Bob lacks two rounds.
    write_records(HERE / "mismatch_alice.csv", Records("alice", alice_cols(), META))
    cols = bob_cols()
    keep = np.ones(N, bool)
    keep[[3, 7]] = False
    write_records(HERE / "mismatch_bob.csv",
                  Records("bob", {k: v[keep] for k, v in cols.items()}, META))


def _patch_crc(path: Path, member: str, crc: int) -> None:
    """Overwrite a member's CRC-32 in both zip headers, to simulate silent corruption."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    old = info.CRC.to_bytes(4, "little")
    new = crc.to_bytes(4, "little")
    start = 0
    while (i := raw.find(old, start)) >= 0:
        raw[i:i + 4] = new
        start = i + 4
    path.write_bytes(bytes(raw))


if __name__ == "__main__":
    main()
