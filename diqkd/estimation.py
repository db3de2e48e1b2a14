"""CHSH statistics from aligned records: counts per (x, y, a, b), S, winning fraction, QBER.

One vectorised pass per chunk: the packed index ``x*12 + y*4 + a*2 + b`` is counted with
``np.bincount`` (24 bins), so chunked accumulation of a whole run is a sum of small arrays.
The intervals here are for display; the security proof does its own statistics
(:mod:`diqkd.security`).

Conventions (diqkd.records.model): test rounds have x, y in {0, 1}, the CHSH game is won iff
a XOR b == x*y; key rounds are (x, y) = (0, 2) and their QBER is the fraction with a != b
(b is Bob's herald-corrected outcome). Other (x, y) pairs, i.e. (1, 2), are counted but belong to
neither class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from diqkd.errors import ConfigError, InputError

__all__ = ["Counts", "binomial_interval", "count_rounds"]

_SHAPE = (2, 3, 2, 2)
_NBINS = 24
_RANGE_MSG = "setting or outcome out of range (x in {0,1}, y in {0,1,2}, a, b in {0,1})"


_BLOCK = 1 << 16  # rounds per block: the temporaries stay in L2 cache


def count_rounds(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Counts per (x, y, a, b) as int64 array of shape (2, 3, 2, 2).

    The packed index x*12 + y*4 + a*2 + b is built block by block in preallocated uint8 buffers
    and counted with ``np.bincount`` (24 bins), so each input byte is read from memory once.
    Values out of range (x > 1, y > 2, a > 1, b > 1) raise :class:`InputError` (they would
    otherwise alias into another cell).
    """
    cols = [np.asarray(v) for v in (x, y, a, b)]
    n = cols[0].shape[0]
    if any(c.ndim != 1 or c.shape[0] != n for c in cols):
        raise InputError("x, y, a, b must be one-dimensional and of the same length")
    cols = [c if c.dtype == np.uint8 else _as_u8(c) for c in cols]
    x8, y8, a8, b8 = cols
    out = np.zeros(_NBINS, dtype=np.int64)
    m = min(_BLOCK, n)
    idx = np.empty(m, dtype=np.uint8)
    tmp = np.empty(m, dtype=np.uint8)
    for s in range(0, n, _BLOCK):
        e = min(s + _BLOCK, n)
        k = e - s
        i, t = idx[:k], tmp[:k]
        xs, ys, as_, bs = x8[s:e], y8[s:e], a8[s:e], b8[s:e]
        np.bitwise_or(xs, as_, out=t)
        t |= bs
        if t.max() > 1 or ys.max() > 2:
            raise InputError(_RANGE_MSG)
        np.multiply(xs, 12, out=i)
        np.multiply(ys, 4, out=t)
        i += t
        np.multiply(as_, 2, out=t)
        i += t
        i += bs
        out += np.bincount(i, minlength=_NBINS)
    return out.reshape(_SHAPE)


def _as_u8(c: np.ndarray) -> np.ndarray:
    if c.size and (c.min() < 0 or c.max() > 255):
        raise InputError(_RANGE_MSG)
    return c.astype(np.uint8)


def binomial_interval(k: int, n: int, confidence: float = 0.95,
                      method: str = "clopper-pearson") -> tuple[float, float]:
    """Two-sided interval for a binomial proportion k/n.

    ``"clopper-pearson"``: exact (beta quantiles; Clopper & Pearson, Biometrika 26, 404 (1934)).
    ``"wilson"``: Wilson score interval (Wilson, JASA 22, 209 (1927)). (nan, nan) when n = 0.
    """
    if not (0.0 < confidence < 1.0):
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence!r}")
    if n <= 0:
        return (math.nan, math.nan)
    alpha = 1.0 - confidence
    if method == "clopper-pearson":
        lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k == n else float(stats.beta.isf(alpha / 2, k + 1, n - k))
        return (lo, hi)
    if method == "wilson":
        z = float(stats.norm.isf(alpha / 2))
        p = k / n
        den = 1.0 + z * z / n
        c = (p + z * z / (2 * n)) / den
        h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        return (max(0.0, c - h), min(1.0, c + h))
    raise ConfigError(f"unknown interval method {method!r}; expected clopper-pearson or wilson")


