"""Record files: HDF5 (canonical), CSV and NPZ readers and writers, with validation.

Every reader goes through one path: a format-specific *source* yields raw column arrays chunk by
chunk, and :func:`_to_records` turns each chunk into validated :class:`Records` (dtypes, ranges,
round order), with row numbers counted from the start of the file. Ordering is also checked
across chunk borders, so :func:`iter_records` validates exactly what :func:`read_records` does
while holding only one chunk in memory. See ``docs/records.md`` for the file layouts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.errors import InputError
from diqkd.fileio import atomic_path
from diqkd.records.model import SCHEMA_VERSION, SCHEMAS, Records

__all__ = [
    "FORMATS",
    "HDF5_CHUNK_ROWS",
    "RecordWriter",
    "format_of",
    "iter_records",
    "open_writer",
    "read_records",
    "write_records",
]

PathLike = str | os.PathLike[str]

#: The supported formats, by name.
FORMATS = ("hdf5", "csv", "npz")
_EXTENSIONS = {".h5": "hdf5", ".hdf5": "hdf5", ".csv": "csv", ".npz": "npz"}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: Rows per HDF5 chunk: 2**17 rows is 1 MiB for the 8-byte columns, the size of HDF5's default
#: chunk cache, so that other tools reading slices stay cached; large enough that the per-chunk
#: overhead is negligible, small enough for the scale-offset filter to adapt to the local range.
HDF5_CHUNK_ROWS = 1 << 17

#: HDF5 filters of every column: byte shuffle + deflate level 1 + Fletcher-32 checksums, all built
#: into libhdf5 (every HDF5 tool reads the files without plugins). The checksum is the reason for
#: this choice: without it, a flipped bit on disk that keeps a value in range reads as valid but
#: altered lab data; with it, the reader reports a corrupt chunk (file, column, rows). h5py refuses
#: Fletcher-32 together with the scale-offset filter, which decoded ~25 % faster on an idle machine
#: (bench/bench_records.py prints the comparison); deflate-1 files are also ~2.5x smaller.
HDF5_FILTERS: dict[str, Any] = {"shuffle": True, "compression": "gzip", "compression_opts": 1,
                                "fletcher32": True}

#: Root attributes diqkd writes itself; any other root attribute is read as run metadata.
_RESERVED_ATTRS = ("format", "schema_version", "party", "metadata", "writer")
_FORMAT_TAG = "diqkd-records"
_NPZ_META = ("party", "schema_version", "metadata")
_CSV_BLOCK_LINES = 1 << 18
_H5_SLAB = 1 << 20
_INT_RE = re.compile(r"\s*[+-]?\d+\s*")


# ------------------------------------------------------------------------------------------------
# format detection, metadata helpers
# ------------------------------------------------------------------------------------------------
def format_of(path: PathLike, fmt: str | None = None) -> str:
    """The format of ``path``: ``fmt`` if given, else from the extension (.h5/.hdf5, .csv, .npz)."""
    if fmt is not None:
        f = fmt.lower()
        f = {"h5": "hdf5"}.get(f, f)
        if f not in FORMATS:
            raise InputError(f"unknown record format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return f
    ext = Path(path).suffix.lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    raise InputError(
        f"cannot tell the record format from the extension {ext or '(none)'!r}; use .h5/.hdf5, "
        ".csv or .npz (or give the format explicitly)",
        file=str(path),
    )


def _sniff(path: str) -> str:
    """Format of an existing file: by its first bytes, falling back to the extension."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise InputError("no such file", file=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a record file", file=path) from None
    if not head:
        raise InputError("empty file (0 bytes, no records)", file=path)
    by_ext = _EXTENSIONS.get(Path(path).suffix.lower())
    if head.startswith(_HDF5_MAGIC):
        return "hdf5"
    if head.startswith(b"PK"):
        return "npz"
    if by_ext in ("hdf5", "npz"):
        raise InputError(f"corrupt {by_ext.upper()} file: it does not start with the "
                         f"{by_ext.upper()} signature", file=path, value=head)
    return "csv"


