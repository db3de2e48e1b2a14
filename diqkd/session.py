"""Streaming ingestion for lab software: feed record chunks as a run goes on, finish at the end.

::

    s = Session(protocol, checkpoint_dir="run-42.ckpt", seed=1234)
    for a_chunk, b_chunk in chunks:        # Records of Alice and Bob, in round order
        s.feed(a_chunk, b_chunk)
    result = s.finish()                    # the same Result as diqkd.run on all the rows
    result.write("out/")

Chunks of the two parties need not cover the same rounds: rows are aligned up to the last round
both parties have reached, the rest waits for the next chunk (rows only one party has are an
:class:`~diqkd.errors.InputError`, or dropped and counted with ``drop_unmatched=True``).

Checkpoint (``checkpoint_dir``, mode 0700, files 0600 since they hold raw outcomes): every
``feed`` writes the newly aligned rows as a segment file and the rows still waiting as a pending
file, then commits ``state.json`` (atomically, last). A process killed at any point resumes from
the last committed state: ``Session(protocol, checkpoint_dir=...)`` reloads it, and rows whose
round number is not beyond the last round already fed (per party) are skipped, so the lab
software can simply re-feed from the start of its current file. The master seed (and Alice's
secret noise seed) are stored in the state, so a resumed run gives the same keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.errors import ConfigError, InputError
from diqkd.fileio import TMP_PREFIX, atomic_write_bytes
from diqkd.pipeline import Progress, Result, Seeds, load_protocol, process
from diqkd.protocol import Protocol
from diqkd.records import Joint, Records, align

__all__ = ["Session", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "diqkd-session/1"
_JOINT_COLS = ("round", "x", "y", "a", "b")
_PARTY_COLS = {"alice": ("round", "x", "a"), "bob": ("round", "y", "b", "herald")}


def _empty(party: str) -> dict[str, np.ndarray]:
    dt = {"round": np.uint64}
    return {c: np.zeros(0, dtype=dt.get(c, np.uint8)) for c in _PARTY_COLS[party]}


def _cols(rec: Records, party: str) -> dict[str, np.ndarray]:
    out = {}
    for c in _PARTY_COLS[party]:
        if c in rec:
            out[c] = np.asarray(rec[c])
        elif c == "herald":
            out[c] = np.zeros(len(rec), dtype=np.uint8)
    return out


def _npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **dict(arrays))  # type: ignore[arg-type]
    return buf.getvalue()


class Session:
    """Incremental run: :meth:`feed` chunks of both parties' records, then :meth:`finish`.

    Parameters
    ----------
    protocol
        :class:`~diqkd.protocol.Protocol`, TOML path or mapping.
    checkpoint_dir
        Directory for the checkpoint (created 0700); None keeps everything in memory. An
        existing checkpoint is resumed; its protocol and seed must match the given ones.
    seed
        Master seed (None: from the OS CSPRNG, stored in the checkpoint).
    drop_unmatched
        Drop rows only one party has instead of raising :class:`~diqkd.errors.InputError`.
    noise_seed
        Alice's secret noisy-preprocessing seed (None: OS CSPRNG, stored in the checkpoint).
    """

    def __init__(
        self,
        protocol: Protocol | str | os.PathLike[str] | Mapping[str, Any],
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        drop_unmatched: bool = False,
        noise_seed: int | None = None,
    ) -> None:
        self.protocol = load_protocol(protocol)
        self.drop_unmatched = bool(drop_unmatched)
        self.dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self._segments: list[dict[str, np.ndarray]] = []
        self._seg_files: list[str] = []
        self._pending = {"alice": _empty("alice"), "bob": _empty("bob")}
        self._last = {"alice": -1, "bob": -1}
        self._dropped = {"alice": 0, "bob": 0}
        self._skipped = {"alice": 0, "bob": 0}
        self._rows = 0
        self._commit = 0
        self.resumed = False
        if self.dir is not None and (self.dir / "state.json").exists():
            self._load(seed, noise_seed)
            return
        self.seeds = Seeds.make(seed)
        if self.protocol.noisy_preprocessing > 0:
            self.noise_seed: int | None = (secrets.randbits(128) if noise_seed is None
                                           else int(noise_seed))
        else:
            self.noise_seed = None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._save()

    # -- public API -------------------------------------------------------------------------
    @property
    def rounds(self) -> int:
        """Aligned rounds so far (excluding rows still waiting for the other party)."""
        return self._rows

    @property
    def last_round(self) -> dict[str, int]:
        """Last round number fed per party (-1: none); re-fed rows up to it are skipped."""
        return dict(self._last)

    def feed(self, alice_chunk: Records, bob_chunk: Records) -> dict[str, int]:
        """Add a chunk of each party's records (either may be empty); returns counts.

        Rows at or below the party's :attr:`last_round` are skipped (already fed, e.g. before a
        restart). The checkpoint is committed before this returns. If it raises (bad chunk),
        the session is left as it was before the call.
        """
        snapshot = (dict(self._pending), dict(self._last), dict(self._skipped),
                    dict(self._dropped), len(self._segments), len(self._seg_files), self._rows)
        try:
            return self._feed(alice_chunk, bob_chunk)
        except BaseException:
            (self._pending, self._last, self._skipped, self._dropped, nseg, nfiles,
             self._rows) = snapshot
            del self._segments[nseg:]
            del self._seg_files[nfiles:]
            raise

    def _feed(self, alice_chunk: Records, bob_chunk: Records) -> dict[str, int]:
        new = {}
        for party, chunk in (("alice", alice_chunk), ("bob", bob_chunk)):
            if not isinstance(chunk, Records) or chunk.party != party:
                raise InputError(f"feed expects {party}'s Records as the "
                                 f"{'first' if party == 'alice' else 'second'} argument")
            cols = _cols(chunk, party)
            keep = cols["round"] > np.uint64(self._last[party]) if self._last[party] >= 0 \
                else np.ones(len(chunk), dtype=bool)
            skipped = int(len(chunk) - np.count_nonzero(keep))
            self._skipped[party] += skipped
            new[party] = {k: v[keep] for k, v in cols.items()}
            pend = self._pending[party]
            merged = {k: np.concatenate([pend[k], new[party][k]]) for k in pend}
            # order inside the chunk is checked by Records; across chunks here
            r = merged["round"]
            if r.size > 1 and np.any(r[1:] <= r[:-1]):
                i = int(np.argmax(r[1:] <= r[:-1])) + 1
                raise InputError("round numbers must increase across chunks", file=chunk.source,
                                 field="round", value=int(r[i]))
            self._pending[party] = merged
            if r.size:
                self._last[party] = max(self._last[party], int(r[-1]))
        a, b = self._pending["alice"], self._pending["bob"]
        added = 0
        if a["round"].size and b["round"].size:
            horizon = min(a["round"][-1], b["round"][-1])
            added = self._align_upto(horizon)
        self._save()
        return {"aligned": added, "skipped_alice": self._skipped["alice"],
                "skipped_bob": self._skipped["bob"], "rounds": self._rows,
                "pending_alice": int(self._pending["alice"]["round"].size),
                "pending_bob": int(self._pending["bob"]["round"].size)}

    def statistics(self) -> dict[str, Any]:
        """Statistics of the rounds aligned so far (counts, S, win fraction, QBER): for
        monitoring a run as it goes; the protocol's own Bell test happens in :meth:`finish`."""
        from diqkd.pipeline import statistics_of

        if not self._segments:
            return {"rounds": 0}
        return statistics_of(self._joint(), self.protocol.gamma)

    def _joint(self) -> Joint:
        cols = {c: np.concatenate([s[c] for s in self._segments]) for c in _JOINT_COLS}
        return Joint(round=cols["round"], x=cols["x"], y=cols["y"], a=cols["a"], b=cols["b"],
                     dropped_alice=self._dropped["alice"], dropped_bob=self._dropped["bob"])

    def finish(self, *, progress: Progress | None = None) -> Result:
        """Align the remaining rows and run the protocol on every aligned round."""
        a, b = self._pending["alice"], self._pending["bob"]
        if a["round"].size or b["round"].size:
            self._align_upto(None)
            self._save()
        if not self._segments:
            raise InputError("the session has no aligned rounds to process")
        joint = self._joint()
        h = hashlib.sha256(b"diqkd-joint")
        for c in _JOINT_COLS:
            h.update(np.ascontiguousarray(getattr(joint, c)).tobytes())
        inputs = {"mode": "session", "joint_sha256": h.hexdigest(), "rows": len(joint),
                  "drop_unmatched": self.drop_unmatched, "dropped_alice": self._dropped["alice"],
                  "dropped_bob": self._dropped["bob"]}
        return process(joint, self.protocol, seed=self.seeds, noise_seed=self.noise_seed,
                       progress=progress, inputs=inputs)

    # -- internals --------------------------------------------------------------------------
    def _align_upto(self, horizon: Any) -> int:
        take: dict[str, dict[str, np.ndarray]] = {}
        for party in ("alice", "bob"):
            pend = self._pending[party]
            k = pend["round"].size if horizon is None else int(
                np.searchsorted(pend["round"], horizon, side="right"))
            take[party] = {c: v[:k] for c, v in pend.items()}
            self._pending[party] = {c: v[k:] for c, v in pend.items()}
        ta, tb = take["alice"], take["bob"]
        if not ta["round"].size and not tb["round"].size:
            return 0
        ra = Records("alice", ta, check_order=False)
        rb = Records("bob", tb, check_order=False)
        if not len(ra) or not len(rb):
            if not self.drop_unmatched:
                who = "Alice" if len(ra) else "Bob"
                rows = ta["round"] if len(ra) else tb["round"]
                raise InputError(f"{rows.size} round(s) only in {who}'s records (first: "
                                 f"{int(rows[0])}); use drop_unmatched=True to drop them",
                                 field="round")
            self._dropped["alice"] += len(ra)
            self._dropped["bob"] += len(rb)
            return 0
        j = align(ra, rb, drop_unmatched=self.drop_unmatched)
        self._dropped["alice"] += j.dropped_alice
        self._dropped["bob"] += j.dropped_bob
        seg = {"round": j.round, "x": j.x, "y": j.y, "a": j.a, "b": j.b}
        if len(j):
            self._segments.append(seg)
            if self.dir is not None:
                name = f"seg-{len(self._seg_files):06d}-{self._commit + 1}.npz"
                atomic_write_bytes(self.dir / name, _npz_bytes(seg), 0o600)
                self._seg_files.append(name)
        self._rows += len(j)
        return len(j)

    def _save(self) -> None:
        if self.dir is None:
            return
        self._commit += 1
        pend_name = f"pending-{self._commit}.npz"
        arrays = {f"{p}_{c}": v for p in ("alice", "bob") for c, v in self._pending[p].items()}
        atomic_write_bytes(self.dir / pend_name, _npz_bytes(arrays), 0o600)
        state = {
            "format": CHECKPOINT_FORMAT,
            "commit": self._commit,
            "protocol_sha256": self.protocol.sha256,
            "protocol": self.protocol.to_dict(),
            "seed": {"master": str(self.seeds.master), "source": self.seeds.source},
            "noise_seed": None if self.noise_seed is None else str(self.noise_seed),
            "drop_unmatched": self.drop_unmatched,
            "segments": list(self._seg_files),
            "pending": pend_name,
            "last_round": self._last,
            "dropped": self._dropped,
            "skipped": self._skipped,
            "rows": self._rows,
        }
        atomic_write_bytes(self.dir / "state.json",
                           (json.dumps(state, indent=2) + "\n").encode(), 0o600)
        self._gc(set(self._seg_files) | {pend_name, "state.json"})

    def _gc(self, keep: set[str]) -> None:
        assert self.dir is not None
        for f in self.dir.iterdir():
            if f.name not in keep and (f.name.startswith(("seg-", "pending-", TMP_PREFIX))):
                with contextlib.suppress(OSError):
                    f.unlink()

    def _load(self, seed: int | None, noise_seed: int | None) -> None:
        assert self.dir is not None
        path = self.dir / "state.json"
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"checkpoint state is unreadable: {exc}", file=str(path)) from None
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"not a {CHECKPOINT_FORMAT} checkpoint", file=str(path))
        if state.get("protocol_sha256") != self.protocol.sha256:
            raise ConfigError(f"checkpoint {str(self.dir)!r} belongs to another protocol "
                              "(protocol digest differs); use a new checkpoint directory")
        master = int(state["seed"]["master"])
        if seed is not None and int(seed) != master:
            raise ConfigError(f"checkpoint {str(self.dir)!r} was started with another seed")
        if bool(state.get("drop_unmatched")) != self.drop_unmatched:
            raise ConfigError("checkpoint was started with another drop_unmatched setting")
        self.seeds = Seeds(master, str(state["seed"]["source"]))
        ns = state.get("noise_seed")
        self.noise_seed = None if ns is None else int(ns)
        if noise_seed is not None and self.noise_seed is not None and int(noise_seed) != \
                self.noise_seed:
            raise ConfigError("checkpoint was started with another noise seed")
        self._commit = int(state["commit"])
        self._seg_files = list(state["segments"])
        try:
            for name in self._seg_files:
                with np.load(self.dir / name) as z:
                    self._segments.append({c: z[c] for c in _JOINT_COLS})
            with np.load(self.dir / state["pending"]) as z:
                for p in ("alice", "bob"):
                    self._pending[p] = {c: z[f"{p}_{c}"] for c in _PARTY_COLS[p]}
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"checkpoint file missing or corrupt: {exc}",
                             file=str(self.dir)) from None
        self._last = {k: int(v) for k, v in state["last_round"].items()}
        self._dropped = {k: int(v) for k, v in state["dropped"].items()}
        self._skipped = {k: int(v) for k, v in state["skipped"].items()}
        self._rows = int(state["rows"])
        self.resumed = True
        self._gc(set(self._seg_files) | {state["pending"], "state.json"})
