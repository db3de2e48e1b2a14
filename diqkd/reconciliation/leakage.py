"""Itemised information leakage of error correction, and efficiency helpers.

The total is what feeds the key-length formula. It always equals the sum of ``leak_bits`` of the
messages the reconciliation protocol sent (tests check this against the transcript).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Leakage", "h2", "mean_entropy"]


def h2(p: float | np.ndarray) -> float | np.ndarray:
    """Binary entropy in bits (0 at p = 0 and p = 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    h = np.nan_to_num(h, nan=0.0)
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
