"""Toeplitz privacy amplification: agreement with the dense product, known answers, linearity,
edge cases, the exactness checks and their fallback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diqkd import amplification as amp
from diqkd.errors import ConfigError, InputError

VECTORS = Path(__file__).resolve().parents[1] / "testdata" / "toeplitz" / "vectors.json"


def _rand(rng, k):
    return rng.integers(0, 2, k, dtype=np.uint8)


def _naive(x, m, seed):
    t = amp.naive_toeplitz_matrix(x.size, m, seed).astype(np.int64)
    return ((t @ x.astype(np.int64)) % 2).astype(np.uint8)


def _naive_modified(x, m, seed):
    k = x.size - m
    head = _naive(x[:k], m, seed) if k > 0 else np.zeros(m, np.uint8)
    return head ^ x[k:]


# --------------------------------------------------------------------------- layout, seeds


def test_layout_constants_and_matrix():
    assert amp.LAYOUT == "T[i, j] = seed[(i - j) mod (n + m - 1)]"
    assert amp.LAYOUT_NAME == "randextract"
    seed = np.array([1, 0, 0, 1, 1, 0], np.uint8)  # n = 4, m = 3
    t = amp.naive_toeplitz_matrix(4, 3, seed)
    # first column = first m seed bits; first row = seed[0], seed[L-1], seed[L-2], ...
    assert t[:, 0].tolist() == [1, 0, 0]
    assert t[0].tolist() == [1, 0, 1, 1]
    assert all(t[i, j] == t[i + 1, j + 1] for i in range(2) for j in range(3))


def test_seed_length():
    assert amp.seed_length(10, 5) == 14
    assert amp.seed_length(1, 1) == 1
    assert amp.seed_length(7, 0) == 6
    assert amp.seed_length(0, 0) == 0
    assert amp.modified_seed_length(10, 5) == 9
    assert amp.modified_seed_length(10, 10) == 0  # identity, no seed (randextract convention)
    with pytest.raises(ConfigError, match="exceeds"):
        amp.seed_length(3, 4)
    with pytest.raises(ConfigError):
        amp.seed_length(-1, 0)


def test_draw_seed_sources():
    s, src = amp.draw_seed(100, 40)
    assert src == "os-csprng" and s.dtype == np.uint8 and s.size == 139
    assert set(np.unique(s)) <= {0, 1}
    a, src_a = amp.draw_seed(100, 40, seed=7)
    b, _ = amp.draw_seed(100, 40, seed=7)
    c, _ = amp.draw_seed(100, 40, seed=8)
    assert src_a == "numpy-pcg64:7"
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # documented derivation
    raw = np.random.default_rng(7).bytes(18)
    assert np.array_equal(a, np.unpackbits(np.frombuffer(raw, np.uint8))[:139])
    m, _ = amp.draw_seed(100, 40, seed=1, family="modified-toeplitz")
    assert m.size == 99
    with pytest.raises(ConfigError):
        amp.draw_seed(10, 5, seed=-1)
    with pytest.raises(ConfigError):
        amp.draw_seed(10, 5, seed=True)


def test_pack_unpack_roundtrip():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 100):
        x = _rand(rng, n)
        data = amp.pack_bits(x)
        assert data == np.packbits(x).tobytes()
        assert np.array_equal(amp.unpack_bits(data, n), x)
    with pytest.raises(ConfigError, match="packed bytes"):
        amp.unpack_bits(b"\x00\x00", 3)
    with pytest.raises(ConfigError, match="padding"):
        amp.unpack_bits(b"\x01", 3)


# --------------------------------------------------------------------------- agreement


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 400),
    frac=st.floats(0, 1),
    data_seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["auto", "fft", "ntt", "direct"]),
)
def test_agrees_with_dense_product(n, frac, data_seed, method):
    m = int(round(frac * n))
    rng = np.random.default_rng(data_seed)
    x = _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    y = amp.toeplitz_hash(x, m, seed, method=method)
    assert y.dtype == np.uint8 and y.shape == (m,)
    assert np.array_equal(y, _naive(x, m, seed))


@pytest.mark.parametrize(
    "n,m", [(1, 1), (1, 0), (2, 2), (3, 3), (17, 17), (1000, 1000), (1000, 1), (4097, 2049)]
)
@pytest.mark.parametrize("method", ["auto", "fft", "ntt", "direct", "naive"])
def test_edge_shapes(n, m, method):
    rng = np.random.default_rng(n * 7 + m)
    x = _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    assert np.array_equal(amp.toeplitz_hash(x, m, seed, method=method), _naive(x, m, seed))


def test_all_zero_and_all_one_inputs():
    n, m = 3000, 1700
    rng = np.random.default_rng(3)
    seed = _rand(rng, amp.seed_length(n, m))
    for x in (np.zeros(n, np.uint8), np.ones(n, np.uint8)):
        assert np.array_equal(amp.toeplitz_hash(x, m, seed), _naive(x, m, seed))
    ones_seed = np.ones(amp.seed_length(n, m), np.uint8)
    x = np.ones(n, np.uint8)  # largest coefficients: every output = n, parity n % 2
    assert np.array_equal(amp.toeplitz_hash(x, m, ones_seed), np.full(m, n % 2, np.uint8))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), frac=st.floats(0, 1), data_seed=st.integers(0, 2**32 - 1))
def test_blocked_paths_agree(n, frac, data_seed):
    m = int(round(frac * n))
    rng = np.random.default_rng(data_seed)
    x = _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    ref = _naive(x, m, seed)
    old = amp.MAX_FFT_LEN, amp.MAX_NTT_LEN
    try:
        amp.MAX_FFT_LEN, amp.MAX_NTT_LEN = 37, 16  # force many small blocks
        assert np.array_equal(amp.toeplitz_hash(x, m, seed, method="fft"), ref)
        assert np.array_equal(amp.toeplitz_hash(x, m, seed, method="ntt"), ref)
    finally:
        amp.MAX_FFT_LEN, amp.MAX_NTT_LEN = old


def test_medium_size_against_ntt():
    rng = np.random.default_rng(11)
    n, m = 300_000, 150_000
    x = _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    h = amp.ToeplitzHash(n, m, seed, method="fft")
    y = h(x)
    assert np.array_equal(y, amp.toeplitz_hash(x, m, seed, method="ntt"))
    d = h.describe()
    assert d["method_used"] == "fft" and d["fft_checksums_ok"] and d["exact"]
    assert d["fft_max_residual"] < 1e-3 and d["fft_error_bound"] < 1e-3
    # a few rows checked directly against the definition
    length = amp.seed_length(n, m)
    j = np.arange(n)
    for i in (0, 1, m // 2, m - 1):
        row = seed[(i - j) % length]
        assert y[i] == int(row.astype(np.int64) @ x) % 2


# --------------------------------------------------------------------------- known answers


def _hexbits(h: str, k: int) -> np.ndarray:
    return amp.unpack_bits(bytes.fromhex(h), k)


def test_known_answer_vectors():
    doc = json.loads(VECTORS.read_text())
    assert doc["layout"] == amp.LAYOUT and doc["layout_name"] == amp.LAYOUT_NAME
    assert len(doc["cases"]) >= 20
    for case in doc["cases"]:
        n, m = case["n"], case["m"]
        x = _hexbits(case["input_hex"], n)
        seed = _hexbits(case["seed_hex"], case["seed_bits"])
        want = _hexbits(case["output_hex"], m)
        if case["family"] == "toeplitz":
            for method in ("auto", "ntt", "naive"):
                assert np.array_equal(amp.toeplitz_hash(x, m, seed, method=method), want), case
            packed = amp.toeplitz_hash_packed(
                bytes.fromhex(case["input_hex"]), n, m, bytes.fromhex(case["seed_hex"])
            )
            assert packed.hex() == case["output_hex"]
        else:
            got = amp.modified_toeplitz_hash(x, m, seed)
            assert np.array_equal(got, want), case
            h = amp.ToeplitzHash(n, m, seed, family="modified-toeplitz")
            assert np.array_equal(h(x), want)


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 2000), frac=st.floats(0, 1), data_seed=st.integers(0, 2**32 - 1))
def test_linearity(n, frac, data_seed):
    m = int(round(frac * n))
    rng = np.random.default_rng(data_seed)
    x, z = _rand(rng, n), _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    h = amp.ToeplitzHash(n, m, seed)
    assert np.array_equal(h(x ^ z), h(x) ^ h(z))
    assert not h(np.zeros(n, np.uint8)).any()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), frac=st.floats(0, 1), data_seed=st.integers(0, 2**32 - 1))
def test_modified_toeplitz_matches_dense(n, frac, data_seed):
    m = int(round(frac * n))
    rng = np.random.default_rng(data_seed)
    x = _rand(rng, n)
    seed = _rand(rng, amp.modified_seed_length(n, m))
    assert np.array_equal(amp.modified_toeplitz_hash(x, m, seed), _naive_modified(x, m, seed))


def test_input_types():
    rng = np.random.default_rng(5)
    n, m = 50, 20
    x = _rand(rng, n)
    seed = _rand(rng, amp.seed_length(n, m))
    want = _naive(x, m, seed)
    for variant in (x.astype(bool), x.astype(np.int64), x.tolist(), x.astype(np.float64)):
        assert np.array_equal(amp.toeplitz_hash(variant, m, seed), want)
    packed = amp.toeplitz_hash_packed(amp.pack_bits(x), n, m, amp.pack_bits(seed))
    assert np.array_equal(amp.unpack_bits(packed, m), want)


# --------------------------------------------------------------------------- edge cases, errors


def test_m_zero_gives_empty_key():
    x = np.ones(10, np.uint8)
    y = amp.toeplitz_hash(x, 0, np.zeros(9, np.uint8))
    assert y.shape == (0,) and y.dtype == np.uint8
    assert amp.toeplitz_hash_packed(amp.pack_bits(x), 10, 0, amp.pack_bits(np.zeros(9))) == b""
    h = amp.ToeplitzHash(10, 0, np.zeros(9, np.uint8))
    assert h(x).size == 0 and h.describe()["m"] == 0
    assert amp.toeplitz_hash(np.zeros(0, np.uint8), 0, np.zeros(0, np.uint8)).size == 0


def test_invalid_inputs():
    x = np.ones(10, np.uint8)
    with pytest.raises(ConfigError, match="exceeds"):
        amp.toeplitz_hash(x, 11, np.zeros(20, np.uint8))
    with pytest.raises(ConfigError, match="needs 14 seed bits, got 13"):
        amp.toeplitz_hash(x, 5, np.zeros(13, np.uint8))
    with pytest.raises(ConfigError, match="m must be >= 0"):
        amp.toeplitz_hash(x, -1, np.zeros(8, np.uint8))
    with pytest.raises(ConfigError, match="unknown method"):
        amp.toeplitz_hash(x, 5, np.zeros(14, np.uint8), method="fast")
    bad = x.copy()
    bad[3] = 2
    with pytest.raises(InputError, match="only 0/1") as ei:
        amp.toeplitz_hash(bad, 5, np.zeros(14, np.uint8))
    assert ei.value.row == 3 and ei.value.value == 2
    with pytest.raises(ValueError, match="only 0/1"):
        amp.toeplitz_hash(x.astype(np.int64) - 2, 5, np.zeros(14, np.uint8))
    with pytest.raises(InputError, match="seed_bits"):
        amp.toeplitz_hash(x, 5, np.full(14, 3, np.uint8))
    with pytest.raises(InputError, match="packed bytes"):
        amp.toeplitz_hash(b"\xff\xc0", 5, np.zeros(14, np.uint8))
    with pytest.raises(InputError, match="1-D"):
        amp.toeplitz_hash(x.reshape(2, 5), 5, np.zeros(14, np.uint8))
    with pytest.raises(ConfigError, match="naive"):
        amp.toeplitz_hash(np.zeros(10_000, np.uint8), 10_000, np.zeros(19_999), method="naive")
    with pytest.raises(ConfigError, match="n=10"):
        amp.ToeplitzHash(10, 5, np.zeros(14, np.uint8))(np.zeros(9, np.uint8))
    with pytest.raises(ConfigError, match="unknown family"):
        amp.ToeplitzHash(10, 5, np.zeros(14, np.uint8), family="toeplitz2")


# --------------------------------------------------------------------------- exactness checks


def _case(n=3000, m=1500, s=1):  # m * n > DIRECT_MAX_ENTRIES: "auto" takes the FFT path
    rng = np.random.default_rng(s)
    return _rand(rng, n), m, _rand(rng, amp.seed_length(n, m))


def test_describe_report_fields():
    x, m, seed = _case()
    h = amp.ToeplitzHash(x.size, m, seed)
    assert h.describe()["exactness"] == "not yet called"
    h(x)
    d = h.describe()
    assert d["layout"] == "randextract" and d["layout_formula"] == amp.LAYOUT
    assert d["n"] == x.size and d["m"] == m and d["seed_length"] == seed.size
    assert d["seed_sha256"] == hashlib.sha256(np.packbits(seed).tobytes()).hexdigest()
    assert d["method"] == "auto" and d["method_used"] == "fft" and d["fallback_blocks"] == 0
    assert d["exact"] is True
    json.dumps(d)  # report-ready


def test_auto_uses_direct_for_small_inputs():
    x, m, seed = _case(n=200, m=100)
    h = amp.ToeplitzHash(x.size, m, seed)
    assert np.array_equal(h(x), _naive(x, m, seed))
    d = h.describe()
    assert d["method_used"] == "direct" and d["direct_blocks"] == 1 and d["exact"] is True


def test_residual_check_trips_and_falls_back(monkeypatch):
    x, m, seed = _case()
    want = _naive(x, m, seed)
    monkeypatch.setattr(amp, "RESIDUAL_LIMIT", 0.0)  # no residual passes "< 0"
    h = amp.ToeplitzHash(x.size, m, seed)
    assert np.array_equal(h(x), want)
    d = h.describe()
    assert d["fallback_blocks"] == 1 and d["method_used"] == "ntt" and d["exact"] is True
    assert "residual" in d["fft_failures"][0]
    with pytest.raises(amp.ExactnessError, match="residual"):
        amp.toeplitz_hash(x, m, seed, method="fft")


def test_bound_check_trips_and_falls_back(monkeypatch):
    x, m, seed = _case()
    monkeypatch.setattr(amp, "BOUND_LIMIT", 1e-30)
    h = amp.ToeplitzHash(x.size, m, seed)
    assert np.array_equal(h(x), _naive(x, m, seed))
    assert "a-priori bound" in h.describe()["fft_failures"][0]
    with pytest.raises(amp.ExactnessError, match="bound"):
        amp.toeplitz_hash(x, m, seed, method="fft")


def test_injected_rounding_error_is_caught(monkeypatch):
    """Perturb one output coefficient by exactly 1 after the FFT: the residual stays tiny, only
    the exact checksum can see it; the fallback must repair the key."""
    x, m, seed = _case()
    real = amp._fft_block

    def corrupted(sw, xb, bo, plan):
        out, resid, total = real(sw, xb, bo, plan)
        out = out.copy()
        out[bo // 2] ^= 1
        return out, resid, total + 1

    monkeypatch.setattr(amp, "_fft_block", corrupted)
    h = amp.ToeplitzHash(x.size, m, seed)
    assert np.array_equal(h(x), _naive(x, m, seed))
    d = h.describe()
    assert d["fallback_blocks"] == 1 and not d["fft_checksums_ok"] and d["exact"] is True
    assert "checksum" in d["fft_failures"][0]


def test_percival_bound_values():
    # the accepted block sizes are far inside the bound: n = 1e8, L = 1.5e8 in one block
    assert amp._percival_bound(2**27, 10**8, 15 * 10**7) < 1e-3
    assert amp._percival_bound(amp.MAX_FFT_LEN // 2, amp.MAX_FFT_LEN, amp.MAX_FFT_LEN) < 1e-3
    assert amp._percival_bound(2**10, 1, 1) > 0


@pytest.mark.parametrize(
    "n,m,maxlen", [(10, 5, 4), (100, 100, 37), (7, 1, 2), (1, 1, 1), (50, 3, 60)]
)
def test_blocks_tile_the_matrix_within_the_length_limit(n, m, maxlen):
    seen = np.zeros((m, n), np.int64)
    for o0, bo, j0, bi in amp._blocks(n, m, maxlen):
        assert bo >= 1 and bi >= 1 and bo + bi - 1 <= max(maxlen, 1)
        seen[o0 : o0 + bo, j0 : j0 + bi] += 1
    assert (seen == 1).all()
