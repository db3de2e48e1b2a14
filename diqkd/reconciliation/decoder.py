"""Layered belief-propagation decoding of LDPC syndromes (numba-compiled, frames in parallel).

The decoder estimates a bit string ``x`` (Alice's frame) from

* the syndrome ``s = H x mod 2`` that Alice sent, and
* per-bit prior log-likelihood ratios ``llr[i] = log P(x_i = 0) / P(x_i = 1)`` computed by Bob from
  his own bits and the per-bit error probabilities (:func:`llr_from_error_prob`).

Punctured bits (unknown to Bob) have prior LLR 0; shortened or revealed bits (known to Bob) have a
large prior LLR of the known sign (:data:`LLR_KNOWN`).

Check equation ``c``: ``sum_{v in c} x_v = s_c (mod 2)``. Compared with ordinary decoding of a
codeword, the only change is that the check-to-variable message changes sign when ``s_c = 1``.

Schedule: layered (row by row, "turbo decoding message passing"). For each check c in turn, the
variable-to-check inputs ``t_v = L_v - R_cv`` are formed from the running posteriors L, the check
messages ``R_cv`` are recomputed and the posteriors updated at once ``L_v = t_v + R_cv``. This
converges in about half the iterations of the flooding schedule. After every iteration the hard
decision is tested against the syndrome; decoding stops at the first match (early stopping).

Check-node rules:

* ``"sum-product"``: ``R_cv = (-1)^{s_c} 2 atanh( prod_{u != v} tanh(t_u / 2) )``;
* ``"min-sum"``: ``R_cv = (-1)^{s_c} prod_{u != v} sgn(t_u) * max(alpha min_{u != v} |t_u| - beta,
  0)`` (normalised min-sum for ``beta = 0``, offset min-sum for ``alpha = 1``).

A frame is reported ``converged`` only if the returned hard decision satisfies the syndrome
exactly; a non-converged frame's bits are meaningless and the protocol never uses them.

Kernels (``decode(..., kernel=...)``): ``"simd"`` (default, :mod:`._simd_kernels`) decodes 8
frames at once per thread, their messages interleaved so that every operation is one AVX2
instruction for 8 frames, with vectorised exp/log approximations (errors bounded and tested:
<= 3.2e-7 relative for tanh(t/2), <= 1.9 ulp for the log); a finished frame leaves its lane at
the end of the sweep in which it finished and the next frame of the batch takes the lane.
``"scalar"`` is the previous one-frame-per-thread kernel with libm exp/log, kept for comparison.
Both run the same schedule with the same stopping rules; min-sum results are bit-identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from . import _simd_kernels as _simd
from .code import LdpcCode

__all__ = [
    "ALGORITHMS",
    "KERNELS",
    "LLR_KNOWN",
    "SIMD_SP_MAX_DEGREE",
    "DecodeResult",
    "DecoderState",
    "decode",
    "llr_from_error_prob",
    "reference_decode",
]

ALGORITHMS = ("sum-product", "min-sum")
KERNELS = ("simd", "scalar")
#: Largest check degree the SIMD sum-product kernel takes. It forms prod (1 + e^-|t|) over a
#: check's edges in float32, and each factor is up to 2, so above ~127 edges the product can
#: overflow to inf and the messages become NaN. The library's codes have check degree <= ~100
#: (rate 0.95); a code with a larger check degree is decoded by the scalar kernel instead.
SIMD_SP_MAX_DEGREE = 120
#: Prior LLR magnitude of a bit whose value Bob knows (shortened / revealed positions).
LLR_KNOWN = 1000.0
# Messages are float32 (single-precision exp/log are ~30 % faster and halve memory traffic).
_T_CLAMP = 18.0  # |t| beyond which tanh(t/2) rounds to 1 in float32
_P_CLAMP = 1.0 - 2.0**-23  # keeps atanh finite: 2 atanh(1 - 2^-23) ~ 16.6
_ALG_CODE = {"sum-product": 0, "min-sum": 1}


@dataclass(frozen=True)
class DecodeResult:
    """Output of :func:`decode` for a batch of frames.

    bits
        (frames, n) uint8 hard decisions; only rows with ``converged`` True are meaningful.
    converged
        (frames,) bool: the hard decision satisfies the syndrome.
    iterations
        (frames,) int32: iterations run (layered sweeps over all checks).
    llr
        Final posterior LLRs, only with ``decode(..., return_llr=True)``.
    """

    bits: np.ndarray
    converged: np.ndarray
    iterations: np.ndarray
    llr: np.ndarray | None = None
    state: DecoderState | None = None


@dataclass
class DecoderState:
    """BP state of a batch of frames, to continue decoding after the priors change (blind mode).

    prior
        (frames, n) float64: the (clipped) prior LLRs the state was computed with.
    L
        (frames, n) float32: posterior LLRs (prior + sum of the check messages).
    R
        (frames, E) float32: check-to-variable messages in the code's check-ordered edge layout.

    ``decode(..., state=s)`` continues from ``s`` with new priors: ``L += new prior - s.prior``
    (layered BP keeps ``L_v = prior_v + sum_c R_cv``), so revealing a punctured bit just pins its
    posterior instead of discarding every message (Martinez-Mateo et al., QIC 12, 791 (2012)).
    """

    prior: np.ndarray
    L: np.ndarray
    R: np.ndarray

    def frame(self, j: int) -> DecoderState:
        """The state of frame ``j`` alone (copies, so the batch arrays can be freed)."""
        return DecoderState(self.prior[j:j + 1].copy(), self.L[j:j + 1].copy(),
                            self.R[j:j + 1].copy())

    @staticmethod
    def stack(states: list[DecoderState]) -> DecoderState:
        return DecoderState(np.concatenate([s.prior for s in states]),
                            np.concatenate([s.L for s in states]),
                            np.concatenate([s.R for s in states]))

    @property
    def nbytes(self) -> int:
        return int(self.prior.nbytes + self.L.nbytes + self.R.nbytes)


def llr_from_error_prob(bob_bits: np.ndarray, error_prob: np.ndarray) -> np.ndarray:
    """Prior LLRs of Alice's bits given Bob's bits and per-bit error probabilities.

    ``llr_i = (1 - 2 b_i) log((1 - p_i) / p_i)``; probabilities are clipped to [1e-12, 0.5]
    (p > 0.5 means Bob should flip his bit first: callers pass p <= 0.5).
    """
    p = np.clip(np.asarray(error_prob, dtype=np.float64), 1e-12, 0.5)
    mag = np.log1p(-p) - np.log(p)
    sign = 1.0 - 2.0 * np.asarray(bob_bits, dtype=np.float64)
    return sign * mag


# --------------------------------------------------------------------------------------------
# compiled kernels
# --------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _clip_llr(llr):
    """``nan_to_num(clip(llr, -LLR_KNOWN, LLR_KNOWN))`` in one pass and one new array (the numpy
    form makes two (frames, n) float64 temporaries plus the inf/NaN scans)."""
    out = np.empty_like(llr)
    a = llr.ravel()
    b = out.ravel()
    for i in range(a.shape[0]):
        x = a[i]
        if x != x:
            b[i] = 0.0
        elif x > LLR_KNOWN:
            b[i] = LLR_KNOWN
        elif x < -LLR_KNOWN:
            b[i] = -LLR_KNOWN
        else:
            b[i] = x
    return out


@njit(cache=True, nogil=True)
def _syndrome_ok(check_ptr, check_idx, L, synd):
    m = check_ptr.shape[0] - 1
    for c in range(m):
        par = synd[c]
        for e in range(check_ptr[c], check_ptr[c + 1]):
            if L[check_idx[e]] < 0.0:
                par ^= 1
        if par != 0:
            return False
    return True


@njit(cache=True, nogil=True)
def _decode_frame(check_ptr, check_idx, llr0, synd, max_iter, alg, alpha, beta, max_deg, out,
                  L, R, warm, patience):
    """Decode one frame in place; returns iterations (negative if not converged).

    ``L`` (n) and ``R`` (E) float32 are the posterior and check-message buffers: initialised from
    ``llr0`` and 0 unless ``warm`` (then they hold a previous state, already shifted to the new
    priors by the caller) and left holding the final state.
    """
    n = llr0.shape[0]
    m = check_ptr.shape[0] - 1
    if not warm:
        for i in range(n):
            L[i] = np.float32(llr0[i])
        R[:] = 0.0
    t = np.empty(max_deg, dtype=np.float32)
    th = np.empty(max_deg, dtype=np.float32)
    one = np.float32(1.0)
    two = np.float32(2.0)
    zero = np.float32(0.0)
    tcl = np.float32(_T_CLAMP)
    pcl = np.float32(_P_CLAMP)
    alpha = np.float32(alpha)
    beta = np.float32(beta)
    if _syndrome_ok(check_ptr, check_idx, L, synd):
        for i in range(n):
            out[i] = 1 if L[i] < 0.0 else 0
        return 0
    it = 0
    ok = False
    best = m + 1
    it_best = 0
    while it < max_iter:
        it += 1
        uns = 0
        for c in range(m):
            e0 = check_ptr[c]
            deg = check_ptr[c + 1] - e0
            flip = synd[c] != 0
            par = flip
            if alg == 0:
                # magnitudes |tanh(t/2)| = (1 - e^-|t|) / (1 + e^-|t|) and the sign parity are
                # kept apart, so the loop is nearly branch-free
                prod = one
                nzero = 0
                neg = flip
                for k in range(deg):
                    tv = L[check_idx[e0 + k]] - R[e0 + k]
                    t[k] = tv
                    a = min(abs(tv), tcl)
                    ex = np.exp(-a)
                    h = (one - ex) / (one + ex)
                    th[k] = h
                    neg ^= tv < zero
                    if h == zero:
                        nzero += 1
                    else:
                        prod *= h
                for k in range(deg):
                    h = th[k]
                    if nzero == 0:
                        p = prod / h
                    elif nzero == 1 and h == zero:
                        p = prod
                    else:
                        p = zero
                    p = min(p, pcl)
                    r = np.log((one + p) / (one - p))
                    r *= one - two * (neg ^ (t[k] < zero))
                    R[e0 + k] = r
                    lv = t[k] + r
                    L[check_idx[e0 + k]] = lv
                    par ^= lv < zero
            else:
                min1 = np.float32(3e38)
                min2 = np.float32(3e38)
                imin = -1
                neg = flip
                for k in range(deg):
                    tv = L[check_idx[e0 + k]] - R[e0 + k]
                    t[k] = tv
                    a = abs(tv)
                    neg ^= tv < zero
                    if a < min1:
                        min2 = min1
                        min1 = a
                        imin = k
                    elif a < min2:
                        min2 = a
                m1 = alpha * min1 - beta
                m2 = alpha * min2 - beta
                if m1 < zero:
                    m1 = zero
                if m2 < zero:
                    m2 = zero
                for k in range(deg):
                    mag = m2 if k == imin else m1
                    # sign of the product over the others = total sign * sign(t_k)
                    r = mag * (one - two * (neg ^ (t[k] < zero)))
                    R[e0 + k] = r
                    lv = t[k] + r
                    L[check_idx[e0 + k]] = lv
                    par ^= lv < zero
            uns += par
        if _syndrome_ok(check_ptr, check_idx, L, synd):
            ok = True
            break
        if uns < best:
            best = uns
            it_best = it
        elif patience > 0 and it - it_best >= patience:
            break
    for i in range(n):
        out[i] = 1 if L[i] < 0.0 else 0
    return it if ok else -it


@njit(cache=True, nogil=True, parallel=True)
def _decode_batch(
    check_ptr, check_idx, llr, synd, max_iter, alg, alpha, beta, max_deg, out, its, L, R, warm,
    patience,
):
    F = llr.shape[0]
    for f in prange(F):
        its[f] = _decode_frame(
            check_ptr, check_idx, llr[f], synd[f], max_iter, alg, alpha, beta, max_deg, out[f],
            L[f], R[f], warm[f], patience[f],
        )


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def _resolve_threads(threads: int | None) -> int:
    avail = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if threads is None or threads <= 0:
        threads = min(avail, os.cpu_count() or 1)
    return max(1, min(int(threads), avail))


def decode(
    code: LdpcCode,
    syndromes: np.ndarray,
    llr: np.ndarray,
    *,
    algorithm: str = "sum-product",
    max_iterations: int = 100,
    ms_scaling: float = 0.8,
    ms_offset: float = 0.0,
    threads: int | None = None,
    return_llr: bool = False,
    state: DecoderState | None = None,
    keep_state: bool = False,
    patience: int | np.ndarray = 0,
    kernel: str = "simd",
    prefetch: int = _simd.PREFETCH_AHEAD,
) -> DecodeResult:
    """Decode a batch of frames of one code (frames run in parallel on ``threads`` cores).

    Parameters
    ----------
    code
        The parity-check matrix.
    syndromes
        (frames, m) or (m,) 0/1 array: Alice's syndromes.
    llr
        (frames, n) or (n,) float array of prior LLRs of Alice's bits (positive means 0).
    algorithm
        ``"sum-product"`` or ``"min-sum"`` (normalised by ``ms_scaling``, offset by
        ``ms_offset``).
    max_iterations
        Maximum layered iterations per frame.
    threads
        Worker threads (default: all available cores).
    return_llr
        Also return the final posterior LLRs (``DecodeResult.llr``; tests and diagnostics).
    state
        Continue from this :class:`DecoderState` (one row per frame) instead of starting from the
        priors: the posteriors are shifted by the change of the priors and the check messages
        kept. Decoding from a state is still BP on the given syndromes and priors; ``converged``
        has the same meaning (the output satisfies the syndrome).
    keep_state
        Return the final state in ``DecodeResult.state`` (E + n floats per frame).
    patience
        0 (default): run up to ``max_iterations``. k > 0 (scalar or per frame): stop a frame
        early, not converged, once its count of unsatisfied checks has not improved for k
        iterations (blind mode: a stalled attempt asks for more bits instead of idling).
    kernel
        ``"simd"`` (default): frames interleaved 8 to a vector, vectorizable exp/log
        approximations (:mod:`._simd_kernels`); ``"scalar"``: one frame per thread with libm
        exp/log (the previous kernel, kept for comparison). Same schedule, stopping rules and
        state layout; messages agree to float32 rounding plus the approximation error. The
        SIMD kernel holds the messages of 8 frames per thread (8 (E + n) float32) and, without
        ``keep_state``, never allocates the (frames, E) message array.
    prefetch
        SIMD kernel: while it computes a check, prefetch the posteriors of the check this many
        checks later (0: no prefetching). A performance hint only: results are the same bit for
        bit whatever the value.
    """
    if algorithm not in _ALG_CODE:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, not {kernel!r}")
    single = np.ndim(llr) == 1
    llr2 = np.ascontiguousarray(np.atleast_2d(llr), dtype=np.float64)
    syn2 = np.ascontiguousarray(np.atleast_2d(syndromes), dtype=np.uint8)
    if llr2.shape[1] != code.n or syn2.shape[1] != code.m or llr2.shape[0] != syn2.shape[0]:
        raise ValueError(
            f"shape mismatch: code ({code.m} x {code.n}), llr {llr2.shape}, syndromes {syn2.shape}"
        )
    if max_iterations < 1:
        raise ValueError("max_iterations must be >= 1")
    if prefetch < 0:
        raise ValueError(f"prefetch must be >= 0, not {prefetch}")
    llr2 = _clip_llr(llr2)
    if (kernel == "simd" and algorithm == "sum-product" and code.m
            and int(code.check_degrees.max()) > SIMD_SP_MAX_DEGREE):
        kernel = "scalar"  # see SIMD_SP_MAX_DEGREE
    F = llr2.shape[0]
    out = np.zeros((F, code.n), dtype=np.uint8)
    its = np.zeros(F, dtype=np.int64)
    E = int(code.check_idx.shape[0])
    if state is not None:
        if (state.L.shape != (F, code.n) or state.R.shape != (F, E)
                or state.prior.shape != (F, code.n)):
            raise ValueError("decoder state does not match the code and the number of frames")
        L = (state.L + (llr2 - state.prior)).astype(np.float32)
        # the SIMD kernel only reads R unless it returns the state: no copy of (F, E) floats
        R = np.ascontiguousarray(state.R, dtype=np.float32)
        if kernel == "scalar" or keep_state or not R.flags.writeable:
            R = np.array(state.R, dtype=np.float32, copy=True)
        warm = np.ones(F, dtype=np.bool_)
    else:
        warm = np.zeros(F, dtype=np.bool_)
        L = np.empty((F, code.n), dtype=np.float32)
        # the SIMD kernel needs R per frame only to return the state
        R = np.empty((F, E) if kernel == "scalar" or keep_state else (0, 0), dtype=np.float32)
    pat = np.ascontiguousarray(np.broadcast_to(np.asarray(patience, dtype=np.int64), (F,)))
    max_deg = int(code.check_degrees.max()) if code.m else 1
    check_ptr = np.ascontiguousarray(code.check_ptr, dtype=np.int64)
    check_idx = np.ascontiguousarray(code.check_idx, dtype=np.int32)
    nthreads = _resolve_threads(threads)
    prev = numba.get_num_threads()
    numba.set_num_threads(nthreads)
    try:
        if kernel == "scalar":
            _decode_batch(
                check_ptr, check_idx, llr2, syn2, int(max_iterations), _ALG_CODE[algorithm],
                float(ms_scaling), float(ms_offset), max_deg, out, its, L, R, warm, pat,
            )
        elif F > 0:
            # streams of consecutive frames, one per thread, but no more than needed to fill the
            # W lanes of each: a sweep costs the same for 1 or W frames, so two half-empty
            # streams would take the same wall time as one full stream and twice the CPU. Each
            # frame's result is independent of its stream and lane, so the output does not
            # depend on the thread count.
            S = min(nthreads, -(-F // _simd.W))
            bounds = (np.arange(S + 1, dtype=np.int64) * F) // S
            _simd.decode_batch_simd(
                check_ptr, check_idx, bounds, llr2, syn2, int(max_iterations),
                _ALG_CODE[algorithm], float(ms_scaling), float(ms_offset), max_deg, out, its,
                L, R, warm, pat, True, bool(keep_state), int(prefetch),
            )
    finally:
        numba.set_num_threads(prev)
    converged = its >= 0
    iterations = np.abs(its).astype(np.int32)
    # belt and braces: converged means the output satisfies the syndrome, checked independently
    for f in np.flatnonzero(converged):
        if not np.array_equal(code.syndrome(out[f]), syn2[f]):
            converged[f] = False
    llr_out = L if return_llr else None
    st = DecoderState(llr2, L, R) if keep_state else None
    if single:
        return DecodeResult(
            out[0], converged[:1].copy(), iterations[:1].copy(),
            None if llr_out is None else llr_out[0], st,
        )
    return DecodeResult(out, converged, iterations, llr_out, st)


# --------------------------------------------------------------------------------------------
# slow, obvious reference (test oracle)
# --------------------------------------------------------------------------------------------
def reference_decode(
    H: np.ndarray,
    syndrome: np.ndarray,
    llr: np.ndarray,
    *,
    algorithm: str = "sum-product",
    iterations: int = 10,
    ms_scaling: float = 0.8,
    ms_offset: float = 0.0,
    early_stop: bool = True,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pure-Python layered BP on a dense H; returns (hard bits, posterior LLRs, iterations).

    Written for clarity, not speed: every check message is the explicit product (or minimum)
    over the *other* edges of the check. Used only by tests.
    """
    H = np.asarray(H) % 2
    m, n = H.shape
    L = np.clip(np.asarray(llr, dtype=float), -LLR_KNOWN, LLR_KNOWN).copy()
    R = {(c, v): 0.0 for c in range(m) for v in range(n) if H[c, v]}

    def satisfied() -> bool:
        hard = (L < 0).astype(int)
        return bool(np.all((H @ hard) % 2 == np.asarray(syndrome) % 2))

    it = 0
    if early_stop and satisfied():
        return (L < 0).astype(np.uint8), L, 0
    for it in range(1, iterations + 1):  # noqa: B007
        for c in range(m):
            vs = [v for v in range(n) if H[c, v]]
            t = {v: L[v] - R[(c, v)] for v in vs}
            sgn = -1.0 if syndrome[c] % 2 else 1.0
            for v in vs:
                others = [t[u] for u in vs if u != v]
                if algorithm == "sum-product":
                    prod = sgn
                    for x in others:
                        prod *= np.tanh(0.5 * np.clip(x, -_T_CLAMP, _T_CLAMP))
                    prod = np.clip(prod, -_P_CLAMP, _P_CLAMP)
                    r = 2.0 * np.arctanh(prod)
                else:
                    s = sgn
                    for x in others:
                        s *= -1.0 if x < 0 else 1.0
                    mag = max(ms_scaling * min(abs(x) for x in others) - ms_offset, 0.0)
                    r = s * mag
                R[(c, v)] = r
                L[v] = t[v] + r
        if early_stop and satisfied():
            break
    return (L < 0).astype(np.uint8), L, it
