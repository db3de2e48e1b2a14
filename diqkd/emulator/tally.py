"""Running CHSH/QBER statistics of emulated records (for tests, the CLI summary and the benchmark).

This is a convenience for checking the emulator against :func:`expected`; the protocol's own
estimation lives in ``diqkd.estimation``.
"""

from __future__ import annotations

import math

import numpy as np

from diqkd.records.model import Records, align

__all__ = ["Tally"]


class Tally:
    """Counts of (setting pair, a XOR b) after the herald correction, accumulated chunk by chunk."""

    def __init__(self) -> None:
        self.counts = np.zeros((6, 2), dtype=np.int64)   # [3 x + y, a ^ b]

    def add(self, alice: Records, bob: Records) -> Tally:
        j = align(alice, bob)
        s = 3 * j.x.astype(np.intp) + j.y
        err = (j.a ^ j.b).astype(np.intp)
        self.counts += np.bincount(2 * s + err, minlength=12).reshape(6, 2)
        return self

    @property
    def rounds(self) -> int:
        return int(self.counts.sum())

    def correlator(self, x: int, y: int) -> tuple[float, float]:
        """E(x, y) and its standard error."""
        same, diff = self.counts[3 * x + y]
        n = same + diff
        if n == 0:
            return math.nan, math.nan
        e = (same - diff) / n
        return float(e), math.sqrt(max(1.0 - e * e, 1.0 / n) / n)

    @property
    def S(self) -> float:
        return sum(sg * self.correlator(x, y)[0] for (x, y), sg in _CHSH)

    @property
    def S_err(self) -> float:
        return math.sqrt(sum(self.correlator(x, y)[1] ** 2 for (x, y), _ in _CHSH))

    @property
    def qber(self) -> float:
        same, diff = self.counts[2]
        return float(diff / (same + diff)) if same + diff else math.nan

    @property
    def qber_err(self) -> float:
        n = int(self.counts[2].sum())
        q = self.qber
        return math.sqrt(max(q * (1 - q), 1.0 / max(n, 1)) / n) if n else math.nan

    def to_dict(self) -> dict[str, float | int]:
        return {"rounds": self.rounds, "test_rounds": int(self.counts[[0, 1, 3, 4]].sum()),
                "S": self.S, "S_err": self.S_err, "qber": self.qber, "qber_err": self.qber_err}


_CHSH = (((0, 0), 1), ((0, 1), 1), ((1, 0), 1), ((1, 1), -1))
