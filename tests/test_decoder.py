"""The layered BP decoder against a slow reference, and the verification hash against galois."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.reconciliation import LdpcCode, decode, llr_from_error_prob
from diqkd.reconciliation.decoder import LLR_KNOWN, reference_decode
from diqkd.reconciliation.verify import poly_hash, poly_hash_galois, tag_spec


def random_code(n: int, m: int, dv: int = 3, seed: int = 0) -> LdpcCode:
    """A random left-regular code (test helper; duplicate edges merged)."""
    rng = np.random.default_rng(seed)
    vs = np.repeat(np.arange(n), dv)
    cs = np.concatenate([rng.permutation(m) for _ in range(n * dv // m + 2)])[: n * dv]
    key = np.unique(cs.astype(np.int64) * n + vs)
    return LdpcCode.from_edges(n, m, key // n, key % n, name=f"test-{n}-{m}-{seed}")


def _frames(code: LdpcCode, q: float, frames: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (frames, code.n), dtype=np.uint8)
    p = rng.uniform(0.3 * q, 1.7 * q, size=(frames, code.n))
    y = x ^ (rng.random((frames, code.n)) < p).astype(np.uint8)
    llr = np.stack([llr_from_error_prob(y[i], p[i]) for i in range(frames)])
    syn = np.stack([code.syndrome(x[i]) for i in range(frames)])
    return x, llr, syn


@pytest.fixture(scope="module")
def small_code() -> LdpcCode:
    return random_code(48, 24, 3, seed=7)


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_agrees_with_reference(small_code: LdpcCode, algorithm: str) -> None:
    code = small_code
    x, llr, syn = _frames(code, 0.07, 12, seed=3)
    # punctured and shortened positions as the protocol uses them
    llr[:, :3] = 0.0
    llr[:, 3:5] = np.where(x[:, 3:5] == 1, -LLR_KNOWN, LLR_KNOWN)
    H = code.to_dense()
    for iters in (1, 2, 6):
        res = decode(code, syn, llr, algorithm=algorithm, max_iterations=iters, threads=1,
                     return_llr=True)
        for f in range(x.shape[0]):
            bits, L, it = reference_decode(H, syn[f], llr[f], algorithm=algorithm,
                                           iterations=iters)
            assert res.iterations[f] == it
            # float32 messages; near saturation 2 atanh(p) is ill-conditioned, so compare the
            # moderate range (|L| <= 8) closely and the signs of confident values
            np.testing.assert_allclose(np.clip(res.llr[f], -8, 8), np.clip(L, -8, 8),
                                       rtol=1e-3, atol=2e-3)
            sure = np.abs(L) > 1e-6
            assert np.array_equal(res.bits[f][sure], bits[sure])
            ok = bool(np.all((H @ bits) % 2 == syn[f]))
            assert bool(res.converged[f]) == ok


def test_decodes_and_stops_early() -> None:
    code = random_code(2000, 1000, 3, seed=1)
    x, llr, syn = _frames(code, 0.02, 6, seed=5)
    for algorithm in ("sum-product", "min-sum"):
        res = decode(code, syn, llr, algorithm=algorithm, max_iterations=60)
        assert res.converged.all()
        assert (res.bits == x).all()
        assert (res.iterations < 60).all()


def test_single_frame_and_no_errors() -> None:
    code = random_code(200, 100, 3, seed=2)
    x = np.random.default_rng(0).integers(0, 2, code.n, dtype=np.uint8)
    llr = llr_from_error_prob(x, np.full(code.n, 0.01))
    res = decode(code, code.syndrome(x), llr)
    assert res.bits.shape == (code.n,)
    assert res.converged[0] and res.iterations[0] == 0 and (res.bits == x).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 0.3), st.sampled_from(["sum-product",
                                                                          "min-sum"]))
def test_converged_means_syndrome_matches(seed: int, q: float, algorithm: str) -> None:
    """Failed decoding never claims success: converged <=> the output satisfies the syndrome."""
    code = random_code(60, 30, 3, seed=seed % 5)
    x, llr, syn = _frames(code, q, 3, seed=seed)
    res = decode(code, syn, llr, algorithm=algorithm, max_iterations=8, threads=1)
    for f in range(3):
        assert bool(res.converged[f]) == np.array_equal(code.syndrome(res.bits[f]), syn[f])


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_warm_start_continues_exactly(small_code: LdpcCode, algorithm: str) -> None:
    """With unchanged priors, 3 + 3 iterations from a kept state are 6 layered iterations."""
    code = small_code
    x, llr, syn = _frames(code, 0.12, 8, seed=11)
    llr[:, :3] = 0.0
    six = decode(code, syn, llr, algorithm=algorithm, max_iterations=6, threads=1,
                 return_llr=True)
    a = decode(code, syn, llr, algorithm=algorithm, max_iterations=3, threads=1,
               keep_state=True)
    assert a.state is not None and a.state.R.shape == (8, code.edges)
    b = decode(code, syn, llr, algorithm=algorithm, max_iterations=3, threads=1,
               return_llr=True, state=a.state)
    for f in range(8):
        if a.converged[f]:  # stopped early: nothing to continue
            continue
        assert b.converged[f] == six.converged[f]
        if six.iterations[f] == 6 or six.converged[f]:
            np.testing.assert_allclose(b.llr[f], six.llr[f], rtol=1e-5, atol=1e-5)
            assert np.array_equal(b.bits[f], six.bits[f])


def test_warm_start_after_reveal_and_patience() -> None:
    """Blind-mode use: a stalled attempt stops early (patience); revealing bits and continuing
    from its state decodes; converged always means the syndrome matches."""
    code = random_code(600, 240, 3, seed=3)
    x, llr, syn = _frames(code, 0.09, 4, seed=2)
    first = decode(code, syn, llr, max_iterations=200, patience=4, keep_state=True, threads=1)
    for f in range(4):
        assert bool(first.converged[f]) == np.array_equal(code.syndrome(first.bits[f]), syn[f])
    stalled = ~first.converged
    assert stalled.any() and (first.iterations[stalled] < 200).all()
    llr2 = llr.copy()
    llr2[:, :300] = np.where(x[:, :300] == 1, -LLR_KNOWN, LLR_KNOWN)  # reveal half the bits
    second = decode(code, syn, llr2, max_iterations=100, state=first.state, threads=1)
    assert second.converged.all() and (second.bits == x).all()
    with pytest.raises(ValueError):
        decode(code, syn[:2], llr2[:2], state=first.state)


def test_rejects_bad_input(small_code: LdpcCode) -> None:
    llr = np.zeros(small_code.n)
    syn = np.zeros(small_code.m, dtype=np.uint8)
    with pytest.raises(ValueError):
        decode(small_code, syn, llr, algorithm="bit-flip")
    with pytest.raises(ValueError):
        decode(small_code, syn[:-1], llr)
    with pytest.raises(ValueError):
        decode(small_code, syn, llr, max_iterations=0)


def test_poly_hash_matches_galois() -> None:
    rng = np.random.default_rng(11)
    for n in (1, 63, 64, 65, 700):
        bits = rng.integers(0, 2, n, dtype=np.uint8)
        keys = rng.integers(0, 2**64, 2, dtype=np.uint64)
        assert np.array_equal(poly_hash(bits, keys), poly_hash_galois(bits, keys))
    # one flipped bit changes the tag (for this key)
    bits = rng.integers(0, 2, 1000, dtype=np.uint8)
    keys = rng.integers(1, 2**64, 1, dtype=np.uint64)
    other = bits.copy()
    other[500] ^= 1
    assert poly_hash(bits, keys)[0] != poly_hash(other, keys)[0]


def test_tag_spec_bounds() -> None:
    for frame_bits, frames, eps in [(100_000, 10, 1e-10), (10_000, 1000, 1e-15),
                                    (1_000_000, 1, 1e-30), (64, 1, 0.5)]:
        spec = tag_spec(frame_bits, frames, eps)
        assert frames * spec.eps_per_frame <= eps * (1 + 1e-9)
        assert spec.bits == 64 * (spec.words - 1) + spec.last_bits
        # one bit fewer would break the bound (the tag is as short as the analysis allows)
        L = spec.blocks
        shorter = (L / 2.0**64) ** (spec.words - 1) * L / 2.0 ** (spec.last_bits - 1)
        assert spec.last_bits == 1 or frames * shorter > eps or spec.last_bits == 64
