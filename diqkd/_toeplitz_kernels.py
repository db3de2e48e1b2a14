"""Numba kernels behind :mod:`diqkd.amplification` (private).

Three families of kernels:

* the *right-angle four-step* float64 FFT convolution (build the weighted complex input, apply the
  four-step twiddles, extract/round/check the output window);
* an exact number-theoretic transform (NTT) modulo the prime ``998244353 = 119 * 2**23 + 1``,
  used as the exact fallback;
* an exact integer checksum of the output window.

None of the kernels uses ``fastmath``: the error bound in :mod:`diqkd.amplification` assumes
IEEE-754 round-to-nearest arithmetic without re-association.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# ----------------------------------------------------------------------------------------------
# float64 four-step FFT helpers
# ----------------------------------------------------------------------------------------------

TW_SHIFT = 12  # the twiddle w^j is looked up as hi[j >> 12] * lo[j & 4095]
TW_MASK = (1 << TW_SHIFT) - 1


@njit(parallel=True, cache=True)
def build_weighted(bits, M, wr, wc, out):  # pragma: no cover - compiled
    """out[r, c] = (bits[q] + i * bits[q + M]) * wr[r] * wc[c], with q = r * C + c.

    ``bits`` beyond its length count as 0 (zero padding up to N = 2 M). Branch-free inner loops
    (random bits would defeat the branch predictor).
    """
    R, C = out.shape
    nb = bits.shape[0]
    for r in prange(R):
        w0 = wr[r]
        base = r * C
        c_re = min(max(nb - base, 0), C)  # columns with a real part bit
        c_im = min(max(nb - M - base, 0), C)  # columns with an imaginary part bit
        for c in range(c_im):
            w = w0 * wc[c]
            re = np.float64(bits[base + c])
            im = np.float64(bits[base + c + M])
            out[r, c] = complex(re * w.real - im * w.imag, re * w.imag + im * w.real)
        for c in range(c_im, c_re):
            w = w0 * wc[c]
            re = np.float64(bits[base + c])
            out[r, c] = complex(re * w.real, re * w.imag)
        for c in range(max(c_re, c_im), C):
            out[r, c] = 0.0


@njit(parallel=True, cache=True)
def twiddle(Y, M, lo, hi):  # pragma: no cover - compiled
    """Y[k1, c] *= w^(c * k1 mod M), the twiddle looked up as hi[j >> 12] * lo[j & 4095]."""
    R, C = Y.shape
    for k1 in prange(R):
        j = 0
        for c in range(C):
            Y[k1, c] *= hi[j >> TW_SHIFT] * lo[j & TW_MASK]
            j += k1
            if j >= M:
                j -= M


@njit(parallel=True, cache=True)
def multiply_inplace(A, B):  # pragma: no cover - compiled
    R, C = A.shape
    for r in prange(R):
        for c in range(C):
            A[r, c] *= B[r, c]


@njit(parallel=True, cache=True)
def extract_window(Y, M, wr, wc, k0, count, out, nchunks):  # pragma: no cover - compiled
    """Unweight, round and reduce mod 2 the window k0 .. k0 + count - 1 of the convolution.

    The convolution value at index k is Re(v_k) for k < M and Im(v_{k-M}) for k >= M, where
    v_q = Y.flat[q] * conj(wr[q // C] * wc[q % C]). Returns (max |round(x) - x|, sum of round(x))
    and writes round(x) & 1 to out.
    """
    R, C = Y.shape
    res = np.zeros(nchunks, np.float64)
    tot = np.zeros(nchunks, np.int64)
    step = (count + nchunks - 1) // nchunks
    for ch in prange(nchunks):
        a = ch * step
        b = min(count, a + step)
        rmax = 0.0
        s = np.int64(0)
        t = a
        while t < b:
            k = k0 + t
            upper = k >= M
            q = k - M if upper else k
            r = q // C
            c = q - r * C
            run = min(C - c, b - t)  # stay within one row and one half
            if not upper:
                run = min(run, M - k)
            w0 = wr[r]
            for u in range(run):
                w = w0 * wc[c + u]
                v = Y[r, c + u]
                if upper:
                    x = v.imag * w.real - v.real * w.imag
                else:
                    x = v.real * w.real + v.imag * w.imag
                rx = np.round(x)
                d = abs(x - rx)
                rmax = max(rmax, d)
                ix = np.int64(rx)
                s += ix
                out[t + u] = np.uint8(ix & 1)
            t += run
        res[ch] = rmax
        tot[ch] = s
    return res.max(), tot.sum()


@njit(cache=True, nogil=True)
def window_checksum(sw, xb, bo):  # pragma: no cover - compiled
    """Exact sum over i < bo of sum_j sw[i - j + bi - 1] * xb[j] (integer arithmetic).

    Uses a sliding window sum over ``sw``: O(len(sw)) time, O(1) memory.
    """
    bi = xb.shape[0]
    w = np.int64(0)
    for k in range(bi - 1, bi - 1 + bo):
        w += sw[k]
    total = np.int64(0)
    for j in range(bi):
        total += w * xb[j]  # branch-free: random bits defeat the branch predictor
        # window for j + 1 is [bi - 2 - j, bi - 3 - j + bo]
        if j + 1 < bi:
            w += sw[bi - 2 - j]
            w -= sw[bi - 2 - j + bo]
    return total


# ----------------------------------------------------------------------------------------------
# exact NTT modulo 998244353
# ----------------------------------------------------------------------------------------------

NTT_P = 998244353  # 119 * 2**23 + 1, primitive root 3
NTT_G = 3
NTT_MAX_LOG = 23


@njit(cache=True)
def _powmod(a, e, p):  # pragma: no cover - compiled
    r = np.int64(1)
    a = np.int64(a % p)
    while e > 0:
        if e & 1:
            r = (r * a) % p
        a = (a * a) % p
        e >>= 1
    return r


@njit(cache=True)
def _ntt(a, invert):  # pragma: no cover - compiled
    p = np.int64(NTT_P)
    n = a.shape[0]
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j ^= bit
        if i < j:
            t = a[i]
            a[i] = a[j]
            a[j] = t
    length = 2
    while length <= n:
        w = _powmod(NTT_G, (p - 1) // length, p)
        if invert:
            w = _powmod(w, p - 2, p)
        half = length // 2
        ws = np.empty(half, np.int64)
        ws[0] = 1
        for k in range(1, half):
            ws[k] = (ws[k - 1] * w) % p
        for i in range(0, n, length):
            for k in range(half):
                u = a[i + k]
                v = (a[i + k + half] * ws[k]) % p
                x = u + v
                if x >= p:
                    x -= p
                a[i + k] = x
                y = u - v
                if y < 0:
                    y += p
                a[i + k + half] = y
        length <<= 1
    if invert:
        ninv = _powmod(n, p - 2, p)
        for i in range(n):
            a[i] = (a[i] * ninv) % p


@njit(cache=True)
def ntt_valid_parity(sw, xb, bo, size):  # pragma: no cover - compiled
    """Parity of the valid window of conv(sw, xb), exactly, with a length-`size` NTT."""
    p = np.int64(NTT_P)
    a = np.zeros(size, np.int64)
    b = np.zeros(size, np.int64)
    for i in range(sw.shape[0]):
        a[i] = sw[i]
    for i in range(xb.shape[0]):
        b[i] = xb[i]
    _ntt(a, False)
    _ntt(b, False)
    for i in range(size):
        a[i] = (a[i] * b[i]) % p
    _ntt(a, True)
    bi = xb.shape[0]
    out = np.empty(bo, np.uint8)
    for t in range(bo):
        out[t] = np.uint8(a[bi - 1 + t] & 1)
    return out
