"""The layered BP decoder (SIMD and scalar kernels) against a slow reference and each other, and
the verification hash against galois."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd.reconciliation import LdpcCode, decode, llr_from_error_prob
from diqkd.reconciliation import _simd_kernels as _simd
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


@pytest.mark.parametrize("kernel", ["simd", "scalar"])
@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_agrees_with_reference(small_code: LdpcCode, algorithm: str, kernel: str) -> None:
    code = small_code
    x, llr, syn = _frames(code, 0.07, 12, seed=3)
    # punctured and shortened positions as the protocol uses them
    llr[:, :3] = 0.0
    llr[:, 3:5] = np.where(x[:, 3:5] == 1, -LLR_KNOWN, LLR_KNOWN)
    H = code.to_dense()
    for iters in (1, 2, 6):
        res = decode(code, syn, llr, algorithm=algorithm, max_iterations=iters, threads=1,
                     return_llr=True, kernel=kernel)
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


@pytest.mark.parametrize("kernel", ["simd", "scalar"])
@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_warm_start_continues_exactly(small_code: LdpcCode, algorithm: str, kernel: str) -> None:
    """With unchanged priors, 3 + 3 iterations from a kept state are 6 layered iterations."""
    code = small_code
    x, llr, syn = _frames(code, 0.12, 8, seed=11)
    llr[:, :3] = 0.0
    six = decode(code, syn, llr, algorithm=algorithm, max_iterations=6, threads=1,
                 return_llr=True, kernel=kernel)
    a = decode(code, syn, llr, algorithm=algorithm, max_iterations=3, threads=1,
               keep_state=True, kernel=kernel)
    assert a.state is not None and a.state.R.shape == (8, code.edges)
    b = decode(code, syn, llr, algorithm=algorithm, max_iterations=3, threads=1,
               return_llr=True, state=a.state, kernel=kernel)
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


@pytest.fixture(scope="module")
def medium_code() -> LdpcCode:
    return random_code(2000, 1000, 3, seed=1)


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_simd_matches_scalar(medium_code: LdpcCode, algorithm: str) -> None:
    """Same frames, both kernels: same decisions, iterations and convergence; min-sum messages
    are bit-identical (no transcendental), sum-product posteriors agree to ~1e-2."""
    code = medium_code
    for q, seed in ((0.04, 5), (0.06, 6)):
        x, llr, syn = _frames(code, q, 13, seed=seed)  # 13: one full group of 8 and a partial
        llr[:, :40] = 0.0  # punctured
        a = decode(code, syn, llr, algorithm=algorithm, kernel="scalar", threads=1,
                   return_llr=True)
        b = decode(code, syn, llr, algorithm=algorithm, kernel="simd", threads=1,
                   return_llr=True)
        assert a.converged.all() and b.converged.all()
        assert np.array_equal(a.bits, b.bits) and (b.bits == x).all()
        assert np.array_equal(a.iterations, b.iterations)
        assert a.llr is not None and b.llr is not None
        if algorithm == "min-sum":
            assert np.array_equal(a.llr, b.llr)
        else:
            np.testing.assert_allclose(np.clip(b.llr, -8, 8), np.clip(a.llr, -8, 8), atol=1e-2)


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_simd_patience_and_stalls_match_scalar(medium_code: LdpcCode, algorithm: str) -> None:
    """Per-frame patience (0 = run to max_iterations) stops the same frames at the same
    iteration in both kernels, near and beyond the decoding threshold."""
    code = medium_code
    pat = np.array([0, 2, 3, 4, 5, 2, 3, 4, 8])
    for q in (0.09, 0.11):
        x, llr, syn = _frames(code, q, 9, seed=2)
        a = decode(code, syn, llr, algorithm=algorithm, kernel="scalar", threads=1,
                   patience=pat, max_iterations=40)
        b = decode(code, syn, llr, algorithm=algorithm, kernel="simd", threads=1,
                   patience=pat, max_iterations=40)
        assert np.array_equal(a.iterations, b.iterations)
        assert np.array_equal(a.converged, b.converged)
        assert (b.iterations[1:] < 40).all()  # the patient frames stopped early


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_simd_lanes_are_independent(medium_code: LdpcCode, algorithm: str) -> None:
    """A frame's result does not depend on its batch, lane or thread count: every frame of odd
    batches (1, 3, 9, 17 frames; lanes refilled and masked) equals its decoding alone, bit for
    bit (bits, posteriors, state, iterations), with threads=1 and threads=2. In particular a
    frame that converged early is unchanged by the sweeps its lane-mates still run."""
    code = medium_code
    x, llr, syn = _frames(code, 0.075, 17, seed=9)
    llr[:, :30] = 0.0
    pat = np.where(np.arange(17) % 3 == 0, 0, 3)
    kw = dict(algorithm=algorithm, max_iterations=25, return_llr=True, keep_state=True)
    alone = [decode(code, syn[f], llr[f], patience=int(pat[f]), threads=1, **kw)  # type: ignore[arg-type]
             for f in range(17)]
    its = np.array([r.iterations[0] for r in alone])
    assert len(set(its.tolist())) > 3  # frames finish at different iterations
    assert any(r.converged[0] for r in alone) and not all(r.converged[0] for r in alone)
    for F in (1, 3, 9, 17):
        for threads in (1, 2):
            res = decode(code, syn[:F], llr[:F], patience=pat[:F], threads=threads,
                         **kw)  # type: ignore[arg-type]
            assert res.state is not None and res.llr is not None
            for f in range(F):
                r = alone[f]
                assert r.state is not None and r.llr is not None
                assert res.iterations[f] == r.iterations[0]
                assert res.converged[f] == r.converged[0]
                assert np.array_equal(res.bits[f], r.bits)
                assert np.array_equal(res.llr[f], r.llr)
                assert np.array_equal(res.state.R[f], r.state.R[0])


@pytest.mark.parametrize("algorithm", ["sum-product", "min-sum"])
def test_simd_prefetch_changes_no_result(medium_code: LdpcCode, algorithm: str) -> None:
    """Prefetching the posteriors of a later check is a cache hint only: with 0 (off), 1 (the
    default), 2 and more checks ahead than the code has, every frame gets the same bits,
    posteriors, state and iterations bit for bit, converged or not."""
    code = medium_code
    x, llr, syn = _frames(code, 0.08, 11, seed=13)
    llr[:, :25] = 0.0
    kw = dict(algorithm=algorithm, max_iterations=30, return_llr=True, keep_state=True,
              threads=2)
    ref = decode(code, syn, llr, prefetch=0, **kw)  # type: ignore[arg-type]
    assert ref.converged.any() and not ref.converged.all()
    for ahead in (1, 2, code.m + 5):
        res = decode(code, syn, llr, prefetch=ahead, **kw)  # type: ignore[arg-type]
        assert res.state is not None and ref.state is not None
        assert np.array_equal(res.iterations, ref.iterations)
        assert np.array_equal(res.converged, ref.converged)
        assert np.array_equal(res.bits, ref.bits)
        assert np.array_equal(res.llr, ref.llr)
        assert np.array_equal(res.state.R, ref.state.R)
    with pytest.raises(ValueError, match="prefetch"):
        decode(code, syn, llr, prefetch=-1)


def test_simd_already_decoded_frames_in_a_batch(medium_code: LdpcCode) -> None:
    """Frames whose priors already satisfy the syndrome end with 0 iterations and a zero R
    state, exactly as in the scalar kernel, whatever lanes they share with others."""
    code = medium_code
    x, llr, syn = _frames(code, 0.05, 10, seed=4)
    clean = np.array([1, 4, 5, 9])
    llr[clean] = np.where(x[clean] == 1, -5.0, 5.0)
    for kernel in ("simd", "scalar"):
        res = decode(code, syn, llr, keep_state=True, return_llr=True, kernel=kernel, threads=1)
        assert res.state is not None and res.llr is not None
        assert (res.iterations[clean] == 0).all() and res.converged.all()
        assert (res.iterations[np.setdiff1d(np.arange(10), clean)] > 0).all()
        assert not res.state.R[clean].any()
        np.testing.assert_array_equal(res.llr[clean], llr[clean].astype(np.float32))
        assert (res.bits == x).all()


def test_simd_warm_start_matches_scalar(medium_code: LdpcCode) -> None:
    """Blind-mode continuation (reveal, then continue from the kept state) in both kernels."""
    code = medium_code
    x, llr, syn = _frames(code, 0.1, 11, seed=8)
    out = {}
    for kernel in ("simd", "scalar"):
        first = decode(code, syn, llr, max_iterations=60, patience=4, keep_state=True,
                       kernel=kernel, threads=2)
        assert first.state is not None
        llr2 = llr.copy()
        llr2[:, :500] = np.where(x[:, :500] == 1, -LLR_KNOWN, LLR_KNOWN)
        second = decode(code, syn, llr2, max_iterations=60, state=first.state, kernel=kernel,
                        threads=2, keep_state=True)
        out[kernel] = (first, second)
    (f_simd, s_simd), (f_sc, s_sc) = out["simd"], out["scalar"]
    assert np.array_equal(f_simd.iterations, f_sc.iterations)
    assert np.array_equal(f_simd.converged, f_sc.converged)
    assert (~f_simd.converged).any()
    assert s_simd.converged.all() and s_sc.converged.all()
    assert np.array_equal(s_simd.bits, s_sc.bits) and (s_simd.bits == x).all()
    assert np.array_equal(s_simd.iterations, s_sc.iterations)


def test_simd_approximation_error_bounds() -> None:
    """The kernel's vectorised expm1 and log (the exact code the decoder runs) against float64:
    relative error of 1 - e^-a and 1 + e^-a, and absolute error of log over the clamp range."""
    a = np.concatenate([np.linspace(0.0, 18.0, 400_000), np.geomspace(1e-30, 1.0, 100_000)])
    a = a.astype(np.float32)
    u = _simd.apply_expm1_neg(a).astype(np.float64)
    ref = np.expm1(-a.astype(np.float64))
    nz = ref != 0
    assert u[~nz].tolist() == [0.0] * int((~nz).sum())  # a = 0 gives exactly 0 (zero factor)
    g_rel = np.abs(-u[nz] / -ref[nz] - 1)  # g = 1 - e^-a
    d_rel = np.abs((2 + u) / (2 + ref) - 1)  # d = 1 + e^-a
    assert g_rel.max() < 4e-7 and d_rel.max() < 2e-7
    pcl = np.float32(1.0 - 2.0**-23)
    qmax = float((1 + pcl) / (1 - pcl))
    q = np.geomspace(1 / qmax, qmax, 400_000).astype(np.float32)
    q = np.concatenate([q, np.float32(1.0) + np.arange(-4000, 4000, dtype=np.float32) * 2**-23])
    q = q[: q.size // 8 * 8]
    lg = _simd.apply_log(q).astype(np.float64)
    err = np.abs(lg - np.log(q.astype(np.float64)))
    assert err.max() < 1.2e-6  # half an ulp of float32 at |R| ~ 16.6 is 9.5e-7
    small = np.abs(np.log(q.astype(np.float64))) < 1
    assert err[small].max() < 2e-7


def test_kernel_switch(small_code: LdpcCode) -> None:
    llr = np.zeros(small_code.n)
    syn = np.zeros(small_code.m, dtype=np.uint8)
    with pytest.raises(ValueError):
        decode(small_code, syn, llr, kernel="avx512")
    empty = decode(small_code, syn[None, :0].repeat(0, 0).reshape(0, small_code.m),
                   llr[None].repeat(0, 0))
    assert empty.bits.shape == (0, small_code.n)


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


def test_clip_llr_equals_the_numpy_form():
    """The one-pass clip is bit-identical to nan_to_num(clip(...)), incl. NaN, inf and -0.0."""
    from diqkd.reconciliation.decoder import LLR_KNOWN, _clip_llr

    x = np.array([[np.nan, np.inf, -np.inf, 1e5, -1e5, 3.5, -0.0, 0.0, 999.9, -LLR_KNOWN,
                   np.nextafter(LLR_KNOWN, np.inf)]])
    r = np.random.default_rng(0).normal(0.0, 600.0, (5, 1001))
    for a in (x, r):
        want = np.nan_to_num(np.clip(a, -LLR_KNOWN, LLR_KNOWN))
        got = _clip_llr(a)
        assert got.tobytes() == want.tobytes()
        assert got is not a


def test_high_check_degree_uses_a_kernel_that_works():
    """A check of degree 140 with weak priors overflows the SIMD kernel's float32 product of
    (1 + e^-|t|) (NaN messages: frames 0 and 2 below fail with it), so decode() hands such codes
    to the scalar kernel. Bit 0 has a wrong weak prior that check 1 (with a strong bit) fixes."""
    from diqkd.reconciliation.decoder import SIMD_SP_MAX_DEGREE

    n = 141
    rows = np.array([0] * 140 + [1, 1], dtype=np.int64)
    cols = np.array(list(range(140)) + [0, 140], dtype=np.int64)
    code = LdpcCode.from_edges(n, 2, rows, cols, name="test-deg140")
    assert int(code.check_degrees.max()) > SIMD_SP_MAX_DEGREE
    x = np.random.default_rng(1).integers(0, 2, (3, n), dtype=np.uint8)
    syn = np.stack([code.syndrome(v) for v in x])
    llr = np.where(x == 1, -0.01, 0.01)
    llr[:, 140] = np.where(x[:, 140] == 1, -8.0, 8.0)
    llr[:, 0] = -llr[:, 0]
    fast = decode(code, syn, llr, max_iterations=5, return_llr=True)
    slow = decode(code, syn, llr, max_iterations=5, return_llr=True, kernel="scalar")
    assert fast.converged.all() and np.array_equal(fast.bits, x)
    assert np.array_equal(fast.bits, slow.bits) and np.array_equal(fast.llr, slow.llr)
