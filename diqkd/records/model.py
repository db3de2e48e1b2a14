"""The record data model shared by every stage: per-party columnar records and their alignment.

Conventions (see README, "Record format")
-----------------------------------------
* Alice: ``round`` (uint64, strictly increasing), ``x`` (uint8 setting in {0, 1}), ``a`` (uint8
  outcome bit), optional ``t_ns`` (int64 timestamp in ns, >= 0).
* Bob: ``round``, ``y`` (uint8 setting in {0, 1, 2}; y = 2 is the key setting, paired with x = 0),
  ``b`` (uint8 outcome bit), optional ``herald`` (uint8: 0 = psi+, 1 = psi-), optional ``t_ns``.

Herald correction (the one documented place)
--------------------------------------------
A heralded link produces psi+ = (|01> + |10>)/sqrt2 or psi- = (1 x Z) psi+, depending on which
detector pattern heralded it. All measurement directions of diqkd's convention lie in the
equatorial (X-Y) plane of the Bloch sphere, where Z sigma(phi) Z = -sigma(phi) for every phi.
Measuring psi- is therefore exactly measuring psi+ with Bob's outcome inverted, for *every*
setting, so the correction is the relabelling ``b <- b XOR herald``. It is applied by
:func:`align` and nowhere else; records on disk always hold Bob's raw outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from diqkd.errors import InputError

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "SCHEMAS",
    "Party",
    "Records",
    "Joint",
    "align",
]

#: Version of the on-disk schema; readers refuse files of another version.
SCHEMA_VERSION = 1

Party = Literal["alice", "bob"]


@dataclass(frozen=True)
class Column:
    """One column of a party's schema."""

    name: str
    dtype: np.dtype[Any]
    required: bool
    low: int | None  # inclusive bounds for the values, None = unbounded
    high: int | None
    unit: str
    doc: str


_U8 = np.dtype(np.uint8)
_U64 = np.dtype(np.uint64)
_I64 = np.dtype(np.int64)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "alice": (
        Column("round", _U64, True, 0, None, "1", "round number, strictly increasing"),
        Column("x", _U8, True, 0, 1, "1", "Alice's setting"),
        Column("a", _U8, True, 0, 1, "1", "Alice's outcome bit"),
        Column("t_ns", _I64, False, 0, None, "ns", "time of the heralded event"),
    ),
    "bob": (
        Column("round", _U64, True, 0, None, "1", "round number, strictly increasing"),
        Column("y", _U8, True, 0, 2, "1", "Bob's setting; 2 is the key setting"),
        Column("b", _U8, True, 0, 1, "1", "Bob's raw outcome bit"),
        Column("herald", _U8, False, 0, 1, "1", "heralded Bell state: 0 = psi+, 1 = psi-"),
        Column("t_ns", _I64, False, 0, None, "ns", "time of the heralded event"),
    ),
}


def _schema(party: str) -> tuple[Column, ...]:
    try:
        return SCHEMAS[party]
    except KeyError:
        raise InputError(f"unknown party {party!r}; expected 'alice' or 'bob'") from None


