"""Error correction (information reconciliation) for diqkd.

One-way syndrome reconciliation with LDPC codes, rate adaptation (puncturing/shortening, blind
incremental reveal), layered belief-propagation decoding and polynomial-hash verification.
See docs/reconciliation.md.

Public API::

    reconcile(alice_bits, bob_bits, error_prob, config, *, seed, transcript, progress)
        -> ReconciliationResult
    ReconciliationConfig, ReconciliationResult, AliceReconciler, BobReconciler, Leakage
    decode(code, syndromes, llr, ...) -> DecodeResult          (the BP decoder)
    LdpcCode                                                   (parity-check matrix type)
"""

from .code import LdpcCode
from .decoder import DecodeResult, decode, llr_from_error_prob
from .leakage import Leakage, h2
from .protocol import (
    AliceReconciler,
    BobReconciler,
    ReconciliationConfig,
    ReconciliationResult,
    reconcile,
)

__all__ = [
    "AliceReconciler",
    "BobReconciler",
    "DecodeResult",
    "LdpcCode",
    "Leakage",
    "ReconciliationConfig",
    "ReconciliationResult",
    "decode",
    "h2",
    "llr_from_error_prob",
    "reconcile",
]
