"""The public classical transcript between Alice and Bob.

Every public message of the protocol (test-round announcement, syndromes, revealed bits,
verification tags, verdicts, the privacy-amplification seed) is a :class:`Message`. The transcript
is an append-only list with a hash chain over the messages, so that its digest commits to their
order and content; the report records that digest. The information leaked about Alice's string is
*computed from the transcript*, as the sum of the ``leak_bits`` that each message declares, never
estimated separately.

:class:`Channel` connects the two roles: each role keeps its own transcript of what it sent and
received, every message is authenticated on receipt, and the two transcripts are compared before
a key is released (see :mod:`diqkd.pipeline`).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from diqkd.errors import ProtocolAbort

__all__ = ["Message", "Transcript", "Channel", "Tamper", "other_role"]

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
        ``"ec-verdict"``, ``"ec-final-tag"``, ``"ec-final"``, ``"pa-seed"``.
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
        """SHA-256 of (sender, kind, leak_bits, meta as canonical JSON, payload).

        ``meta`` is covered because receivers act on it (e.g. the frame index of a syndrome).
        """
        h = hashlib.sha256()
        meta = json.dumps(self.meta, sort_keys=True, separators=(",", ":"), default=str)
        h.update(f"{self.sender}\x00{self.kind}\x00{self.leak_bits}\x00{meta}\x00".encode())
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


#: An adversary on the wire: gets each message in flight, returns what is delivered (possibly
#: nothing, a modified message, or several). Used by tests to check that tampering is detected.
Tamper = Callable[[Message], Iterable[Message]]


def other_role(role: str) -> str:
    return "bob" if role == "alice" else "alice"


class Channel:
    """The public, authenticated channel between the two roles, with one transcript per role.

    ``send`` records the message in the sender's transcript, attaches an authentication tag
    (HMAC-SHA256 under a per-channel secret key, over the sender's sequence number and the
    message digest: a stand-in for the Wegman-Carter MAC with pre-shared key that QKD assumes)
    and delivers it, through the optional ``tamper`` hook that models an active adversary, to the
    receiver's inbox. ``recv`` takes the next message, checks its tag against the expected
    sequence number (so a flipped, dropped, duplicated, reordered or injected message fails),
    records it in the receiver's transcript and checks its kind. :meth:`confirm` compares the
    two transcripts at the end (the key-confirmation step). Every failure is a
    :class:`~diqkd.errors.ProtocolAbort` with code ``"transcript"``.

    ``authenticate=False`` turns the per-message check off (tests of the later defences).
    """

    def __init__(self, tamper: Tamper | None = None, *, authenticate: bool = True) -> None:
        import secrets

        self.views: dict[str, Transcript] = {"alice": Transcript(), "bob": Transcript()}
        self._inbox: dict[str, deque[tuple[Message, bytes]]] = {"alice": deque(),
                                                                 "bob": deque()}
        self.tamper = tamper
        self.authenticate = authenticate
        self._auth_key = secrets.token_bytes(32)
        self._sent = {"alice": 0, "bob": 0}
        self._received = {"alice": 0, "bob": 0}

    @property
    def transcript(self) -> Transcript:
        """Alice's view (equal to Bob's once :meth:`confirm` has passed)."""
        return self.views["alice"]

    def _tag(self, sender: str, seq: int, message: Message) -> bytes:
        import hmac

        data = f"{sender}\x00{seq}\x00".encode() + bytes.fromhex(message.digest)
        return hmac.new(self._auth_key, data, hashlib.sha256).digest()

    def send(self, message: Message) -> Message:
        self.views[message.sender].send(message)
        tag = self._tag(message.sender, self._sent[message.sender], message)
        self._sent[message.sender] += 1
        delivered = [message] if self.tamper is None else list(self.tamper(message))
        self._inbox[other_role(message.sender)].extend((m, tag) for m in delivered)
        return message

    def recv(self, role: str, kind: str | None) -> Message:
        """Next message for ``role``; ``kind`` None accepts any kind (the caller dispatches)."""
        import hmac

        inbox = self._inbox[role]
        if not inbox:
            raise ProtocolAbort(f"{role} expected a {kind or 'further'!r} message and none "
                                "arrived (dropped message?)", code="transcript")
        message, tag = inbox.popleft()
        self.views[role].send(message)
        peer = other_role(role)
        if self.authenticate:
            want = self._tag(peer, self._received[role], message)
            if message.sender != peer or not hmac.compare_digest(tag, want):
                raise ProtocolAbort(f"authentication of the {message.kind!r} message to {role} "
                                    "failed (altered, dropped, duplicated, reordered or injected "
                                    "message)", code="transcript")
        self._received[role] += 1
        if (kind is not None and message.kind != kind) or message.sender == role:
            raise ProtocolAbort(f"{role} expected a {kind!r} message from "
                                f"{peer}, received {message.kind!r} from "
                                f"{message.sender} (reordered or injected message?)",
                                code="transcript")
        return message

    def pending(self, role: str) -> int:
        return len(self._inbox[role])

    def confirm(self) -> str:
        """Check that both roles saw the same transcript; return its digest."""
        extra = {r: len(q) for r, q in self._inbox.items() if q}
        if extra:
            raise ProtocolAbort(f"undelivered or unexpected messages left on the channel: {extra}"
                                " (duplicated or injected message?)", code="transcript")
        a, b = self.views["alice"], self.views["bob"]
        if len(a) != len(b) or a.digest != b.digest:
            raise ProtocolAbort("Alice's and Bob's transcripts differ (a public message was "
                                "altered in transit)", code="transcript")
        return a.digest