@dataclass(frozen=True, eq=False)
class Records:
    """Columnar records of one party (numpy arrays of equal length), validated on construction.

    Parameters
    ----------
    party
        ``"alice"`` or ``"bob"``.
    columns
        Mapping of column name to 1-d array. Required columns must be present, unknown columns are
        refused; integer arrays are converted to the schema dtype when every value fits.
    metadata
        Free-form run metadata (stored as HDF5 attributes); JSON-serialisable values only.
    source
        File the records came from, used in error messages.
    first_row
        Row offset of these records within ``source`` (for chunked reading), used in messages.
    check_order
        Check that rounds strictly increase (disable only for data already checked).
    """

    party: str
    columns: Mapping[str, np.ndarray]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    source: str | None = None
    first_row: int = 0

    def __init__(
        self,
        party: str,
        columns: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        first_row: int = 0,
        check_order: bool = True,
    ) -> None:
        schema = _schema(party)
        names = {c.name for c in schema}
        unknown = sorted(set(columns) - names)
        if unknown:
            raise InputError(
                f"unexpected column for {party}; allowed: {sorted(names)}",
                file=source,
                field=unknown[0],
            )
        cols: dict[str, np.ndarray] = {}
        length: int | None = None
        for col in schema:
            if col.name not in columns:
                if col.required:
                    raise InputError(f"missing required column for {party}", file=source,
                                     field=col.name)
                continue
            arr = _coerce(columns[col.name], col, source, first_row)
            if length is None:
                length = arr.shape[0]
            elif arr.shape[0] != length:
                raise InputError(
                    f"column has {arr.shape[0]} rows, the others have {length}",
                    file=source, field=col.name,
                )
            cols[col.name] = arr
        if check_order:
            _check_rounds(cols["round"], source, first_row)
        object.__setattr__(self, "party", party)
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "metadata", dict(metadata or {}))
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "first_row", first_row)

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.columns["round"].shape[0])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def schema(self) -> tuple[Column, ...]:
        return SCHEMAS[self.party]

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.columns.values())

    def slice(self, start: int, stop: int) -> Records:
        """Rows ``start:stop`` (a view; no validation needed, order is inherited)."""
        return Records(
            self.party,
            {k: v[start:stop] for k, v in self.columns.items()},
            self.metadata,
            source=self.source,
            first_row=self.first_row + start,
            check_order=False,
        )

    def equals(self, other: Records) -> bool:
        """Same party, same columns, same values (metadata ignored)."""
        return (
            self.party == other.party
            and self.columns.keys() == other.columns.keys()
            and all(np.array_equal(v, other.columns[k]) for k, v in self.columns.items())
        )

    @staticmethod
    def concat(parts: Iterable[Records]) -> Records:
        """Concatenate chunks of one party in order; checks the order across chunk borders."""
        parts = list(parts)
        if not parts:
            raise InputError("no records to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.party != first.party or p.columns.keys() != first.columns.keys():
                raise InputError(
                    f"cannot concatenate records of different parties or column sets "
                    f"({first.party}: {list(first.columns)}; {p.party}: {list(p.columns)})",
                    file=p.source,
                )
        cols = {k: np.concatenate([p.columns[k] for p in parts]) for k in first.columns}
        return Records(first.party, cols, first.metadata, source=first.source,
                       first_row=first.first_row)


def _coerce(values: Any, col: Column, source: str | None, first_row: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InputError(f"column must be one-dimensional, got shape {arr.shape}",
                         file=source, field=col.name)
    if arr.dtype == col.dtype:
        out = arr
    elif arr.dtype.kind == "b":
        out = arr.astype(col.dtype)
    elif arr.dtype.kind in "iu":
        out = _checked_int_cast(arr, col, source, first_row)
    elif arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            what = "NaN" if np.isnan(arr[i]) else "non-integer value"
            raise InputError(f"{what} in integer column ({col.dtype})",
                             file=source, field=col.name, row=first_row + i, value=arr[i].item())
        out = _checked_int_cast(arr, col, source, first_row)
    else:
        raise InputError(f"wrong dtype {arr.dtype}; expected {col.dtype}",
                         file=source, field=col.name)
    _check_range(out, col, source, first_row)
    return out


def _check_range(out: np.ndarray, col: Column, source: str | None, first_row: int) -> None:
    """Vectorised bounds check: one min/max reduction per bound, locate the row only on failure."""
    if not out.size:
        return
    low_bad = col.low is not None and out.dtype.kind == "i" and out.min() < col.low
    high_bad = col.high is not None and out.max() > col.high
    if not (low_bad or high_bad):
        return
    bad = np.zeros(out.shape, dtype=bool)
    if low_bad:
        bad |= out < col.low
    if high_bad:
        bad |= out > col.high
    i = int(np.argmax(bad))
    value = out[i].item()
    if col.name == "t_ns" and value < 0:
        message = "negative timestamp (t_ns must be >= 0)"
    elif col.high is None:
        message = f"value out of range (must be >= {col.low})"
    else:
        message = f"value out of range (allowed {col.low}..{col.high})"
    raise InputError(message, file=source, field=col.name, row=first_row + i, value=value)


def _checked_int_cast(
    arr: np.ndarray, col: Column, source: str | None, first_row: int
) -> np.ndarray:
    info = np.iinfo(col.dtype)
    if arr.size:
        lo, hi = arr.min(), arr.max()
        # Floats compare against the exclusive bound 2**bits (exact in float64); an inclusive
        # comparison with info.max would round info.max up and let 2**64 through.
        hi_bad = hi >= float(info.max) + 1 if arr.dtype.kind == "f" else hi > info.max
        lo_bad = arr.dtype.kind != "u" and lo < max(info.min, col.low or 0)
        if lo_bad or hi_bad:
            bad = arr < info.min if arr.dtype.kind != "u" else np.zeros(arr.shape, bool)
            bad |= arr >= float(info.max) + 1 if arr.dtype.kind == "f" else arr > info.max
            if col.low is not None:
                bad |= arr < col.low
            i = int(np.argmax(bad))
            value = arr[i].item()
            if col.name == "t_ns" and value < 0:
                message = "negative timestamp (t_ns must be >= 0)"
            else:
                message = f"value out of range for {col.dtype}"
            raise InputError(message, file=source, field=col.name, row=first_row + i, value=value)
    return arr.astype(col.dtype)


def _check_rounds(rounds: np.ndarray, source: str | None, first_row: int) -> None:
    if rounds.size < 2:
        return
    bad = rounds[1:] <= rounds[:-1]
    if bad.any():
        i = int(np.argmax(bad)) + 1
        what = "duplicate" if rounds[i] == rounds[i - 1] else "decreasing"
        raise InputError(f"{what} round number (rounds must strictly increase)", file=source,
                         field="round", row=first_row + i, value=int(rounds[i]))


@dataclass(frozen=True)
class Joint:
    """Both parties' records of the same rounds, herald-corrected: the input of every stage.

    ``b`` is Bob's outcome after the herald correction (``b_raw XOR herald``).
    """

    round: np.ndarray
    x: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    dropped_alice: int = 0
    dropped_bob: int = 0

    def __len__(self) -> int:
        return int(self.round.shape[0])


def align(alice: Records, bob: Records, *, drop_unmatched: bool = False) -> Joint:
    """Join Alice's and Bob's records on ``round`` and apply Bob's herald correction.

    Parameters
    ----------
    alice, bob
        Records of each party (each strictly increasing in ``round``).
    drop_unmatched
        If False (the default), round sets that differ are an :class:`InputError` that reports
        how many rounds each side lacks and the first one; if True, unmatched rounds are dropped
        and counted in ``Joint.dropped_alice`` / ``Joint.dropped_bob``.
    """
    if alice.party != "alice" or bob.party != "bob":
        raise InputError(f"align expects (alice, bob) records, got ({alice.party}, {bob.party})")
    ra, rb = alice["round"], bob["round"]
    ia: slice | np.ndarray
    ib: slice | np.ndarray
    if ra.shape == rb.shape and np.array_equal(ra, rb):
        ia = ib = slice(None)
        dropped_a = dropped_b = 0
    else:
        common, ia_idx, ib_idx = np.intersect1d(ra, rb, assume_unique=True, return_indices=True)
        dropped_a = len(ra) - len(common)
        dropped_b = len(rb) - len(common)
        if not drop_unmatched:
            only_a = np.setdiff1d(ra, common, assume_unique=True)
            only_b = np.setdiff1d(rb, common, assume_unique=True)
            first = []
            if only_a.size:
                first.append(f"first round only Alice has: {int(only_a[0])}")
            if only_b.size:
                first.append(f"first round only Bob has: {int(only_b[0])}")
            raise InputError(
                f"Alice's and Bob's round sets differ: {dropped_a} round(s) only in Alice's "
                f"records, {dropped_b} only in Bob's ({'; '.join(first)}); pass "
                "drop_unmatched=True (CLI: --drop-unmatched) to drop them",
                file=f"{alice.source} / {bob.source}", field="round",
            )
        ia, ib = ia_idx, ib_idx
    b = bob["b"][ib]
    if "herald" in bob:
        b = b ^ bob["herald"][ib]  # the herald correction: see the module docstring
    return Joint(
        round=ra[ia], x=alice["x"][ia], y=bob["y"][ib], a=alice["a"][ia], b=b,
        dropped_alice=dropped_a, dropped_bob=dropped_b,
    )
