"""Vectorised, chunked Born-rule sampling of heralded events into Alice's and Bob's records.

Rounds are the heralded end-to-end events, numbered 0 .. N-1 (``round``); ``t_ns`` is the
wall-clock time of each event since the start of the run (attempts x attempt period, plus the
swap-outcome communication time in chains, stretched by 1 / duty_cycle).

Determinism: the run is cut into blocks of :data:`BLOCK_ROWS` rounds (a fixed internal size);
block k draws from ``numpy.random.Generator(PCG64(SeedSequence(seed, spawn_key=(STREAM, k))))``
and, within a block, always in the same order (64 raw bits per round, then the attempt counts,
then the class uniforms). ``chunk_rows`` only regroups blocks, so the same seed gives identical
records whatever the chunk size.

Per round, the 64 raw bits are carved as: bits 0-31 the outcome uniform, bits 32-55 the
test-round decision (gamma is used to 24-bit resolution), bit 56 x, bit 57 y, bit 58 the herald,
bits 59-61 the LHV strategy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from diqkd.emulator.devices import Device, parse_device
from diqkd.emulator.params import LinkParams, load_link
from diqkd.emulator.physics import LinkModel, link_model
from diqkd.errors import ConfigError
from diqkd.records.model import Records

__all__ = ["BLOCK_ROWS", "EMULATOR_VERSION", "emulate", "iter_emulate", "emulate_to_files",
           "lhv_strategies"]

#: Fixed internal block size (rounds) that seeds are derived for; never depends on chunk_rows.
BLOCK_ROWS = 1 << 16
#: Version of the sampling scheme: records for a given (link, seed, device) change only with it.
EMULATOR_VERSION = "1"
_STREAM = 0x454D55  # "EMU"
_GAMMA_BITS = 24


def lhv_strategies() -> np.ndarray:
    """The 8 deterministic strategies (a0, a1, b0, b1, b2) with CHSH value 2 and b2 = a0."""
    out = []
    for bits in range(16):
        a0, a1, b0, b1 = (bits >> 3) & 1, (bits >> 2) & 1, (bits >> 1) & 1, bits & 1
        e = [1 - 2 * (a ^ b) for a, b in ((a0, b0), (a0, b1), (a1, b0), (a1, b1))]
        if e[0] + e[1] + e[2] - e[3] == 2:
            out.append((a0, a1, b0, b1, a0))
    return np.array(out, dtype=np.uint8)


def _lhv_tables() -> np.ndarray:
    strat = lhv_strategies()
    tables = np.zeros((len(strat), 6, 4))
    for k, (a0, a1, b0, b1, b2) in enumerate(strat):
        for x, a in enumerate((a0, a1)):
            for y, b in enumerate((b0, b1, b2)):
                tables[k, 3 * x + y, 2 * a + b] = 1.0
    return tables


def _thresholds(tables: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flat = tables.reshape(-1, 4)
    cum = np.cumsum(flat / flat.sum(axis=1, keepdims=True), axis=1)[:, :3]
    thr = np.minimum(np.round(cum * 2.0 ** 32), 2.0 ** 32).astype(np.uint64)
    return thr[:, 0].copy(), thr[:, 1].copy(), thr[:, 2].copy()


class _Run:
    """One emulation run: the model, the device, the carried state (attempts so far)."""

    def __init__(self, link: LinkParams, rounds: int, seed: int, gamma: float,
                 device: Device) -> None:
        self.link, self.rounds, self.seed, self.gamma, self.device = (
            link, rounds, seed, gamma, device)
        self.model: LinkModel = link_model(link)
        m = self.model
        self.gamma_thr = np.uint64(round(gamma * 2 ** _GAMMA_BITS))
        self.lhv = device.name == "lhv"
        tables = _lhv_tables() if self.lhv else m.tables
        self.t1, self.t2, self.t3 = _thresholds(tables)
        self.chain = link.segments > 1
        self.dephasing = self.chain and math.isfinite(link.t2_s)
        dp = device.params
        self.bursts = np.zeros((0, 2), dtype=np.int64)
        if device.name == "burst":
            length = dp["length"] or max(1, rounds // 50)
            ss = np.random.SeedSequence(seed, spawn_key=(_STREAM, 2 ** 40))
            starts = np.sort(np.random.Generator(np.random.PCG64(ss)).integers(
                0, max(rounds, 1), int(dp["count"])))
            self.bursts = np.stack([starts, starts + int(length)], axis=1).astype(np.int64)
        self.outage = (0, 0)
        self.gap_ns = 0.0
        if device.name == "outage":
            start = int(round(float(dp["start"]) * rounds))
            if dp["mode"] == "random":
                self.outage = (start, start + int(round(float(dp["fraction"]) * rounds)))
            else:
                self.outage = (start, start)
                self.gap_ns = float(dp["gap_s"]) * 1e9
        self.outage_start = int(round(float(dp.get("start", 0.0)) * rounds))
        self.dynamic = (not self.lhv) and (
            self.dephasing or device.name in ("drift", "burst")
            or self.outage[1] > self.outage[0])
        self.attempts_before = 0  # carried across blocks, in block order
        self.t_att_ns = m.attempt_period_s * 1e9
        self.t_comm_ns = m.comm_time_s * 1e9
        self.duty = link.duty_cycle

    def block(self, k: int) -> dict[str, np.ndarray]:
        """Columns of rounds [k B, min((k + 1) B, N)); blocks must be requested in order."""
        start = k * BLOCK_ROWS
        n = min(BLOCK_ROWS, self.rounds - start)
        ss = np.random.SeedSequence(self.seed, spawn_key=(_STREAM, k))
        rng = np.random.Generator(np.random.PCG64(ss))
        raw = rng.bit_generator.random_raw(n)
        u = raw & np.uint64(0xFFFFFFFF)
        test = ((raw >> np.uint64(32)) & np.uint64((1 << _GAMMA_BITS) - 1)) < self.gamma_thr
        bits = (raw >> np.uint64(56)).astype(np.uint8)
        x = (bits & 1) & test
        y = np.where(test, (bits >> 1) & 1, np.uint8(2)).astype(np.uint8)
        herald = (bits >> 2) & 1
        setting = 3 * x + y

        # timing: attempts until every segment is heralded (segments attempt in parallel)
        p = self.model.p_attempt
        if self.chain:
            kk = rng.geometric(p, size=(self.link.segments, n))
            kmax = kk.max(axis=0)
        else:
            kk = None
            kmax = rng.geometric(p, size=n)
        idx = np.arange(start, start + n, dtype=np.int64)
        cum = np.cumsum(kmax) + self.attempts_before
        self.attempts_before = int(cum[-1])
        t = cum.astype(np.float64)
        t *= self.t_att_ns / self.duty
        if self.t_comm_ns:
            t += (idx + 1) * (self.t_comm_ns / self.duty)
        if self.gap_ns:
            t = t + np.where(idx >= self.outage_start, self.gap_ns, 0.0)
        if not t[-1] < 2.0 ** 63:
            raise ConfigError("event times overflow the int64 nanosecond timestamps (the run "
                              "would last more than 292 years): the link is too slow")
        t_ns = t.astype(np.int64)

        # event class: the Kraus branch (honest) or the hidden strategy (lhv)
        if self.lhv:
            cls = (bits >> 3) & 7
        elif self.dynamic:
            coherence = np.ones(n)
            if self.dephasing:
                w = (kmax[None, :] - kk).sum(axis=0)
                coherence = np.power(self.model.wait_decay, w)
            p_white = np.zeros(n)
            dev = self.device
            if dev.name == "drift":
                coherence = coherence * (1.0 - float(dev.params["amount"]) * idx
                                         / max(self.rounds, 1))
            elif dev.name == "burst":
                inside = np.zeros(n, dtype=bool)
                for b0, b1 in self.bursts:
                    inside |= (idx >= b0) & (idx < b1)
                p_white = np.where(inside, float(dev.params["level"]), 0.0)
            elif dev.name == "outage":
                o0, o1 = self.outage
                p_white = ((idx >= o0) & (idx < o1)).astype(np.float64)
            p_z = (1.0 - coherence) / 2.0
            u2 = rng.random(n)
            cls = np.where(u2 < p_white, 2, np.where(u2 < p_white + (1 - p_white) * p_z, 1, 0))
            cls = cls.astype(np.uint8)
        else:
            cls = None
        table_idx = setting.astype(np.intp) if cls is None else cls.astype(np.intp) * 6 + setting
        o = ((u >= self.t1[table_idx]).view(np.uint8) + (u >= self.t2[table_idx]).view(np.uint8)
             + (u >= self.t3[table_idx]).view(np.uint8))
        a = o >> 1
        b = (o & 1) ^ herald
        rnd = idx.astype(np.uint64)
        return {"round": rnd, "x": x, "y": y, "a": a, "b": b, "herald": herald, "t_ns": t_ns}

    def metadata(self) -> dict[str, Any]:
        return {
            "generator": "diqkd.emulator",
            "emulator_version": EMULATOR_VERSION,
            "emulator_preset": self.link.name,
            "emulator_link": self.link.to_dict(),
            "emulator_seed": int(self.seed),
            "emulator_device": self.device.spec(),
            "emulator_test_probability": float(self.gamma),
            "emulator_rounds": int(self.rounds),
            "emulator_block_rows": BLOCK_ROWS,
            "emulator_angles_rad": list(self.model.angles),
        }


def _records(cols: dict[str, np.ndarray], meta: dict[str, Any]) -> tuple[Records, Records]:
    alice = Records("alice", {k: cols[k] for k in ("round", "x", "a", "t_ns")}, meta,
                    check_order=False)
    bob = Records("bob", {k: cols[k] for k in ("round", "y", "b", "herald", "t_ns")}, meta,
                  check_order=False)
    return alice, bob


def _prepare(link: LinkParams | str, rounds: int | float, seed: int,
             test_probability: float | None, device: Any) -> _Run:
    if isinstance(link, str | Path):
        link = load_link(link)
    if not isinstance(link, LinkParams):
        raise ConfigError(f"link must be a LinkParams or a preset name, got {type(link).__name__}")
    if isinstance(rounds, float):
        if not rounds.is_integer():
            raise ConfigError(f"rounds must be a whole number, got {rounds!r}")
        rounds = int(rounds)
    if isinstance(rounds, bool) or not isinstance(rounds, int | np.integer) or rounds < 0:
        raise ConfigError(f"rounds must be an integer >= 0, got {rounds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    gamma = link.test_probability if test_probability is None else float(test_probability)
    if not 0.0 < gamma <= 1.0:
        raise ConfigError(f"test_probability must lie in (0, 1], got {test_probability!r}")
    run = _Run(link, int(rounds), int(seed), gamma, parse_device(device))
    m = run.model
    mean_ns = (m.mean_attempts * m.attempt_period_s + m.comm_time_s) / link.duty_cycle * 1e9
    if run.rounds * mean_ns > 2.0 ** 62:
        years = run.rounds * mean_ns * 1e-9 / 3.156e7
        raise ConfigError(f"link {link.name!r}: {run.rounds} events would take about "
                          f"{years:.3g} years (event rate {1e9 / mean_ns:.3g}/s); the int64 "
                          "nanosecond timestamps cannot hold that run")
    return run


def iter_emulate(link: LinkParams | str, rounds: int, *, seed: int,
                 test_probability: float | None = None, device: Any = "honest",
                 chunk_rows: int = 1 << 20) -> Iterator[tuple[Records, Records]]:
    """Yield (alice_chunk, bob_chunk) pairs of at most ``chunk_rows`` rounds, in order."""
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    run = _prepare(link, rounds, seed, test_probability, device)
    meta = run.metadata()
    names = ("round", "x", "y", "a", "b", "herald", "t_ns")
    n_blocks = -(-run.rounds // BLOCK_ROWS)
    pending: list[dict[str, np.ndarray]] = []
    have = 0
    for k in range(n_blocks):
        pending.append(run.block(k))
        have += len(pending[-1]["round"])
        while have >= chunk_rows or (k == n_blocks - 1 and have > 0):
            take = min(chunk_rows, have)
            if len(pending) == 1 and len(pending[0]["round"]) == take:
                cols = pending.pop()
            else:
                joined = {c: np.concatenate([p[c] for p in pending]) for c in names}
                cols = {c: v[:take] for c, v in joined.items()}
                rest = {c: v[take:] for c, v in joined.items()}
                pending = [rest] if len(rest["round"]) else []
            have -= take
            yield _records(cols, meta)


def emulate(link: LinkParams | str, rounds: int, *, seed: int,
            test_probability: float | None = None, device: Any = "honest",
            chunk_rows: int = 1 << 20) -> tuple[Records, Records]:
    """All ``rounds`` heralded events of ``link`` as (alice, bob) records (see module doc)."""
    chunks = list(iter_emulate(link, rounds, seed=seed, test_probability=test_probability,
                               device=device, chunk_rows=chunk_rows))
    if not chunks:
        run = _prepare(link, rounds, seed, test_probability, device)
        empty: dict[str, np.ndarray] = {"round": np.zeros(0, np.uint64), "x": np.zeros(0, np.uint8),
                                         "y": np.zeros(0, np.uint8),
                                         "a": np.zeros(0, np.uint8),
                                         "b": np.zeros(0, np.uint8),
                                         "herald": np.zeros(0, np.uint8),
                                         "t_ns": np.zeros(0, np.int64)}
        return _records(empty, run.metadata())
    if len(chunks) == 1:
        return chunks[0]
    alice = Records.concat([c[0] for c in chunks])
    bob = Records.concat([c[1] for c in chunks])
    return alice, bob


def emulate_to_files(link: LinkParams | str, rounds: int, out_dir: str | os.PathLike[str], *,
                     seed: int, test_probability: float | None = None, device: Any = "honest",
                     fmt: str = "h5", progress: Callable[[int, int], None] | None = None,
                     chunk_rows: int = 1 << 20,
                     on_chunk: Callable[[Records, Records], None] | None = None,
                     ) -> tuple[Path, Path]:
    """Stream the run into ``out_dir/alice.<fmt>`` and ``out_dir/bob.<fmt>`` (bounded memory).

    ``progress(done, total)`` is called after every chunk, ``on_chunk(alice, bob)`` with every
    chunk (e.g. to accumulate statistics). Files are written through
    ``diqkd.records.formats`` (atomic appends).
    """
    from diqkd.records import formats  # the file layer; imported late (optional at import)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _prepare(link, rounds, seed, test_probability, device)
    meta = run.metadata()
    alice_path, bob_path = out / f"alice.{fmt}", out / f"bob.{fmt}"
    total = run.rounds
    done = 0
    with formats.open_writer(alice_path, "alice", metadata=meta, fmt=fmt) as wa, \
            formats.open_writer(bob_path, "bob", metadata=meta, fmt=fmt) as wb:
        for alice, bob in iter_emulate(run.link, total, seed=seed,
                                       test_probability=run.gamma, device=run.device,
                                       chunk_rows=chunk_rows):
            wa.append(alice)
            wb.append(bob)
            if on_chunk is not None:
                on_chunk(alice, bob)
            done += len(alice)
            if progress is not None:
                progress(done, total)
    return alice_path, bob_path
