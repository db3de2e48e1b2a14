"""Itemised information leakage of error correction, and efficiency helpers.

The total is what feeds the key-length formula. It always equals the sum of ``leak_bits`` of the
messages the reconciliation protocol sent (tests check this against the transcript).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numba import njit

__all__ = ["Leakage", "h2", "mean_entropy"]


_FEW_MIN_SIZE = 4096  # arrays at least this long try the few-distinct-values path
_FEW_MAX = 8  # at most this many distinct values (by bit pattern) for that path


def _h2_elementwise(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    return np.nan_to_num(h, nan=0.0)


@njit(cache=True, nogil=True)
def _distinct_kernel(u, limit, vals, idx):  # pragma: no cover - numba
    k = 0
    for i in range(u.shape[0]):
        x = u[i]
        j = 0
        while j < k and vals[j] != x:
            j += 1
        if j == k:
            if k == limit:
                return -1
            vals[k] = x
            k += 1
        idx[i] = j
    return k


def _distinct_bits(p: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct float64 values, index of each element's value) when ``p`` (1-d float64) has at
    most ``limit`` distinct bit patterns, else None. One linear pass, no sort: the pipeline's
    priors take two values (QBER on key rounds, 1 - omega on test rounds)."""
    vals = np.zeros(limit, dtype=np.uint64)
    idx = np.empty(p.shape[0], dtype=np.uint8)
    k = int(_distinct_kernel(p.view(np.uint64), limit, vals, idx))
    if k < 0:
        return None
    return vals[:k].view(np.float64), idx


def h2(p: float | np.ndarray) -> float | np.ndarray:
    """Binary entropy in bits (0 at p = 0 and p = 1).

    Elementwise; a long array with few distinct values (the pipeline's priors) is evaluated once
    per distinct value (same function, hence the same bits) and gathered.
    """
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim >= 1 and arr.size >= _FEW_MIN_SIZE:
        flat = np.ascontiguousarray(arr).reshape(-1)
        few = _distinct_bits(flat, _FEW_MAX)
        if few is not None:
            vals, idx = few
            return _h2_elementwise(vals)[idx].reshape(arr.shape)
    h = _h2_elementwise(arr)
    return float(h) if h.ndim == 0 else h


def mean_entropy(error_prob: np.ndarray) -> float:
    """Mean binary entropy of per-bit error probabilities (the Slepian-Wolf limit per bit)."""
    return float(np.mean(h2(np.minimum(np.asarray(error_prob, dtype=np.float64), 0.5))))


@dataclass(frozen=True)
class Leakage:
    """Bits disclosed about Alice's string, by cause.

    syndrome_bits
        Net syndrome leakage: for each frame ``m - p`` where ``p`` is the number of punctured
        positions filled with Alice's fresh secret random bits (see docs/reconciliation.md).
    revealed_bits
        Bits revealed in the clear: punctured pad bits revealed by blind rounds, and whole frames
        revealed as the fallback for frames that failed.
    tag_bits
        Verification hash tags.
    feedback_bits
        Bob's per-frame success/failure verdicts (1 bit per frame per verdict, a conservative
        bound on what the decoding outcome tells about the strings).
    """

    syndrome_bits: int = 0
    revealed_bits: int = 0
    tag_bits: int = 0
    feedback_bits: int = 0

    @property
    def total(self) -> int:
        return self.syndrome_bits + self.revealed_bits + self.tag_bits + self.feedback_bits

    def to_dict(self) -> dict[str, int]:
        d = asdict(self)
        d["total"] = self.total
        return d
