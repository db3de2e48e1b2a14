"""Rate-adaptive one-way syndrome reconciliation between two roles, with verification.

Outline (details and the security argument for each leakage item: docs/reconciliation.md):

1. Bob (who knows the public per-bit error probabilities) computes the *plan* and sends it
   (``ec-plan``, 0 leaked bits): a public permutation seed, the mother code (digest), the frame
   sizes, and for every frame the number ``p`` of punctured and ``s`` of shortened positions.
   The permutation spreads key and test rounds evenly over the frames.
2. Alice checks the plan, draws a fresh public hash key (``ec-hash-key``, 0 bits) and, per frame,
   builds a codeword-length vector: payload positions carry her (permuted) bits, shortened
   positions the public value 0, punctured positions fresh *secret* random bits. She sends its
   syndrome (``ec-syndrome``, ``m - p`` bits: the punctured columns have disjoint check supports,
   so ``p`` syndrome bits are one-time padded by her random bits) and the truncated polynomial hash
   of the frame payload (``ec-tag``, ``t`` bits).
3. Bob decodes all frames in parallel (layered BP, per-bit prior LLRs). For a frame whose decoded
   vector satisfies the syndrome he compares the tag once: equal -> verified. He announces the
   outcome per frame (``ec-verdict``, 1 bit per frame counted).
4. Blind mode: for a frame that did not decode Alice reveals some of her punctured pad bits
   (``ec-reveal``, 1 bit each) and Bob decodes again, continuing from the BP messages of the
   previous attempt (the revealed positions' priors are pinned). When no pad bit is left (or in
   the fixed and adaptive modes at once), a failed frame is handled by ``on_failure``:
   ``"reveal"`` -> Alice reveals the frame payload in the clear (all its bits counted as
   leakage) so that the run goes on with a frame that contributes no key; ``"fail"`` -> the
   frame is marked not verified and its output bits are zeros (the pipeline then aborts).
   Blind mode decodes a first wave of frames, then starts the others (in one wave, or in
   growing waves with ``_WAVE_GROWTH``) at a step learned from the public outcomes of the frames
   started before, announced in the first verdict that determines it (frames of the earlier
   wave may still be climbing; see ``BobReconciler._next_wave``).

Every message goes through ``transcript.send``; the itemised :class:`Leakage` equals the sum of
their ``leak_bits``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numba import njit

from diqkd.transcript import Message

from .code import LdpcCode
from .decoder import ALGORITHMS, LLR_KNOWN, DecoderState, _clip_llr, decode
from .leakage import Leakage, _distinct_bits, h2
from .peg import splitmix64
from .verify import TagSpec, locator_spec, poly_hash, tag_spec

__all__ = [
    "AliceReconciler",
    "BobReconciler",
    "ReconciliationConfig",
    "ReconciliationResult",
    "punctured_order",
    "reconcile",
]

MODES = ("fixed", "adaptive", "blind")
ON_FAILURE = ("reveal", "fail")
PROTOCOL_VERSION = "diqkd-ec-v3"  # v2: blind waves (verdict `start`/`skip`); v3: locator tags
# per frame and one final tag over the released frames (verify.py, "Two levels")
_BATCH = 64  # frames per decoder call (at most; see _batch_size)
# decoder message memory per call (E + 3n floats per frame). It must hold W x threads frames
# (8 SIMD lanes per thread): at 1e6 bits a frame takes ~37 MB, and a 192 MB budget gave 5-frame
# batches, one half-empty lane group on one core (11 frames of 1e6 bits at QBER 5 %: 27.3 s wall
# and CPU; with 768 MB, 20-frame batches: 11.3 s wall, 18.4 s CPU). The results do not depend on it.
_BATCH_BYTES = 768 << 20
_BLIND_PATIENCE = 3  # iterations without a new minimum of unsatisfied checks: a blind attempt stops
# blind code choice (see _blind_choice): the ceiling m / S may sit this far below `efficiency`
_BLIND_CEILING_SLACK = 0.92
# blind code choice: cost = gap + _BLIND_PUNCTURE_WEIGHT x (positions still punctured when a frame
# decodes at the typical level _BLIND_TYPICAL_F) / S, in units of f
_BLIND_TYPICAL_F = 1.08
_BLIND_PUNCTURE_WEIGHT = 1.0 / 6.0
# below this code length, and for codes without a known gap, blind mode keeps the rule of 0.4
# (smallest m >= 0.95 efficiency S): the error count of a short frame fluctuates too much for the
# lower ceiling, and without gaps there is nothing to buy with it (see _blind_choice)
_BLIND_GAP_MIN_LENGTH = 100_000
_BLIND_PLAIN_SLACK = 0.95
_STATE_BYTES = 512 << 20  # blind mode: decoder states kept between rounds (warm start)
# blind mode, learned starting point: the first wave of frames starts at blind_start_efficiency;
# once it is decided, every later frame starts _LEARN_BACK steps below the
# config.blind_start_quantile of the public success levels of the frames decided so far (see
# BobReconciler._next_wave)
_RESCUE_PATIENCE = 8  # blind: patience of the local step-by-step replay before a fallback
_WAVE_FIRST = 0.125  # fraction of the frames in the first wave (at least _WAVE_MIN)
_WAVE_MIN = 4
_LEARN_BACK = 1
# later waves: each wave after the first starts max(_WAVE_MIN, ceil(_WAVE_GROWTH * frames started
# so far)) frames (0: all remaining frames at once)
_WAVE_GROWTH = 0.0
# start a later wave as soon as its starting point is determined by the public outcomes (frames of
# earlier waves may still be climbing), instead of when every started frame is decided: same
# starting points, hence the same iterations and f per frame, in fewer rounds
_WAVE_EARLY = True


def _initial_state(llr: np.ndarray, code: LdpcCode) -> DecoderState:
    """The BP state a cold start begins from (posteriors = priors, no check messages), so that a
    cold frame can share a decoder call with warm ones: continuing from it is a cold start."""
    prior = _clip_llr(np.ascontiguousarray(llr, dtype=np.float64))
    return DecoderState(prior[None, :], prior[None, :].astype(np.float32),
                        np.zeros((1, int(code.check_idx.shape[0])), dtype=np.float32))


def _batch_size(code: LdpcCode, keep_state: bool) -> int:
    """Frames per decoder call within the ``_BATCH_BYTES`` budget.

    With ``keep_state`` (blind mode) a frame holds its check messages between calls: E + 3n
    float32-sized words. Without, only its priors (float64, and the decoder's clipped copy), its
    posteriors and its output: 6n words; the SIMD kernel's per-thread messages do not grow with
    the batch. At 1e6 bits that is 32 frames per call instead of 18, two full lane groups per
    thread, so fewer lanes idle while a batch's last frames finish.
    """
    words = (int(code.check_idx.shape[0]) + 3 * code.n) if keep_state else 6 * code.n
    return int(max(1, min(_BATCH, _BATCH_BYTES // (4 * words))))


# ------------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReconciliationConfig:
    """Settings of the reconciliation stage (the ``[ec]`` table of a protocol file).

    family
        Code family passed to :func:`diqkd.reconciliation.codes.get_code`.
    frame_length
        Wanted mother-code length n; the nearest length the library has is used (shorter when the
        string is short).
    decoder
        ``"sum-product"`` or ``"min-sum"`` (``ms_scaling`` normalises, ``ms_offset`` offsets).
    max_iterations
        Layered BP iterations per decoding attempt.
    rate_adaptation
        ``"fixed"``: mother code as is (only the padding of the frames is shortened);
        ``"adaptive"``: puncturing/shortening of ``modulation * n`` positions per frame to hit
        ``efficiency`` (Elkouss, Martinez-Mateo, Martin, QIC 11, 226 (2011));
        ``"blind"``: start at ``blind_start_efficiency`` and reveal punctured bits in steps of
        ``blind_step`` (in units of f) until the frame decodes (Martinez-Mateo et al., QIC 12, 791
        (2012)).
    efficiency
        Target f = leak / (sum_i h(p_i)) of the syndrome: the operating point in adaptive mode,
        the ceiling in blind mode (the mother code has m >= 0.92 efficiency * frame entropy, or
        0.95 for codes below 1e5 bits and codes without a known gap, so blind rounds can go up to
        at least that fraction of this f before the fallback; see :func:`_blind_choice`).
    modulation
        Fraction delta of the code positions that are punctured or shortened (adaptive, blind),
        or ``"auto"`` (adaptive mode only): the mother code and the frame payload are chosen
        together so that the target f needs the fewest punctured *or* shortened positions (one
        of the two, see :func:`_auto_modulation`; a punctured position counts twice), plus, for
        library codes, the code's own gap to the limit (f at its DE threshold - 1, in the same
        units as the modulated fraction; ``_AUTO_GAP_WEIGHT``). A fixed
        10 % costs efficiency: at QBER 3.6 %, n = 1e5, f = 1.10, the rate-0.75 code decoded
        48 / 48 frames with 1 % modulated (645 punctured, 355 shortened) and 41 / 48 with 10 %
        (2,859 punctured, 7,141 shortened). Blind mode needs room for its ladder of pad bits,
        so it takes a number.
    blind_start_efficiency, blind_step
        Blind mode: starting f, and the f increment revealed per failed attempt. While pad bits
        are left, an attempt that stalls (no new minimum of unsatisfied checks for
        ``_BLIND_PATIENCE`` = 3 iterations) stops early, and the next attempt continues BP from
        its messages (warm start) instead of restarting from the priors.
    blind_start_quantile
        Blind mode, later frames: they start one blind step below this quantile of the success
        levels of the frames decided so far (a first wave of max(4, F / 8) frames starts at
        ``blind_start_efficiency``). It trades f for speed: a higher quantile starts nearer the
        level at which most frames decode, so fewer attempts are made but frames that would
        have decoded lower pay the higher start. The default 0.25 minimises f; 0.9 is the
        throughput setting (100 frames of 90,000 bits, docs/reconciliation.md, "Blind mode:
        the start quantile").
    on_failure
        ``"reveal"`` (reveal failed frames in the clear, counted) or ``"fail"`` (mark them).
    eps_cor
        Correctness error of the whole reconciled string; sets the tag length.
    code_seed
        Seed of the code construction (part of the code's identity).
    code_rate
        Pin the mother-code rate: the code whose rate is nearest, within 1e-3 (a value equally
        near two codes is refused). 0 = choose automatically: the smallest syndrome length
        m >= efficiency * frame entropy, i.e. the least puncturing.
    threads
        Decoder threads; 0 = all cores.
    """

    family: str = "peg-irregular"
    frame_length: int = 100_000
    decoder: str = "sum-product"
    ms_scaling: float = 0.8
    ms_offset: float = 0.0
    max_iterations: int = 100
    rate_adaptation: str = "blind"
    efficiency: float = 1.25
    modulation: float | str = 0.1
    blind_start_efficiency: float = 1.05
    blind_step: float = 0.01
    blind_start_quantile: float = 0.25
    on_failure: str = "reveal"
    eps_cor: float = 1e-10
    code_seed: int = 0
    code_rate: float = 0.0
    threads: int = 0

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(msg)

        if not isinstance(self.family, str) or not self.family:
            bad("family must be a non-empty string")
        if int(self.frame_length) < 16:
            bad("frame_length must be >= 16")
        if self.decoder not in ALGORITHMS:
            bad(f"decoder must be one of {ALGORITHMS}, not {self.decoder!r}")
        if not 0.0 < self.ms_scaling <= 1.0:
            bad("ms_scaling must be in (0, 1]")
        if self.ms_offset < 0.0:
            bad("ms_offset must be >= 0")
        if int(self.max_iterations) < 1:
            bad("max_iterations must be >= 1")
        if self.rate_adaptation not in MODES:
            bad(f"rate_adaptation must be one of {MODES}, not {self.rate_adaptation!r}")
        if not 1.0 <= self.efficiency <= 3.0:
            bad("efficiency must be in [1, 3]")
        if isinstance(self.modulation, str):
            if self.modulation != "auto":
                bad(f"modulation must be a number in [0, 0.5) or 'auto', not {self.modulation!r}")
            if self.rate_adaptation != "adaptive":
                bad("modulation = 'auto' applies to rate_adaptation = 'adaptive' (blind mode "
                    "needs room for its pad ladder: give a number)")
        elif not (isinstance(self.modulation, (int, float)) and 0.0 <= self.modulation < 0.5):
            bad(f"modulation must be a number in [0, 0.5) or 'auto', not {self.modulation!r}")
        if not 0.5 <= self.blind_start_efficiency <= self.efficiency:
            bad("blind_start_efficiency must be in [0.5, efficiency]")
        if not 0.0 < self.blind_step <= 1.0:
            bad("blind_step must be in (0, 1]")
        if not 0.0 <= self.blind_start_quantile <= 1.0:
            bad("blind_start_quantile must be in [0, 1]")
        if self.on_failure not in ON_FAILURE:
            bad(f"on_failure must be one of {ON_FAILURE}, not {self.on_failure!r}")
        if not 0.0 < self.eps_cor < 1.0:
            bad("eps_cor must be in (0, 1)")
        if not (self.code_rate == 0.0 or 0.0 < self.code_rate < 1.0):
            bad("code_rate must be 0 (automatic) or in (0, 1)")
        if int(self.threads) < 0:
            bad("threads must be >= 0 (0 = all cores)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# codes and positions
# ------------------------------------------------------------------------------------------------
CodeSource = Sequence[LdpcCode] | Callable[[ReconciliationConfig, int], Sequence[LdpcCode]]


@dataclass(frozen=True)
class _Candidate:
    """A mother code that may be used, loaded only when chosen (PEG codes take time to build)."""

    n: int
    m: int
    load: Callable[[], LdpcCode]
    #: f at the DE threshold minus 1 (the code's own distance from the Slepian-Wolf limit), when
    #: the library knows it; 0 for codes the caller supplies (only their modulation counts)
    gap: float = 0.0


def _library_candidates(config: ReconciliationConfig, payload_bits: int) -> list[_Candidate]:
    """Mother codes of the configured family at the library length nearest to the request."""
    from . import codes as lib  # the code library

    specs = lib.available_codes()
    lengths = sorted({int(s.n) for s in specs})
    if not lengths:
        raise LookupError("the code library has no codes")
    want = int(config.frame_length)
    n = min(lengths, key=lambda x: (abs(math.log(x / want)), x))
    # a short string: the smallest length that holds it in one frame (after modulation)
    fits = [x for x in lengths if x * (1 - _nominal_modulation(config)) >= payload_bits]
    if fits and min(fits) < n:
        n = min(fits)
    at_n = {float(s.rate): s for s in specs if int(s.n) == n}
    family = config.family

    def loader(r: float) -> Callable[[], LdpcCode]:
        return lambda: _load_code(lib.get_code, r, n, config.code_seed, family)

    def gap(r: float) -> float:
        f = at_n[r].threshold_efficiency if family == "peg-irregular" else None
        return max(0.0, f - 1.0) if f is not None else 0.0

    return [_Candidate(n=n, m=n - int(round(r * n)), load=loader(r), gap=gap(r))
            for r in sorted(at_n)]


# library codes loaded in this process, while someone holds them (weak references): the two
# roles of one process load the chosen code once
_CODE_CACHE: dict[tuple[Any, float, int, int, str], Any] = {}


def _load_code(get: Callable[..., LdpcCode], r: float, n: int, seed: int, family: str
               ) -> LdpcCode:
    key = (get, float(r), int(n), int(seed), str(family))
    ref = _CODE_CACHE.get(key)
    code = ref() if ref is not None else None
    if code is None:
        code = get(r, n, seed=seed, family=family)
        for k in [k for k, v in _CODE_CACHE.items() if v() is None]:
            del _CODE_CACHE[k]
        _CODE_CACHE[key] = weakref.ref(code)
    return code


def _resolve_codes(source: CodeSource | None, config: ReconciliationConfig, bits: int
                   ) -> list[_Candidate]:
    if source is None:
        return _library_candidates(config, bits)
    codes = list(source(config, bits)) if callable(source) else list(source)
    def const(c: LdpcCode) -> Callable[[], LdpcCode]:
        return lambda: c

    return [_Candidate(n=c.n, m=c.m, load=const(c)) for c in codes]


def _pick_code(cands: list[_Candidate], info: dict[str, Any]) -> LdpcCode:
    """The plan's code among this party's candidates, checked by digest."""
    for c in cands:
        if c.n == info["n"] and c.m == info["m"]:
            code = c.load()
            if code.digest == info["digest"]:
                return code
    raise ValueError(f"plan names code {info['digest'][:16]}... which this party does not have")


_ORDER_CACHE: dict[tuple[str, int], np.ndarray] = {}


def punctured_order(code: LdpcCode, seed: int = 0) -> np.ndarray:
    """Positions that may be punctured together: no two share a check ("untainted" puncturing).

    Greedy over variables by increasing degree (ties in a seeded random order); a variable is
    taken if none of its checks is adjacent to an already taken one. The columns of H at these
    positions therefore have disjoint, non-empty supports, hence full column rank: this is what
    makes the syndrome leakage ``m - p`` exact (see docs/reconciliation.md).
    """
    key = (code.digest, int(seed))
    if key in _ORDER_CACHE:
        return _ORDER_CACHE[key]
    rng = np.random.default_rng([int(seed), 0x70C7])
    deg = code.var_degrees
    order = np.lexsort((rng.permutation(code.n), deg)).astype(np.int64)
    taken = np.empty(code.n, dtype=np.int64)
    cnt = _untainted_greedy(order, code.var_ptr, code.var_idx, code.m, taken)
    out = taken[:cnt].copy()
    out.flags.writeable = False
    _ORDER_CACHE[key] = out
    return out


@njit(cache=True, nogil=True)
def _untainted_greedy(order, var_ptr, var_idx, m, taken):  # pragma: no cover - numba
    """The greedy of :func:`punctured_order`: ``taken[:count]``, in the order taken."""
    used = np.zeros(m, dtype=np.bool_)
    cnt = 0
    for t in range(order.shape[0]):
        v = order[t]
        a, b = var_ptr[v], var_ptr[v + 1]
        if a == b:
            continue
        free = True
        for j in range(a, b):
            if used[var_idx[j]]:
                free = False
                break
        if free:
            for j in range(a, b):
                used[var_idx[j]] = True
            taken[cnt] = v
            cnt += 1
    return cnt


# the public permutation of the string, shared by the two roles of one process while one of them
# holds it (a weak reference: nothing is kept after the run); read-only
_PERM_CACHE: dict[tuple[int, int], Any] = {}


def _public_perm(seed: int, total: int) -> np.ndarray:
    """The run's public permutation of the `total` bits (read-only), computed once per run.

    A uniform random permutation: Fisher-Yates (Durstenfeld) driven by splitmix64 from `seed`,
    each index drawn without bias by Lemire's multiply-and-reject (Lemire, ACM TOMACS 29, 3
    (2019)). Integer arithmetic only, so every machine gets the same permutation. int32 indices
    below 2^31 bits. Since 0.4.0; before, ``default_rng([seed, 0xE7]).permutation(total)``,
    which took 0.7 s for 1e7 bits against 0.2-0.3 s here (about a tenth of a reconciliation).
    """
    key = (int(seed), int(total))
    ref = _PERM_CACHE.get(key)
    perm = ref() if ref is not None else None
    if perm is None:
        dtype = np.int32 if int(total) < 2**31 else np.int64
        perm = _fisher_yates(np.uint64((int(seed) * 0x9E3779B1 + 0xE7) & (2**64 - 1)),
                             np.empty(int(total), dtype=dtype))
        perm.flags.writeable = False
        _PERM_CACHE.clear()
        _PERM_CACHE[key] = weakref.ref(perm)
    return perm


@njit(cache=True, nogil=True)
def _check_priors(bits, ep):  # pragma: no cover - numba
    """Validation of Bob's inputs in one pass (no temporaries): 1 if a bit is not 0/1, else 2
    if a prior is not a probability (also NaN, +-inf), else 3 if some prior exceeds 1/2, else
    0."""
    flip = False
    bad_p = False
    for i in range(bits.shape[0]):
        if bits[i] > 1:
            return 1
        p = ep[i]
        if not (p >= 0.0 and p <= 1.0):
            bad_p = True
        elif p > 0.5:
            flip = True
    if bad_p:
        return 2
    return 3 if flip else 0


@njit(cache=True, nogil=True)
def _flip(bits, ep, y, ep_out):  # pragma: no cover - numba
    """A prior above 1/2: flip the bit and use 1 - p (as ``np.where(p > 0.5, 1.0 - p, p)``)."""
    for i in range(bits.shape[0]):
        p = ep[i]
        if p > 0.5:
            y[i] = bits[i] ^ np.uint8(1)
            ep_out[i] = 1.0 - p
        else:
            y[i] = bits[i]
            ep_out[i] = p


@njit(cache=True, nogil=True)
def _fisher_yates(state: np.uint64, out: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """Fill `out` with a uniform random permutation of 0..len-1 (see :func:`_public_perm`)."""
    total = out.shape[0]
    for i in range(total):
        out[i] = i
    s = state
    one32 = np.uint64(0x100000000)
    for i in range(total - 1, 0, -1):
        if i + 1 < 0x100000000:
            k = np.uint64(i + 1)
            while True:
                s, z = splitmix64(s)
                m = (z >> np.uint64(32)) * k  # 32 x 32 -> 64 bits: high half is the draw
                lo = m & np.uint64(0xFFFFFFFF)
                if lo >= k or lo >= (one32 - k) % k:
                    break
            j = int(m >> np.uint64(32))
        else:  # beyond 2^32 bits: modulo a 64-bit draw (bias < total / 2^64)
            s, z = splitmix64(s)
            j = int(z % np.uint64(i + 1))
        tmp = out[i]
        out[i] = out[j]
        out[j] = tmp
    return out


@njit(cache=True, nogil=True)
def _perm_fill(perm, a, b, code, tab, y, signed, pos, out):  # pragma: no cover - numba
    """For i in [a, b) and j = perm[i]: v = tab[code[j]] (tab[j] if ``code`` is empty), negated
    if ``signed`` and y[j] (i.e. (1 - 2 y[j]) * v for LLRs); stored in out[pos[i - a]] (or
    out[i - a] if ``pos`` is empty)."""
    ident = code.shape[0] == 0
    direct = pos.shape[0] == 0
    for i in range(a, b):
        j = perm[i]
        v = tab[j] if ident else tab[code[j]]
        if signed and y[j]:
            v = -v
        if direct:
            out[i - a] = v
        else:
            out[pos[i - a]] = v


@njit(cache=True, nogil=True)
def _permute_codes(perm, y, code, out):  # pragma: no cover - numba
    """out[i] = 2 code[j] + y[j] for j = perm[i]: prior class and bit in permuted order."""
    for i in range(perm.shape[0]):
        j = perm[i]
        out[i] = (code[j] << np.uint8(1)) | y[j]


@njit(cache=True, nogil=True)
def _frame_fill(yc, a, b, tab, signed, pos, out):  # pragma: no cover - numba
    """As :func:`_perm_fill` from the permuted classes ``yc`` of :func:`_permute_codes`."""
    direct = pos.shape[0] == 0
    for i in range(a, b):
        c = yc[i]
        v = tab[c >> 1]
        if signed and (c & 1):
            v = -v
        if direct:
            out[i - a] = v
        else:
            out[pos[i - a]] = v


@njit(cache=True, nogil=True)
def _scatter_result(perm, bounds, status, frame_out, out, frame_of_bit
                    ):  # pragma: no cover - numba
    """out[perm[i]] = the frame's output bit (verified frames), frame_of_bit[perm[i]] = f."""
    for f in range(bounds.shape[0] - 1):
        ok = status[f] == 1
        for i in range(bounds[f], bounds[f + 1]):
            j = perm[i]
            frame_of_bit[j] = f
            out[j] = frame_out[i] if ok else np.uint8(0)


def _llr_magnitude(p: np.ndarray) -> np.ndarray:
    """``|llr|`` of :func:`llr_from_error_prob`, elementwise (the same expression)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 0.5)
    return np.log1p(-p) - np.log(p)


@dataclass(frozen=True)
class _FrameLayout:
    payload: np.ndarray  # code positions carrying Alice's bits, in order
    punctured: np.ndarray  # code positions with Alice's secret pad bits (reveal from the end)
    shortened: np.ndarray  # code positions with the public value 0


def _layout(
    code: LdpcCode, k: int, p: int, pun: np.ndarray, short_perm: np.ndarray
) -> _FrameLayout:
    n = code.n
    punctured = pun[:p]
    s = n - k - p
    # the first s positions of short_perm that are not punctured, sorted; payload: the rest
    shortened = np.empty(max(s, 0), dtype=np.int64)
    # one spare slot: the branch-free compaction writes every position at the current end
    buf = np.empty(max(n - p - max(s, 0), 0) + 1, dtype=np.int64)
    _layout_kernel(n, pun, p, short_perm, shortened, buf)
    payload = buf[:-1]
    return _FrameLayout(payload=payload, punctured=punctured, shortened=shortened)


@njit(cache=True, nogil=True)
def _layout_kernel(n, pun, p, short_perm, shortened, payload):  # pragma: no cover - numba
    mask = np.zeros(n, dtype=np.bool_)
    for i in range(p):
        mask[pun[i]] = True
    c = 0
    s = shortened.shape[0]
    for i in range(short_perm.shape[0]):
        if c == s:
            break
        v = short_perm[i]
        if not mask[v]:
            shortened[c] = v
            c += 1
    shortened.sort()
    for i in range(s):
        mask[shortened[i]] = True
    # branch-free compaction (the mask is random): ``payload`` has n - p - s + 1 slots
    q = 0
    for v in range(n):
        payload[q] = v
        q += 1 - int(mask[v])


def _short_perm(code: LdpcCode, pun: np.ndarray, seed: int) -> np.ndarray:
    """Order in which positions are shortened: non-untainted positions first, seeded."""
    rng = np.random.default_rng([int(seed), 0x5407])
    is_pun = np.zeros(code.n, dtype=bool)
    is_pun[pun] = True
    rest = np.flatnonzero(~is_pun)
    return np.concatenate([rng.permutation(rest), pun[::-1]])


# ------------------------------------------------------------------------------------------------
# the plan (public)
# ------------------------------------------------------------------------------------------------
#: ``code_rate`` pins the nearest mother-code rate at most this far from the value given (1e-3,
#: plus float rounding: 1 - m/n is not exact)
_CODE_RATE_TOLERANCE = 1e-3 + 1e-9
#: nominal modulation of ``modulation = "auto"`` when choosing the frame length of a short string
_AUTO_NOMINAL_MODULATION = 0.05


#: ``modulation = "auto"``: a punctured position costs as much as this many shortened ones when
#: the plan compares codes. Puncturing removes a position's information, shortening only the
#: payload: at QBER 2 %, n = 1e5, the rate-0.85 code shortened by 9.7 % reached FER 0 / 100 at
#: f = 1.154 where the rate-0.80 code punctured by 4.5 % needed f = 1.204 (its DE threshold is
#: better: f 1.042 vs 1.080); at 8 %, 1.4 % punctured (rate 0.55) beat 9.6 % shortened (0.60).
_AUTO_PUNCTURE_WEIGHT = 2
#: ``modulation = "auto"``: the plan's cost of a code is (weighted modulated positions) / n plus
#: this times the code's gap (f at its DE threshold - 1): one percent of f at threshold counts as
#: much as one percent of shortened positions. Without it a weak code that needs almost no
#: modulation beats a strong neighbour that needs a little: at QBER 3.6 %, n = 1e5, f = 1.10 the
#: rate-0.75 code (f 1.111 at threshold, 0.5 % punctured) failed 1 / 100 frames with 27
#: iterations, the rate-0.765 code (f 1.027, 4.1 % shortened) 0 / 48 with 22. The checks against
#: earlier measurements, and the one case a linear cost gets wrong (a code punctured by 4.4 %,
#: which no longer arises with the present library), are in docs/reconciliation.md.
_AUTO_GAP_WEIGHT = 1.0


def _nominal_modulation(config: ReconciliationConfig) -> float:
    return _AUTO_NOMINAL_MODULATION if config.modulation == "auto" else float(config.modulation)


def _mean_entropy(error_prob: np.ndarray) -> float:
    """Mean of h2(min(p_i, 1/2)) over all bits (in chunks: no N-sized temporaries)."""
    total = int(error_prob.shape[0])
    acc = 0.0
    step = 1 << 20
    for a in range(0, total, step):
        acc += float(np.sum(h2(np.minimum(error_prob[a:a + step], 0.5))))
    return acc / max(total, 1)


def _auto_modulation(n: int, m: int, leak_per_bit: float) -> tuple[int, int]:
    """(punctured, shortened) positions of a full frame of a length-n code with m checks whose
    syndrome leakage m - p equals ``leak_per_bit`` times its payload n - p - s, using only one
    of the two. Rate adaptation as in Elkouss, Martinez-Mateo, Martin, QIC 11, 226 (2011)
    (adapted rate (R0 - sigma) / (1 - pi - sigma) with pi, sigma the punctured and shortened
    fractions), but with the smallest modulation pi + sigma that reaches the rate instead of a
    fixed one:

    * m >= leak_per_bit n (the code's rate is too low): puncture p = floor((m - l n) / (1 - l)),
      so that m - p >= l (n - p) (the leakage never falls below the target);
    * otherwise shorten s = n - floor(m / l).
    """
    lk = float(leak_per_bit)
    if lk <= 0.0:
        return 0, 0
    if m >= lk * n:
        p = int(math.floor((m - lk * n) / (1.0 - lk))) if lk < 1.0 else 0
        return max(0, min(p, n - 1)), 0
    k = max(1, int(math.floor(m / lk)))
    return 0, n - min(k, n)


def _frame_sizes(total: int, n: int, modulation: float, k_max: int | None = None
                 ) -> np.ndarray:
    if k_max is None:
        k_max = n - int(round(modulation * n))
    k_max = max(1, int(k_max))
    frames = max(1, -(-total // k_max))
    base, extra = divmod(total, frames)
    return np.array([base + 1] * extra + [base] * (frames - extra), dtype=np.int64)


def _least_m_at_least(by_m: list[_Candidate], floor: float) -> _Candidate:
    """The code with the smallest syndrome m >= floor (least puncturing), else the largest m."""
    for c in by_m:
        if c.m >= floor:
            return c
    return by_m[-1]


def _blind_choice(by_m: list[_Candidate], config: ReconciliationConfig, S: float, d: float
                  ) -> _Candidate:
    """Blind mode's mother code, for frames of mean entropy S with d pad positions each.

    Candidates: codes whose ceiling m / S is at least ``_BLIND_CEILING_SLACK`` x ``efficiency``
    (a frame failing there gets the local replay, then is revealed whole) and whose pad ladder
    reaches down to ``blind_start_efficiency`` (m - start S <= d); if none, the ceiling rule alone,
    else the largest m. Among them the least gap + w p_op / S, where gap is f at the code's DE
    threshold - 1 (0 for codes the caller supplies), p_op = m - ``_BLIND_TYPICAL_F`` S the
    positions still punctured when a frame decodes at the typical level, and
    w = ``_BLIND_PUNCTURE_WEIGHT``; ties go to the smaller m.

    Why: blind runs gain from the code's own gap more than they lose to extra puncturing. Realised
    f over 100 frames of 90,000 bits (n = 1e5, default blind settings; the code pinned): QBER
    3.6 %: rate 0.765 (gap 0.027, ceiling 1.168) 1.076, rate 0.75 (gap 0.111) 1.096; 4.5 %: 0.725
    1.081, 0.70 1.095; 5 %: 0.675 (gap 0.028, 18 % of S punctured at f 1.08) 1.073, 0.70 (gap
    0.049, 8 %) 1.091; 5.5 %: 0.675 1.068, 0.65 1.077; 8 %: 0.575 (gap 0.041, 9 %) 1.077, 0.55
    (gap 0.033, 16 %) 1.088; 1 %: 0.91 (gap 0.083, 16 %) 1.158, 0.901 (gap 0.074, 28 %) 1.182.
    Every w in (0.12, 0.21) picks the better code of all six pairs; 1/6 is used. The codes of
    0.6.0 (same runs, other frames): 1.5 %: 0.849 (gap 0.018) 1.116, 0.846 (gap 0.037) 1.125;
    2 %: 0.849 1.076, 0.846 1.090; 3.6 %: 0.764 (gap 0.016) 1.064, 0.765 1.073; 4.5 %: 0.699
    (gap 0.015) 1.071, 0.725 1.081; 5 %: 0.699 1.066, 0.675 1.072; 8 %: 0.574 (gap 0.020) 1.072,
    0.575 1.077: the rule picks the new code at each point, unchanged. The slack went
    from 0.95 to 0.92 so that the rate-0.765 code qualifies at 3.6 % (ceiling 1.168 against
    0.95 x 1.25 = 1.1875); no frame of these runs reached its ceiling.

    Codes shorter than ``_BLIND_GAP_MIN_LENGTH`` (1e5), and codes whose gaps are unknown (the
    caller's codes, families other than peg-irregular: gap 0), keep the rule before 0.5.0, the
    smallest m >= 0.95 efficiency S (the lower ceiling only pays for a code with a smaller gap):
    at 1e4 bits (200 frames of 9,000) the new rule took the rate-0.85 code at QBER 2 % (ceiling
    1.178; 52 frames revealed whole, realised f 3.04, against 1.218 with the rate-0.80 code) and
    rate 0.70 at 5 % (17 revealed, 1.43, against 1.130 with rate 0.65): short frames need more
    headroom than 1.18, and the gaps measured by density evolution say little at that length.
    """
    target = config.efficiency * S
    if by_m[0].n < _BLIND_GAP_MIN_LENGTH or not any(c.gap > 0.0 for c in by_m):
        return _least_m_at_least(by_m, _BLIND_PLAIN_SLACK * target)
    ok = [c for c in by_m if c.m >= _BLIND_CEILING_SLACK * target]
    if not ok:
        return by_m[-1]
    reach = [c for c in ok if c.m - config.blind_start_efficiency * S <= d]
    pool = reach or ok

    def cost(c: _Candidate) -> tuple[float, int]:
        p_op = max(0.0, c.m - _BLIND_TYPICAL_F * S)
        return (c.gap + _BLIND_PUNCTURE_WEIGHT * p_op / max(S, 1e-300), c.m)

    return min(pool, key=cost)


def _make_plan(
    error_prob: np.ndarray, config: ReconciliationConfig, cands: list[_Candidate],
    public_seed: int, frame_entropy: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[dict[str, Any], LdpcCode]:
    """The plan (see the module docstring) and its mother code. ``frame_entropy(bounds)``: the
    frame entropies sum_i h2(min(p_i, 1/2)) over the slices bounds[f]:bounds[f+1] of the permuted
    priors, if the caller computes them (it must sum the same values in the same order)."""
    total = int(error_prob.shape[0])
    if total == 0:
        raise ValueError("nothing to reconcile")
    n = cands[0].n
    if any(c.n != n for c in cands):
        raise ValueError("all mother codes must have the same length")
    auto = config.modulation == "auto" and config.rate_adaptation == "adaptive"
    by_m = sorted(cands, key=lambda c: c.m)
    if config.code_rate:
        # the nearest rate within 1e-3 (library rates as close as 0.574 / 0.575 coexist); the
        # tolerance is inclusive up to float rounding, and a request equally near two different
        # codes is refused rather than settled by the choice rule
        dist = [abs(1.0 - c.m / c.n - config.code_rate) for c in by_m]
        near = min(dist, default=1.0)
        by_m = [c for c, d in zip(by_m, dist, strict=True)
                if d <= _CODE_RATE_TOLERANCE and d <= near + 1e-12]
        if not by_m:
            have = ", ".join(f"{1.0 - c.m / c.n:.4g}" for c in sorted(cands, key=lambda c: -c.m))
            raise ValueError(f"no mother code of rate {config.code_rate} (within 1e-3) among "
                             f"the codes of length {n}: {have}")
        if len({c.m for c in by_m}) > 1:
            rates = " and ".join(sorted({f"{1.0 - c.m / c.n:.4g}" for c in by_m}))
            raise ValueError(f"code_rate {config.code_rate} is equally near {rates}: give one")
    k_max: int | None = None
    auto_choice: _Candidate | None = None
    if auto:
        # the code and the payload together: the fewest modulated positions, a punctured one
        # counted twice, plus the code's own gap to the Slepian-Wolf limit (ties: the code with
        # fewer checks); see _auto_modulation and _AUTO_GAP_WEIGHT
        lk = config.efficiency * _mean_entropy(error_prob)
        mods = []
        for i, c in enumerate(by_m):
            p_c, s_c = _auto_modulation(n, c.m, lk)
            cost = (_AUTO_PUNCTURE_WEIGHT * p_c + s_c) / n + _AUTO_GAP_WEIGHT * c.gap
            mods.append((cost, c.m, i, p_c + s_c))
        _, _, i_best, d_best = min(mods)
        auto_choice = by_m[i_best]
        k_max = n - d_best
        delta = d_best / n
    else:
        delta = 0.0 if config.rate_adaptation == "fixed" else float(config.modulation)
    ks = _frame_sizes(total, n, delta, k_max)
    bounds = np.concatenate(([0], np.cumsum(ks)))
    if frame_entropy is None:
        perm = _public_perm(public_seed, total)
        hp = np.asarray(h2(np.minimum(error_prob[perm], 0.5)), dtype=np.float64)
        H = np.array([float(hp[bounds[i]:bounds[i + 1]].sum()) for i in range(len(ks))])
    else:
        H = frame_entropy(bounds)
    k_mean = float(ks.mean())
    target = config.efficiency * float(H.mean())  # wanted syndrome leakage per frame
    d_mean = n - k_mean

    # code choice: auto (above); blind (_blind_choice); else the smallest syndrome m >= target
    # (least puncturing), or the largest m
    if auto_choice is not None:
        choice = auto_choice
    elif config.rate_adaptation == "blind":
        choice = _blind_choice(by_m, config, float(H.mean()), d_mean)
    else:
        choice = _least_m_at_least(by_m, target)
    code = choice.load()
    pun = punctured_order(code, public_seed)
    P = int(pun.shape[0])
    ps = []
    for i, k in enumerate(ks):
        d = n - int(k)
        cap = min(d, P) if config.rate_adaptation != "fixed" else 0
        if config.rate_adaptation == "adaptive":
            want = code.m - config.efficiency * H[i]
        elif config.rate_adaptation == "blind":
            want = code.m - config.blind_start_efficiency * H[i]
        else:
            want = 0
        ps.append(int(min(cap, max(0, math.floor(want)))))
    # per-frame locator tags; eps_cor is carried by the final tag over all released bits
    spec = locator_spec(int(ks.max()))
    final_spec = tag_spec(int(total), 1, config.eps_cor)
    plan = {
        "version": PROTOCOL_VERSION,
        "mode": config.rate_adaptation,
        "bits": total,
        "public_seed": int(public_seed),
        "code": {"digest": code.digest, "name": code.name, "n": code.n, "m": code.m,
                 "family": config.family, "seed": config.code_seed},
        "payload": [int(k) for k in ks],
        "punctured": ps,
        "untainted": P,
        "modulation_mean": d_mean,
        "modulation_rule": "auto" if auto else "fixed-fraction",
        "entropy": [float(x) for x in H],
        "tag": asdict(spec),
        "final_tag": asdict(final_spec),
        "blind_step": config.blind_step,
        "on_failure": config.on_failure,
    }
    return plan, code


def _pack(bits: np.ndarray) -> bytes:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def _unpack(data: bytes, count: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count).astype(np.uint8)


def _word_bytes(words: np.ndarray) -> bytes:
    """64-bit words (hash keys, tags) as 8 big-endian bytes each."""
    return b"".join(int(w).to_bytes(8, "big") for w in np.asarray(words).reshape(-1))


def _bytes_words(data: bytes) -> np.ndarray:
    """The inverse of :func:`_word_bytes`."""
    return np.array([int.from_bytes(data[i:i + 8], "big") for i in range(0, len(data), 8)],
                    dtype=np.uint64)


def _tag_bytes(tags: np.ndarray, spec: TagSpec) -> bytes:
    return _word_bytes(spec.truncate(tags))


def _seeds(seed: int | None) -> np.random.SeedSequence:
    return np.random.SeedSequence(secrets.randbits(128) if seed is None else int(seed))


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------
@dataclass
class ReconciliationResult:
    """Outcome of :func:`reconcile` (Bob's view, which the pipeline uses).

    bob_corrected
        uint8, Bob's estimate of Alice's whole string (original order). Only bits of verified
        frames are meaningful; bits of failed frames are set to 0 (never Bob's decoder output).
    verified
        bool per frame; ``all_verified`` is their conjunction.
    frame_of_bit
        Frame index of each bit of the string (so ``verified[frame_of_bit]`` masks the bits).
    leakage
        Itemised leakage; ``leakage.total`` equals the sum of the messages' ``leak_bits``.
    """

    bob_corrected: np.ndarray
    verified: np.ndarray
    frame_of_bit: np.ndarray
    leakage: Leakage
    frames: int
    code_digests: list[str]
    iterations: np.ndarray
    attempts: np.ndarray
    revealed_frames: list[int]
    hash_rejected: list[int]
    entropy_bits: float
    plan: dict[str, Any] = field(repr=False)
    seconds: float = 0.0
    #: the final tag over the released frames: "passed", "failed" (every frame then fails) or
    #: "none" (no frame released)
    final_check: str = "none"

    @property
    def all_verified(self) -> bool:
        return bool(np.all(self.verified))

    @property
    def bits(self) -> int:
        return int(self.bob_corrected.shape[0])

    def verified_mask(self) -> np.ndarray:
        """Per-bit mask: True where the bit belongs to a verified frame."""
        return self.verified[self.frame_of_bit]

    def efficiency(self, q: float | None = None, *, include_tags: bool = True) -> float:
        """f = leak / (N h(q)); with ``q`` None the denominator is sum_i h(p_i) of the priors."""
        leak = self.leakage.total if include_tags else self.leakage.total - self.leakage.tag_bits
        denom = self.entropy_bits if q is None else self.bits * float(h2(q))
        return leak / denom if denom > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        plan = {k: v for k, v in self.plan.items() if k not in ("entropy", "payload", "punctured")}
        return {
            "bits": self.bits,
            "frames": self.frames,
            "verified_frames": int(np.count_nonzero(self.verified)),
            "all_verified": self.all_verified,
            "revealed_frames": list(self.revealed_frames),
            "hash_rejected_frames": list(self.hash_rejected),
            "final_check": self.final_check,
            "leakage": self.leakage.to_dict(),
            "entropy_bits": self.entropy_bits,
            "efficiency": self.efficiency(),
            "efficiency_without_tags": self.efficiency(include_tags=False),
            "code_digests": list(self.code_digests),
            "iterations": {
                "mean": float(np.mean(self.iterations)) if self.iterations.size else 0.0,
                "max": int(np.max(self.iterations)) if self.iterations.size else 0,
            },
            "decoding_attempts": int(np.sum(self.attempts)),
            "frame_payload_bits": [int(x) for x in self.plan["payload"]],
            "punctured": [int(x) for x in self.plan["punctured"]],
            "plan": plan,
            "seconds": self.seconds,
        }


# ------------------------------------------------------------------------------------------------
# the two roles
# ------------------------------------------------------------------------------------------------
class AliceReconciler:
    """Alice's side: answers the plan with hash key, syndromes and tags; reveals on request.

    Parameters
    ----------
    alice_bits
        Her whole string (uint8 0/1).
    config
        Must equal Bob's in the fields the plan depends on (the plan is checked).
    seed
        Seeds her secret pad bits and the hash key (None: fresh OS randomness).
    codes
        Mother codes (default: the code library).
    """

    def __init__(self, alice_bits: np.ndarray, config: ReconciliationConfig, *,
                 seed: int | None = None, codes: CodeSource | None = None) -> None:
        self.bits = np.asarray(alice_bits, dtype=np.uint8)
        if self.bits.ndim != 1 or np.any(self.bits > 1):
            raise ValueError("alice_bits must be a 1-d array of 0/1")
        self.config = config
        ss = _seeds(seed)
        self._rng = np.random.default_rng(ss.spawn(1)[0])
        self._codes_source = codes
        self.plan: dict[str, Any] | None = None
        self.verified: np.ndarray | None = None
        self._released: list[int] | None = None  # frames under the final tag
        self.done = False

    def receive(self, msg: Message) -> list[Message]:
        if msg.sender != "bob":
            raise ValueError("Alice only receives Bob's messages")
        if msg.kind == "ec-plan":
            return self._on_plan(msg)
        if msg.kind == "ec-verdict":
            return self._on_verdict(msg)
        if msg.kind == "ec-final":
            return self._on_final(msg)
        raise ValueError(f"unexpected message kind {msg.kind!r}")

    def _on_plan(self, msg: Message) -> list[Message]:
        plan = json.loads(msg.payload.decode())
        if plan.get("version") != PROTOCOL_VERSION:
            raise ValueError("unknown reconciliation protocol version")
        if plan["bits"] != self.bits.shape[0]:
            raise ValueError("plan length differs from Alice's string")
        cands = _resolve_codes(self._codes_source, self.config, self.bits.shape[0])
        code = _pick_code(cands, plan["code"])
        self.plan, self.code = plan, code
        seed = plan["public_seed"]
        perm = _public_perm(seed, self.bits.shape[0])
        self._pun = punctured_order(code, seed)
        self._short = _short_perm(code, self._pun, seed)
        ks = np.asarray(plan["payload"], dtype=np.int64)
        self._check_plan(plan, code, ks, self._pun.shape[0])
        self._bounds = np.concatenate(([0], np.cumsum(ks)))
        self._perm = perm
        self.spec = TagSpec(**plan["tag"])
        self._final_spec = TagSpec(**plan["final_tag"])
        self._keys = self._rng.integers(0, 2**64, size=self.spec.words, dtype=np.uint64,
                                        endpoint=False)
        self._p_now = list(plan["punctured"])
        a_perm = self.bits[perm]
        out = [Message("alice", "ec-hash-key", _word_bytes(self._keys), leak_bits=0,
                       meta={"words": self.spec.words})]
        self._pads: list[np.ndarray] = []
        self._payloads: list[np.ndarray] = []
        for f, k in enumerate(ks):
            p = self._p_now[f]
            lay = _layout(code, int(k), p, self._pun, self._short)
            x = np.zeros(code.n, dtype=np.uint8)
            payload = a_perm[self._bounds[f]:self._bounds[f + 1]]
            x[lay.payload] = payload
            pad = self._rng.integers(0, 2, size=p, dtype=np.uint8)
            x[lay.punctured] = pad
            self._pads.append(pad)
            self._payloads.append(payload)
            syn = code.syndrome(x)
            out.append(Message(
                "alice", "ec-syndrome", _pack(syn), leak_bits=int(code.m - p),
                meta={"frame": f, "syndrome_bits": int(code.m), "punctured": int(p),
                      "shortened": int(code.n - k - p), "payload_bits": int(k)}))
        for f in range(len(ks)):
            tags = poly_hash(self._payloads[f], self._keys)
            out.append(Message("alice", "ec-tag", _tag_bytes(tags, self.spec),
                               leak_bits=self.spec.bits, meta={"frame": f}))
        return out

    def _check_plan(self, plan: dict[str, Any], code: LdpcCode, ks: np.ndarray,
                    untainted: int) -> None:
        """Refuse a plan whose frame layout Alice cannot build or whose tags she did not choose.

        The layout is used by compiled code without bounds checks, so every count is checked
        here; the tag lengths are recomputed from Alice's own eps_cor (a plan cannot shorten the
        tag that carries the correctness guarantee).
        """
        F = ks.shape[0]
        pun = plan["punctured"]
        if (ks.ndim != 1 or F == 0 or int(ks.sum()) != self.bits.shape[0]
                or np.any(ks < 1) or np.any(ks > code.n)):
            raise ValueError("plan payload sizes do not fit the string and the code")
        if (not isinstance(pun, list) or len(pun) != F or len(plan["entropy"]) != F
                or any(not isinstance(p, int) or p < 0 or p > untainted for p in pun)
                or any(int(k) + p > code.n for k, p in zip(ks, pun, strict=True))):
            raise ValueError("plan punctured counts do not fit the code")
        step = plan["blind_step"]
        if not isinstance(step, (int, float)) or not 0.0 < step <= 1.0:
            raise ValueError("plan blind step out of range")
        want = {"tag": asdict(locator_spec(int(ks.max()))),
                "final_tag": asdict(tag_spec(self.bits.shape[0], 1, self.config.eps_cor))}
        for key, spec in want.items():
            if plan[key] != spec:
                raise ValueError(f"plan {key} differs from Alice's ({spec['bits']} bits)")

    def _on_verdict(self, msg: Message) -> list[Message]:
        assert self.plan is not None
        verdict = json.loads(msg.payload.decode())
        out: list[Message] = []
        for f in verdict["more"]:
            p = self._p_now[f]
            step = max(1, math.ceil(self.plan["blind_step"] * self.plan["entropy"][f]))
            r = min(step, p)
            if r <= 0:
                raise ValueError(f"Bob asked for more bits of frame {f}; none left")
            vals = self._pads[f][p - r:p]
            self._p_now[f] = p - r
            out.append(Message("alice", "ec-reveal", _pack(vals), leak_bits=int(r),
                               meta={"frame": f, "kind": "pad", "bits": int(r),
                                     "round": verdict["round"]}))
        skip = int(verdict.get("skip", 0))
        for f in verdict.get("start", []):
            # a frame of a later wave starts `skip` blind steps up: reveal those pad bits now
            p = self._p_now[f]
            step = max(1, math.ceil(self.plan["blind_step"] * self.plan["entropy"][f]))
            r = min(skip * step, p)
            if r <= 0:
                continue
            vals = self._pads[f][p - r:p]
            self._p_now[f] = p - r
            out.append(Message("alice", "ec-reveal", _pack(vals), leak_bits=int(r),
                               meta={"frame": f, "kind": "pad", "bits": int(r),
                                     "round": verdict["round"], "start": True}))
        for f in verdict["reveal"]:
            out.append(Message("alice", "ec-reveal", _pack(self._payloads[f]),
                               leak_bits=int(self._payloads[f].shape[0]),
                               meta={"frame": f, "kind": "frame",
                                     "bits": int(self._payloads[f].shape[0]),
                                     "round": verdict["round"]}))
        if verdict.get("final"):
            released = [int(f) for f in verdict["verified"]]
            if not released:
                self._decide([])
                return out
            # the final tag: a key drawn now, after every frame is decided (independent of all
            # Bob holds), over the released frames in frame order (verify.py, "Two levels")
            self._released = released
            spec = self._final_spec
            keys = self._rng.integers(0, 2**64, size=spec.words, dtype=np.uint64,
                                      endpoint=False)
            tags = poly_hash(np.concatenate([self._payloads[f] for f in released]), keys)
            payload = _word_bytes(keys) + _tag_bytes(tags, spec)
            out.append(Message("alice", "ec-final-tag", payload, leak_bits=spec.bits,
                               meta={"frames": len(released), "words": spec.words}))
        return out

    def _on_final(self, msg: Message) -> list[Message]:
        assert self.plan is not None
        if self._released is None:
            raise ValueError("a final decision before the final tag")
        accepted = json.loads(msg.payload.decode())["accepted"]
        if not isinstance(accepted, bool):
            raise ValueError("malformed final decision")
        self._decide(self._released if accepted else [])
        return []

    def _decide(self, verified: list[int]) -> None:
        """Alice's final view: these frames are verified, the others are not."""
        assert self.plan is not None
        self.verified = np.zeros(len(self.plan["payload"]), dtype=bool)
        self.verified[verified] = True
        self.done = True


class BobReconciler:
    """Bob's side: sends the plan, decodes, verifies, asks for more, builds the result.

    Parameters
    ----------
    bob_bits
        His guess of Alice's string.
    error_prob
        Per-bit prior probability that his bit differs from Alice's (public: from the announced
        test rounds and the expected QBER / winning probability).
    config, seed, codes
        As for :class:`AliceReconciler`; ``seed`` also fixes the public permutation.
    """

    def __init__(self, bob_bits: np.ndarray, error_prob: np.ndarray | float,
                 config: ReconciliationConfig, *, seed: int | None = None,
                 codes: CodeSource | None = None) -> None:
        self.bits = np.asarray(bob_bits, dtype=np.uint8)
        ep = np.asarray(error_prob, dtype=np.float64)
        if ep.ndim == 0:
            # broadcast without a copy (a read-only stride-0 view)
            ep = np.broadcast_to(np.float64(ep), (self.bits.shape[0],))
        if self.bits.ndim != 1 or ep.shape != self.bits.shape:
            raise ValueError("bob_bits and error_prob must be 1-d arrays of the same length")
        bad = _check_priors(self.bits, ep)
        if bad == 1:
            raise ValueError("bob_bits must be 0/1")
        if bad == 2:
            raise ValueError("error_prob must be probabilities")
        # a prior above 1/2 means Bob's bit is more likely wrong: flip it and use 1 - p (the
        # inputs are only read, so without such a prior they are used as they are)
        if bad == 3:
            self._y = np.empty(self.bits.shape[0], dtype=np.uint8)
            self.error_prob = np.empty(self.bits.shape[0], dtype=np.float64)
            _flip(self.bits, ep, self._y, self.error_prob)
        else:
            self._y = self.bits
            self.error_prob = ep
        self.config = config
        ss = _seeds(seed)
        self._public_seed = int(ss.generate_state(1, np.uint32)[0])
        self._codes_source = codes
        self.done = False
        self.progress: Callable[..., Any] | None = None
        self._t0 = time.perf_counter()

    # -- protocol ------------------------------------------------------------------------------
    def start(self) -> list[Message]:
        cands = _resolve_codes(self._codes_source, self.config, self.bits.shape[0])
        # held here so that _make_plan and Alice (same process) reuse it
        N = self.bits.shape[0]
        self._perm = _public_perm(self._public_seed, N)
        # per-bit entropies (for the plan) and prior LLRs |llr| (the values of
        # llr_from_error_prob), as tables over the distinct priors when there are few (the
        # pipeline has two), else per bit; read through the permutation frame by frame
        few = _distinct_bits(self.error_prob, 16) if N else None
        self._yc: np.ndarray | None = None
        if few is not None:
            vals, self._prior_code = few
            # one gather through the permutation; frames then read contiguous slices
            self._yc = np.empty(N, dtype=np.uint8)
            _permute_codes(self._perm, self._y, self._prior_code, self._yc)
        else:
            vals = np.asarray(self.error_prob, dtype=np.float64)
            self._prior_code = np.zeros(0, dtype=np.uint8)
        h_tab = np.asarray(h2(np.minimum(vals, 0.5)), dtype=np.float64).reshape(-1)
        self._mag_tab = _llr_magnitude(vals)
        none = np.zeros(0, dtype=np.int64)
        self._llr_buf: np.ndarray | None = None  # the decoder-call input, reused per batch

        def frame_entropy(bounds: np.ndarray) -> np.ndarray:
            # the entropies of each frame's bits in a contiguous buffer, summed by numpy as
            # hp[a:b].sum() would (same values, same length, same pairwise order)
            ks_ = np.diff(bounds)
            buf = np.empty(int(ks_.max()) if ks_.size else 0, dtype=np.float64)
            out = np.empty(ks_.shape[0], dtype=np.float64)
            for i in range(ks_.shape[0]):
                a, b = int(bounds[i]), int(bounds[i + 1])
                if self._yc is not None:
                    _frame_fill(self._yc, a, b, h_tab, False, none, buf)
                else:
                    _perm_fill(self._perm, a, b, self._prior_code, h_tab, self._y, False, none,
                               buf)
                out[i] = float(buf[:b - a].sum())
            return out

        plan, self.code = _make_plan(self.error_prob, self.config, cands, self._public_seed,
                                     frame_entropy=frame_entropy)
        self.plan = plan
        F = len(plan["payload"])
        self.F = F
        seed = plan["public_seed"]
        assert seed == self._public_seed
        self._pun = punctured_order(self.code, seed)
        self._short = _short_perm(self.code, self._pun, seed)
        ks = np.asarray(plan["payload"], dtype=np.int64)
        self._ks = ks
        self._bounds = np.concatenate(([0], np.cumsum(ks)))
        self.spec = TagSpec(**plan["tag"])
        self._final_spec = TagSpec(**plan["final_tag"])
        #: "passed" / "failed": the final tag over the released frames; "none": nothing released
        self.final_check = "none"
        self._p_now = list(plan["punctured"])
        self._revealed: list[list[np.ndarray]] = [[] for _ in range(F)]  # pad values, in order
        self._syn: list[np.ndarray | None] = [None] * F
        self._tag: list[bytes | None] = [None] * F
        self._keys: np.ndarray | None = None
        self._status = np.zeros(F, dtype=np.int8)  # 0 pending, 1 verified, 2 failed
        self._frame_out: list[np.ndarray | None] = [None] * F
        self._iters = np.zeros(F, dtype=np.int64)
        self._attempts = np.zeros(F, dtype=np.int64)
        self._round = 0
        self._awaiting: set[tuple[str, int]] = {("syndrome", f) for f in range(F)}
        self._awaiting |= {("tag", f) for f in range(F)}
        self._awaiting.add(("key", -1))
        self._fallback: list[int] = []
        self._hash_rejected: list[int] = []
        self._states: dict[int, DecoderState] = {}  # blind: BP state of frames asked for more
        # frames whose first attempt is scheduled; blind mode starts a first wave only
        self._started = np.ones(F, dtype=bool)
        self._skip_of: dict[int, int] = {}  # announced starting step of later-wave frames
        if plan["mode"] == "blind" and F > _WAVE_MIN:
            w1 = min(F, max(_WAVE_MIN, math.ceil(_WAVE_FIRST * F)))
            if w1 < F:
                self._started[w1:] = False
        self.leak = {"syndrome": 0, "revealed": 0, "tag": 0, "feedback": 0}
        msg = Message("bob", "ec-plan", json.dumps(plan, sort_keys=True).encode(), leak_bits=0,
                      meta={"frames": F, "code": plan["code"]["digest"],
                            "mode": plan["mode"]})
        return [msg]

    def receive(self, msg: Message) -> list[Message]:
        if msg.sender != "alice":
            raise ValueError("Bob only receives Alice's messages")
        if msg.kind == "ec-final-tag":
            return self._on_final_tag(msg)
        f = int(msg.meta.get("frame", -1))
        if msg.kind == "ec-hash-key":
            self._keys = _bytes_words(msg.payload)
            self._awaiting.discard(("key", -1))
        elif msg.kind == "ec-syndrome":
            self._syn[f] = _unpack(msg.payload, self.code.m)
            self.leak["syndrome"] += msg.leak_bits
            self._awaiting.discard(("syndrome", f))
        elif msg.kind == "ec-tag":
            self._tag[f] = msg.payload
            self.leak["tag"] += msg.leak_bits
            self._awaiting.discard(("tag", f))
        elif msg.kind == "ec-reveal":
            self.leak["revealed"] += msg.leak_bits
            if msg.meta["kind"] == "pad":
                r = int(msg.meta["bits"])
                self._revealed[f].insert(0, _unpack(msg.payload, r))
                self._p_now[f] -= r
            else:
                self._frame_out[f] = _unpack(msg.payload, int(self._ks[f]))
                self._status[f] = 1
            self._awaiting.discard(("reveal", f))
        else:
            raise ValueError(f"unexpected message kind {msg.kind!r}")
        if self._awaiting:
            return []
        if np.any(self._status == 0):
            return self._decode_round()
        return self._final()

    def _llr(self, f: int, out: np.ndarray | None = None) -> tuple[np.ndarray, _FrameLayout]:
        code = self.code
        k = int(self._ks[f])
        p0 = self.plan["punctured"][f]
        lay = _layout(code, k, p0, self._pun, self._short)
        if out is None:
            llr = np.full(code.n, LLR_KNOWN)  # shortened: public value 0
        else:
            llr = out
            llr.fill(LLR_KNOWN)
        # = llr_from_error_prob(y[idx], error_prob[idx]) for idx = perm[bounds[f]:bounds[f+1]]
        a, b = int(self._bounds[f]), int(self._bounds[f + 1])
        if self._yc is not None:
            _frame_fill(self._yc, a, b, self._mag_tab, True, lay.payload, llr)
        else:
            _perm_fill(self._perm, a, b, self._prior_code, self._mag_tab, self._y, True,
                       lay.payload, llr)
        llr[lay.punctured] = 0.0
        if self._revealed[f]:
            vals = np.concatenate(self._revealed[f])  # the last len(vals) pad positions
            pos = lay.punctured[p0 - vals.shape[0]:]
            llr[pos] = np.where(vals == 1, -LLR_KNOWN, LLR_KNOWN)
        return llr, lay

    def _decode_round(self) -> list[Message]:
        assert self._keys is not None
        pending = np.flatnonzero((self._status == 0) & self._started)
        more: list[int] = []
        failed: list[int] = []
        rescue: list[int] = []
        done_before = int(np.count_nonzero(self._status))
        blind = self.plan["mode"] == "blind"
        bs = _batch_size(self.code, keep_state=blind)
        # frames continuing from a kept state first (warm start); a batch mixing warm and cold
        # frames gives the cold ones the initial state (L = prior, R = 0: exactly a cold start),
        # so a round is one decoder call per batch (the SIMD kernel's lanes stay busy)
        warm = [int(f) for f in pending if int(f) in self._states]
        cold = [int(f) for f in pending if int(f) not in self._states]
        order = warm + cold
        # batches of equal size (100 frames in batches of at most 32: 4 x 25, not 32, 32, 32, 4,
        # whose last call would leave most SIMD lanes idle); results do not depend on batching
        nb = -(-len(order) // bs)
        batches = np.array_split(np.asarray(order, dtype=np.int64), nb) if nb else []
        done_now = 0
        for batch in batches:
            # one input buffer for every batch (decode() does not keep it: its state holds a
            # clipped copy), so that its pages are touched once
            if self._llr_buf is None or self._llr_buf.shape[0] < batch.shape[0]:
                self._llr_buf = np.empty((bs, self.code.n), dtype=np.float64)
            llrs = self._llr_buf[:batch.shape[0]]
            lays = []
            for j, f in enumerate(batch):
                lays.append(self._llr(int(f), out=llrs[j])[1])
            syn = np.stack([np.asarray(self._syn[int(f)]) for f in batch])
            st = None
            if int(batch[0]) in self._states:
                st = DecoderState.stack([self._states.pop(int(f)) if int(f) in self._states
                                         else _initial_state(llrs[j], self.code)
                                         for j, f in enumerate(batch)])
            # blind: an attempt that stalls while pad bits are left stops early and asks for more
            # (its state is kept, so the iterations are not lost); the last attempt runs in full
            stall = np.array([blind and self._p_now[int(f)] > 0 for f in batch], dtype=bool)
            bits, conv, its, batch_state = self._attempt(syn, llrs, st, stall, blind)
            del st
            for j, f in enumerate(batch):
                f = int(f)
                self._iters[f] += int(its[j])
                self._attempts[f] += 1
                if conv[j]:
                    cand = bits[j][lays[j].payload]
                    tag = _tag_bytes(poly_hash(cand, self._keys), self.spec)
                    if tag == self._tag[f]:
                        self._frame_out[f] = cand
                        self._status[f] = 1
                        continue
                    # syndrome matched but the hash did not: never compare this frame again
                    self._hash_rejected.append(f)
                    failed.append(f)
                elif blind and self._p_now[f] > 0:
                    more.append(f)
                    if batch_state is not None and self._state_room(batch_state):
                        self._states[f] = batch_state.frame(int(j))
                elif blind:
                    rescue.append(f)
                else:
                    failed.append(f)
            done_now += batch.shape[0]
            if self.progress is not None:
                done = done_before + done_now
                try:
                    self.progress(min(done, self.F), self.F)
                except Exception:  # noqa: BLE001  (a progress callback never breaks the run)
                    pass
        # blind: a frame that failed its last attempt (no pad bit left) after a learned start or
        # a warm start gets one more local attempt before the fallback: Bob, who now knows every
        # pad bit, replays the step-by-step path (pads pinned one blind step at a time, warm
        # start, patience _RESCUE_PATIENCE). Local computation only: the outcome is this round's
        # verdict bit, and the frame's tag is still compared at most once.
        for i in range(0, len(rescue), bs):
            self._rescue([int(f) for f in rescue[i:i + bs]], failed)
        more.sort()
        failed.sort()
        reveal = []
        if self.config.on_failure == "reveal":
            reveal = failed
            self._fallback.extend(failed)
        else:
            for f in failed:
                self._status[f] = 2
        self._round += 1
        start: list[int] = []
        skip = 0
        if not np.all(self._started) and (_WAVE_EARLY or not more):
            # start the next wave at a point learned from the public outcomes so far (a function
            # of earlier verdicts and this one, all public), as soon as that point is determined
            # (frames still climbing can only end above their current level)
            start, skip = self._next_wave(reveal)
        final = not more and not reveal and not start
        verdict = {"round": self._round, "decided": [int(f) for f in pending],
                   "more": more, "reveal": reveal, "final": final}
        if start:
            verdict["start"] = start
            verdict["skip"] = skip
        feedback = int(pending.shape[0])
        if final:
            verdict["verified"] = [int(f) for f in np.flatnonzero(self._status == 1)]
        self.leak["feedback"] += feedback
        self._awaiting = {("reveal", f) for f in more + reveal}
        self._awaiting |= {("reveal", f) for f in start if self._skip_bits(f, skip) > 0}
        out = [Message("bob", "ec-verdict", json.dumps(verdict, sort_keys=True).encode(),
                       leak_bits=feedback,
                       meta={"round": self._round, "frames": int(pending.shape[0]),
                             "more": len(more), "reveal": len(reveal), "final": final,
                             "start": len(start), "skip": skip})]
        if final:
            self._await_final()
        elif not self._awaiting:
            # nothing to wait for (a new wave starting at its planned point): decode it now
            out.extend(self._decode_round())
        return out

    def _attempt(self, syn: np.ndarray, llr: np.ndarray, st: DecoderState | None,
                 stall: np.ndarray, blind: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, DecoderState | None]:
        """One decoding attempt of a batch: (bits, converged, iterations, batch state).

        Frames with ``stall`` set (blind, pad bits left) stop early once their count of
        unsatisfied checks has not reached a new minimum for ``_BLIND_PATIENCE`` iterations; the
        others run up to ``max_iterations``. The batch's final state is returned in blind mode (None
        otherwise); the caller copies out (``.frame(j)``) only the states it keeps.
        """
        cfg = self.config
        pat = np.where(stall, _BLIND_PATIENCE, 0).astype(np.int64)
        res = decode(self.code, syn, llr, algorithm=cfg.decoder,
                     max_iterations=cfg.max_iterations, ms_scaling=cfg.ms_scaling,
                     ms_offset=cfg.ms_offset, threads=cfg.threads or None,
                     state=st, keep_state=blind, patience=pat)
        return res.bits, res.converged, res.iterations, res.state

    def _rescue(self, batch: list[int], failed: list[int]) -> None:
        assert self._keys is not None  # the hash-key message precedes every decode
        cfg = self.config
        syn = np.stack([np.asarray(self._syn[f]) for f in batch])
        base = [self._llr(f) for f in batch]
        p0 = [int(self.plan["punctured"][f]) for f in batch]
        steps = [max(1, math.ceil(self.plan["blind_step"] * self.plan["entropy"][f]))
                 for f in batch]
        known = [0] * len(batch)  # pads (from the end of the list) pinned in the replay
        st = None
        live = list(range(len(batch)))
        while live:
            llrs = []
            for j in live:
                llr, lay = base[j]
                llr = llr.copy()
                llr[lay.punctured[:p0[j] - known[j]]] = 0.0
                llrs.append(llr)
            pat = np.array([_RESCUE_PATIENCE if known[j] < p0[j] else 0 for j in live],
                           dtype=np.int64)
            res = decode(self.code, syn[live], np.stack(llrs), algorithm=cfg.decoder,
                         max_iterations=cfg.max_iterations, ms_scaling=cfg.ms_scaling,
                         ms_offset=cfg.ms_offset, threads=cfg.threads or None,
                         state=st, keep_state=True, patience=pat)
            keep = []
            for jj, j in enumerate(live):
                f = batch[j]
                self._iters[f] += int(res.iterations[jj])
                if res.converged[jj]:
                    cand = res.bits[jj][base[j][1].payload]
                    tag = _tag_bytes(poly_hash(cand, self._keys), self.spec)
                    if tag == self._tag[f]:
                        self._frame_out[f] = cand
                        self._status[f] = 1
                    else:
                        self._hash_rejected.append(f)
                        failed.append(f)
                elif known[j] >= p0[j]:
                    failed.append(f)
                else:
                    known[j] = min(p0[j], known[j] + steps[j])
                    keep.append(jj)
            if not keep or res.state is None:
                for j in (live[jj] for jj in keep):
                    failed.append(batch[j])
                break
            st = DecoderState.stack([res.state.frame(jj) for jj in keep])
            live = [live[jj] for jj in keep]

    def _skip_bits(self, f: int, skip: int) -> int:
        """Pad bits Alice reveals before the first attempt of a frame started ``skip`` steps up."""
        step = max(1, math.ceil(self.plan["blind_step"] * self.plan["entropy"][f]))
        return int(min(skip * step, self._p_now[f]))

    def _next_wave(self, reveal_now: list[int]) -> tuple[list[int], int]:
        """Frames of the next wave and their starting step, from public outcomes only.

        The success level of a decided frame is the number of blind steps revealed before its
        successful attempt (announced skip + attempts - 1; frames revealed in full count as one
        step above their last attempt); a frame still climbing will end at or above its floor
        (skip + attempts). The next wave starts ``_LEARN_BACK`` steps below the
        ``blind_start_quantile`` of the levels of all frames started so far, as soon as that order
        statistic is determined (with ``_WAVE_EARLY``; else once every started frame is
        decided): it is then the value waiting would give. The wave has
        max(``_WAVE_MIN``, ceil(``_WAVE_GROWTH`` x frames started)) frames (all remaining ones
        when ``_WAVE_GROWTH`` is 0). Returns ([], 0) while undetermined. All inputs are in the
        plan and the verdicts: Alice could compute it.
        """
        fallback = set(self._fallback) | set(reveal_now)
        levels = []
        floor = []  # frames still climbing: their level will be at least this
        for fi in np.flatnonzero(self._started):
            f = int(fi)
            base = self._skip_of.get(f, 0)
            if f in fallback or self._status[f] == 2:
                levels.append(base + int(self._attempts[f]))
            elif self._status[f] == 1:
                levels.append(base + int(self._attempts[f]) - 1)
            else:
                floor.append(base + int(self._attempts[f]))
        skip = 0
        if levels:
            # the quantile of the levels of *all* started frames, once it is determined: the
            # order statistic among the decided frames is at most every climbing frame's floor
            # (then it equals the value that waiting for the whole wave would give)
            lv = np.sort(np.asarray(levels, dtype=np.int64))
            q = float(self.config.blind_start_quantile)
            k = int(math.floor(q * (lv.shape[0] + len(floor) - 1)))
            if k >= lv.shape[0] or (floor and int(lv[k]) > min(floor)):
                return [], 0
            skip = max(0, int(lv[k]) - _LEARN_BACK)
        elif floor:
            return [], 0
        start = [int(fi) for fi in np.flatnonzero(~self._started)]
        if _WAVE_GROWTH > 0:
            size = max(_WAVE_MIN, math.ceil(_WAVE_GROWTH * int(np.count_nonzero(self._started))))
            start = start[:size]
        self._started[start] = True
        for s in start:
            self._skip_of[s] = skip
        return start, skip

    def _state_room(self, st: DecoderState) -> bool:
        per_frame = st.nbytes // max(1, st.L.shape[0])
        return (len(self._states) + 1) * per_frame <= _STATE_BYTES

    def _drop_buffers(self) -> None:
        """Drop the decoding buffers once every frame is decided (the decoder-input buffer is
        ~51 MB at 64 frames of 1e5 bits; the permuted prior classes are N bytes)."""
        self._llr_buf = None
        self._yc = None
        self._states.clear()

    def _finish(self) -> None:
        """Mark the run decided."""
        self.done = True
        self._drop_buffers()

    def _final(self) -> list[Message]:
        """All frames decided after fallback reveals: the closing verdict (no new decisions)."""
        self._round += 1
        verdict = {"round": self._round, "decided": [], "more": [], "reveal": [],
                   "final": True, "verified": [int(f) for f in np.flatnonzero(self._status == 1)]}
        self._await_final()
        return [Message("bob", "ec-verdict", json.dumps(verdict, sort_keys=True).encode(),
                        leak_bits=0, meta={"round": self._round, "frames": 0, "final": True})]

    def _await_final(self) -> None:
        """After the closing verdict: wait for Alice's final tag if any frame is released."""
        if np.any(self._status == 1):
            self._awaiting = {("final-tag", -1)}
            self._drop_buffers()
        else:
            self._finish()

    def _on_final_tag(self, msg: Message) -> list[Message]:
        """Compare the final tag over the released frames; a mismatch fails every frame.

        This comparison carries eps_cor (verify.py, "Two levels"): the key arrived after every
        frame was decided, so Bob's concatenation does not depend on it. It is made once.
        """
        if self._awaiting != {("final-tag", -1)}:
            raise ValueError("unexpected final tag")
        spec = self._final_spec
        nk = 8 * spec.words  # the keys, then the tag words
        if len(msg.payload) != 2 * nk:
            raise ValueError("malformed final tag")
        keys = _bytes_words(msg.payload[:nk])
        released = np.flatnonzero(self._status == 1)
        mine = np.concatenate([np.asarray(self._frame_out[int(f)]) for f in released])
        ok = _tag_bytes(poly_hash(mine, keys), spec) == msg.payload[nk:]
        self.leak["tag"] += msg.leak_bits
        self.leak["feedback"] += 1
        self.final_check = "passed" if ok else "failed"
        if not ok:
            self._status[released] = 2
        self._awaiting = set()
        self._finish()
        return [Message("bob", "ec-final", json.dumps({"accepted": bool(ok)}).encode(),
                        leak_bits=1, meta={"accepted": bool(ok),
                                           "frames": int(released.shape[0])})]

    # -- result --------------------------------------------------------------------------------
    def result(self) -> ReconciliationResult:
        if not self.done:
            raise RuntimeError("reconciliation has not finished")
        N = self.bits.shape[0]
        out_perm = np.zeros(N, dtype=np.uint8)
        status = self._status.copy()
        for f in range(self.F):
            a, b = self._bounds[f], self._bounds[f + 1]
            out_f = self._frame_out[f]
            if self._status[f] == 1 and out_f is not None:
                out_perm[a:b] = out_f
            else:
                status[f] = 0
        bob_corrected = np.empty(N, dtype=np.uint8)
        frame_of_bit = np.empty(N, dtype=np.int64)
        _scatter_result(self._perm, np.asarray(self._bounds, dtype=np.int64), status, out_perm,
                        bob_corrected, frame_of_bit)
        leak = Leakage(syndrome_bits=self.leak["syndrome"], revealed_bits=self.leak["revealed"],
                       tag_bits=self.leak["tag"], feedback_bits=self.leak["feedback"])
        return ReconciliationResult(
            bob_corrected=bob_corrected,
            verified=self._status == 1,
            frame_of_bit=frame_of_bit,
            leakage=leak,
            frames=self.F,
            code_digests=[self.code.digest],
            iterations=self._iters.copy(),
            attempts=self._attempts.copy(),
            revealed_frames=sorted(self._fallback),
            hash_rejected=sorted(self._hash_rejected),
            entropy_bits=float(np.sum(self.plan["entropy"])),
            plan=self.plan,
            seconds=time.perf_counter() - self._t0,
            final_check=self.final_check,
        )


# ------------------------------------------------------------------------------------------------
# one-call driver
# ------------------------------------------------------------------------------------------------
def reconcile(
    alice_bits: np.ndarray,
    bob_bits: np.ndarray,
    error_prob: np.ndarray | float,
    config: ReconciliationConfig | None = None,
    *,
    seed: int | None = None,
    transcript: Any = None,
    progress: Callable[..., Any] | None = None,
    codes: CodeSource | None = None,
) -> ReconciliationResult:
    """Run both roles in this process; every message goes through ``transcript.send``.

    ``seed`` makes the run reproducible (public permutation, hash key and Alice's pad bits are
    derived from it); None draws fresh OS randomness. ``progress(done_frames, total_frames)`` is
    called after each decoded batch. ``codes`` overrides the code library (tests).
    """
    config = config or ReconciliationConfig()
    ss = _seeds(seed)
    s_alice, s_bob = (int(s.generate_state(1, np.uint64)[0]) for s in ss.spawn(2))
    a = np.asarray(alice_bits, dtype=np.uint8)
    if a.shape != np.asarray(bob_bits).shape:
        raise ValueError("alice_bits and bob_bits differ in length")
    alice = AliceReconciler(a, config, seed=s_alice, codes=codes)
    bob = BobReconciler(bob_bits, error_prob, config, seed=s_bob, codes=codes)
    bob.progress = progress
    queue = bob.start()
    while queue:
        msg = queue.pop(0)
        if transcript is not None:
            transcript.send(msg)
        target = alice if msg.sender == "bob" else bob
        queue.extend(target.receive(msg))
    if not (alice.done and bob.done):
        raise RuntimeError("reconciliation ended before both roles finished")
    res = bob.result()
    if alice.verified is None or not np.array_equal(alice.verified, res.verified):
        raise RuntimeError("Alice's and Bob's views of the verified frames differ")
    return res
