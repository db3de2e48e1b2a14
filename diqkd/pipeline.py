"""The end-to-end DI-QKD pipeline: records in, certified keys and an audit report out.

Stages (each timed, each a function of its inputs, the protocol and a named seed)::

    align -> announce -> preprocess -> reconcile -> bell-test -> key-length -> amplify -> confirm

Alice and Bob are two roles that share nothing but a public :class:`~diqkd.transcript.Channel`;
every public message (round-type announcement, Alice's test settings, syndromes and tags, the
Bell-test verdict, the privacy-amplification seed) goes through it and into both roles'
transcripts. The leaked information is *computed from the transcript*. Before a key is released
the two transcripts are compared (the authenticated-channel step) and the two keys' digests too;
any difference is an abort with no key.

* ``announce``: Bob announces which rounds were test rounds (his setting y != 2) and a digest of the
  round numbers; Alice checks them against her own settings, then announces her test-round
  settings x. No leakage (settings are independent of the outcomes).
* ``preprocess``: with ``noisy_preprocessing = p > 0``, Alice flips each key-round bit with
  probability p, from a *secret* seed (never in the report; only its SHA-256 commitment is).
* ``reconcile``: Alice's whole n-bit string (key and test rounds) is reconciled. Bob's guess is
  b on key rounds (prior error Q + p - 2pQ, Q = ``expected.qber``) and b XOR (x AND y) on test
  rounds (prior error 1 - omega, omega from ``expected.S``). Failed verification is an abort.
* ``bell-test``: Bob counts won CHSH games on the test rounds with Alice's *reconciled* bits and
  announces the count; below the threshold is an abort.
* ``key-length``: :func:`diqkd.security.finite_key_length` from n, gamma, the threshold and the
  leakage read off the transcript. Shorter than ``min_key_bits``: abort.
* ``amplify``: Alice draws the Toeplitz seed (public, sent), both hash their n-bit strings.
* ``confirm``: transcripts equal, key digests equal; else abort.

Seeds: one master seed (given, or drawn from the OS CSPRNG and recorded) and named streams
derived from it with ``numpy.random.SeedSequence(master, spawn_key=(i,))`` (see :data:`STREAMS`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diqkd import security
from diqkd.errors import ConfigError, InputError, ProtocolAbort
from diqkd.keys import Key, key_id_for
from diqkd.protocol import Protocol
from diqkd.records import Joint, Records, align
from diqkd.transcript import Channel, Message, Tamper

__all__ = [
    "STAGES",
    "STREAMS",
    "Progress",
    "Result",
    "Seeds",
    "file_digest",
    "load_protocol",
    "max_losses",
    "process",
    "published_statistics_leak",
    "run",
]

#: Stages in order (``read`` and ``write`` are timed by the callers that do I/O).
STAGES = ("read", "align", "statistics", "announce", "preprocess", "reconcile", "bell-test",
          "key-length", "amplify", "confirm")

#: Named seed streams: SeedSequence(master, spawn_key=(index,)).
STREAMS = {"ec": 1, "pa": 2, "emulator": 3}

SEED_DERIVATION = "numpy.random.SeedSequence(master, spawn_key=(index,)).generate_state(2, uint32)"


# ------------------------------------------------------------------------------------------------
# seeds
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Seeds:
    """The master seed of a run and the named streams derived from it (all public)."""

    master: int
    source: str  # "given" or "os-csprng"

    @classmethod
    def make(cls, seed: int | Seeds | None) -> Seeds:
        if isinstance(seed, Seeds):
            return seed
        if seed is None:
            return cls(secrets.randbits(128), "os-csprng")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        return cls(int(seed), "given")

    def child(self, name: str) -> int:
        """The 64-bit seed of stream ``name``."""
        ss = np.random.SeedSequence(self.master, spawn_key=(STREAMS[name],))
        lo, hi = (int(v) for v in ss.generate_state(2, np.uint32))
        return lo | (hi << 32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "master": self.master,
            "master_source": self.source,
            "derivation": SEED_DERIVATION,
            "streams": {name: {"index": i, "seed": self.child(name)}
                        for name, i in STREAMS.items()},
        }


def _noise_commitment(noise_seed: int) -> str:
    return hashlib.sha256(b"diqkd-noise-seed\x00" + str(noise_seed).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# progress
# ------------------------------------------------------------------------------------------------
class Progress:
    """Receives progress events; the CLI prints them on stderr. The default does nothing."""

    def stage_start(self, stage: str) -> None:  # pragma: no cover - interface
        pass

    def stage_end(self, stage: str, seconds: float, info: str = "") -> None:  # pragma: no cover
        pass

    def update(self, stage: str, done: float, total: float) -> None:  # pragma: no cover
        pass


class _Timer:
    def __init__(self, progress: Progress | None) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress or Progress()
        self.current: str | None = None
        self._t0 = 0.0

    def start(self, stage: str) -> None:
        self.current = stage
        self._t0 = time.perf_counter()
        self.progress.stage_start(stage)

    def end(self, info: str = "") -> None:
        assert self.current is not None
        dt = time.perf_counter() - self._t0
        self.timings[self.current] = self.timings.get(self.current, 0.0) + dt
        self.progress.stage_end(self.current, dt, info)
        self.current = None


# ------------------------------------------------------------------------------------------------
# result
# ------------------------------------------------------------------------------------------------
@dataclass(repr=False)
class Result:
    """Outcome of a run: both keys (None on abort) and the audit report (a JSON-ready dict).

    ``noise_seed`` is Alice's *secret* noisy-preprocessing seed (None when p = 0); it is written
    only to Alice's private file ``alice.secret.json`` and needed to replay the run in an audit.
    """

    key_alice: Key | None
    key_bob: Key | None
    report: dict[str, Any]
    noise_seed: int | None = field(default=None)

    @property
    def verdict(self) -> str:
        return str(self.report["verdict"])

    @property
    def ok(self) -> bool:
        return self.verdict == "key"

    @property
    def key_bits(self) -> int:
        return 0 if self.key_alice is None else self.key_alice.nbits

    @property
    def abort(self) -> dict[str, Any] | None:
        return self.report.get("abort")

    def raise_for_abort(self) -> None:
        """Raise :class:`~diqkd.errors.ProtocolAbort` if the run ended without a key."""
        if not self.ok:
            ab = self.abort or {}
            raise ProtocolAbort(str(ab.get("reason", "aborted")), code=str(ab.get("code")))

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write keys (if any) and ``report.json`` into ``out_dir`` (see :mod:`diqkd.report`)."""
        from diqkd.report import write_outputs

        return write_outputs(out_dir, self)

    def __repr__(self) -> str:
        return f"Result(verdict={self.verdict!r}, key_bits={self.key_bits})"


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def file_digest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """SHA-256 and size of a file (streamed)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
            size += len(chunk)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": size}


def load_protocol(protocol: Protocol | str | os.PathLike[str] | Mapping[str, Any]) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, Mapping):
        return Protocol.from_dict(protocol)
    if isinstance(protocol, str | os.PathLike):
        return Protocol.from_toml(os.fspath(protocol))
    raise ConfigError(f"protocol must be a Protocol, a TOML path or a mapping, not "
                      f"{type(protocol).__name__}")


def _load_records(obj: Records | str | os.PathLike[str], party: str) -> tuple[Records, dict | None]:
    if isinstance(obj, Records):
        if obj.party != party:
            raise InputError(f"expected {party}'s records, got {obj.party}'s", file=obj.source)
        return obj, None
    if isinstance(obj, str | os.PathLike):
        from diqkd.records.formats import read_records

        digest = file_digest(obj)
        return read_records(obj, party=party), digest
    raise InputError(f"{party}'s records must be Records or a file path, not {type(obj).__name__}")


def _records_digest(rec: Records) -> str:
    h = hashlib.sha256(f"diqkd-records\x00{rec.party}".encode())
    for name in sorted(rec.columns):
        arr = np.ascontiguousarray(rec.columns[name])
        h.update(f"\x00{name}\x00{arr.dtype.str}\x00".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def run(
    alice: Records | str | os.PathLike[str],
    bob: Records | str | os.PathLike[str],
    protocol: Protocol | str | os.PathLike[str] | Mapping[str, Any],
    seed: int | Seeds | None = None,
    *,
    drop_unmatched: bool = False,
    noise_seed: int | None = None,
    progress: Progress | None = None,
    tamper: Tamper | None = None,
    authenticate: bool = True,
    context: Mapping[str, Any] | None = None,
) -> Result:
    """Run the whole protocol on Alice's and Bob's records.

    Parameters
    ----------
    alice, bob
        :class:`~diqkd.records.Records` or paths of record files (HDF5, CSV, NPZ).
    protocol
        A :class:`~diqkd.protocol.Protocol`, a TOML path, or a protocol mapping.
    seed
        Master seed (public; recorded). None: drawn from the OS CSPRNG (and recorded).
    drop_unmatched
        Drop rounds only one party has (counted in the report) instead of refusing them.
    noise_seed
        Alice's secret noisy-preprocessing seed (None: OS CSPRNG); only used when p > 0.
    progress
        A :class:`Progress` receiving per-stage events.
    tamper, authenticate
        Adversary hook on the public channel, and whether messages are authenticated on
        receipt (tests of the defences): see :class:`~diqkd.transcript.Channel`.
    context
        Extra JSON data recorded under ``report["context"]`` (e.g. the emulator settings).

    Returns a :class:`Result`; an abort is a Result with ``verdict == "abort"`` (and no keys), not
    an exception. Bad inputs raise :class:`~diqkd.errors.InputError`/``ConfigError``.
    """
    proto = load_protocol(protocol)
    timer = _Timer(progress)
    timer.start("read")
    arec, adig = _load_records(alice, "alice")
    brec, bdig = _load_records(bob, "bob")
    inputs = {
        "alice": {**(adig or {"path": None, "sha256": None, "bytes": None}),
                  "records_sha256": _records_digest(arec), "rows": len(arec)},
        "bob": {**(bdig or {"path": None, "sha256": None, "bytes": None}),
                "records_sha256": _records_digest(brec), "rows": len(brec)},
        "drop_unmatched": bool(drop_unmatched),
    }
    timer.end(f"{len(arec):,} + {len(brec):,} rows")
    timer.start("align")
    joint = align(arec, brec, drop_unmatched=drop_unmatched)
    inputs["dropped_alice"] = int(joint.dropped_alice)
    inputs["dropped_bob"] = int(joint.dropped_bob)
    timer.end(f"{len(joint):,} rounds")
    return process(joint, proto, seed=seed, noise_seed=noise_seed, tamper=tamper,
                   authenticate=authenticate, inputs=inputs, context=context, _timer=timer)


# ------------------------------------------------------------------------------------------------
# the protocol on aligned rounds
# ------------------------------------------------------------------------------------------------
def _check_settings(joint: Joint) -> None:
    x, y = joint.x, joint.y
    bad = (y == 2) & (x != 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError("key round with Alice's setting x = 1 (Bob y = 2 requires x = 0; the "
                         "round type must be shared)", field="x", row=i,
                         value=f"round {int(joint.round[i])}: x=1, y=2")


#: Largest deviation (in standard deviations) of the test-round count from gamma n that is
#: accepted: the proof assumes each round is a test round with probability gamma.
TEST_FRACTION_SIGMAS = 6.0


def _check_test_fraction(joint: Joint, gamma: float) -> None:
    n = len(joint)
    tests = int(np.count_nonzero(joint.y != 2))
    sd = math.sqrt(n * gamma * (1.0 - gamma))
    z = (tests - gamma * n) / sd if sd > 0 else 0.0
    if abs(z) > TEST_FRACTION_SIGMAS:
        raise InputError(
            f"the records have {tests} test rounds of {n} ({tests / n:.4%}), but the protocol's "
            f"gamma = {gamma} expects {gamma * n:.0f} +- {sd:.0f} ({z:+.1f} standard deviations):"
            " the records were not taken with this protocol's test probability", field="y")


def published_statistics_leak(n: int) -> int:
    """Bits charged for publishing the statistics of n rounds: ceil(24 log2(n + 1)).

    The report's counts per (x, y, a, b) (24 cells summing to n) and the number of key-round
    errors after preprocessing take at most (n + 1)^24 values together.
    """
    return int(math.ceil(24 * math.log2(n + 1)))


def _pack(bits: np.ndarray) -> bytes:
    return np.packbits(bits.astype(np.uint8, copy=False), bitorder="big").tobytes()


def _unpack(payload: bytes, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=n, bitorder="big")


def _rounds_digest(rounds: np.ndarray) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(rounds, dtype="<u8").tobytes()).digest()


def statistics_of(joint: Joint, gamma: float) -> dict[str, Any]:
    """Every statistic of the aligned records (Alice's raw outcomes, Bob's herald-corrected ones):
    counts per (x, y, a, b), S, win fraction, QBER, display intervals
    (:class:`diqkd.estimation.Counts`)."""
    from diqkd.estimation import Counts

    est = Counts.from_joint(joint)
    c = np.asarray(est.counts)
    d = _jsonable(est.to_dict())
    d.pop("counts_xyab", None)
    n = int(est.total)
    out: dict[str, Any] = {
        "rounds": n,
        "gamma": gamma,
        "test_fraction": est.test_rounds / n if n else 0.0,
        "counts": {f"x{x}y{y}a{a}b{b}": int(c[x, y, a, b])
                   for x in range(2) for y in range(3) for a in range(2) for b in range(2)},
        "correlators": {f"E{x}{y}": _jsonable(est.correlator(x, y))
                        for x in range(2) for y in range(2)},
        "qber_errors": int(est.key_errors),
        **d,
    }
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


class _Abort(Exception):
    def __init__(self, stage: str, code: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.code, self.reason = stage, code, reason


def _threshold(proto: Protocol, n: int) -> dict[str, Any]:
    if proto.omega_threshold is not None:
        return {"omega": proto.omega_threshold, "source": "protocol"}
    t = security.threshold_for_completeness(n, proto.gamma, proto.expected_omega,
                                            proto.eps.eps_complete)
    return {"omega": float(t.omega_threshold), "source": "derived",
            "expected_omega": proto.expected_omega, "eps_complete": proto.eps.eps_complete,
            "honest_abort_probability": float(t.abort_probability),
            "expected_losses": float(t.expected_losses)}


def max_losses(n: int, gamma: float, omega_threshold: float) -> int:
    """Largest number of lost test games that passes the Bell test.

    The acceptance event of the finite-size proof (:func:`diqkd.security.max_losses`): the number
    of lost test games L satisfies L <= floor(gamma n (1 - omega_threshold)).
    """
    return int(security.max_losses(n, gamma, omega_threshold))


def _reconcile(channel: Channel, alice_bits: np.ndarray, bob_guess: np.ndarray,
               error_prob: np.ndarray, config: Any, seed: int,
               progress: Callable[[int, int], None] | None) -> Any:
    """Error correction between the two roles, every message through the channel.

    Drives :class:`~diqkd.reconciliation.AliceReconciler` and
    :class:`~diqkd.reconciliation.BobReconciler` exactly like
    :func:`diqkd.reconciliation.reconcile` (same seed split, so the same result), except that each
    message crosses the :class:`~diqkd.transcript.Channel` and the receiver acts on what arrives.
    A message the receiver cannot parse or does not expect is an abort, never a crash.
    """
    from diqkd.reconciliation import AliceReconciler, BobReconciler

    ss = np.random.SeedSequence(int(seed))
    s_alice, s_bob = (int(s.generate_state(1, np.uint64)[0]) for s in ss.spawn(2))
    roles: dict[str, Any] = {
        "alice": AliceReconciler(alice_bits, config, seed=s_alice),
        "bob": BobReconciler(bob_guess, error_prob, config, seed=s_bob),
    }
    roles["bob"].progress = progress
    queue = list(roles["bob"].start())
    while queue:
        msg = queue.pop(0)
        channel.send(msg)
        receiver = "bob" if msg.sender == "alice" else "alice"
        while channel.pending(receiver):
            got = channel.recv(receiver, None)
            try:
                queue.extend(roles[receiver].receive(got))
            except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
                raise _Abort("reconcile", "transcript",
                             f"{receiver} could not process the {got.kind!r} message "
                             f"({type(exc).__name__}; altered message?)") from None
    if not (roles["alice"].done and roles["bob"].done):
        raise _Abort("reconcile", "transcript",
                     "error correction stopped before both parties finished (dropped message?)")
    res = roles["bob"].result()
    alice_view = roles["alice"].verified
    if alice_view is None or not np.array_equal(alice_view, res.verified):
        raise _Abort("reconcile", "transcript",
                     "Alice's and Bob's views of the verified frames differ")
    return res


def process(
    joint: Joint,
    protocol: Protocol,
    *,
    seed: int | Seeds | None = None,
    noise_seed: int | None = None,
    tamper: Tamper | None = None,
    authenticate: bool = True,
    progress: Progress | None = None,
    inputs: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    _timer: _Timer | None = None,
) -> Result:
    """Run the protocol on aligned rounds (see the module docstring). Returns a :class:`Result`."""
    from diqkd import __version__
    from diqkd.report import build_report

    proto = protocol
    timer = _timer or _Timer(progress)
    seeds = Seeds.make(seed)
    p = proto.noisy_preprocessing
    if p > 0 and noise_seed is None:
        noise_seed = secrets.randbits(128)
    n = len(joint)
    state: dict[str, Any] = {
        "seeds": seeds, "noise_seed": noise_seed if p > 0 else None, "inputs": dict(inputs or {}),
        "context": dict(context or {}), "software_version": __version__,
    }
    channel = Channel(tamper, authenticate=authenticate)
    state["channel"] = channel
    key_a: Key | None = None
    key_b: Key | None = None
    try:
        if n == 0:
            raise InputError("no aligned rounds to process")
        _check_settings(joint)
        _check_test_fraction(joint, proto.gamma)
        timer.start("statistics")
        state["statistics"] = statistics_of(joint, proto.gamma)
        timer.end(f"S = {state['statistics'].get('S', float('nan')):.4f}")

        # -- announce -------------------------------------------------------------------------
        timer.start("announce")
        # Bob: which rounds were test rounds (his y != 2), and which rounds he holds.
        t_bob = joint.y != 2
        # (one process holds both roles' round lists, which are the same array after align:
        # the digest each role would compute is computed once)
        rounds_digest = _rounds_digest(joint.round)
        channel.send(Message("bob", "test-rounds", rounds_digest + _pack(t_bob),
                             meta={"rounds": n}))
        msg = channel.recv("alice", "test-rounds")
        if msg.payload[:32] != rounds_digest or len(msg.payload) != 32 + (n + 7) // 8:
            raise _Abort("announce", "transcript", "Bob's round list differs from Alice's")
        t_alice = _unpack(msg.payload[32:], n).astype(bool)
        if np.any(~t_alice & (joint.x != 0)):
            raise _Abort("announce", "transcript", "announced key round where Alice used x = 1")
        x_test = joint.x[t_alice]
        channel.send(Message("alice", "test-settings", _pack(x_test),
                             meta={"test_rounds": int(t_alice.sum())}))
        msg = channel.recv("bob", "test-settings")
        n_test_bob = int(t_bob.sum())
        if len(msg.payload) != (n_test_bob + 7) // 8:
            raise _Abort("announce", "transcript", "Alice's test settings have the wrong length")
        x_bob = np.zeros(n, dtype=np.uint8)
        x_bob[t_bob] = _unpack(msg.payload, n_test_bob)
        timer.end(f"{n_test_bob:,} test rounds of {n:,}")

        # -- preprocess (Alice, secret) ------------------------------------------------------
        timer.start("preprocess")
        a_str = joint.a.astype(np.uint8, copy=True)
        if p > 0:
            rng = np.random.default_rng(noise_seed)
            a_str ^= ((rng.random(n) < p) & ~t_alice).astype(np.uint8)
        timer.end(f"p = {p}")
        state["preprocess"] = {"p": p, "noise_seed_commitment":
                               _noise_commitment(noise_seed)
                               if p > 0 and noise_seed is not None else None}

        # -- reconcile ------------------------------------------------------------------------
        timer.start("reconcile")
        test_b = t_bob
        bob_guess = joint.b ^ (x_bob & joint.y.astype(np.uint8) & test_b.astype(np.uint8))
        q = proto.expected_qber
        q_key = q + p - 2 * p * q
        err = np.where(test_b, 1.0 - proto.expected_omega, q_key)
        config = proto.reconciliation_config()
        rec = _reconcile(channel, a_str, bob_guess.astype(np.uint8), err, config,
                         seeds.child("ec"),
                         lambda done, total: timer.progress.update("reconcile", done, total))
        state["reconciliation"] = rec
        leak = channel.transcript.leak_bits()
        timer.end(f"leak {leak:,} bits")
        if not bool(getattr(rec, "all_verified", False)):
            raise _Abort("reconcile", "ec-verification",
                         "error correction failed verification (some frames did not decode to "
                         "Alice's string)")
        a_hat = np.asarray(rec.bob_corrected, dtype=np.uint8)

        # -- bell test (Bob) -----------------------------------------------------------------
        timer.start("bell-test")
        won = (a_hat ^ joint.b) == (x_bob & joint.y.astype(np.uint8))
        wins = int(np.count_nonzero(won & test_b))
        losses = n_test_bob - wins
        thr = _threshold(proto, n)
        allowed = max_losses(n, proto.gamma, thr["omega"])
        passed = losses <= allowed
        key_err = int(np.count_nonzero((a_hat ^ joint.b).astype(bool) & ~test_b))
        state["bell_test"] = {
            "view": "bob, reconciled string",
            "wins": wins, "losses": losses, "test_rounds": n_test_bob, "rounds": n,
            "win_fraction": wins / n_test_bob if n_test_bob else 0.0,
            "omega_threshold": thr["omega"], "threshold_source": thr["source"],
            "max_losses": allowed,
            "acceptance": "losses <= floor(gamma * n * (1 - omega_threshold))",
            "key_round_errors": key_err,
            "qber_after_preprocessing": key_err / max(1, n - n_test_bob),
            "passed": passed,
        }
        if "expected_omega" in thr:
            state["bell_test"]["threshold_derivation"] = {
                k: v for k, v in thr.items() if k not in ("omega", "source")}
        # The verdict publishes the statistics that go into the public report: the counts per
        # (x, y, a, b) and the key-round errors after preprocessing. They are functions of
        # Alice's string, so they are counted as leakage, conservatively: at most
        # (n + 1)^24 possible values, i.e. 24 log2(n + 1) bits (chain rule for H_min).
        published = {"verdict": "pass" if passed else "fail", "wins": wins, "losses": losses,
                     "key_round_errors": key_err, "counts": state["statistics"]["counts"]}
        stats_leak = published_statistics_leak(n)
        channel.send(Message("bob", "bell-verdict",
                             json.dumps(published, sort_keys=True).encode(),
                             leak_bits=stats_leak,
                             meta={"wins": wins, "losses": losses, "max_losses": allowed}))
        state["bell_test"]["published_statistics_leak_bits"] = stats_leak
        channel.recv("alice", "bell-verdict")
        timer.end(f"losses {losses:,} / allowed {allowed:,}")
        if not passed:
            raise _Abort("bell-test", "bell-test",
                         f"Bell test failed: {losses} lost test games, at most {allowed} allowed "
                         f"({wins} won of {n_test_bob}; omega_threshold {thr['omega']:.6f}, "
                         f"gamma {proto.gamma}, n {n})")

        # -- key length -----------------------------------------------------------------------
        timer.start("key-length")
        leak = channel.transcript.leak_bits()
        bound = security.finite_key_length(n=n, gamma=proto.gamma, omega_threshold=thr["omega"],
                                           leak_ec_bits=leak, eps=proto.eps.budget(),
                                           method=proto.method, p_noise=p)
        state["bound"] = bound
        m = max(0, int(bound.key_bits))
        timer.end(f"{m:,} bits")
        if m < proto.min_key_bits:
            raise _Abort("key-length", "no-key",
                         f"no positive key: the finite-size bound certifies {m} bits "
                         f"(min_key_bits {proto.min_key_bits}; leakage {leak} bits)")

        # -- amplify --------------------------------------------------------------------------
        timer.start("amplify")
        from diqkd.amplification import ToeplitzHash, draw_seed

        seed_bits, seed_source = draw_seed(n, m, seed=seeds.child("pa"))
        seed_bits = np.asarray(seed_bits, dtype=np.uint8)
        channel.send(Message("alice", "pa-seed", _pack(seed_bits),
                             meta={"n": n, "m": m, "seed_bits": int(seed_bits.size)}))
        msg = channel.recv("bob", "pa-seed")
        seed_bob = _unpack(msg.payload, n + m - 1)
        hash_a = ToeplitzHash(n, m, seed_bits)  # Alice's hash function
        hash_b = ToeplitzHash(n, m, seed_bob)  # Bob's, from the seed he received
        ka = np.asarray(hash_a(a_str), dtype=np.uint8)
        if np.array_equal(a_hat, a_str) and np.array_equal(seed_bob, seed_bits):
            # Batch mode holds both roles: equal inputs of a deterministic hash give equal
            # outputs, so Bob's hash is not computed a second time (the digests are still
            # compared in the confirm stage).
            kb = ka.copy()
        else:
            kb = np.asarray(hash_b(a_hat), dtype=np.uint8)
        state["amplification"] = {
            **_jsonable(hash_a.describe()),
            "seed_source": str(seed_source),
            "seed_stream": "pa",
            "input": "Alice's whole n-bit string after preprocessing (key and test rounds)",
        }
        timer.end(f"{n:,} -> {m:,} bits")

        # -- confirm --------------------------------------------------------------------------
        timer.start("confirm")
        digest = channel.confirm()
        key_a = Key(ka, key_id_for(digest))
        key_b = Key(kb, key_id_for(digest))
        if not key_a.same_as(key_b):
            key_a = key_b = None
            raise _Abort("confirm", "key-mismatch",
                         "Alice's and Bob's keys differ after privacy amplification")
        timer.end("transcripts and keys agree")
        state["keys"] = {"key_id": key_a.key_id, "bits": key_a.nbits,
                         "bytes": (key_a.nbits + 7) // 8,
                         "alice_sha256": key_a.sha256, "bob_sha256": key_b.sha256,
                         "equal": True, "key_per_round": key_a.nbits / n}
        state["verdict"] = "key"
    except (_Abort, ProtocolAbort) as exc:
        current = timer.current
        if current is not None:
            timer.end("abort")
        key_a = key_b = None
        if isinstance(exc, _Abort):
            stage, code, reason = exc.stage, exc.code, exc.reason
        else:
            stage, code, reason = current or "protocol", exc.code, exc.reason
        state["verdict"] = "abort"
        state["abort"] = {"stage": stage, "code": code, "reason": reason}
    state["timings"] = dict(timer.timings)
    report = build_report(proto, state)
    return Result(key_a, key_b, report, state["noise_seed"])
