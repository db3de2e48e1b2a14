"""Streaming Session: chunked feeding equals a batch run; checkpoints survive a kill."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_pipeline_support import protocol, sample

from diqkd.errors import ConfigError, InputError
from diqkd.pipeline import run
from diqkd.session import Session

N = 20_000
SEED = 5
PROTO = protocol(threshold={"omega": 0.8})  # a fixed threshold: the run goes through EC


@pytest.fixture(scope="module")
def recs():
    return sample(N, seed=2)


@pytest.fixture(scope="module")
def batch(recs):
    return run(*recs, PROTO, seed=SEED)


def _chunks(rec, cuts):
    edges = [0, *cuts, len(rec)]
    return [rec.slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _same(r1, r2):
    a, b = r1.report, r2.report
    assert a["transcript"]["sha256_chain"] == b["transcript"]["sha256_chain"]
    assert a["statistics"] == b["statistics"] and a["verdict"] == b["verdict"]
    assert a["leakage"]["total_bits"] == b["leakage"]["total_bits"]


def test_chunks_with_different_borders_equal_the_batch_run(recs, batch):
    alice, bob = recs
    s = Session(PROTO, seed=SEED)
    a_chunks = _chunks(alice, [2_000, 7_000, 7_100, 16_000])
    b_chunks = _chunks(bob, [4_000, 6_900, 12_000, 18_000])
    for ca, cb in zip(a_chunks, b_chunks, strict=True):
        info = s.feed(ca, cb)
    assert info["rounds"] + info["pending_alice"] == N
    live = s.statistics()
    res = s.finish()
    assert s.rounds == N
    _same(res, batch)
    assert live["rounds"] == info["rounds"] and abs(live["S"] - 2.8) < 0.3
    assert res.report["inputs"]["mode"] == "session"


def test_resume_from_checkpoint_skips_rows_already_fed(recs, batch, tmp_path):
    alice, bob = recs
    ck = tmp_path / "ckpt"
    a_chunks = _chunks(alice, [5_000, 10_000, 15_000])
    b_chunks = _chunks(bob, [5_000, 10_000, 15_000])
    s = Session(PROTO, checkpoint_dir=ck, seed=SEED)
    for ca, cb in list(zip(a_chunks, b_chunks, strict=True))[:2]:
        s.feed(ca, cb)
    del s  # "killed"
    # crash leftovers that were never committed
    (ck / "seg-000099-99.npz").write_bytes(b"partial")
    (ck / ".diqkd-tmp-state.json.x").write_bytes(b"partial")
    s2 = Session(PROTO, checkpoint_dir=ck)  # seed comes from the checkpoint
    assert s2.resumed and s2.rounds == 10_000
    assert not (ck / "seg-000099-99.npz").exists()
    for ca, cb in zip(a_chunks, b_chunks, strict=True):  # the lab software re-feeds everything
        s2.feed(ca, cb)
    assert s2.rounds == N
    _same(s2.finish(), batch)
    assert stat.S_IMODE(ck.stat().st_mode) == 0o700
    for f in ck.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_checkpoint_belongs_to_its_protocol_and_seed(recs, tmp_path):
    ck = tmp_path / "c"
    s = Session(PROTO, checkpoint_dir=ck, seed=1)
    s.feed(recs[0].slice(0, 100), recs[1].slice(0, 100))
    with pytest.raises(ConfigError, match="another protocol"):
        Session(protocol(gamma=0.2), checkpoint_dir=ck)
    with pytest.raises(ConfigError, match="another seed"):
        Session(PROTO, checkpoint_dir=ck, seed=2)
    (ck / "state.json").write_text("{garbage")
    with pytest.raises(InputError, match="unreadable"):
        Session(PROTO, checkpoint_dir=ck)


def test_unmatched_rows(recs):
    alice, bob = recs
    s = Session(PROTO, seed=1)
    s.feed(alice.slice(0, 500), bob.slice(0, 500))
    with pytest.raises(InputError, match="round sets differ|only in"):
        s.feed(alice.slice(500, 1000), bob.slice(501, 1001))
    assert s.rounds == 500 and s.last_round["alice"] == int(alice["round"][499])  # unchanged
    s = Session(PROTO, seed=1, drop_unmatched=True)
    s.feed(alice.slice(0, 1000), bob.slice(1, 1001))
    s.feed(alice.slice(1000, 1000), bob.slice(1001, 1001))
    assert s.rounds == 999
    with pytest.raises(InputError, match="Records"):
        s.feed(bob.slice(0, 1), alice.slice(0, 1))
    with pytest.raises(InputError, match="no aligned rounds"):
        Session(PROTO, seed=1).finish()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(recs, batch, tmp_path):
    ck = tmp_path / "ck"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_pipeline_support import protocol, sample
        from diqkd.session import Session
        alice, bob = sample({N}, seed=2)
        s = Session(protocol(threshold={{"omega": 0.8}}), checkpoint_dir={str(ck)!r},
                    seed={SEED})
        for i in range(0, {N}, 4_000):
            s.feed(alice.slice(i, i + 4_000), bob.slice(i, i + 4_000))
            if i == 8_000:
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    s = Session(PROTO, checkpoint_dir=ck)
    assert s.resumed and s.rounds == 12_000
    alice, bob = recs
    for i in range(0, N, 3_000):
        s.feed(alice.slice(i, i + 3_000), bob.slice(i, i + 3_000))
    _same(s.finish(), batch)
    assert os.path.exists(ck / "state.json")
