"""The public classical transcript between Alice and Bob.

Every public message of the protocol (test-round announcement, syndromes, revealed bits,
verification tags, verdicts, the privacy-amplification seed) is a :class:`Message`. The transcript
is an append-only list with a hash chain over the messages, so that its digest commits to their
order and content; the report records that digest. The information leaked about Alice's string is
*computed from the transcript*, as the sum of the ``leak_bits`` that each message declares, never
estimated separately.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Message", "Transcript"]

Sender = Literal["alice", "bob"]


@dataclass(frozen=True)
class Message:
    """One public message.

    Parameters
    ----------
    sender
        ``"alice"`` or ``"bob"``.
    kind
        Message type, e.g. ``"test-rounds"``, ``"ec-syndrome"``, ``"ec-reveal"``, ``"ec-tag"``,
        ``"ec-verdict"``, ``"pa-seed"``.
    payload
        The exact bytes sent. Public by definition, so never key material.
    leak_bits
        Bits of information this message discloses about Alice's raw string (syndrome bits,
        revealed bits, tag bits); 0 for messages independent of it (seeds, settings, verdicts).
    meta
        Small JSON-serialisable description (frame index, code digest, ...), reported as is.
    """

    sender: Sender
    kind: str
    payload: bytes
    leak_bits: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sender not in ("alice", "bob"):
            raise ValueError(f"sender must be 'alice' or 'bob', not {self.sender!r}")
        if self.leak_bits < 0:
            raise ValueError("leak_bits must be >= 0")

    @property
    def digest(self) -> str:
        """SHA-256 of (sender, kind, leak_bits, payload)."""
        h = hashlib.sha256()
        h.update(f"{self.sender}\x00{self.kind}\x00{self.leak_bits}\x00".encode())
        h.update(self.payload)
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "kind": self.kind,
            "bytes": len(self.payload),
            "leak_bits": self.leak_bits,
            "sha256": self.digest,
            **({"meta": self.meta} if self.meta else {}),
        }


class Transcript:
    """Append-only list of messages with a running hash chain."""

    def __init__(self) -> None:
        self._messages: list[Message] = []
        self._chain = hashlib.sha256(b"diqkd-transcript-v1").hexdigest()

    def send(self, message: Message) -> Message:
        """Append ``message`` (the act of sending it over the public channel) and return it."""
        self._messages.append(message)
        self._chain = hashlib.sha256((self._chain + message.digest).encode()).hexdigest()
        return message

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(self._messages)

    @property
    def digest(self) -> str:
        """Hash-chain digest over every message so far, in order."""
        return self._chain

    def leak_bits(self, kinds: tuple[str, ...] | None = None) -> int:
        """Total leaked bits, optionally restricted to message kinds."""
        return sum(m.leak_bits for m in self._messages if kinds is None or m.kind in kinds)

    def leak_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self._messages:
            out[m.kind] = out.get(m.kind, 0) + m.leak_bits
        return out

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for m in self._messages:
            k = by_kind.setdefault(m.kind, {"messages": 0, "bytes": 0, "leak_bits": 0})
            k["messages"] += 1
            k["bytes"] += len(m.payload)
            k["leak_bits"] += m.leak_bits
        return {"messages": len(self._messages), "sha256_chain": self.digest, "by_kind": by_kind}
