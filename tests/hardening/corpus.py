"""The bad-input corpus: malformed records, protocols, options, output directories and reports.

Every :class:`Case` builds its inputs in a fresh work directory (from a small valid record pair
and protocol written by :func:`base_inputs`) and returns an :class:`Invocation`: the ``diqkd``
command line to run, the output directory that must stay free of keys, sidecars, reports and temp
files, and the words the error message must contain (what is wrong, and where: file, column,
row, key). The expected exit status is always 2.

``python tests/hardening/corpus.py DIR`` writes the whole corpus into DIR (one subdirectory per
case with a ``cmd.txt``), e.g. for a longer local fuzzing session or to try the cases by hand.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

N = 400  # rows of the small valid pair


# -------------------------------------------------------------------------------------------------
# the valid base
# -------------------------------------------------------------------------------------------------
def alice_cols(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    t = rng.random(n) < 0.3
    return {
        "round": np.arange(n, dtype=np.uint64) * 2 + 3,
        "x": np.where(t, rng.integers(0, 2, n), 0).astype(np.uint8),
        "a": rng.integers(0, 2, n).astype(np.uint8),
        "t_ns": (np.arange(n, dtype=np.int64) * 1000 + 5),
        "_test": t,  # not a column: which rounds are test rounds (Bob's y must agree)
    }


def bob_cols(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    t = alice_cols(n)["_test"]
    return {
        "round": np.arange(n, dtype=np.uint64) * 2 + 3,
        "y": np.where(t, rng.integers(0, 2, n), 2).astype(np.uint8),
        "b": rng.integers(0, 2, n).astype(np.uint8),
        "herald": rng.integers(0, 2, n).astype(np.uint8),
        "t_ns": (np.arange(n, dtype=np.int64) * 1000 + 7),
    }


def _clean(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in cols.items() if not k.startswith("_")}


PROTOCOL = """\
schema = 1
name = "corpus"
gamma = 0.3
key_inputs = [0, 2]
method = "eat2"

[expected]
S = 2.7
qber = 0.02

[epsilon]
eps_s = 1e-6
eps_pa = 1e-6
eps_ea = 1e-6
eps_cor = 1e-6
eps_complete = 1e-2

[ec]
frame_length = 1000
"""


def write_h5(path: Path, cols: dict[str, np.ndarray], *, party: str | None,
             schema_version: object = 1, extra_attrs: dict | None = None) -> Path:
    """HDF5 in diqkd's layout but with arbitrary (possibly invalid) contents."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "diqkd-records"
        if schema_version is not None:
            f.attrs["schema_version"] = schema_version
        if party is not None:
            f.attrs["party"] = party
        f.attrs["metadata"] = json.dumps({"run": "corpus"})
        for k, v in (extra_attrs or {}).items():
            f.attrs[k] = v
        for k, v in _clean(cols).items():
            f.create_dataset(k, data=v)
    return path


def csv_text(cols: dict[str, np.ndarray], *, party: str | None = None,
             header: list[str] | None = None) -> str:
    cols = _clean(cols)
    names = list(cols)
    lines = []
    if party:
        lines += ["# diqkd records", "# schema_version: 1", f"# party: {party}"]
    lines.append(",".join(header or names))
    n = len(next(iter(cols.values())))
    lines += [",".join(str(cols[c][i]) for c in names) for i in range(n)]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def write_npz(path: Path, cols: dict[str, np.ndarray], *, party: str = "alice",
              **extra: object) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, party=np.array(party), schema_version=np.array(1),
                 metadata=np.array(json.dumps({"run": "corpus"})), **_clean(cols), **extra)
    return path


def base_inputs(work: Path) -> dict[str, Path]:
    """The valid pair (HDF5, CSV and NPZ), the valid protocol, and the output directory path."""
    from diqkd.records import Records, write_records

    work.mkdir(parents=True, exist_ok=True)
    a = Records("alice", _clean(alice_cols()), {"run": "corpus"})
    b = Records("bob", _clean(bob_cols()), {"run": "corpus"})
    paths = {
        "alice": work / "alice.h5", "bob": work / "bob.h5",
        "alice_csv": work / "alice.csv", "bob_npz": work / "bob.npz",
        "protocol": work / "protocol.toml", "out": work / "out",
    }
    write_records(paths["alice"], a)
    write_records(paths["bob"], b)
    write_records(paths["alice_csv"], a)
    write_records(paths["bob_npz"], b)
    paths["protocol"].write_text(PROTOCOL)
    return paths


# -------------------------------------------------------------------------------------------------
# cases
# -------------------------------------------------------------------------------------------------
@dataclass
class Invocation:
    argv: list[str]
    out_dir: Path | None
    expect: tuple[str, ...]  # case-insensitive substrings of stderr: the problem and where
    allowed: tuple[str, ...] = ()  # names that may (must) remain in out_dir
    must_not_exist: tuple[Path, ...] = ()  # files that must not appear (e.g. a convert target)
    cleanup: list[Callable[[], None]] = field(default_factory=list)  # e.g. unmount


