"""MacKay's alist format for sparse parity-check matrices (read and write).

Layout (all 1-based indices, whitespace separated)::

    n m
    max_col_degree max_row_degree
    degree of each of the n columns
    degree of each of the m rows
    n lines: the row indices of each column
    m lines: the column indices of each row

Here columns are the n variable nodes (code bits) and rows the m checks, as in MacKay's files.
Some tools zero-pad each list to the maximum degree: written with ``padded=True``, and both forms
are accepted on read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_text
from .code import LdpcCode

__all__ = ["read_alist", "write_alist", "format_alist", "parse_alist"]


def format_alist(code: LdpcCode, *, padded: bool = False) -> str:
    """The alist text of `code` (lists zero-padded to the maximum degree if `padded`)."""
    vd, cd = code.var_degrees, code.check_degrees
    max_v, max_c = (int(vd.max()) if code.n else 0), (int(cd.max()) if code.m else 0)
    lines = [f"{code.n} {code.m}", f"{max_v} {max_c}", " ".join(map(str, vd.tolist())),
             " ".join(map(str, cd.tolist()))]
    for v in range(code.n):
        idx = (code.var_idx[code.var_ptr[v]:code.var_ptr[v + 1]] + 1).tolist()
        lines.append(" ".join(map(str, idx + [0] * ((max_v - len(idx)) if padded else 0))))
    for c in range(code.m):
        idx = (code.check_idx[code.check_ptr[c]:code.check_ptr[c + 1]] + 1).tolist()
        lines.append(" ".join(map(str, idx + [0] * ((max_c - len(idx)) if padded else 0))))
    return "\n".join(lines) + "\n"


def write_alist(code: LdpcCode, path: str | os.PathLike, *, padded: bool = False) -> None:
    """Write `code` as an alist file (atomically: temp file then rename)."""
    atomic_write_text(path, format_alist(code, padded=padded))


def parse_alist(text: str, *, name: str = "alist", meta: dict | None = None) -> LdpcCode:
    """Parse alist text; the row lists must agree with the column lists."""
    tok = np.array(text.split(), dtype=np.int64)
    if tok.size < 4:
        raise ValueError("alist: truncated header")
    n, m, max_v, max_c = (int(x) for x in tok[:4])
    pos = 4
    vd = tok[pos:pos + n]
    pos += n
    cd = tok[pos:pos + m]
    pos += m
    if vd.size != n or cd.size != m or (n and vd.max() > max_v) or (m and cd.max() > max_c):
        raise ValueError("alist: bad degree lists")
    rest = tok[pos:]
    padded = rest.size == n * max_v + m * max_c
    if not padded and rest.size != int(vd.sum() + cd.sum()):
        raise ValueError("alist: wrong number of index entries")
    checks, variables = [], []
    off = 0
    for v in range(n):
        width = max_v if padded else int(vd[v])
        row = rest[off:off + width]
        off += width
        idx = row[row > 0][: vd[v]]
        if idx.size != vd[v]:
            raise ValueError(f"alist: column {v + 1} has wrong number of entries")
        checks.append(idx - 1)
        variables.append(np.full(idx.size, v, dtype=np.int64))
    c_arr = np.concatenate(checks) if checks else np.zeros(0, np.int64)
    v_arr = np.concatenate(variables) if variables else np.zeros(0, np.int64)
    code = LdpcCode.from_edges(n, m, c_arr, v_arr, name=name, meta=meta)
    # cross-check the row section
    for c in range(m):
        width = max_c if padded else int(cd[c])
        row = rest[off:off + width]
        off += width
        idx = np.sort(row[row > 0] - 1)
        got = code.check_idx[code.check_ptr[c]:code.check_ptr[c + 1]]
        if idx.size != cd[c] or not np.array_equal(idx, got):
            raise ValueError(f"alist: row {c + 1} disagrees with the column lists")
    return code


def read_alist(path: str | os.PathLike, *, name: str | None = None,
               meta: dict | None = None) -> LdpcCode:
    """Read an alist file into an :class:`LdpcCode`."""
    path = Path(path)
    return parse_alist(path.read_text(encoding="ascii"), name=name or path.stem, meta=meta)