@dataclass
class Counts:
    """Counts of rounds per (x, y, a, b): ``counts[x, y, a, b]`` (int64, shape (2, 3, 2, 2))."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(_SHAPE, dtype=np.int64))

    def __post_init__(self) -> None:
        c = np.asarray(self.counts)
        if c.shape != _SHAPE:
            raise InputError(f"counts must have shape {_SHAPE}, got {c.shape}")
        if c.dtype.kind not in "iu" or (c < 0).any():
            raise InputError("counts must be non-negative integers")
        self.counts = c.astype(np.int64)

    # -- construction / accumulation -------------------------------------------------------
    @classmethod
    def from_arrays(cls, x: Any, y: Any, a: Any, b: Any) -> Counts:
        return cls(count_rounds(x, y, a, b))

    @classmethod
    def from_joint(cls, joint: Any) -> Counts:
        """Counts of a :class:`diqkd.records.model.Joint` (b already herald-corrected)."""
        return cls.from_arrays(joint.x, joint.y, joint.a, joint.b)

    def update(self, joint_chunk: Any) -> Counts:
        """Add the counts of one more chunk (in place); returns self for chaining."""
        self.counts += count_rounds(joint_chunk.x, joint_chunk.y, joint_chunk.a, joint_chunk.b)
        return self

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.counts + other.counts)

    # -- statistics ------------------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def test_rounds(self) -> int:
        """Rounds with x, y in {0, 1}."""
        return int(self.counts[:, :2].sum())

    @property
    def key_rounds(self) -> int:
        """Rounds with (x, y) = (0, 2)."""
        return int(self.counts[0, 2].sum())

    @property
    def wins(self) -> int:
        """Won CHSH games: a XOR b == x*y over test rounds."""
        c = self.counts
        w = 0
        for x in (0, 1):
            for y in (0, 1):
                if x * y == 0:
                    w += int(c[x, y, 0, 0] + c[x, y, 1, 1])
                else:
                    w += int(c[x, y, 0, 1] + c[x, y, 1, 0])
        return w

    @property
    def losses(self) -> int:
        """Lost CHSH games (what the acceptance test of :mod:`diqkd.security` counts)."""
        return self.test_rounds - self.wins

    @property
    def win_fraction(self) -> float:
        """Won test games / test games (nan without test rounds)."""
        t = self.test_rounds
        return self.wins / t if t else math.nan

    def correlator(self, x: int, y: int) -> float:
        """E_xy = P(a = b) - P(a != b) over rounds with settings (x, y) (nan if none)."""
        c = self.counts[x, y]
        tot = int(c.sum())
        if tot == 0:
            return math.nan
        return float(c[0, 0] + c[1, 1] - c[0, 1] - c[1, 0]) / tot

    @property
    def S(self) -> float:
        """CHSH value S = E00 + E01 + E10 - E11 (each correlator from its own setting pair)."""
        return (self.correlator(0, 0) + self.correlator(0, 1) + self.correlator(1, 0)
                - self.correlator(1, 1))

    @property
    def key_errors(self) -> int:
        c = self.counts[0, 2]
        return int(c[0, 1] + c[1, 0])

    @property
    def qber(self) -> float:
        """Fraction of key rounds with a != b (nan without key rounds)."""
        k = self.key_rounds
        return self.key_errors / k if k else math.nan

    def intervals(self, confidence: float = 0.95, method: str = "clopper-pearson") -> dict:
        """Display intervals: win fraction and QBER (binomial), S (union bound over the four
        correlators, each from a binomial interval on P(a = b) at confidence 1 - alpha/4)."""
        out = {
            "confidence": confidence,
            "method": method,
            "win_fraction": binomial_interval(self.wins, self.test_rounds, confidence, method),
            "qber": binomial_interval(self.key_errors, self.key_rounds, confidence, method),
        }
        alpha = 1.0 - confidence
        lo = hi = 0.0
        for x, y, sign in ((0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, -1)):
            c = self.counts[x, y]
            tot = int(c.sum())
            agree = int(c[0, 0] + c[1, 1])
            pl, ph = binomial_interval(agree, tot, 1.0 - alpha / 4.0, method)
            el, eh = 2 * pl - 1, 2 * ph - 1
            if sign > 0:
                lo, hi = lo + el, hi + eh
            else:
                lo, hi = lo - eh, hi - el
        out["S"] = (lo, hi)
        return out

    def to_dict(self, confidence: float = 0.95) -> dict:
        """JSON-ready summary for the report."""

        def f(v: float) -> float | None:
            return None if math.isnan(v) else v

        iv = self.intervals(confidence)
        return {
            "counts_xyab": self.counts.tolist(),
            "rounds": self.total,
            "test_rounds": self.test_rounds,
            "key_rounds": self.key_rounds,
            "wins": self.wins,
            "losses": self.losses,
            "win_fraction": f(self.win_fraction),
            "S": f(self.S),
            "qber": f(self.qber),
            "intervals": {k: ([f(x) for x in v] if isinstance(v, tuple) else v)
                          for k, v in iv.items()},
        }
