"""The sparse parity-check code type shared by code construction, storage and decoding.

A binary LDPC code is held as its m x n parity-check matrix H in two compressed index forms:
by check (row) and by variable (column). Both are kept because the decoder walks checks (layered
schedule) and construction/statistics walk variables. Every code has a SHA-256 digest of its
canonical edge list, which the audit report records so that anyone can tell which code was used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

__all__ = ["LdpcCode"]


@njit(cache=True, nogil=True)
def _syndrome_csr(check_ptr, check_idx, bits, out):  # pragma: no cover - numba
    """out[c] = (sum of bits over the row c of H) & 1, i.e. the XOR of the rows' low bits."""
    for c in range(out.shape[0]):
        acc = np.uint8(0)
        for j in range(check_ptr[c], check_ptr[c + 1]):
            acc ^= bits[check_idx[j]]
        out[c] = acc & np.uint8(1)


@dataclass(frozen=True, eq=False)
class LdpcCode:
    """A binary parity-check matrix H (m x n) in CSR (by check) and CSC (by variable) form.

    Parameters
    ----------
    n, m
        Number of variable nodes (code length) and of check nodes (syndrome length).
    check_ptr, check_idx
        Row pointers (length m + 1, int64) and the sorted variable indices of each check (int32).
    var_ptr, var_idx
        Column pointers (length n + 1, int64) and the sorted check indices of each variable.
    name
        Human-readable identifier (family, rate, length, seed).
    meta
        Construction details (degree distribution, seed, girth, ...), JSON-serialisable.
    """

    n: int
    m: int
    check_ptr: np.ndarray
    check_idx: np.ndarray
    var_ptr: np.ndarray
    var_idx: np.ndarray
    name: str = "unnamed"
    meta: dict[str, Any] = field(default_factory=dict)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_edges(
        cls, n: int, m: int, checks: np.ndarray, variables: np.ndarray, *, name: str = "unnamed",
        meta: dict[str, Any] | None = None,
    ) -> LdpcCode:
        """Build from parallel arrays of edge endpoints (duplicate edges are refused)."""
        checks = np.asarray(checks, dtype=np.int64)
        variables = np.asarray(variables, dtype=np.int64)
        if checks.shape != variables.shape or checks.ndim != 1:
            raise ValueError("checks and variables must be 1-d arrays of equal length")
        if checks.size and (checks.min() < 0 or checks.max() >= m):
            raise ValueError("check index out of range")
        if variables.size and (variables.min() < 0 or variables.max() >= n):
            raise ValueError("variable index out of range")
        key = checks * n + variables
        order = np.argsort(key, kind="stable")
        key = key[order]
        if key.size > 1 and np.any(key[1:] == key[:-1]):
            raise ValueError("duplicate edge in parity-check matrix")
        c_sorted, v_sorted = checks[order], variables[order]
        check_ptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(np.bincount(c_sorted, minlength=m), out=check_ptr[1:])
        order_v = np.lexsort((c_sorted, v_sorted))
        var_ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(v_sorted, minlength=n), out=var_ptr[1:])
        return cls(
            n=int(n), m=int(m),
            check_ptr=check_ptr, check_idx=v_sorted.astype(np.int32),
            var_ptr=var_ptr, var_idx=c_sorted[order_v].astype(np.int32),
            name=name, meta=dict(meta or {}),
        )

    @classmethod
    def from_dense(cls, H: np.ndarray, *, name: str = "unnamed",
                   meta: dict[str, Any] | None = None) -> LdpcCode:
        """Build from a dense 0/1 matrix (small codes, tests, pyldpc's constructions)."""
        H = np.asarray(H)
        checks, variables = np.nonzero(H % 2)
        return cls.from_edges(H.shape[1], H.shape[0], checks, variables, name=name, meta=meta)

    # -- properties ---------------------------------------------------------------------------
    @property
    def edges(self) -> int:
        return int(self.check_idx.shape[0])

    @property
    def rate(self) -> float:
        """Design rate 1 - m/n (the syndrome discloses m bits per n)."""
        return 1.0 - self.m / self.n

    @property
    def check_degrees(self) -> np.ndarray:
        return np.diff(self.check_ptr)

    @property
    def var_degrees(self) -> np.ndarray:
        return np.diff(self.var_ptr)

    @property
    def digest(self) -> str:
        """SHA-256 over (n, m, check_ptr, check_idx): identifies the code in reports."""
        h = hashlib.sha256()
        h.update(f"diqkd-ldpc-v1:{self.n}:{self.m}:".encode())
        h.update(np.ascontiguousarray(self.check_ptr, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.check_idx, dtype="<i4").tobytes())
        return h.hexdigest()

    def syndrome(self, bits: np.ndarray) -> np.ndarray:
        """H @ bits mod 2 for a 0/1 uint8 vector of length n (vectorised, no dense matrix)."""
        bits = np.asarray(bits, dtype=np.uint8)
        if bits.shape != (self.n,):
            raise ValueError(f"expected {self.n} bits, got shape {bits.shape}")
        # parity per row: XOR of the rows' entries (the low bit of their sum), one CSR pass
        out = np.empty(self.m, dtype=np.uint8)
        _syndrome_csr(self.check_ptr, self.check_idx, bits, out)
        return out

    def girth(self, limit: int = 1 << 30) -> int:
        """Exact girth of the Tanner graph (`limit` if no shorter cycle); BFS, n <= ~2e4.

        Long library codes record their construction girth in ``meta["girth"]`` instead.
        """
        from .peg import girth as _girth  # numba kernel, imported on first use

        return _girth(self, limit)

    def to_dense(self) -> np.ndarray:
        """Dense m x n uint8 matrix (small codes only)."""
        H = np.zeros((self.m, self.n), dtype=np.uint8)
        rows = np.repeat(np.arange(self.m), self.check_degrees)
        H[rows, self.check_idx] = 1
        return H
