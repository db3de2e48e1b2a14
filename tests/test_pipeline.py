"""End-to-end pipeline on sampled records: keys, aborts, reproducibility, tampering."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_pipeline_support import N_GOOD, N_SMALL, fixed_key_length, protocol, sample

import diqkd
from diqkd.errors import ConfigError, InputError, ProtocolAbort
from diqkd.pipeline import Seeds, run
from diqkd.records import Records
from diqkd.transcript import Message

SEED = 11


@pytest.fixture(scope="module")
def records():
    return sample(N_GOOD, seed=1)


@pytest.fixture(scope="module")
def honest(records):
    """The one realistic run: 1e6 rounds, epsilons 1e-10, default EC, the real bound."""
    return run(*records, protocol(realistic=True), seed=SEED)


@pytest.fixture(scope="module")
def small():
    return sample(N_SMALL, seed=2)


@pytest.fixture(scope="module")
def small_run(small):
    with fixed_key_length(2048):
        result = run(*small, protocol(), seed=SEED)
    return result


def run_small(small, **kw):
    with fixed_key_length(2048):
        return run(*small, protocol(), **kw)


def test_honest_run_gives_equal_keys_of_the_certified_length(honest):
    r = honest
    rep = r.report
    assert r.ok, (r.abort, "EC efficiency f =", rep["leakage"].get("efficiency_f"),
                  "(a positive key at 1e6 rounds needs f below about 1.3)")
    assert r.key_alice is not None and r.key_bob is not None
    assert r.key_alice.same_as(r.key_bob)
    m = rep["bound"]["key_bits"]
    assert m > 0 and r.key_alice.nbits == m == rep["keys"]["bits"] == r.key_bits
    assert rep["amplification"]["m"] == m and rep["amplification"]["n"] == N_GOOD
    # the key length was computed from the leakage read off the transcript
    assert rep["bound"]["leak_ec_bits"] == rep["leakage"]["total_bits"]
    assert rep["leakage"]["total_bits"] == sum(m["leak_bits"] for m in rep["transcript"]["list"])
    lk = rep["leakage"]
    assert lk["itemised"]["total"] == lk["ec_bits"]
    assert lk["total_bits"] == lk["ec_bits"] + lk["published_statistics_bits"]
    assert lk["published_statistics_bits"] == rep["bell_test"]["published_statistics_leak_bits"]
    assert rep["transcript"]["sha256_chain"] == rep["transcript"]["bob_view_sha256"]
    assert rep["keys"]["alice_sha256"] == r.key_alice.sha256 == rep["keys"]["bob_sha256"]
    assert rep["verdict"] == "key" and rep["abort"] is None
    st = rep["statistics"]
    assert abs(st["S"] - 2.8) < 0.05 and abs(st["qber"] - 0.005) < 0.002
    assert sum(st["counts"].values()) == N_GOOD
    assert rep["bell_test"]["passed"] and rep["bell_test"]["losses"] <= rep["bell_test"][
        "max_losses"]
    assert 1.0 < rep["leakage"]["efficiency_f"] < 5.0
    assert set(rep["timings_s"]) >= {"align", "reconcile", "amplify"}
    assert rep["seeds"]["master"] == SEED and rep["seeds"]["master_source"] == "given"


def test_report_is_json_and_holds_no_key_material(small_run):
    honest = small_run
    text = json.dumps(honest.report)
    key = honest.key_alice
    assert key.to_bytes().hex() not in text
    assert key.to_bytes()[:16].hex() not in text
    bits = "".join(map(str, key.bits[:48]))
    assert bits not in text.replace(" ", "")
    assert "bits=" in repr(key) and key.to_bytes().hex()[:16] not in repr(key)
    assert key.to_bytes().hex()[:16] not in repr(honest)


def test_small_runs_use_the_fixed_length_and_report_it(small_run):
    assert small_run.ok and small_run.key_bits == 2048
    lk = small_run.report["leakage"]
    assert lk["total_bits"] == small_run.report["bound"]["leak_ec_bits"]
    assert lk["itemised"]["total"] == lk["ec_bits"] > 0
    assert lk["published_statistics_bits"] == math.ceil(24 * math.log2(N_SMALL + 1))
    assert "TEST_OVERRIDE" in small_run.report["bound"]["terms"]
    assert small_run.key_alice.same_as(small_run.key_bob)


def test_same_seed_same_key_digests_other_seed_differs(small, small_run):
    again = run_small(small, seed=SEED)
    assert again.key_alice.sha256 == small_run.key_alice.sha256
    assert again.report["transcript"]["sha256_chain"] == small_run.report["transcript"][
        "sha256_chain"]
    other = run_small(small, seed=SEED + 1)
    assert other.ok and other.key_alice.sha256 != small_run.key_alice.sha256


def test_os_seed_is_recorded_and_reproduces(small):
    a, b = small[0].slice(0, 5_000), small[1].slice(0, 5_000)
    r = run(a, b, protocol(), seed=None)
    seeds = r.report["seeds"]
    assert seeds["master_source"] == "os-csprng" and seeds["master"] >= 0
    again = run(a, b, protocol(), seed=Seeds(seeds["master"], "os-csprng"))
    assert again.report["transcript"]["sha256_chain"] == r.report["transcript"]["sha256_chain"]


def test_lhv_device_aborts_at_the_bell_test():
    r = run(*sample(N_SMALL, lhv=True, seed=3), protocol(), seed=1)
    assert r.verdict == "abort" and r.key_alice is None and r.key_bob is None
    assert r.abort["code"] == "bell-test" and r.abort["stage"] == "bell-test"
    assert r.report["keys"] is None and r.report["bound"] is None
    with pytest.raises(ProtocolAbort):
        r.raise_for_abort()


def test_below_threshold_aborts():
    r = run(*sample(30_000, S=2.5, seed=4), protocol(), seed=1)
    assert r.abort["code"] == "bell-test"
    assert r.report["bell_test"]["losses"] > r.report["bell_test"]["max_losses"]


def test_given_threshold_and_no_positive_key():
    a, b = sample(N_SMALL, seed=5)
    r = run(a, b, protocol(threshold={"omega": 0.8}), seed=1)
    assert r.report["bell_test"]["threshold_source"] == "protocol"
    assert r.abort["code"] == "no-key" and r.key_alice is None
    assert r.report["bound"]["key_bits"] == 0


def test_bad_inputs():
    a, b = sample(1000, seed=6)
    with pytest.raises(InputError, match="round sets differ"):
        run(a, b.slice(0, 900), protocol())
    r = run(a, b.slice(0, 900), protocol(), seed=1, drop_unmatched=True)
    assert r.report["inputs"]["dropped_alice"] == 100
    with pytest.raises(ConfigError):
        run(a, b, protocol(), seed=-1)
    x = np.asarray(a["x"]).copy()
    y = np.asarray(b["y"])
    i = int(np.flatnonzero(y == 2)[0])
    x[i] = 1
    bad = Records("alice", {"round": a["round"], "x": x, "a": a["a"]})
    with pytest.raises(InputError, match="x = 1"):
        run(bad, b, protocol(), seed=1)
    with pytest.raises(InputError):
        run(b, a, protocol())
    with pytest.raises(InputError, match="test probability"):
        run(a, b, protocol(gamma=0.3), seed=1)


def test_library_exports():
    assert diqkd.run is run
    assert diqkd.Protocol.__name__ == "Protocol" and diqkd.Session.__name__ == "Session"
    assert diqkd.Result.__name__ == "Result" and diqkd.__version__


# -- tampering on the public channel ------------------------------------------------------------
def _flip(kind: str, index: int = 0):
    seen = {"n": 0}

    def tamper(msg: Message):
        if msg.kind == kind:
            seen["n"] += 1
            if seen["n"] == index + 1:
                p = bytearray(msg.payload)
                p[len(p) // 2] ^= 0x10
                return [Message(msg.sender, msg.kind, bytes(p), msg.leak_bits, msg.meta)]
        return [msg]

    return tamper


def _kinds(report) -> list[str]:
    return list(dict.fromkeys(m["kind"] for m in report["transcript"]["list"]))


def test_every_message_kind_is_in_the_transcript(small_run):
    kinds = _kinds(small_run.report)
    for k in ("test-rounds", "test-settings", "ec-plan", "ec-hash-key", "ec-syndrome", "ec-tag",
              "ec-verdict", "bell-verdict", "pa-seed"):
        assert k in kinds


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["test-rounds", "test-settings", "ec-plan", "ec-hash-key",
                                  "ec-syndrome", "ec-tag", "ec-verdict", "bell-verdict",
                                  "pa-seed"])
def test_a_flipped_bit_in_any_message_is_caught(small, kind):
    r = run_small(small, seed=SEED, tamper=_flip(kind))
    assert r.verdict == "abort", kind
    assert r.key_alice is None and r.key_bob is None
    assert r.abort["code"] == "transcript", r.abort


@pytest.mark.slow
@pytest.mark.parametrize("action", ["drop", "duplicate", "reorder"])
def test_dropped_duplicated_reordered_messages_are_caught(small, action):
    state = {"held": None, "done": False}

    def tamper(msg: Message):
        if state["done"]:
            return [msg]
        if action == "drop" and msg.kind == "ec-tag":
            state["done"] = True
            return []
        if action == "duplicate" and msg.kind == "pa-seed":
            state["done"] = True
            return [msg, msg]
        if action == "reorder" and msg.kind == "test-rounds":
            state["held"] = msg
            return []
        if action == "reorder" and state["held"] is not None:
            state["done"] = True
            return [msg, state["held"]]
        return [msg]

    r = run_small(small, seed=SEED, tamper=tamper)
    assert r.verdict == "abort" and r.key_alice is None
    assert r.abort["code"] == "transcript"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["test-settings", "ec-tag", "pa-seed"])
def test_without_per_message_authentication_the_confirmation_still_catches(small, kind):
    r = run_small(small, seed=SEED, tamper=_flip(kind), authenticate=False)
    assert r.verdict == "abort" and r.key_alice is None and r.key_bob is None


def test_altered_message_metadata_is_caught(small):
    def tamper(msg: Message):
        if msg.kind == "ec-syndrome" and msg.meta.get("frame") == 0:
            return [Message(msg.sender, msg.kind, msg.payload, msg.leak_bits,
                            {**msg.meta, "frame": 1})]
        return [msg]

    r = run_small(small, seed=SEED, tamper=tamper)
    assert r.abort["code"] == "transcript" and r.key_alice is None
