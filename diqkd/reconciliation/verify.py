"""Verification of reconciled frames: polynomial hashing over GF(2^64).

A frame of ``n`` bits is packed MSB-first into ``L = ceil(n / 64)`` 64-bit blocks ``b_1 .. b_L``
(the last one zero-padded) and hashed with a public key ``k`` drawn uniformly from GF(2^64):

    h_k(b) = sum_{i=1}^{L} b_i k^{L - i + 1}      (Horner: ((b_1 k + b_2) k + ... + b_L) k)

For two different frames of the same length, ``h_k(x) - h_k(y)`` is a non-zero polynomial in ``k``
of degree <= L with no constant term, so for every fixed ``c``: ``Pr_k[h_k(x) - h_k(y) = c] <= L /
2^64`` (the family is L/2^64-almost-XOR-universal). Keeping only the top ``t`` bits of the tag
therefore gives a collision probability ``<= 2^(64 - t) L / 2^64 = L / 2^t``. With ``w``
independent keys (``w`` words) the bound is the product over the words.

The field is galois' default GF(2^64) (irreducible polynomial
``x^64 + x^33 + x^30 + x^26 + x^25 + x^24 + x^23 + x^22 + x^21 + x^20 + x^18 + x^13 + x^12 +
x^11 + x^10 + x^7 + x^5 + x^4 + x^2 + x + 1``). Multiplication is done here by a numba
shift-and-add loop, ~100x faster than galois' object arrays; the tests check every tag against
``galois.GF(2**64)`` and :func:`poly_hash_galois` does the same computation with galois.

The hash key must be independent of both strings: Alice draws it after the raw data exist and
sends it in the clear (a public message that leaks nothing). Bob's decoded frame does not depend on
the key, so the bound applies to it.

Two levels (reconciliation protocol v3). A per-frame tag only has to *locate* the frames to
discard; the correctness guarantee eps_cor is carried by one final tag over the whole output.

* Locator tags (:func:`locator_spec`): ``ceil(log2 L) + margin`` bits per frame, so a wrong
  codeword passes its frame's comparison with probability ``<= 2^-margin``, whatever the number
  of frames or eps_cor.
* Final tag (:func:`tag_spec` with ``frames = 1``): once every frame is decided, Alice draws a
  fresh key (independent of everything Bob holds by then) and tags the concatenation of the
  released frames; Bob releases them only if his concatenation has the same tag. The
  probability that a released string differs from Alice's and passes is ``<= L_total / 2^t
  <= eps_cor``, so the bound holds with one tag instead of a union over F frames.

Frames of 90,000 bits, F = 100, eps_cor = 1e-10: 51 tag bits per frame (5,100 bits) before, 27
per frame plus one 51-bit final tag (2,751 bits) now; at 9,900 bits and F = 1,000, 51 -> 24 bits
per frame. A final mismatch (a wrong codeword that passed its locator, probability <= 2^-16
per wrong codeword) fails every frame of the run: the price of the shorter tags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = [
    "IRREDUCIBLE_LOW",
    "LOCATOR_MARGIN_BITS",
    "TagSpec",
    "blocks_of",
    "locator_spec",
    "poly_hash",
    "poly_hash_galois",
    "tag_spec",
]

#: The low 64 bits of the irreducible polynomial (x^64 term implicit).
IRREDUCIBLE_LOW = (
    (1 << 33) | (1 << 30) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 23) | (1 << 22) | (1 << 21)
    | (1 << 20) | (1 << 18) | (1 << 13) | (1 << 12) | (1 << 11) | (1 << 10) | (1 << 7) | (1 << 5)
    | (1 << 4) | (1 << 2) | (1 << 1) | 1
)


@njit(cache=True, nogil=True)
def _gf_mul(a, b, low):
    """a * b in GF(2^64) = GF(2)[x] / (x^64 + low); all uint64."""
    r = np.uint64(0)
    one = np.uint64(1)
    for i in range(63, -1, -1):
        top = (r >> np.uint64(63)) & one
        r = r << one
        if top:
            r ^= low
        if (b >> np.uint64(i)) & one:
            r ^= a
    return r


@njit(cache=True, nogil=True)
def _horner(blocks, key, low):
    acc = np.uint64(0)
    for i in range(blocks.shape[0]):
        acc = _gf_mul(acc ^ blocks[i], key, low)
    return acc


def blocks_of(bits: np.ndarray) -> np.ndarray:
    """Pack 0/1 bits MSB-first into big-endian 64-bit blocks (uint64), zero-padded."""
    bits = np.asarray(bits, dtype=np.uint8)
    nblk = max(1, -(-bits.shape[0] // 64))
    padded = np.zeros(nblk * 64, dtype=np.uint8)
    padded[: bits.shape[0]] = bits
    return np.packbits(padded).view(">u8").astype(np.uint64)


def poly_hash(bits: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Full 64-bit tags of ``bits``, one per key (uint64 array of the keys' shape)."""
    blk = blocks_of(bits)
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    low = np.uint64(IRREDUCIBLE_LOW)
    return np.array([_horner(blk, k, low) for k in keys], dtype=np.uint64)