@dataclass(frozen=True)
class Case:
    name: str
    category: str
    build: Callable[[dict[str, Path]], Invocation] = field(repr=False)
    subprocess_only: bool = False
    #: A known bug in another module (reported, not yet fixed): the test is xfail(strict=True)
    xfail: str | None = None


CASES: list[Case] = []


def case(name: str, category: str, *, subprocess_only: bool = False, xfail: str | None = None):
    def deco(fn: Callable[[dict[str, Path]], Invocation]) -> Callable:
        CASES.append(Case(name, category, fn, subprocess_only, xfail))
        return fn

    return deco


def run_argv(p: dict[str, Path], *, alice: Path | None = None, bob: Path | None = None,
             protocol: Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    return ["run", "--alice", str(alice or p["alice"]), "--bob", str(bob or p["bob"]),
            "--protocol", str(protocol or p["protocol"]), "--out", str(p["out"]), "--seed", "1",
            "-q", *extra]


def bad_alice(name: str, category: str, maker: Callable[[Path], Path], *expect: str,
              role: str = "alice") -> None:
    """A run whose ``role`` records file is made by ``maker(work_dir)``."""

    def build(p: dict[str, Path]) -> Invocation:
        path = maker(p["alice"].parent)
        kw = {role: path}
        return Invocation(run_argv(p, **kw), p["out"], (path.name, *expect))

    CASES.append(Case(name, category, build))


def _alice(**changes: object) -> dict[str, np.ndarray]:
    cols = alice_cols()
    for k, v in changes.items():
        if v is None:
            cols.pop(k)
        else:
            cols[k] = v  # type: ignore[assignment]
    return cols


def _set(col: str, row: int, value: object, dtype: object = None, party: str = "alice"):
    cols = alice_cols() if party == "alice" else bob_cols()
    arr = cols[col].astype(dtype) if dtype is not None else cols[col].copy()
    arr[row] = value
    cols[col] = arr
    return cols


# ---- HDF5 records --------------------------------------------------------------------------------
def _valid_h5_bytes(work: Path) -> bytes:
    return (work / "alice.h5").read_bytes()


bad_alice("h5-truncated-half", "hdf5",
          lambda w: write_csv(w / "trunc.h5", _valid_h5_bytes(w)[: len(_valid_h5_bytes(w)) // 2]),
          "hdf5")
bad_alice("h5-truncated-header", "hdf5",
          lambda w: write_csv(w / "trunc_hdr.h5", _valid_h5_bytes(w)[:300]), "hdf5")
bad_alice("h5-bad-signature", "hdf5",
          lambda w: write_csv(w / "badsig.h5", b"XXXXXXXX" + _valid_h5_bytes(w)[8:]),
          "signature")
bad_alice("h5-zero-bytes", "hdf5", lambda w: write_csv(w / "zero.h5", b""), "empty")
bad_alice("h5-random-bytes", "hdf5",
          lambda w: write_csv(w / "random.h5",
                              np.random.default_rng(5).bytes(4096)), "hdf5")
bad_alice("h5-missing-column", "columns",
          lambda w: write_h5(w / "missing_a.h5", _alice(a=None), party="alice"), "missing",
          "'a'")
bad_alice("h5-extra-column", "columns",
          lambda w: write_h5(w / "extra_z.h5", _alice(z=np.zeros(N, np.uint8)), party="alice"),
          "'z'")
bad_alice("h5-string-column", "dtypes",
          lambda w: write_h5(w / "str_a.h5", _alice(a=np.array([b"1"] * N)), party="alice"),
          "'a'")
bad_alice("h5-float-column", "dtypes",
          lambda w: write_h5(w / "float_x.h5", _set("x", 17, 0.5, np.float64), party="alice"),
          "'x'", "row 17")
bad_alice("h5-setting-out-of-range", "ranges",
          lambda w: write_h5(w / "x2.h5", _set("x", 33, 2), party="alice"), "'x'", "row 33",
          "out of range")
bad_alice("h5-outcome-out-of-range", "ranges",
          lambda w: write_h5(w / "a3.h5", _set("a", 41, 3), party="alice"), "'a'", "row 41",
          "out of range")
bad_alice("h5-negative-round", "rounds",
          lambda w: write_h5(w / "neground.h5", _set("round", 0, -1, np.int64), party="alice"),
          "'round'", "row 0")
bad_alice("h5-decreasing-round", "rounds",
          lambda w: write_h5(w / "decr.h5", _set("round", 50, 1), party="alice"), "'round'",
          "row 50", "decreasing")
bad_alice("h5-duplicate-round", "rounds",
          lambda w: write_h5(w / "dup.h5", _set("round", 60, 3 + 2 * 59), party="alice"),
          "'round'", "row 60", "duplicate")
bad_alice("h5-negative-timestamp", "timestamps",
          lambda w: write_h5(w / "negt.h5", _set("t_ns", 70, -5), party="alice"), "'t_ns'",
          "row 70", "negative")
bad_alice("h5-nan-timestamp", "timestamps",
          lambda w: write_h5(w / "nant.h5", _set("t_ns", 80, np.nan, np.float64),
                             party="alice"), "'t_ns'", "row 80")
bad_alice("h5-zero-rows", "empty",
          lambda w: write_h5(w / "norows.h5", {k: v[:0] for k, v in alice_cols().items()},
                             party="alice"), "empty")
bad_alice("h5-wrong-schema-version", "schema",
          lambda w: write_h5(w / "v9.h5", alice_cols(), party="alice", schema_version=9),
          "schema", "9")
bad_alice("h5-no-schema-version", "schema",
          lambda w: write_h5(w / "nov.h5", alice_cols(), party="alice", schema_version=None),
          "schema_version")
bad_alice("h5-unknown-party", "schema",
          lambda w: write_h5(w / "eve.h5", alice_cols(), party="eve"), "eve")
bad_alice("h5-unequal-column-lengths", "columns",
          lambda w: write_h5(w / "short_a.h5", _alice(a=alice_cols()["a"][:-7]), party="alice"),
          "'a'")
bad_alice("h5-2d-column", "dtypes",
          lambda w: write_h5(w / "twod.h5", _alice(x=np.zeros((N, 2), np.uint8)),
                             party="alice"), "'x'")
bad_alice("h5-bob-file-as-alice", "pairing",
          lambda w: w / "bob.h5", "bob")

# ---- CSV records ---------------------------------------------------------------------------------
bad_alice("csv-missing-column", "columns",
          lambda w: write_csv(w / "missing.csv", csv_text(_alice(a=None))), "'a'", "missing")
bad_alice("csv-extra-column", "columns",
          lambda w: write_csv(w / "extra.csv", csv_text(_alice(q=np.zeros(N, np.uint8)))),
          "'q'")
bad_alice("csv-duplicate-header", "columns",
          lambda w: write_csv(w / "duphdr.csv",
                              csv_text(alice_cols(), header=["round", "x", "x", "t_ns"])),
          "duplicate", "'x'")
bad_alice("csv-non-numeric", "dtypes",
          lambda w: write_csv(w / "nonnum.csv", _csv_cell(alice_cols(), 21, "x", "one")),
          "'x'", "row 21", "line")
bad_alice("csv-float-cell", "dtypes",
          lambda w: write_csv(w / "floatcell.csv", _csv_cell(alice_cols(), 22, "a", "0.5")),
          "'a'", "row 22")
bad_alice("csv-setting-out-of-range", "ranges",
          lambda w: write_csv(w / "y3.csv", csv_text(_set("y", 30, 3, party="bob"))),
          "'y'", "row 30", "out of range", role="bob")
bad_alice("csv-outcome-out-of-range", "ranges",
          lambda w: write_csv(w / "b2.csv", csv_text(_set("b", 31, 2, party="bob"))),
          "'b'", "row 31", role="bob")
bad_alice("csv-herald-out-of-range", "ranges",
          lambda w: write_csv(w / "h7.csv", csv_text(_set("herald", 32, 7, party="bob"))),
          "'herald'", "row 32", role="bob")
bad_alice("csv-negative-round", "rounds",
          lambda w: write_csv(w / "negr.csv", _csv_cell(alice_cols(), 0, "round", "-3")),
          "'round'", "row 0")
bad_alice("csv-huge-round", "rounds",
          lambda w: write_csv(w / "huger.csv",
                              _csv_cell(alice_cols(), N - 1, "round", str(2**70))),
          "'round'", f"row {N - 1}")
bad_alice("csv-duplicate-round", "rounds",
          lambda w: write_csv(w / "dupr.csv", csv_text(_set("round", 90, 3 + 2 * 89))),
          "'round'", "row 90", "duplicate")
bad_alice("csv-decreasing-round", "rounds",
          lambda w: write_csv(w / "decr.csv", csv_text(_set("round", 91, 0))),
          "'round'", "row 91", "decreasing")
bad_alice("csv-nan-timestamp", "timestamps",
          lambda w: write_csv(w / "nant.csv", _csv_cell(alice_cols(), 92, "t_ns", "nan")),
          "'t_ns'", "row 92", "nan")
bad_alice("csv-negative-timestamp", "timestamps",
          lambda w: write_csv(w / "negt.csv", csv_text(_set("t_ns", 93, -1))),
          "'t_ns'", "row 93", "negative")
bad_alice("csv-empty-file", "empty", lambda w: write_csv(w / "empty.csv", ""), "empty")
bad_alice("csv-header-only", "empty",
          lambda w: write_csv(w / "hdronly.csv", "round,x,a,t_ns\n"), "empty")
bad_alice("csv-comments-only", "empty",
          lambda w: write_csv(w / "comments.csv", "# diqkd records\n# party: alice\n"),
          "empty")
bad_alice("csv-truncated-row", "truncated",
          lambda w: write_csv(w / "trunc.csv",
                              csv_text(alice_cols())[:-6].rsplit(",", 1)[0] + "\n"),
          "line", "field")
bad_alice("csv-long-row", "truncated",
          lambda w: write_csv(w / "long.csv", _csv_cell(alice_cols(), 40, "t_ns", "5,6")),
          "line 42", "field")
bad_alice("csv-wrong-schema-comment", "schema",
          lambda w: write_csv(w / "v7.csv", "# schema_version: 7\n" + csv_text(alice_cols())),
          "schema", "7")
bad_alice("csv-not-utf8", "truncated",
          lambda w: write_csv(w / "latin.csv",
                              csv_text(alice_cols()).encode() + b"\xff\xfe,\xff\n"),
          "utf-8")
bad_alice("csv-no-header", "columns",
          lambda w: write_csv(w / "nohdr.csv", "\n".join(csv_text(alice_cols()).splitlines()[1:])),
          "header")
bad_alice("csv-party-comment-mismatch", "pairing",
          lambda w: write_csv(w / "party_bob.csv", csv_text(alice_cols(), party="bob")),
          "bob")

# ---- NPZ records ---------------------------------------------------------------------------------
def _npz_member_corrupt(w: Path) -> Path:
    src = w / "good.npz"
    write_npz(src, alice_cols())
    with zipfile.ZipFile(src) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    data = bytearray(members["a.npy"])
    data[-5] ^= 0xFF
    out = w / "crc.npz"
    with zipfile.ZipFile(out, "w") as zout:
        for n, d in members.items():
            zout.writestr(n, d)
    # flip the byte inside the archive too, after the CRC was computed on the good data
    raw = bytearray(out.read_bytes())
    i = raw.find(bytes(members["a.npy"][-16:]))
    raw[i + 16 - 5] ^= 0xFF
    out.write_bytes(bytes(raw))
    return out


def _npz_truncated(w: Path) -> Path:
    src = write_npz(w / "full.npz", alice_cols())
    raw = src.read_bytes()
    return write_csv(w / "trunc.npz", raw[: len(raw) * 2 // 3])


bad_alice("npz-truncated", "npz", _npz_truncated, "npz")
bad_alice("npz-crc-corrupt", "npz", _npz_member_corrupt, "corrupt")
bad_alice("npz-zero-bytes", "npz", lambda w: write_csv(w / "zero.npz", b""), "empty")
bad_alice("npz-float-column", "dtypes",
          lambda w: write_npz(w / "floatx.npz", _set("x", 12, 0.25, np.float64)), "'x'",
          "row 12")
bad_alice("npz-missing-column", "columns",
          lambda w: write_npz(w / "nox.npz", _alice(x=None)), "'x'")
bad_alice("npz-zero-rows", "empty",
          lambda w: write_npz(w / "norows.npz", {k: v[:0] for k, v in alice_cols().items()}),
          "empty")
bad_alice("npz-object-array", "dtypes",
          lambda w: write_npz(w / "obj.npz", _alice(a=np.array([object()] * N, dtype=object))),
          "'a'")
bad_alice("npz-nan-timestamp", "timestamps",
          lambda w: write_npz(w / "nant.npz", _set("t_ns", 13, np.nan, np.float64)),
          "'t_ns'", "row 13")
bad_alice("npz-not-a-zip", "npz",
          lambda w: write_csv(w / "text.npz", "round,x,a\n1,0,0\n"), "npz")


def _csv_cell(cols: dict[str, np.ndarray], row: int, col: str, text: str) -> str:
    lines = csv_text(cols).splitlines()
    names = lines[0].split(",")
    cells = lines[1 + row].split(",")
    cells[names.index(col)] = text
    lines[1 + row] = ",".join(cells)
    return "\n".join(lines) + "\n"


# ---- Alice/Bob pairing ---------------------------------------------------------------------------
@case("pair-mismatched-rounds", "pairing")
def _(p):
    cols = bob_cols()
    cols["round"] = cols["round"].copy()
    cols["round"][200:] += 1  # Bob's rounds from row 200 on are odd+1: not Alice's
    path = write_h5(p["alice"].parent / "bob_shifted.h5", cols, party="bob")
    return Invocation(run_argv(p, bob=path), p["out"], ("round sets differ", "round"))


@case("pair-bob-shorter", "pairing")
def _(p):
    path = write_h5(p["alice"].parent / "bob_short.h5",
                    {k: v[:350] for k, v in bob_cols().items()}, party="bob")
    return Invocation(run_argv(p, bob=path), p["out"], ("round sets differ", "50"))


@case("pair-key-round-with-x1", "pairing")
def _(p):
    cols = alice_cols()
    i = int(np.flatnonzero(~cols["_test"])[3])
    cols["x"] = cols["x"].copy()
    cols["x"][i] = 1
    path = write_h5(p["alice"].parent / "alice_x1.h5", cols, party="alice")
    return Invocation(run_argv(p, alice=path), p["out"], ("'x'", f"row {i}", "x = 1"))


@case("pair-alice-file-as-bob", "pairing")
def _(p):
    return Invocation(run_argv(p, bob=p["alice"]), p["out"], ("alice.h5", "alice"))


@case("pair-csv-and-npz-mismatch", "pairing")
def _(p):
    cols = bob_cols(300)
    path = write_npz(p["alice"].parent / "bob300.npz", cols, party="bob")
    return Invocation(run_argv(p, alice=p["alice_csv"], bob=path), p["out"],
                      ("round sets differ", "100"))


# ---- protocol TOML -------------------------------------------------------------------------------
def bad_protocol(name: str, edit: Callable[[str], str] | str | bytes, *expect: str,
                 xfail: str | None = None) -> None:
    def build(p: dict[str, Path]) -> Invocation:
        path = p["protocol"].parent / f"{name}.toml"
        if isinstance(edit, bytes):
            path.write_bytes(edit)
        elif isinstance(edit, str):
            path.write_text(edit)
        else:
            path.write_text(edit(PROTOCOL))
        return Invocation(run_argv(p, protocol=path), p["out"], (path.name, *expect))

    CASES.append(Case("toml-" + name, "protocol", build, xfail=xfail))


def _sub(old: str, new: str) -> Callable[[str], str]:
    def f(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return f




bad_protocol("syntax-error", _sub("gamma = 0.3", "gamma = = 0.3"), "not valid toml", "line")
bad_protocol("unclosed-table", _sub("[expected]", "[expected"), "not valid toml")
bad_protocol("unknown-top-key", _sub("gamma = 0.3", "gamma = 0.3\nfrobnicate = 1"),
             "frobnicate", "unknown")
bad_protocol("unknown-epsilon-key", _sub("eps_cor = 1e-6", "eps_cor = 1e-6\neps_x = 1e-6"),
             "epsilon.eps_x", "unknown")
bad_protocol("unknown-expected-key", _sub("S = 2.7", "S = 2.7\nV = 0.9"), "expected.v")
bad_protocol("epsilon-zero", _sub("eps_s = 1e-6", "eps_s = 0.0"), "epsilon.eps_s", "(0, 1)")
bad_protocol("epsilon-above-one", _sub("eps_pa = 1e-6", "eps_pa = 1.5"), "epsilon.eps_pa",
             "(0, 1)")
bad_protocol("epsilon-negative", _sub("eps_cor = 1e-6", "eps_cor = -1e-6"), "epsilon.eps_cor")
bad_protocol("epsilon-string", _sub("eps_ea = 1e-6", 'eps_ea = "tiny"'), "epsilon.eps_ea",
             "number")
bad_protocol("gamma-zero", _sub("gamma = 0.3", "gamma = 0.0"), "gamma", "(0, 1)")
bad_protocol("gamma-one", _sub("gamma = 0.3", "gamma = 1"), "gamma", "(0, 1)")
bad_protocol("gamma-above-one", _sub("gamma = 0.3", "gamma = 1.2"), "gamma", "(0, 1)")
bad_protocol("gamma-negative", _sub("gamma = 0.3", "gamma = -0.1"), "gamma")
bad_protocol("gamma-nan", _sub("gamma = 0.3", "gamma = nan"), "gamma", "finite")
bad_protocol("gamma-inf", _sub("gamma = 0.3", "gamma = inf"), "gamma", "finite")
bad_protocol("gamma-string", _sub("gamma = 0.3", 'gamma = "0.3"'), "gamma", "number")
bad_protocol("gamma-bool", _sub("gamma = 0.3", "gamma = true"), "gamma", "number")
bad_protocol("gamma-missing", _sub("gamma = 0.3\n", ""), "gamma", "required")
bad_protocol("S-below-local-bound", _sub("S = 2.7", "S = 1.9"), "expected.s")
bad_protocol("S-above-tsirelson", _sub("S = 2.7", "S = 2.9"), "expected.s")
bad_protocol("qber-too-high", _sub("qber = 0.02", "qber = 0.7"), "expected.qber")
bad_protocol("expected-missing", _sub("[expected]\nS = 2.7\nqber = 0.02\n", ""), "expected.s",
             "required")
bad_protocol("method-unknown", _sub('method = "eat2"', 'method = "magic"'), "method", "magic")
bad_protocol("key-inputs-unsupported", _sub("key_inputs = [0, 2]", "key_inputs = [1, 2]"),
             "key_inputs")
bad_protocol("key-inputs-bad-type", _sub("key_inputs = [0, 2]", 'key_inputs = "0,2"'),
             "key_inputs")
bad_protocol("omega-below-local", _sub("[ec]", "[threshold]\nomega = 0.7\n\n[ec]"),
             "threshold.omega")
bad_protocol("noisy-preprocessing-half", _sub("gamma = 0.3", "gamma = 0.3\n"
                                              "noisy_preprocessing = 0.5"),
             "noisy_preprocessing")
bad_protocol("min-key-bits-zero", _sub("gamma = 0.3", "gamma = 0.3\nmin_key_bits = 0"),
             "min_key_bits")
bad_protocol("schema-version-2", _sub("schema = 1", "schema = 2"), "schema", "2")
bad_protocol("ec-unknown-key", _sub("frame_length = 1000", "frame_length = 1000\nturbo = true"),
             "ec.turbo")
bad_protocol("ec-frame-too-short", _sub("frame_length = 1000", "frame_length = 4"),
             "frame_length")
bad_protocol("ec-decoder-unknown", _sub("frame_length = 1000",
                                        'frame_length = 1000\ndecoder = "oracle"'),
             "decoder", "oracle")
bad_protocol("ec-frame-length-string", _sub("frame_length = 1000", 'frame_length = "big"'),
             "frame_length")
bad_protocol("not-utf8", b"gamma = 0.3\nname = \"\xff\xfe\"\n", "utf-8")
bad_protocol("empty-file", "", "gamma", "required")


@case("toml-epsilon-scalar", "protocol")
def _(p):
    path = p["protocol"].parent / "epsscalar.toml"
    # a scalar `epsilon = 3` (it must precede the tables to be a top-level key)
    lines = PROTOCOL.splitlines()
    head = [ln for ln in lines[: lines.index("[expected]")]]
    rest = lines[lines.index("[expected]"):]
    rest = rest[: rest.index("[epsilon]")] + rest[rest.index("[ec]"):]
    path.write_text("\n".join(head + ["epsilon = 3"] + rest) + "\n")
    return Invocation(run_argv(p, protocol=path), p["out"], ("epsscalar.toml", "epsilon",
                                                             "table"))


@case("toml-missing-file", "protocol")
def _(p):
    path = p["protocol"].parent / "nowhere.toml"
    return Invocation(run_argv(p, protocol=path), p["out"], ("nowhere.toml",))


@case("toml-is-a-directory", "protocol")
def _(p):
    path = p["protocol"].parent / "adir.toml"
    path.mkdir(exist_ok=True)
    return Invocation(run_argv(p, protocol=path), p["out"], ("adir.toml",))


# ---- command-line options ------------------------------------------------------------------------
def bad_cli(name: str, argv: Callable[[dict[str, Path]], list[str]], *expect: str) -> None:
    CASES.append(Case("cli-" + name, "options",
                      lambda p: Invocation(argv(p), p["out"], expect)))


bad_cli("alice-without-bob",
        lambda p: ["run", "--alice", str(p["alice"]), "--protocol", str(p["protocol"]),
                   "--out", str(p["out"])], "--bob")
bad_cli("bob-without-alice",
        lambda p: ["run", "--bob", str(p["bob"]), "--protocol", str(p["protocol"]),
                   "--out", str(p["out"])], "--alice")
bad_cli("files-without-protocol",
        lambda p: ["run", "--alice", str(p["alice"]), "--bob", str(p["bob"]), "--out",
                   str(p["out"])], "--protocol")
bad_cli("files-with-preset", lambda p: run_argv(p, extra=("--preset", "oxford-2022")),
        "--preset", "--alice")
bad_cli("files-with-rounds", lambda p: run_argv(p, extra=("--rounds", "1e5")), "--rounds")
bad_cli("files-with-device", lambda p: run_argv(p, extra=("--device", "lhv")), "--device")
bad_cli("rounds-not-a-number", lambda p: ["run", "--rounds", "lots", "--out", str(p["out"])],
        "--rounds", "lots")
bad_cli("rounds-zero", lambda p: ["run", "--rounds", "0", "--out", str(p["out"])], "--rounds")
bad_cli("rounds-fractional", lambda p: ["run", "--rounds", "10.5", "--out", str(p["out"])],
        "--rounds")
bad_cli("seed-negative", lambda p: [*run_argv(p)[:-3], "--seed", "-1"], "--seed")
bad_cli("seed-not-int", lambda p: [*run_argv(p)[:-3], "--seed", "abc"], "--seed")
bad_cli("unknown-option", lambda p: [*run_argv(p), "--frobnicate"], "--frobnicate")
bad_cli("unknown-preset", lambda p: ["run", "--preset", "mars-link", "--rounds", "1000",
                                     "--out", str(p["out"]), "-q"], "mars-link")
bad_cli("unknown-device", lambda p: ["run", "--device", "quantum-toaster", "--rounds", "1000",
                                     "--out", str(p["out"]), "-q"], "quantum-toaster")
bad_cli("device-bad-parameter", lambda p: ["run", "--device", "drift:amount=7", "--rounds",
                                           "1000", "--out", str(p["out"]), "-q"],
        "drift", "amount")
bad_cli("alice-missing-file",
        lambda p: run_argv(p, alice=p["alice"].parent / "ghost.h5"), "ghost.h5", "no such file")
bad_cli("alice-is-directory",
        lambda p: run_argv(p, alice=p["alice"].parent), "directory")
bad_cli("alice-unknown-extension",
        lambda p: run_argv(p, alice=write_csv(p["alice"].parent / "alice.parquet",
                                              b"PAR1\x00\x00garbage")), "alice.parquet")


# ---- output directory ----------------------------------------------------------------------------
@case("out-is-a-file", "output")
def _(p):
    f = p["alice"].parent / "out_file"
    f.write_text("not a directory\n")
    argv = run_argv(p)
    argv[argv.index("--out") + 1] = str(f)
    return Invocation(argv, None, ("out_file", "is a file"))


@case("out-parent-is-a-file", "output")
def _(p):
    f = p["alice"].parent / "plainfile"
    f.write_text("x\n")
    argv = run_argv(p)
    argv[argv.index("--out") + 1] = str(f / "sub")
    return Invocation(argv, None, ("plainfile",))


@case("out-world-writable", "output")
def _(p):
    p["out"].mkdir(exist_ok=True)
    os.chmod(p["out"], 0o777)
    return Invocation(run_argv(p), p["out"], ("world-writable", "out"))


def _readonly_dir(path: Path, inv_cleanup: list[Callable[[], None]]) -> None:
    """Make ``path`` an existing directory nobody may write: a read-only tmpfs when we are root
    (root ignores permission bits), else mode 0555."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k,mode=0755", "tmpfs",
                            str(path)], capture_output=True)
        if r.returncode == 0:
            inv_cleanup.append(lambda: subprocess.run(["umount", "-l", str(path)],
                                                      capture_output=True))
            return
        raise RuntimeError(f"cannot make a read-only directory as root: {r.stderr!r}")
    os.chmod(path, 0o555)
    inv_cleanup.append(lambda: os.chmod(path, 0o755))


@case("out-unwritable", "output")
def _(p):
    inv = Invocation(run_argv(p), p["out"], ("out", "not writable"))
    _readonly_dir(p["out"], inv.cleanup)
    return inv


@case("out-unwritable-parent", "output")
def _(p):
    ro = p["alice"].parent / "ro"
    argv = run_argv(p)
    argv[argv.index("--out") + 1] = str(ro / "new")
    inv = Invocation(argv, ro / "new", ("new",))
    _readonly_dir(ro, inv.cleanup)
    return inv


# ---- records subcommands -------------------------------------------------------------------------
@case("records-inspect-truncated", "records-cli")
def _(p):
    raw = p["alice"].read_bytes()
    bad = write_csv(p["alice"].parent / "cut.h5", raw[: len(raw) // 3])
    return Invocation(["records", "inspect", str(bad)], None, ("cut.h5",))


@case("records-inspect-wrong-party", "records-cli")
def _(p):
    return Invocation(["records", "inspect", "--party", "bob", str(p["alice"])], None,
                      ("alice.h5", "party"))


@case("records-convert-bad-input", "records-cli")
def _(p):
    bad = write_csv(p["alice"].parent / "badrow.csv", _csv_cell(alice_cols(), 399, "x", "7"))
    dst = p["out"] / "converted.h5"
    p["out"].mkdir(exist_ok=True)
    return Invocation(["records", "convert", str(bad), str(dst)], p["out"],
                      ("badrow.csv", "'x'", "row 399"), must_not_exist=(dst,))


@case("records-convert-existing-target", "records-cli")
def _(p):
    p["out"].mkdir(exist_ok=True)
    dst = p["out"] / "keep.csv"
    dst.write_text("precious\n")
    return Invocation(["records", "convert", str(p["alice"]), str(dst)], p["out"],
                      ("keep.csv", "--force"), allowed=("keep.csv",))


@case("records-convert-unknown-format", "records-cli")
def _(p):
    p["out"].mkdir(exist_ok=True)
    dst = p["out"] / "x.parquet"
    return Invocation(["records", "convert", str(p["alice"]), str(dst)], p["out"],
                      ("parquet",), must_not_exist=(dst,))


@case("records-convert-into-missing-dir", "records-cli")
def _(p):
    dst = p["out"] / "nodir" / "x.csv"
    p["out"].mkdir(exist_ok=True)
    return Invocation(["records", "convert", str(p["alice"]), str(dst)], p["out"],
                      ("nodir",), must_not_exist=(dst,))


# ---- audit ---------------------------------------------------------------------------------------
def _report(p: dict[str, Path], doc: object, name: str = "report.json") -> Path:
    path = p["alice"].parent / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path




def bad_report(name: str, doc: object, *expect: str, cmd: str = "verify",
               xfail: str | None = None) -> None:
    def build(p: dict[str, Path]) -> Invocation:
        rep = _report(p, doc, f"{name}.json")
        if cmd == "verify":
            argv = ["audit", "verify", str(rep), "--alice", str(p["alice"]), "--bob",
                    str(p["bob"])]
        else:
            argv = ["audit", "sign", str(rep), "--key", str(p["alice"].parent / "none.pem")]
        return Invocation(argv, None, (f"{name}.json", *expect))

    CASES.append(Case("audit-" + name, "audit", build, xfail=xfail))


bad_report("unknown-schema", {"schema": "diqkd-report/99", "verdict": "key"}, "schema",
           "diqkd-report/99")
bad_report("no-schema", {"verdict": "key"}, "schema")
bad_report("not-json", "{this is not json", "json")
bad_report("json-array", [1, 2, 3], "object")
bad_report("empty-file", "", "json")
bad_report("no-protocol", {"schema": "diqkd-report/1", "inputs": {}}, "protocol")
bad_report("bad-protocol", {"schema": "diqkd-report/1", "protocol": {"gamma": 7}}, "gamma")
bad_report("sign-unknown-schema", {"schema": "diqkd-report/2"}, "schema", cmd="sign")


@case("audit-missing-report", "audit")
def _(p):
    return Invocation(["audit", "verify", str(p["alice"].parent / "gone.json"), "--alice",
                       str(p["alice"]), "--bob", str(p["bob"])], None, ("gone.json",))


@case("audit-bad-seed", "audit")
def _(p):
    from diqkd.protocol import Protocol

    proto = Protocol.from_toml(p["protocol"])
    doc = {"schema": "diqkd-report/1", "protocol": proto.to_dict(),
           "protocol_sha256": proto.sha256, "seeds": {"master": "twelve"}, "inputs": {}}
    rep = _report(p, doc, "badseed.json")
    return Invocation(["audit", "verify", str(rep), "--alice", str(p["alice"]), "--bob",
                       str(p["bob"])], None, ("seeds.master", "twelve"))


@case("audit-missing-input", "audit")
def _(p):
    rep = _report(p, {"schema": "diqkd-report/1"}, "r.json")
    return Invocation(["audit", "verify", str(rep), "--alice", str(p["alice"].parent / "x.h5"),
                       "--bob", str(p["bob"])], None, ("x.h5",))


@case("audit-check-signature-garbage", "audit")
def _(p):
    from diqkd.audit import keygen

    priv, pub = keygen(p["alice"].parent / "k")
    rep = _report(p, {"schema": "diqkd-report/1"}, "r2.json")
    sig = p["alice"].parent / "r2.sig"
    sig.write_text("garbage")
    return Invocation(["audit", "check-signature", str(rep), "--sig", str(sig), "--pubkey",
                       str(pub)], None, ("r2.sig", "json"))


@case("audit-sign-with-public-key", "audit")
def _(p):
    from diqkd.audit import keygen

    priv, pub = keygen(p["alice"].parent / "k2")
    rep = _report(p, {"schema": "diqkd-report/1"}, "r3.json")
    return Invocation(["audit", "sign", str(rep), "--key", str(pub)], None,
                      ("diqkd-ed25519.pub.pem",))


def build_case(c: Case, work: Path) -> tuple[dict[str, Path], Invocation]:
    p = base_inputs(work)
    return p, c.build(p)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tests/hardening/corpus.py OUT_DIR", file=sys.stderr)
        return 2
    root = Path(argv[1])
    for c in CASES:
        work = root / c.name
        _, inv = build_case(c, work)
        note = ("# the test makes the output directory read-only (a read-only tmpfs as root)\n"
                if inv.cleanup else "")
        for f in inv.cleanup:  # never leave mounts behind
            f()
        (work / "cmd.txt").write_text(note + "diqkd " + " ".join(inv.argv) + "\n")
    print(f"{len(CASES)} cases written to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
