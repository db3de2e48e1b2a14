"""Secret keys in memory and on disk.

On disk a key is two files in the output directory, both written atomically (temp file, fsync,
rename) with mode 0600:

* ``alice.key`` / ``bob.key``: the key bits as raw bytes, most significant bit first; when the
  length is not a multiple of 8 the last byte is padded with zero bits.
* ``alice.key.json`` / ``bob.key.json``: the sidecar ``{"format": "diqkd-key/1", "key_id",
  "role", "bits", "bytes", "sha256", "bit_order", "transcript_sha256"}``.

A :class:`Key` never shows its bits in ``repr``/``str`` (so that they never reach a log or an
exception message); only its length, id and digest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.errors import InputError
from diqkd.fileio import atomic_write_bytes

__all__ = ["Key", "KEY_FORMAT", "key_id_for", "write_key", "read_key", "key_paths"]

KEY_FORMAT = "diqkd-key/1"
KEY_MODE = 0o600


def key_id_for(transcript_sha256: str) -> str:
    """Public identifier of the key of a run: derived from the transcript digest (not the key)."""
    return hashlib.sha256(b"diqkd-key-id\x00" + transcript_sha256.encode()).hexdigest()[:32]


@dataclass(frozen=True, eq=False, repr=False)
class Key:
    """A secret key: ``bits`` (uint8 array of 0/1) with its public id.

    Compare keys with :meth:`same_as` (constant time over the packed bytes).
    """

    bits: np.ndarray
    key_id: str

    def __post_init__(self) -> None:
        b = np.ascontiguousarray(self.bits, dtype=np.uint8)
        object.__setattr__(self, "bits", b)

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @property
    def nbits(self) -> int:
        return len(self)

    def to_bytes(self) -> bytes:
        """Raw bytes, MSB first, zero padded."""
        return np.packbits(self.bits, bitorder="big").tobytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def same_as(self, other: Key) -> bool:
        import hmac

        return len(self) == len(other) and hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def sidecar(self, role: str, transcript_sha256: str | None = None) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "key_id": self.key_id,
            "role": role,
            "bits": self.nbits,
            "bytes": (self.nbits + 7) // 8,
            "sha256": self.sha256,
            "bit_order": "msb-first, last byte zero-padded",
            "transcript_sha256": transcript_sha256,
        }

    def __repr__(self) -> str:
        return f"Key(id={self.key_id}, bits={self.nbits}, sha256={self.sha256[:16]}...)"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pragma: no cover - guard against accidental pickling to logs
        raise TypeError("diqkd keys are not picklable; write them with diqkd.keys.write_key")


def key_paths(out_dir: str | os.PathLike[str], role: str) -> tuple[Path, Path]:
    """(key file, sidecar) paths of ``role`` in ``out_dir``."""
    d = Path(out_dir)
    return d / f"{role}.key", d / f"{role}.key.json"


def write_key(out_dir: str | os.PathLike[str], role: str, key: Key,
              transcript_sha256: str | None = None) -> tuple[Path, Path]:
    """Write ``role``'s key and sidecar atomically with mode 0600; returns the two paths."""
    kpath, spath = key_paths(out_dir, role)
    atomic_write_bytes(kpath, key.to_bytes(), KEY_MODE)
    side = json.dumps(key.sidecar(role, transcript_sha256), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(spath, side.encode(), KEY_MODE)
    return kpath, spath


def read_key(out_dir: str | os.PathLike[str], role: str) -> tuple[Key, dict[str, Any]]:
    """Read and check a key file against its sidecar (length and digest)."""
    kpath, spath = key_paths(out_dir, role)
    try:
        side = json.loads(spath.read_text())
    except FileNotFoundError:
        raise InputError("key sidecar not found", file=str(spath)) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError("key sidecar is not valid JSON", file=str(spath)) from None
    if not isinstance(side, dict) or side.get("format") != KEY_FORMAT:
        raise InputError(f"key sidecar format is not {KEY_FORMAT!r}", file=str(spath))
    try:
        raw = kpath.read_bytes()
    except FileNotFoundError:
        raise InputError("key file not found", file=str(kpath)) from None
    nbits = side.get("bits")
    if not isinstance(nbits, int) or nbits < 0 or len(raw) != (nbits + 7) // 8:
        raise InputError(f"key file has {len(raw)} bytes, the sidecar says {nbits!r} bits",
                         file=str(kpath))
    if hashlib.sha256(raw).hexdigest() != side.get("sha256"):
        raise InputError("key file digest does not match its sidecar", file=str(kpath))
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="big")[:nbits]
    return Key(bits, str(side.get("key_id"))), side
