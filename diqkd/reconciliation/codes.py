"""The code library: deterministic LDPC mother codes, built from a seed and cached on disk.

``get_code(rate, n, seed=0)`` returns the same parity-check matrix (same :attr:`LdpcCode.digest`)
on every machine: degree counts come from exact rational arithmetic, and the construction (PEG,
QC lifting) uses only integer operations and its own splitmix64 generator. Built codes are cached
in ``$DIQKD_CODE_CACHE`` (default ``$XDG_CACHE_HOME/diqkd/codes`` or ``~/.cache/diqkd/codes``),
keyed by (family, rate, n, seed, construction version) and verified against their digest when
loaded (a corrupt or stale file is rebuilt).

Families
--------
``"peg-irregular"`` (production)
    Irregular variable degrees from :data:`~diqkd.reconciliation.distributions.DISTRIBUTIONS`
    (optimised for the BSC), concentrated check degrees. n <= ``PEG_MAX_N``: progressive edge
    growth on the whole graph (exact girth recorded). Longer frames: PEG base graph of length
    n / Z <= ``PEG_MAX_N`` lifted by Z x Z circulant permutations (girth >= base girth; recorded as
    a lower bound), if Z divides n and m; otherwise depth-capped PEG. The DE-designed high rates
    (0.91-0.95, construction version 2) first place min(n2, m - 1) degree-2 variables as a
    cycle-free accumulate chain (``peg_edges(staircase=...)``) and lift with circulant shifts
    chosen to break the base graph's 4-cycles (:func:`~diqkd.reconciliation.peg.qc_lift_no4`).
    The version-1 rates (0.50-0.90) are built exactly as before (same digests).
``"pyldpc-regular"`` (baseline)
    Gallager's regular construction from pyldpc (``pyldpc.code.parity_check_matrix``, the H of
    ``pyldpc.make_ldpc`` without its O(n^3) generator matrix; variable degree 3, 4 or 5, check
    degree dv / (1 - rate), which must be an integer dividing n). Only pyldpc's *construction* is
    used: its decoder models a Gaussian channel, has no syndrome input and uses dense matrices.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes
from .code import LdpcCode
from .distributions import (
    DISTRIBUTIONS,
    check_degree_counts,
    get_distribution,
    h2,
    variable_degree_counts,
)
from .peg import peg_edges, qc_lift, qc_lift_no4

__all__ = [
    "CONSTRUCTION_VERSION", "HR_CONSTRUCTION_VERSION", "HR_MIN_LENGTH", "FAMILIES", "PEG_MAX_N",
    "STANDARD_LENGTHS", "CodeSpec", "construction_version", "get_code", "build_code",
    "code_cache_dir", "available_codes", "select_code", "requested_degrees",
]

CONSTRUCTION_VERSION = 1  # the Elkouss-distribution codes (rates 0.50-0.90): frozen, never bump
#: construction version of the DE-designed high-rate codes (staircase degree-2 chain + PEG); each
#: registered distribution names its version in ``extra["construction_version"]``
HR_CONSTRUCTION_VERSION = 2
#: shortest library length at which the high-rate codes are offered for automatic choice. At
#: n = 1e4 (full PEG, girth 4, high check degree) they have an error floor: blind runs of 64
#: frames of 9,000 bits at QBER 1 % revealed 18 frames (f 4.74) with them against 4 (f 2.10)
#: with the rate-0.90 v1 code (measured 2026-11-28); at 1e5 they are better (f 1.155 vs 1.227).
HR_MIN_LENGTH = 100_000
FAMILIES = ("peg-irregular", "pyldpc-regular")
PEG_MAX_N = 12_500
STANDARD_LENGTHS = (10_000, 100_000, 1_000_000)


def code_cache_dir() -> Path:
    """`$DIQKD_CODE_CACHE`, else `$XDG_CACHE_HOME/diqkd/codes`, else `~/.cache/diqkd/codes`."""
    env = os.environ.get("DIQKD_CODE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "diqkd" / "codes"


def _mix_seed(seed: int, rate: float, n: int, salt: int = 0) -> int:
    x = (int(seed) * 0x9E3779B1 + int(n) * 1_000_003 + int(round(rate * 10_000)) * 7919 + salt)
    return x & 0x7FFFFFFFFFFFFFFF


def _lift_factor(n: int, m: int) -> int:
    """Smallest Z with Z | n, Z | m and n / Z <= PEG_MAX_N (0 if none up to n / 1000)."""
    if n <= PEG_MAX_N:
        return 1
    for z in range(math.ceil(n / PEG_MAX_N), max(2, n // 1000) + 1):
        if n % z == 0 and m % z == 0:
            return z
    return 0


def _num_checks(rate: float, n: int) -> int:
    return n - int(round(rate * n))


def construction_version(family: str, rate: float) -> int:
    """Version of the construction of (family, rate): part of the code's name and cache key.

    The Elkouss-distribution rates keep version 1 forever (their digests are in old reports);
    distributions added later carry their own version (``extra["construction_version"]``).
    """
    if family != "peg-irregular":
        return CONSTRUCTION_VERSION
    try:
        dist = get_distribution(rate)
    except KeyError:
        return CONSTRUCTION_VERSION
    return int(dist.extra.get("construction_version", CONSTRUCTION_VERSION))


def _staircase_length(dist, var_counts: dict[int, int], m: int) -> int:
    """Degree-2 variables placed as an accumulate chain (0 unless the distribution asks)."""
    if not dist.extra.get("staircase"):
        return 0
    return min(var_counts.get(2, 0), m - 1)


def requested_degrees(rate: float, n: int) -> tuple[dict[int, int], dict[int, int], int]:
    """(variable degree counts, check degree counts, lift factor Z) that `peg-irregular` builds.

    For a lifted code the counts are Z times those of the base graph.
    """
    dist = get_distribution(rate)
    m = _num_checks(rate, n)
    z = _lift_factor(n, m)
    zz = z if z > 1 else 1
    vc = variable_degree_counts(dist, n // zz)
    e = sum(d * c for d, c in vc.items())
    cc = check_degree_counts(e, m // zz)
    return ({d: c * zz for d, c in vc.items()}, {d: c * zz for d, c in cc.items()}, z)


def _build_peg_irregular(rate: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    dist = get_distribution(rate)
    m = _num_checks(rate, n)
    z = _lift_factor(n, m)
    nb, mb = (n // z, m // z) if z >= 1 else (n, m)
    vc = variable_degree_counts(dist, nb)
    var_deg = np.concatenate([np.full(c, d, dtype=np.int64) for d, c in sorted(vc.items())])
    e = int(var_deg.sum())
    dlo, r = divmod(e, mb)
    caps = np.full(mb, dlo, dtype=np.int64)
    caps[:r] += 1
    max_depth = 0 if z >= 1 else 4
    stair = _staircase_length(dist, vc, mb)
    c, v, g, lower, over = peg_edges(var_deg, caps, seed=_mix_seed(seed, rate, n),
                                     max_depth=max_depth, staircase=stair)
    info = {"distribution": dist.to_json(), "threshold": dist.threshold,
            "check_degree_overflows": over}
    if stair:
        info["staircase"] = stair * (z if z > 1 else 1)
    if z > 1 and construction_version("peg-irregular", rate) >= HR_CONSTRUCTION_VERSION:
        base_girth = g
        c, v, left = qc_lift_no4(c, v, nb, mb, z, seed=_mix_seed(seed, rate, n, salt=1))
        info["construction"] = (f"qc-lift Z={z} of PEG base ({nb} x {mb}), shifts chosen to "
                                f"break the base 4-cycles")
        info["lift_factor"] = z
        info["lift_4cycle_classes_left"] = left
        if left == 0 and base_girth == 4:
            g = 6  # no 4-cycle survives the lift; a 6-cycle may (lower bound)
        lower = True
    elif z > 1:
        c, v = qc_lift(c, v, nb, mb, z, seed=_mix_seed(seed, rate, n, salt=1))
        info["construction"] = f"qc-lift Z={z} of PEG base ({nb} x {mb})"
        info["lift_factor"] = z
        lower = True
    elif z == 1:
        info["construction"] = "PEG (full breadth-first search)"
    else:
        info["construction"] = "PEG (search depth capped at 4)"
    info["girth"] = g if g < (1 << 30) else None
    info["girth_is_lower_bound"] = bool(lower)
    return c, v, info


def _build_pyldpc_regular(rate: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    from pyldpc.code import parity_check_matrix
    from pyldpc.utils import check_random_state

    for dv in (3, 4, 5):
        dc = dv / (1.0 - rate)
        if abs(dc - round(dc)) < 1e-9 and n % int(round(dc)) == 0:
            dc = int(round(dc))
            break
    else:
        raise ValueError(f"pyldpc-regular: no (dv, dc) with dv in 3..5, dc = dv/(1-R) integer "
                         f"dividing n for rate {rate}, n {n}")
    # the construction make_ldpc uses, without make_ldpc's dense Gaussian elimination for the
    # generator matrix (O(n^3), useless for syndrome coding)
    H = np.asarray(parity_check_matrix(n, dv, dc, seed=check_random_state(int(seed))))
    rows, cols = np.nonzero(H % 2)
    info = {"construction": f"pyldpc Gallager regular ({dv}, {dc}) (make_ldpc's H)",
            "dv": dv, "dc": dc, "girth": None, "girth_is_lower_bound": False}
    return rows, cols, info


def build_code(rate: float, n: int, *, seed: int = 0, family: str = "peg-irregular") -> LdpcCode:
    """Build a code without touching the cache (deterministic in (family, rate, n, seed))."""
    rate = round(float(rate), 4)
    n = int(n)
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; have {FAMILIES}")
    if not 0.0 < rate < 1.0 or n < 16:
        raise ValueError("need 0 < rate < 1 and n >= 16")
    t0 = time.perf_counter()
    if family == "peg-irregular":
        c, v, info = _build_peg_irregular(rate, n, seed)
    else:
        c, v, info = _build_pyldpc_regular(rate, n, seed)
    m = _num_checks(rate, n)
    meta = {"family": family, "rate": rate, "n": n, "m": m, "seed": int(seed),
            "version": construction_version(family, rate), **info}
    code = LdpcCode.from_edges(n, m, c, v, name=_name(family, rate, n, seed), meta=meta)
    code.meta["build_seconds"] = round(time.perf_counter() - t0, 3)
    code.meta["digest"] = code.digest
    return code


def _name(family: str, rate: float, n: int, seed: int) -> str:
    return f"{family}-r{rate:.4f}-n{n}-s{seed}-v{construction_version(family, rate)}"


def _cache_file(family: str, rate: float, n: int, seed: int, cache_dir: Path) -> Path:
    return cache_dir / (_name(family, rate, n, seed) + ".npz")


def _load(path: Path) -> LdpcCode | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            check_ptr = f["check_ptr"].astype(np.int64)
            check_idx = f["check_idx"].astype(np.int64)
            meta = json.loads(str(f["meta"]))
            n, m = int(f["n"]), int(f["m"])
    except (OSError, KeyError, ValueError):
        return None
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(check_ptr))
    try:
        code = LdpcCode.from_edges(n, m, rows, check_idx, name=meta.get("name", path.stem),
                                   meta=meta)
    except ValueError:
        return None
    if code.digest != meta.get("digest"):
        return None
    return code


def _meta_current(code: LdpcCode, family: str, rate: float) -> bool:
    """A cached peg-irregular code was built from the distribution registered now (a changed
    distribution under an unchanged name, e.g. while designing, is rebuilt, not served stale)."""
    if family != "peg-irregular" or construction_version(family, rate) < HR_CONSTRUCTION_VERSION:
        return True  # version-1 caches predate this check (their meta may differ in detail)
    try:
        want = json.loads(json.dumps(get_distribution(rate).to_json()))
    except KeyError:
        return True
    return bool(code.meta.get("distribution") == want)


def _store(code: LdpcCode, path: Path) -> None:
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    meta = dict(code.meta, name=code.name)
    np.savez_compressed(buf, check_ptr=code.check_ptr, check_idx=code.check_idx,
                        n=np.int64(code.n), m=np.int64(code.m), meta=np.array(json.dumps(meta)))
    atomic_write_bytes(path, buf.getvalue())


def get_code(rate: float, n: int, *, seed: int = 0, family: str = "peg-irregular",
             cache: bool = True, cache_dir: str | os.PathLike | None = None) -> LdpcCode:
    """The mother code for (family, rate, n, seed): loaded from the cache or built and cached.

    ``code.meta`` records family, rate, n, m, seed, construction, degree distribution (with its
    DE threshold), girth (``girth_is_lower_bound`` for lifted codes), construction version, digest
    and build time. Rates with a registered distribution: see :func:`available_codes`.
    """
    rate = round(float(rate), 4)
    if not cache:
        return build_code(rate, n, seed=seed, family=family)
    d = Path(cache_dir) if cache_dir is not None else code_cache_dir()
    path = _cache_file(family, rate, int(n), int(seed), d)
    if path.exists():
        code = _load(path)
        if code is not None and _meta_current(code, family, rate):
            return code
    code = build_code(rate, n, seed=seed, family=family)
    try:
        _store(code, path)
    except OSError:
        pass  # a read-only cache is not an error: the code is deterministic
    return code


@dataclass(frozen=True)
class CodeSpec:
    """One entry of the code registry."""

    family: str
    rate: float
    n: int
    threshold: float | None  # DE BP threshold of the degree distribution (BSC crossover)
    construction: str

    @property
    def threshold_efficiency(self) -> float | None:
        """(1 - R) / h(threshold): the efficiency f of the mother code at its DE threshold."""
        if not self.threshold:
            return None
        return (1.0 - self.rate) / h2(self.threshold)


def available_codes(lengths: tuple[int, ...] = STANDARD_LENGTHS, *,
                    max_version: int | None = None) -> list[CodeSpec]:
    """Registered production mother codes (peg-irregular) at the standard lengths.

    ``max_version`` keeps only rates whose construction version is <= it: ``max_version=1`` is
    the library as it was before the DE-designed high-rate codes (rates 0.50-0.90), which a
    caller needs to repeat an old run's automatic code choice exactly. The high-rate codes are
    offered only at lengths >= :data:`HR_MIN_LENGTH` (they can still be built at any length with
    :func:`get_code`).
    """
    out = []
    for rate, dist in sorted(DISTRIBUTIONS.items()):
        version = construction_version("peg-irregular", rate)
        if max_version is not None and version > max_version:
            continue
        for n in lengths:
            if version >= HR_CONSTRUCTION_VERSION and n < HR_MIN_LENGTH:
                continue
            m = _num_checks(rate, n)
            z = _lift_factor(n, m)
            cons = "PEG" if z == 1 else (f"qc-lift Z={z}" if z > 1 else "PEG depth-capped")
            if dist.extra.get("staircase"):
                cons = "staircase + " + cons
            cons += f" v{construction_version('peg-irregular', rate)}"
            out.append(CodeSpec("peg-irregular", rate, n, dist.threshold, cons))
    return out


# finite-length back-off of the usable QBER relative to the DE threshold (rough; the rate-adaptive
# protocol refines the operating point by puncturing / shortening)
_BACKOFF = ((10_000, 0.75), (100_000, 0.88), (1_000_000, 0.94))


def select_code(qber: float, n: int) -> CodeSpec:
    """Suggest a mother code for a frame of n bits at QBER `qber`.

    Returns the registered code of *highest* rate whose DE threshold, times a finite-length
    back-off (0.75 at 1e4 bits, measured with ldpc's BP; 0.88 at 1e5 and 0.94 at 1e6, estimates),
    still exceeds `qber`; falls back to the lowest rate. This is only the mother code: the
    rate-adaptive protocol (``protocol`` module) then punctures (raises the rate) or shortens
    (lowers it) to the operating point it wants and owns the final choice.
    """
    if not 0.0 < qber < 0.5:
        raise ValueError("qber must be in (0, 0.5)")
    backoff = _BACKOFF[0][1]
    for length, b in _BACKOFF:
        if n >= length:
            backoff = b
    specs = [s for s in available_codes((int(n),)) if s.threshold]
    if not specs:
        raise LookupError("no registered code with a threshold")
    ok = [s for s in specs if (s.threshold or 0.0) * backoff > qber]
    if ok:
        return max(ok, key=lambda s: s.rate)
    return min(specs, key=lambda s: s.rate)
