"""Shared helpers of the pipeline tests (no tests here): an i.i.d. record sampler and fixtures.

The sampler draws records with a chosen CHSH winning probability and key-round QBER directly
(not through the physical emulator), so that the pipeline tests control the statistics exactly
and stay fast; the emulator presets are exercised separately.
"""

from __future__ import annotations

import contextlib

import numpy as np

from diqkd.protocol import Protocol
from diqkd.records import Records

#: A link good enough for a positive finite-size key at 1e6 rounds (about 170 kbit).
GOOD = {"S": 2.8, "qber": 0.005}
N_GOOD = 1_000_000
GAMMA = 0.11


def sample(n: int, *, S: float = GOOD["S"], qber: float = GOOD["qber"], gamma: float = GAMMA,
           seed: int = 0, lhv: bool = False, first_round: int = 10,
           step: int = 3, timestamps: bool = False) -> tuple[Records, Records]:
    """Alice's and Bob's records of n i.i.d. rounds (test with probability gamma).

    ``timestamps`` adds a ``t_ns`` column (1 us apart) to both parties; it draws no random
    numbers, so the other columns are the same with or without it.
    """
    rng = np.random.default_rng(seed)
    t = rng.random(n) < gamma
    x = np.where(t, rng.integers(0, 2, n), 0).astype(np.uint8)
    y = np.where(t, rng.integers(0, 2, n), 2).astype(np.uint8)
    a = rng.integers(0, 2, n).astype(np.uint8)
    omega = 0.75 if lhv else (4 + S) / 8
    lose = (rng.random(n) >= omega).astype(np.uint8)
    err = (rng.random(n) < qber).astype(np.uint8)
    b = np.where(t, a ^ (x & y) ^ lose, a ^ err).astype(np.uint8)
    herald = rng.integers(0, 2, n).astype(np.uint8)
    rounds = first_round + np.arange(n, dtype=np.uint64) * np.uint64(step)
    t = {"t_ns": np.arange(n, dtype=np.int64) * 1000 + 17} if timestamps else {}
    return (Records("alice", {"round": rounds, "x": x, "a": a, **t}),
            Records("bob", {"round": rounds, "y": y, "b": b ^ herald, "herald": herald, **t}))


#: EC settings of the flow tests: one decoding round per frame ("adaptive") instead of the
#: default blind mode's incremental rounds; several times faster, and the flow is the same.
FLOW_EC = {"rate_adaptation": "adaptive"}


def protocol(*, realistic: bool = False, **changes) -> Protocol:
    """The test protocol (expected values of :data:`GOOD`); ``realistic``: the default EC
    settings, else :data:`FLOW_EC`."""
    data = {
        "name": "test",
        "gamma": GAMMA,
        "expected": dict(GOOD),
        "ec": {} if realistic else dict(FLOW_EC),
        "epsilon": {"eps_s": 1e-10, "eps_pa": 1e-10, "eps_ea": 1e-10, "eps_cor": 1e-10,
                    "eps_complete": 1e-2},
    }
    for k, v in changes.items():
        if isinstance(v, dict):
            data[k] = {**data.get(k, {}), **v}
        else:
            data[k] = v
    return Protocol.from_dict(data)


def write_pair(directory, alice: Records, bob: Records, fmt: str = "h5"):
    """Write both parties' records into ``directory``; returns the two paths."""
    from diqkd.records.formats import write_records

    a, b = directory / f"alice.{fmt}", directory / f"bob.{fmt}"
    write_records(a, alice)
    write_records(b, bob)
    return a, b


def write_protocol(directory, proto: Protocol):
    path = directory / "protocol.toml"
    path.write_text(proto.to_toml())
    return path


#: Small runs for tests of the protocol flow (channel, tampering, determinism, CLI, audit):
#: far too short for a positive finite-size key, so they use :func:`fixed_key_length`.
N_SMALL = 20_000


def sample_small(seed: int = 0, **kw) -> tuple[Records, Records]:
    return sample(N_SMALL, seed=seed, **kw)


@contextlib.contextmanager
def fixed_key_length(bits: int = 2048):
    """Within the context, the pipeline's key-length stage computes the real bound (every term
    recorded) but certifies ``bits`` bits, with an extra term ``TEST_OVERRIDE`` in the report.

    Only for tests of the protocol *flow* on runs too short for a positive finite-size key;
    the real bound is tested on realistic runs and in the security module's own tests.
    """
    import dataclasses
    import types

    import pytest

    import diqkd.pipeline as pipeline

    real = pipeline.security

    def finite_key_length(**kw):
        b = real.finite_key_length(**kw)
        return dataclasses.replace(b, key_bits=bits,
                                   terms={**b.terms, "TEST_OVERRIDE": bits - b.raw_bound})

    sec = types.SimpleNamespace(threshold_for_completeness=real.threshold_for_completeness,
                                max_losses=real.max_losses, finite_key_length=finite_key_length)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "security", sec)
        yield