def poly_hash_galois(bits: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The same tags computed with ``galois.GF(2**64)`` (slow; a cross-check for tests)."""
    import galois

    GF = galois.GF(2**64)
    blk = blocks_of(bits)
    out = []
    for k in np.asarray(keys, dtype=np.uint64).reshape(-1):
        # h = sum b_i k^(L-i+1) = k * Poly(b)(k) with b_1 the highest-degree coefficient
        coeffs = GF([int(b) for b in blk])
        val = galois.Poly(coeffs)(GF(int(k))) * GF(int(k))
        out.append(int(val))
    return np.array(out, dtype=np.uint64)


@dataclass(frozen=True)
class TagSpec:
    """How a frame is tagged: ``words`` keys, the last word truncated to ``last_bits``.

    bits
        Tag length in bits (leakage per frame).
    eps_per_frame
        Collision probability bound for one frame: ``prod_w (L / 2^bits_w)``.
    """

    words: int
    last_bits: int
    bits: int
    blocks: int
    eps_per_frame: float

    def truncate(self, tags: np.ndarray) -> np.ndarray:
        """Keep the top ``last_bits`` of the last word (the others are kept whole)."""
        tags = np.array(tags, dtype=np.uint64)
        if self.last_bits < 64:
            tags[-1] = tags[-1] >> np.uint64(64 - self.last_bits)
        return tags


#: bits of a locator tag beyond log2(blocks): a wrong codeword passes with probability <= 2^-16
LOCATOR_MARGIN_BITS = 16


def locator_spec(frame_bits: int, margin_bits: int = LOCATOR_MARGIN_BITS) -> TagSpec:
    """A one-word per-frame tag whose collision probability is at most ``2^-margin_bits``.

    It locates wrong frames (probability <= ``eps_per_frame`` that a given wrong frame passes);
    it carries no part of eps_cor, which the final tag over the whole output bounds (module
    docstring).
    """
    if not 1 <= int(margin_bits) <= 48:
        raise ValueError("margin_bits must be in [1, 48]")
    L = max(1, -(-int(frame_bits) // 64))
    last_bits = min(64, math.ceil(math.log2(L)) + int(margin_bits))
    return TagSpec(words=1, last_bits=last_bits, bits=last_bits, blocks=L,
                   eps_per_frame=min(1.0, L / 2.0**last_bits))


def tag_spec(frame_bits: int, frames: int, eps_cor: float) -> TagSpec:
    """The shortest tag with ``frames * eps_per_frame <= eps_cor`` (union bound over frames).

    Each frame is compared at most once, so the union over frames bounds the probability that
    any released frame differs from Alice's.
    """
    if not 0.0 < eps_cor < 1.0:
        raise ValueError("eps_cor must be in (0, 1)")
    L = max(1, -(-int(frame_bits) // 64))
    need = math.log2(max(1, frames) / eps_cor)  # -log2 of the per-frame collision probability
    per_word = 64.0 - math.log2(L)  # security bits of one full word
    if per_word <= 0:
        raise ValueError("frame too long for GF(2^64) polynomial hashing")
    words = max(1, math.ceil(need / per_word))
    rest = need - (words - 1) * per_word
    last_bits = min(64, max(1, math.ceil(rest + math.log2(L))))
    bits = 64 * (words - 1) + last_bits
    eps = (L / 2.0**64) ** (words - 1) * min(1.0, L / 2.0**last_bits)
    return TagSpec(words=words, last_bits=last_bits, bits=bits, blocks=L, eps_per_frame=eps)