def _jsonable(value: Any) -> Any:
    """A JSON-compatible version of an HDF5 attribute / numpy value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _dump_metadata(metadata: Mapping[str, Any], path: str) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray | np.generic):
            return obj.tolist()
        raise TypeError(type(obj).__name__)

    try:
        return json.dumps(dict(metadata), default=default, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"run metadata must be JSON-serialisable: {exc}", file=path) from None


def _load_metadata(text: Any, path: str) -> dict[str, Any]:
    text = _jsonable(text)
    try:
        meta = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InputError(f"corrupt metadata: not valid JSON ({exc})", file=path,
                         field="metadata") from None
    if not isinstance(meta, dict):
        raise InputError("corrupt metadata: not a JSON object", file=path, field="metadata")
    return meta


def _check_schema_version(version: Any, path: str, where: str) -> None:
    if version is None:
        raise InputError(f"not a diqkd records file: no schema_version {where}", file=path)
    try:
        v = int(_jsonable(version))
    except (TypeError, ValueError):
        raise InputError(f"invalid schema_version {where}", file=path, field="schema_version",
                         value=_jsonable(version)) from None
    if v != SCHEMA_VERSION:
        raise InputError(
            f"unsupported schema version {v}; this diqkd reads schema version {SCHEMA_VERSION}",
            file=path, field="schema_version", value=v,
        )


# ------------------------------------------------------------------------------------------------
# sources: one per format, yielding raw column chunks
# ------------------------------------------------------------------------------------------------
class _Source:
    fmt = ""

    def __init__(self, path: str) -> None:
        self.path = path
        self.party: str | None = None
        self.metadata: dict[str, Any] = {}
        self.names: list[str] = []
        self.nrows: int | None = None
        self.schema_version: int = SCHEMA_VERSION
        self.dtypes: dict[str, np.dtype[Any]] = {}

    def chunks(self, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
        raise NotImplementedError

    def read_all(self) -> dict[str, np.ndarray]:
        parts = list(self.chunks(1 << 22))
        if not parts:
            return {n: np.zeros(0, np.int64) for n in self.names}
        return {n: np.concatenate([p[n] for p in parts]) for n in self.names}

    def progress(self) -> int:
        """Work done so far, in the unit of :meth:`progress_total`."""
        return 0

    def progress_total(self) -> int:
        return 0

    def locate(self, row: int) -> str:
        """Extra location text for an error at ``row`` (the CSV line number)."""
        return ""

    def close(self) -> None:
        pass


class _H5Source(_Source):
    fmt = "hdf5"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        import h5py

        try:
            self.f = h5py.File(path, "r")
        except OSError as exc:
            raise InputError(f"truncated or corrupt HDF5 file ({_h5_reason(exc)})",
                             file=path) from None
        try:
            self._scan(h5py)
        except InputError:
            self.f.close()
            raise
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            self.f.close()
            raise InputError(f"corrupt HDF5 file ({_h5_reason(exc)})", file=path) from None
        self._done = 0

    def _scan(self, h5py: Any) -> None:
        attrs = self.f.attrs
        _check_schema_version(attrs.get("schema_version"), self.path, "attribute")
        party = attrs.get("party")
        self.party = None if party is None else str(_jsonable(party))
        meta = {k: _jsonable(attrs[k]) for k in attrs if k not in _RESERVED_ATTRS}
        if "metadata" in attrs:
            meta.update(_load_metadata(attrs["metadata"], self.path))
        self.metadata = meta
        self.ds: dict[str, Any] = {}
        for name in self.f:
            obj = self.f.get(name)
            if not isinstance(obj, h5py.Dataset):
                raise InputError("unexpected HDF5 object (records hold one dataset per column)",
                                 file=self.path, field=name)
            if obj.ndim != 1:
                raise InputError(f"column must be one-dimensional, got shape {obj.shape}",
                                 file=self.path, field=name)
            _check_kind(obj.dtype, name, self.path, lambda o=obj: o[0] if o.shape[0] else None)
            self.ds[name] = obj
        self.names = list(self.ds)
        lengths = {n: d.shape[0] for n, d in self.ds.items()}
        if len(set(lengths.values())) > 1:
            n0 = max(lengths.values())
            short = min(lengths, key=lengths.__getitem__)
            raise InputError(f"column has {lengths[short]} rows, another has {n0} "
                             "(truncated write?)", file=self.path, field=short)
        self.nrows = next(iter(lengths.values()), 0)
        self.dtypes = {n: d.dtype for n, d in self.ds.items()}

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        out = np.empty(stop - start, dtype=self.ds[name].dtype)
        self._read_into(name, start, stop, out)
        return out

    def _read_into(self, name: str, start: int, stop: int, out: np.ndarray) -> None:
        try:
            if stop > start:
                self.ds[name].read_direct(out, np.s_[start:stop])
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(f"corrupt HDF5 data in rows {start}..{stop - 1} "
                             f"({_h5_reason(exc)})", file=self.path, field=name,
                             row=start) from None

    def chunks(self, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
        n = self.nrows or 0
        for start in range(0, n, chunk_rows):
            stop = min(n, start + chunk_rows)
            cols = {name: self._read(name, start, stop) for name in self.names}
            self._done = stop
            yield cols

    def read_all(self) -> dict[str, np.ndarray]:
        # Slabs of 2**20 rows (whole chunks) into the preallocated result, the access pattern of
        # the chunked reader, rather than one H5Dread over the whole dataset.
        n = self.nrows or 0
        out = {}
        for name in self.names:
            arr = np.empty(n, dtype=self.ds[name].dtype)
            for start in range(0, n, _H5_SLAB):
                stop = min(n, start + _H5_SLAB)
                self._read_into(name, start, stop, arr[start:stop])
            out[name] = arr
        return out

    def progress(self) -> int:
        return self._done

    def progress_total(self) -> int:
        return self.nrows or 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.f.close()


def _h5_reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


class _NpzSource(_Source):
    fmt = "npz"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"truncated or corrupt NPZ file (not a valid zip archive: {exc})",
                             file=path) from None
        try:
            self._scan()
        except BaseException:
            self.zf.close()
            raise
        self._done = 0

    def _scan(self) -> None:
        members: dict[str, str] = {}
        for info in self.zf.infolist():
            if not info.filename.endswith(".npy"):
                raise InputError("unexpected member in NPZ archive (every member is an .npy "
                                 "array)", file=self.path, field=info.filename)
            members[info.filename[:-4]] = info.filename
        meta = {k: self._small(members.pop(k)) for k in _NPZ_META if k in members}
        _check_schema_version(meta.get("schema_version"), self.path, "entry")
        self.party = None if "party" not in meta else str(meta["party"])
        if "metadata" in meta:
            self.metadata = _load_metadata(meta["metadata"], self.path)
        self.members = members
        self.names = list(members)
        self.headers: dict[str, tuple[int, np.dtype[Any]]] = {}
        for name, member in members.items():
            with self._open(member) as fh:
                shape, dtype = self._header(fh, name)
            if len(shape) != 1:
                raise InputError(f"column must be one-dimensional, got shape {shape}",
                                 file=self.path, field=name)
            _check_kind(dtype, name, self.path, lambda n=name: self._first(n))
            self.headers[name] = (shape[0], dtype)
        lengths = {n: h[0] for n, h in self.headers.items()}
        if len(set(lengths.values())) > 1:
            short = min(lengths, key=lengths.__getitem__)
            raise InputError(f"column has {lengths[short]} rows, another has "
                             f"{max(lengths.values())}", file=self.path, field=short)
        self.nrows = next(iter(lengths.values()), 0)
        self.dtypes = {n: h[1] for n, h in self.headers.items()}

    @contextlib.contextmanager
    def _open(self, member: str) -> Iterator[Any]:
        try:
            with self.zf.open(member) as fh:
                yield fh
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            raise InputError(f"truncated or corrupt NPZ member ({exc})", file=self.path,
                             field=member[:-4]) from None

    def _header(self, fh: Any, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _fortran, dtype = fmt.read_array_header_1_0(fh)
            else:
                shape, _fortran, dtype = fmt.read_array_header_2_0(fh)
        except (ValueError, EOFError) as exc:
            raise InputError(f"corrupt NPZ member: not a valid .npy array ({exc})",
                             file=self.path, field=name) from None
        if dtype.hasobject:
            raise InputError("column holds Python objects; expected integers", file=self.path,
                             field=name, value=str(dtype))
        return tuple(shape), dtype

    def _small(self, member: str) -> Any:
        with self._open(member) as fh:
            try:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
            except ValueError as exc:
                raise InputError(f"corrupt NPZ entry ({exc})", file=self.path,
                                 field=member[:-4]) from None
        return arr.item() if arr.ndim == 0 else arr

    def _first(self, name: str) -> Any:
        with self._open(self.members[name]) as fh:
            shape, dtype = self._header(fh, name)
            if not shape or not shape[0]:
                return None
            return np.frombuffer(fh.read(dtype.itemsize), dtype)[0] if dtype.itemsize else None

    def chunks(self, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
        n = self.nrows or 0
        with contextlib.ExitStack() as stack:
            handles = {}
            for name, member in self.members.items():
                fh = stack.enter_context(self._open(member))
                self._header(fh, name)
                handles[name] = fh
            for start in range(0, n, chunk_rows):
                stop = min(n, start + chunk_rows)
                cols = {}
                for name, fh in handles.items():
                    dtype = self.headers[name][1]
                    want = (stop - start) * dtype.itemsize
                    try:
                        buf = fh.read(want)
                    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
                        raise InputError(f"truncated or corrupt NPZ member ({exc})",
                                         file=self.path, field=name, row=start) from None
                    if len(buf) != want:
                        raise InputError("truncated NPZ member: data ends early", file=self.path,
                                         field=name, row=start + len(buf) // dtype.itemsize)
                    cols[name] = np.frombuffer(buf, dtype).copy()
                self._done = stop
                yield cols

    def read_all(self) -> dict[str, np.ndarray]:
        parts = list(self.chunks(max(1, self.nrows or 1)))
        if not parts:
            return {n: np.zeros(0, self.headers[n][1]) for n in self.names}
        return parts[0]

    def progress(self) -> int:
        return self._done

    def progress_total(self) -> int:
        return self.nrows or 0

    def close(self) -> None:
        self.zf.close()


class _CsvSource(_Source):
    fmt = "csv"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        try:
            # utf-8-sig: spreadsheet exports start with a byte-order mark.
            self.fh = open(path, encoding="utf-8-sig")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"cannot open CSV file ({exc.strerror})", file=path) from None
        self.size = os.path.getsize(path)
        self.line_no = 0
        self._bytes = 0
        self._block: tuple[int, int, list[str]] = (0, 1, [])
        try:
            self._scan()
        except BaseException:
            self.fh.close()
            raise

    def _next_line(self) -> str | None:
        try:
            line = self.fh.readline()
        except UnicodeDecodeError as exc:
            raise InputError(f"corrupt CSV file: not UTF-8 text near line {self.line_no + 1} "
                             f"({exc.reason})", file=self.path) from None
        if not line:
            return None
        self.line_no += 1
        self._bytes += len(line)
        return line

    def _scan(self) -> None:
        version: Any = SCHEMA_VERSION
        while True:
            line = self._next_line()
            if line is None:
                raise InputError("empty file: no CSV header line (expected e.g. 'round,x,a')",
                                 file=self.path)
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                key, sep, value = text[1:].partition(":")
                key, value = key.strip(), value.strip()
                if not sep:
                    continue
                if key == "schema_version":
                    version = value
                elif key == "party":
                    self.party = value
                elif key == "metadata":
                    self.metadata = _load_metadata(value, self.path)
                continue
            break
        _check_schema_version(version, self.path, "comment")
        names = [c.strip() for c in text.split(",")]
        for i, name in enumerate(names):
            if not name:
                raise InputError(f"empty column name in the CSV header (line {self.line_no})",
                                 file=self.path, value=text)
            if name in names[:i]:
                raise InputError(f"duplicate column in the CSV header (line {self.line_no})",
                                 file=self.path, field=name)
            if _INT_RE.fullmatch(name):
                raise InputError(f"no CSV header: line {self.line_no} holds numbers, expected "
                                 "column names such as 'round,x,a'", file=self.path, value=text)
        self.names = names
        self.header_line = self.line_no

    def chunks(self, chunk_rows: int) -> Iterator[dict[str, np.ndarray]]:
        first_row = 0
        dtypes = [(n, np.uint64 if n == "round" else np.int64) for n in self.names]
        # Lines are Python strings (~100 bytes each before parsing): parse at most 2**18 at once.
        block = min(chunk_rows, _CSV_BLOCK_LINES)
        while True:
            start_line = self.line_no + 1
            try:
                lines = list(itertools.islice(self.fh, block))
            except UnicodeDecodeError as exc:
                raise InputError(f"corrupt CSV file: not UTF-8 text after line {self.line_no} "
                                 f"({exc.reason})", file=self.path) from None
            if not lines:
                return
            self.line_no += len(lines)
            self._bytes += sum(map(len, lines))
            self._block = (first_row, start_line, lines)
            try:
                table = np.loadtxt(lines, delimiter=",", dtype=dtypes, ndmin=1, comments="#")
            except ValueError as exc:
                self._diagnose(lines, start_line, first_row, exc)
                raise AssertionError("unreachable") from None
            cols = {n: np.ascontiguousarray(table[n]) for n in self.names}
            first_row += len(table)
            if len(table):
                yield cols

    def _diagnose(self, lines: list[str], start_line: int, first_row: int,
                  exc: Exception) -> None:
        """Find the bad cell of a block that numpy could not parse and raise a precise error."""
        k = len(self.names)
        row = first_row
        for i, line in enumerate(lines):
            ln = start_line + i
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            cells = text.split(",")
            if len(cells) != k:
                raise InputError(
                    f"CSV line {ln} has {len(cells)} field(s) but the header has {k} "
                    f"({','.join(self.names)}): short, long or truncated row",
                    file=self.path, row=row, value=text[:80],
                )
            for name, cell in zip(self.names, cells, strict=True):
                c = cell.strip()
                if not c:
                    what = "empty cell"
                elif c.lower() in ("nan", "+nan", "-nan"):
                    what = "NaN in an integer column"
                elif not _INT_RE.fullmatch(c):
                    what = "not an integer (integer columns hold decimal integers only)"
                else:
                    v = int(c)
                    lo, hi = (0, 2**64 - 1) if name == "round" else (-(2**63), 2**63 - 1)
                    if lo <= v <= hi:
                        continue
                    what = "value out of range"
                raise InputError(f"{what} on CSV line {ln}", file=self.path, field=name,
                                 row=row, value=c)
            row += 1
        raise InputError(f"cannot parse the CSV rows from line {start_line} ({exc})",
                         file=self.path)

    def locate(self, row: int) -> str:
        first_row, start_line, lines = self._block
        if row < first_row:
            return ""
        r = first_row
        for i, line in enumerate(lines):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if r == row:
                return f" on CSV line {start_line + i}"
            r += 1
        return ""

    def progress(self) -> int:
        return self._bytes

    def progress_total(self) -> int:
        return self.size

    def close(self) -> None:
        self.fh.close()


def _check_kind(dtype: np.dtype[Any], name: str, path: str, first: Any) -> None:
    """Refuse column dtypes that cannot hold records (strings, compounds) before reading data."""
    if dtype.kind in "iubf":
        return
    try:
        value = _jsonable(first())
    except Exception:  # noqa: BLE001 - only for the message
        value = None
    raise InputError(f"wrong dtype {dtype} (expected integers)", file=path, field=name,
                     row=0 if value is not None else None, value=value)


def _open_source(path: PathLike) -> _Source:
    p = os.fspath(path)
    fmt = _sniff(p)
    if fmt == "hdf5":
        return _H5Source(p)
    if fmt == "npz":
        return _NpzSource(p)
    return _CsvSource(p)


def _resolve_party(src: _Source, party: str | None) -> str:
    if party is not None and party not in SCHEMAS:
        raise InputError(f"unknown party {party!r}; expected 'alice' or 'bob'")
    names = set(src.names)
    if src.party is not None:
        file_party = src.party
        if file_party not in SCHEMAS:
            raise InputError("unknown party in file metadata; expected 'alice' or 'bob'",
                             file=src.path, field="party", value=file_party)
    else:
        alice = names & {"x", "a"}
        bob = names & {"y", "b", "herald"}
        if alice and bob:
            raise InputError("columns of both parties in one file (x/a are Alice's, y/b/herald "
                             "Bob's); each party has its own file", file=src.path,
                             field=sorted(bob)[0])
        file_party = "alice" if alice else "bob" if bob else (party or "")
        if not file_party:
            raise InputError("cannot tell whose records these are: no party in the file and "
                             "no setting/outcome column", file=src.path)
    other = "bob" if file_party == "alice" else "alice"
    own = {"alice": {"x", "a"}, "bob": {"y", "b", "herald"}}
    if src.party is not None and not names & own[file_party] and names & own[other]:
        raise InputError(f"the file's party says {file_party} but its columns are {other}'s",
                         file=src.path, field="party", value=file_party)
    if party is not None and party != file_party:
        raise InputError(f"wrong party: the file holds {file_party}'s records, {party}'s were "
                         "expected", file=src.path, field="party", value=file_party)
    schema = SCHEMAS[file_party]
    allowed = [c.name for c in schema]
    for name in src.names:
        if name not in allowed:
            raise InputError(f"unexpected column for {file_party} (allowed: "
                             f"{', '.join(allowed)})", file=src.path, field=name)
    for col in schema:
        if col.required and col.name not in names:
            raise InputError(f"missing required column for {file_party} (required: "
                             f"{', '.join(c.name for c in schema if c.required)})",
                             file=src.path, field=col.name)
    return file_party


def _prepare(src: _Source, party: str | None) -> str:
    """Header-level validation of an opened source; returns the party."""
    p = _resolve_party(src, party)
    for name, dtype in src.dtypes.items():
        if dtype.kind == "f":
            _float_column_error(src, name)
    return p


def _float_column_error(src: _Source, name: str) -> None:
    """A float column is refused; name its first NaN or non-integer value if there is one."""
    row = 0
    first: Any = None
    for cols in src.chunks(1 << 20):
        arr = cols[name]
        if first is None and arr.size:
            first = float(arr[0])
        nan = np.isnan(arr)
        if nan.any():
            i = int(np.argmax(nan))
            raise InputError("NaN in an integer column", file=src.path, field=name,
                             row=row + i, value=float(arr[i]))
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError("non-integer value in an integer column (the column is stored as "
                             f"{arr.dtype})", file=src.path, field=name, row=row + i,
                             value=float(arr[i]))
        row += arr.size
    raise InputError(f"wrong dtype: column stored as {src.dtypes[name]}, integer columns must be "
                     "stored as integers", file=src.path, field=name,
                     row=None if first is None else 0, value=first)


def _to_records(src: _Source, party: str, cols: dict[str, np.ndarray], first_row: int) -> Records:
    try:
        return Records(party, cols, src.metadata, source=src.path, first_row=first_row)
    except InputError as exc:
        raise _located(src, exc) from None


def _located(src: _Source, exc: InputError) -> InputError:
    if exc.row is None:
        return exc
    where = src.locate(exc.row)
    if not where:
        return exc
    return InputError(exc.message + where, file=exc.file, field=exc.field, row=exc.row,
                      value=exc.value)


# ------------------------------------------------------------------------------------------------
# public readers
# ------------------------------------------------------------------------------------------------
def read_records(path: PathLike, *, party: str | None = None) -> Records:
    """Read and validate a whole record file (HDF5, CSV or NPZ; detected from its content).

    Parameters
    ----------
    path
        The file.
    party
        ``"alice"`` or ``"bob"`` to insist on; ``None`` takes the party from the file's metadata,
        or else from its columns (``x``/``a`` are Alice's, ``y``/``b``/``herald`` Bob's).

    Raises
    ------
    InputError
        Naming the file, column, row and value: missing or extra columns, wrong dtypes, values out
        of range, duplicate or decreasing rounds, NaN or negative timestamps, an empty file,
        truncated or corrupt data, a wrong schema version, a wrong party.
    """
    src = _open_source(path)
    with contextlib.closing(src):
        p = _prepare(src, party)
        if src.fmt == "csv":
            parts = list(_iter_validated(src, p, 1 << 20))
            if not parts:
                raise _empty(src)
            return parts[0] if len(parts) == 1 else Records.concat(parts)
        if not src.nrows:
            raise _empty(src)
        return _to_records(src, p, src.read_all(), 0)


def iter_records(
    path: PathLike, *, chunk_rows: int = 1 << 20, party: str | None = None
) -> Iterator[Records]:
    """Read a record file in chunks of at most ``chunk_rows`` rows (bounded memory).

    Each chunk is validated like :func:`read_records` validates the whole file; the round order
    is also checked across chunk borders, and row numbers in errors count from the start of the
    file. The file is opened when iteration starts and closed when it ends.
    """
    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    src = _open_source(path)
    with contextlib.closing(src):
        p = _prepare(src, party)
        yield from _iter_validated(src, p, chunk_rows, empty_ok=False)


def _iter_validated(src: _Source, party: str, chunk_rows: int, *,
                    empty_ok: bool = True) -> Iterator[Records]:
    row = 0
    last: int | None = None
    for cols in src.chunks(chunk_rows):
        rec = _to_records(src, party, cols, row)
        if len(rec):
            first = int(rec["round"][0])
            if last is not None and first <= last:
                what = "duplicate" if first == last else "decreasing"
                raise _located(src, InputError(
                    f"{what} round number (rounds must strictly increase)", file=src.path,
                    field="round", row=row, value=first))
            last = int(rec["round"][-1])
        row += len(rec)
        yield rec
    if row == 0 and not empty_ok:
        raise _empty(src)


def _empty(src: _Source) -> InputError:
    what = "a header but no data rows" if src.fmt == "csv" else "no rows"
    return InputError(f"empty file: {what}", file=src.path)


class _Progress:
    """What the CLI needs to draw a progress bar over :func:`_iter_with_progress`."""

    def __init__(self, src: _Source) -> None:
        self.src = src

    @property
    def total(self) -> int:
        return self.src.progress_total()

    @property
    def done(self) -> int:
        return self.src.progress()


def _open_for_chunks(
    path: PathLike, *, chunk_rows: int = 1 << 20, party: str | None = None
) -> tuple[str, dict[str, Any], list[str], Iterator[Records], _Progress, _Source]:
    """(party, metadata, columns, chunk iterator, progress, source) for streaming conversion."""
    src = _open_source(path)
    try:
        p = _prepare(src, party)
    except BaseException:
        src.close()
        raise
    names = [c.name for c in SCHEMAS[p] if c.name in src.names]
    return p, src.metadata, names, _iter_validated(src, p, chunk_rows, empty_ok=False), \
        _Progress(src), src


# ------------------------------------------------------------------------------------------------
# writers
# ------------------------------------------------------------------------------------------------
class RecordWriter:
    """Streaming writer of one party's records; use through :func:`open_writer`.

    Nothing appears at the target path until the ``with`` block ends without an error; then the
    complete file is renamed into place (see :mod:`diqkd.fileio`).
    """

    def __init__(self, path: PathLike, party: str, *, metadata: Mapping[str, Any] | None = None,
                 columns: Sequence[str] | None = None, fmt: str | None = None) -> None:
        if party not in SCHEMAS:
            raise InputError(f"unknown party {party!r}; expected 'alice' or 'bob'")
        self.path = os.fspath(path)
        self.fmt = format_of(self.path, fmt)
        self.party = party
        self.metadata = dict(metadata or {})
        self._meta_json = _dump_metadata(self.metadata, self.path)
        self.names: list[str] | None = None
        if columns is not None:
            self.names = self._check_names(columns)
        self.rows = 0
        self._last: int | None = None
        self._cm: Any = None
        self._backend: Any = None

    def _check_names(self, columns: Sequence[str]) -> list[str]:
        schema = SCHEMAS[self.party]
        allowed = {c.name for c in schema}
        extra = [c for c in columns if c not in allowed]
        if extra:
            raise InputError(f"unexpected column for {self.party}", file=self.path,
                             field=extra[0])
        for col in schema:
            if col.required and col.name not in columns:
                raise InputError(f"missing required column for {self.party}", file=self.path,
                                 field=col.name)
        return [c.name for c in schema if c.name in columns]

    def __enter__(self) -> RecordWriter:
        self._cm = atomic_path(self.path)
        tmp = self._cm.__enter__()
        try:
            backend = {"hdf5": _H5Writer, "csv": _CsvWriter, "npz": _NpzWriter}[self.fmt]
            self._backend = backend(tmp, self)
        except BaseException as exc:
            self._cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def append(self, chunk: Records | Mapping[str, Any]) -> None:
        """Append rows (a :class:`Records` of this party, or a mapping of column arrays)."""
        if self._backend is None:
            raise RuntimeError("RecordWriter.append outside its 'with' block")
        if isinstance(chunk, Records):
            if chunk.party != self.party:
                raise InputError(f"cannot append {chunk.party}'s records to a file of "
                                 f"{self.party}'s", file=self.path, field="party")
            rec = chunk
        else:
            rec = Records(self.party, chunk, source=self.path, first_row=self.rows)
        names = [c.name for c in SCHEMAS[self.party] if c.name in rec.columns]
        if self.names is None:
            self.names = names
        elif names != self.names:
            raise InputError(f"chunk has columns {names}, the file has {self.names}",
                             file=self.path)
        if not len(rec):
            return
        first = int(rec["round"][0])
        if self._last is not None and first <= self._last:
            what = "duplicate" if first == self._last else "decreasing"
            raise InputError(f"{what} round number across appended chunks (rounds must "
                             "strictly increase)", file=self.path, field="round", row=self.rows,
                             value=first)
        self._backend.append({n: rec[n] for n in self.names})
        self._last = int(rec["round"][-1])
        self.rows += len(rec)

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        if et is None:
            try:
                if self.names is None:
                    self.names = [c.name for c in SCHEMAS[self.party] if c.required]
                self._backend.finish()
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._backend.abort()
                self._cm.__exit__(type(exc), exc, exc.__traceback__)
                raise
            return bool(self._cm.__exit__(None, None, None))
        with contextlib.suppress(Exception):
            self._backend.abort()
        return bool(self._cm.__exit__(et, ev, tb))


def open_writer(path: PathLike, party: str, *, metadata: Mapping[str, Any] | None = None,
                columns: Sequence[str] | None = None, fmt: str | None = None) -> RecordWriter:
    """A context manager writing ``party``'s records to ``path`` chunk by chunk.

    ``with open_writer("alice.h5", "alice", metadata={...}) as w: w.append(chunk)``. The format
    comes from the extension or ``fmt``; ``columns`` fixes the column set (default: the columns
    of the first chunk). All formats stream to disk (NPZ through per-column spool files).
    Rounds must strictly increase across appends. Atomic: on an error nothing is left at ``path``.
    """
    return RecordWriter(path, party, metadata=metadata, columns=columns, fmt=fmt)


def write_records(path: PathLike, records: Records, *, fmt: str | None = None) -> None:
    """Write ``records`` (with their metadata) to ``path`` atomically; format from the extension."""
    with open_writer(path, records.party, metadata=records.metadata,
                     columns=list(records.columns), fmt=fmt) as w:
        w.append(records)


class _H5Writer:
    def __init__(self, tmp: Path, w: RecordWriter) -> None:
        import h5py

        from diqkd import __version__

        self.w = w
        self.f = h5py.File(tmp, "w")
        self.f.attrs["format"] = _FORMAT_TAG
        self.f.attrs["schema_version"] = np.int64(SCHEMA_VERSION)
        self.f.attrs["party"] = w.party
        self.f.attrs["metadata"] = w._meta_json
        self.f.attrs["writer"] = f"diqkd {__version__}"
        self.ds: dict[str, Any] = {}
        self.buf: dict[str, list[np.ndarray]] = {}
        self.buffered = 0
        self.written = 0

    def _create(self, chunk_rows: int) -> None:
        # Small files get one chunk of their own size: a partly filled chunk would be stored
        # at full size by the scale-offset filter.
        names = self.w.names or []
        for col in SCHEMAS[self.w.party]:
            if col.name not in names:
                continue
            ds = self.f.create_dataset(col.name, shape=(0,), maxshape=(None,), dtype=col.dtype,
                                       chunks=(max(1, chunk_rows),), **HDF5_FILTERS)
            ds.attrs["unit"] = col.unit
            ds.attrs["description"] = col.doc
            if col.low is not None:
                ds.attrs["min"] = col.low
            if col.high is not None:
                ds.attrs["max"] = col.high
            self.ds[col.name] = ds

    def append(self, cols: dict[str, np.ndarray]) -> None:
        for n, a in cols.items():
            self.buf.setdefault(n, []).append(np.array(a, copy=True))
        self.buffered += len(cols["round"])
        if self.buffered >= HDF5_CHUNK_ROWS:
            self._flush(whole_chunks=True)

    def _flush(self, whole_chunks: bool) -> None:
        # Write whole chunks only (except at the end), so that no compressed chunk is ever
        # read back, modified and recompressed.
        n = self.buffered - (self.buffered % HDF5_CHUNK_ROWS if whole_chunks else 0)
        if not self.ds:
            self._create(HDF5_CHUNK_ROWS if whole_chunks else min(HDF5_CHUNK_ROWS, n))
        if n == 0:
            return
        for name, ds in self.ds.items():
            parts = self.buf[name]
            data = np.concatenate(parts) if len(parts) > 1 else parts[0]
            ds.resize((self.written + n,))
            ds[self.written:self.written + n] = data[:n]
            self.buf[name] = [data[n:]] if n < len(data) else []
        self.written += n
        self.buffered -= n

    def finish(self) -> None:
        self._flush(whole_chunks=False)
        self.f.close()

    def abort(self) -> None:
        self.f.close()


class _CsvWriter:
    def __init__(self, tmp: Path, w: RecordWriter) -> None:
        self.w = w
        self.fh = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.fh.write(f"# diqkd records (format {_FORMAT_TAG})\n")
        self.fh.write(f"# schema_version: {SCHEMA_VERSION}\n")
        self.fh.write(f"# party: {w.party}\n")
        self.fh.write(f"# metadata: {w._meta_json}\n")
        self.header = False

    def _header(self) -> None:
        if not self.header:
            self.fh.write(",".join(self.w.names or []) + "\n")
            self.header = True

    def append(self, cols: dict[str, np.ndarray]) -> None:
        self._header()
        names = self.w.names or []
        line = ",".join(["{}"] * len(names)) + "\n"
        n = len(cols["round"])
        step = 1 << 16
        for s in range(0, n, step):
            lists = [cols[c][s:s + step].tolist() for c in names]
            self.fh.write("".join(map(line.format, *lists)))

    def finish(self) -> None:
        self._header()
        self.fh.flush()
        self.fh.close()

    def abort(self) -> None:
        self.fh.close()


def _zip_entry(name: str) -> zipfile.ZipInfo:
    """A member with a fixed timestamp: the same records always give the same bytes."""
    info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    return info


class _NpzWriter:
    """Streams each column to a spool file next to the output, then assembles the archive.

    Memory stays bounded: the archive members are copied from the spool files in blocks. The
    spool files share the temp-file prefix of :mod:`diqkd.fileio` and are removed in any case.
    """

    _BLOCK = 16 << 20

    def __init__(self, tmp: Path, w: RecordWriter) -> None:
        self.w = w
        self.tmp = tmp
        self.spool: dict[str, Any] = {}
        self.rows = 0

    def _spool_path(self, name: str) -> Path:
        return self.tmp.with_name(f"{self.tmp.name}.{name}.spool")

    def append(self, cols: dict[str, np.ndarray]) -> None:
        dtypes = {c.name: c.dtype for c in SCHEMAS[self.w.party]}
        for n, a in cols.items():
            if n not in self.spool:
                self.spool[n] = open(self._spool_path(n), "wb")  # noqa: SIM115
            self.spool[n].write(np.ascontiguousarray(a, dtype=dtypes[n]).tobytes())
        self.rows += len(cols["round"])

    def finish(self) -> None:
        fmt = np.lib.format
        small = {
            "party": np.array(self.w.party),
            "schema_version": np.array(SCHEMA_VERSION, dtype=np.int64),
            "metadata": np.array(self.w._meta_json),
        }
        dtypes = {c.name: c.dtype for c in SCHEMAS[self.w.party]}
        for fh in self.spool.values():
            fh.close()
        try:
            with zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, arr in small.items():
                    with zf.open(_zip_entry(key), "w", force_zip64=True) as out:
                        fmt.write_array(out, arr, allow_pickle=False)
                for name in self.w.names or []:
                    header = {"descr": fmt.dtype_to_descr(dtypes[name]), "fortran_order": False,
                              "shape": (self.rows,)}
                    with zf.open(_zip_entry(name), "w", force_zip64=True) as out:
                        fmt.write_array_header_1_0(out, header)
                        if name in self.spool:
                            with open(self._spool_path(name), "rb") as src:
                                while block := src.read(self._BLOCK):
                                    out.write(block)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        for name, fh in self.spool.items():
            fh.close()
            with contextlib.suppress(OSError):
                self._spool_path(name).unlink()

    def abort(self) -> None:
        self._cleanup()
