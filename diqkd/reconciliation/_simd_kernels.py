"""Frame-interleaved (SIMD) layered BP kernels: W frames per lane group, one group per thread.

Layout. A thread decodes a *stream* of frames with ``W`` lanes: the posteriors of the W frames in
flight are stored interleaved, ``Lg[n, W]``, and so are the check messages, ``Rg[E, W]``. Each
edge's variable index is loaded once for W frames, the W lanes of a row are contiguous (one
32-byte AVX2 vector for W = 8 float32) and every inner loop runs over the lanes, so LLVM turns it
into vector instructions. The schedule per lane is exactly the scalar layered schedule (checks in
order, posteriors updated at once), so each frame sees the same arithmetic sequence whatever lane
or thread it runs in.

Lanes. Each lane holds one frame. After every layered sweep the hard decisions of all lanes are
packed into one byte per variable (bit j = lane j) and the syndrome of all lanes is checked at
once (XOR of bytes); the stopping rules (syndrome satisfied, ``patience``, ``max_iter``) are the
scalar kernel's, per lane. A lane whose frame is finished is written out at the end of that
sweep (so a frame that converged early is never touched again: "frozen") and refilled with the
next frame of the stream, so a slow frame does not hold W - 1 idle lanes; lanes left without a
frame run on (idle, results discarded) until the stream's last frame finishes. Loads and
write-outs of several lanes at the same sweep share one pass over the rows; a cold frame's R
column is not zeroed but masked to 0 during its first sweep (``coldm``). There is no
cross-lane arithmetic, and the vector helpers below emit plain IEEE operations (no fast-math
flags; FMAs only where written, via ``llvm.fma``), so the results of a frame do not depend on
its lane, its stream or the thread count (tested bit for bit).

Vectors. numba has no SIMD type, and LLVM does not vectorize the lane loops by itself (it cannot
prove that the interleaved arrays do not alias), so ``f32x8`` / ``i32x8`` are numba types whose
LLVM type is ``<8 x float>`` / ``<8 x i32>``, with a few intrinsics (load / store a row, splat,
arithmetic, compare, select, movemask); the kernels below are written with them.

Transcendentals (numba without SVML does not vectorize ``np.exp`` / ``np.log``): sum-product uses
the tanh rule in "ratio" form with one exponential, one division and one logarithm per edge,

* ``u = expm1(-|t|)`` by a degree-6 polynomial on ``x = -|t| / 32`` (``x + x^2 P4(x)``, relative
  error 1.3e-8 on [-18/32, 0]) and five doublings ``u <- u (u + 2)`` (``expm1(2x)``); for x <= 0
  the doubling does not amplify relative errors, so ``g = 1 - e^-|t| = -u`` and
  ``d = 1 + e^-|t| = 2 + u`` carry a few float32 ulps (no cancellation for small |t|, unlike
  ``1 - exp(-|t|)``);
* ``tanh(t/2) = sign(t) g / d``; per check ``N = (-1)^s prod sign(t) g`` (zero factors counted
  apart, as in the scalar kernel) and ``D = prod d``; the extrinsic ``p_k = B / A`` with
  ``A = D |g_k|`` and ``B = N d_k sign(t_k)`` (no division per factor);
* ``R = 2 atanh(p) = log((A + B) / (A - B))``, the ratio clamped to ``[1/Q, Q]``,
  ``Q = (1 + P) / (1 - P)`` with the scalar kernel's ``P = 1 - 2^-23`` (same |R| <= 16.6), and
  ``log`` from the float's exponent bits plus ``log1p(f) = f - f^2/2 + f^3 P6(f)`` on
  ``f in [-1/3, 1/3)`` (absolute error 3.4e-8), with ln 2 split in two parts.

Min-sum keeps the two smallest magnitudes, the index of the smallest and the sign product per
lane (branch-free selects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic, models, register_model

W = 8  # lanes per group: 8 float32 = one AVX2 register (W = 16, two registers, was slower)
# A check reads W-lane rows of the posteriors Lg at random (the code's graph has no locality),
# and from 1e5 bits Lg (n W float32 = 3.2 MB) outgrows L2: without help every row is an L3 or
# DRAM miss that out-of-order execution hides only a few edges deep. Each sweep therefore
# prefetches the rows of the check ``ahead`` positions later while it computes the current one
# (``PREFETCH_AHEAD`` by default; 0 turns it off). A prefetch is a hint: it changes no result.
# Measured on 2 Zen 3 cores, decoding the same frames in one process (bench/bench_decoder.py):
# docs/reconciliation.md, "Software prefetch".
PREFETCH_AHEAD = 1
_MASK_T: Any = np.uint8 if W == 8 else np.uint16 if W == 16 else np.uint32  # one bit per lane

# expm1(x) = x + x^2 (E0 + E1 x + E2 x^2 + E3 x^3 + E4 x^4) on [-18/32, 0] (Lawson-weighted
# least squares, max relative error 1.3e-8)
_E0 = np.float32(0.4999999846749689)
_E1 = np.float32(0.1666651263020978)
_E2 = np.float32(0.04164394705044216)
_E3 = np.float32(0.008216662412299656)
_E4 = np.float32(0.001140733305707244)
# log1p(f) = f - f^2/2 + f^3 (C0 + C1 f + ... + C6 f^6) on [-1/3, 1/3] (max abs error 3.4e-8)
_C0 = np.float32(0.3333330564978053)
_C1 = np.float32(-0.2500180824817269)
_C2 = np.float32(0.2000613331169444)
_C3 = np.float32(-0.16539114721047724)
_C4 = np.float32(0.14061826042485623)
_C5 = np.float32(-0.1470422967868181)
_C6 = np.float32(0.13764696230425638)
_LN2_HI = np.float32(0.693145751953125)  # 11 significant bits: k * LN2_HI is exact for |k| < 2^13
_LN2_LO = np.float32(1.4286068203094172321e-06)


# ---------------------------------------------------------------------------------------------
# an 8 x float32 / 8 x int32 vector type for numba (LLVM <8 x float>, <8 x i32>)
# ---------------------------------------------------------------------------------------------
def _intrinsic(fn: Callable[..., Any]) -> Any:
    """numba's ``intrinsic`` (typed ``Any``: its stub hides the call signature of the result)."""
    return intrinsic(fn)


class F32x8Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="f32x8")


class I32x8Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="i32x8")


f32x8 = F32x8Type()  # (W lanes; the name is historical)
i32x8 = I32x8Type()
_VF = ir.VectorType(ir.FloatType(), W)
_VI = ir.VectorType(ir.IntType(32), W)


@register_model(F32x8Type)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VF)


@register_model(I32x8Type)
class _I32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VI)


def _vptr(context, builder, aryty, ary, idx, idxty, vty):  # type: ignore[no-untyped-def]
    """Pointer to row ``idx`` (W elements) of a C-contiguous array whose rows are W wide."""
    a = context.make_array(aryty)(context, builder, ary)
    i = context.cast(builder, idx, idxty, types.intp)
    off = builder.mul(i, ir.Constant(ir.IntType(64), W))
    return builder.bitcast(builder.gep(a.data, [off]), vty.as_pointer())


@_intrinsic
def vload(typingctx, ary, idx):  # type: ignore[no-untyped-def]
    """Row ``idx`` of a float32 / int32 array laid out as (rows, W) (or a 1-d array of W)."""
    if not isinstance(ary, types.Array) or not isinstance(idx, types.Integer):
        return None
    rt: Any
    if ary.dtype == types.float32:
        vt, rt = _VF, f32x8
    elif ary.dtype == types.int32:
        vt, rt = _VI, i32x8
    else:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        p = _vptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], vt)
        return builder.load(p, align=4)

    return rt(ary, idx), codegen


@_intrinsic
def vstore(typingctx, ary, idx, val):  # type: ignore[no-untyped-def]
    if not isinstance(ary, types.Array) or not isinstance(idx, types.Integer):
        return None
    if not ((ary.dtype == types.float32 and val == f32x8)
            or (ary.dtype == types.int32 and val == i32x8)):
        return None
    vt = _VF if val == f32x8 else _VI

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        p = _vptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], vt)
        builder.store(args[2], p, align=4)
        return context.get_dummy_value()

    return types.none(ary, idx, val), codegen


@_intrinsic
def vprefetch(typingctx, ary, idx):  # type: ignore[no-untyped-def]
    """Prefetch row ``idx`` of a (rows, W) array into all cache levels (a hint: it changes no
    result)."""
    if not isinstance(ary, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        p = _vptr(context, builder, sig.args[0], args[0], args[1], sig.args[1], ir.IntType(8))
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, locality 3 (keep in all levels), data cache
        builder.call(fn, [p, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(ary, idx), codegen


@njit(cache=True, nogil=True)
def _prefetch_check(check_ptr, check_idx, Lg, c):  # type: ignore[no-untyped-def]
    """Prefetch the posterior rows that check ``c`` will read."""
    for e in range(check_ptr[c], check_ptr[c + 1]):
        vprefetch(Lg, check_idx[e])


@_intrinsic
def vsplat(typingctx, x):  # type: ignore[no-untyped-def]
    """All lanes = x (a float gives f32x8, an integer i32x8)."""
    rt: Any
    st: Any
    if isinstance(x, types.Float):
        vt, rt, st = _VF, f32x8, types.float32
    elif isinstance(x, types.Integer):
        vt, rt, st = _VI, i32x8, types.int32
    else:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        s = context.cast(builder, args[0], sig.args[0], st)
        v = ir.Constant(vt, ir.Undefined)
        for j in range(W):
            v = builder.insert_element(v, s, ir.Constant(ir.IntType(32), j))
        return v

    return rt(x), codegen


@_intrinsic
def vlane(typingctx, v, j):  # type: ignore[no-untyped-def]
    """Lane j of a vector, as float32 / int32."""
    if v not in (f32x8, i32x8) or not isinstance(j, types.Integer):
        return None
    rt = types.float32 if v == f32x8 else types.int32

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.extract_element(args[0], args[1])

    return rt(v, j), codegen


def _make_binop(name, vty, fn, rty=None):  # type: ignore[no-untyped-def]
    rty = vty if rty is None else rty

    @_intrinsic
    def op(typingctx, a, b):  # type: ignore[no-untyped-def]
        if a != vty or b != vty:
            return None

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            return fn(builder, args[0], args[1])

        return rty(a, b), codegen

    op.__name__ = name
    return op


def _fmin(b, x, y):  # type: ignore[no-untyped-def]
    return b.select(b.fcmp_ordered("<", x, y), x, y)


def _fmax(b, x, y):  # type: ignore[no-untyped-def]
    return b.select(b.fcmp_ordered(">", x, y), x, y)


vadd = _make_binop("vadd", f32x8, lambda b, x, y: b.fadd(x, y))
vsub = _make_binop("vsub", f32x8, lambda b, x, y: b.fsub(x, y))
vmul = _make_binop("vmul", f32x8, lambda b, x, y: b.fmul(x, y))
vdiv = _make_binop("vdiv", f32x8, lambda b, x, y: b.fdiv(x, y))
vmin = _make_binop("vmin", f32x8, _fmin)
vmax = _make_binop("vmax", f32x8, _fmax)
# comparisons give an i32x8 mask: -1 (all bits) where true, 0 where false
vlt = _make_binop("vlt", f32x8, lambda b, x, y: b.sext(b.fcmp_ordered("<", x, y), _VI), i32x8)
veq = _make_binop("veq", f32x8, lambda b, x, y: b.sext(b.fcmp_ordered("==", x, y), _VI), i32x8)
viadd = _make_binop("viadd", i32x8, lambda b, x, y: b.add(x, y))
visub = _make_binop("visub", i32x8, lambda b, x, y: b.sub(x, y))
vand = _make_binop("vand", i32x8, lambda b, x, y: b.and_(x, y))
vor = _make_binop("vor", i32x8, lambda b, x, y: b.or_(x, y))
vxor = _make_binop("vxor", i32x8, lambda b, x, y: b.xor(x, y))
vieq = _make_binop("vieq", i32x8, lambda b, x, y: b.sext(b.icmp_signed("==", x, y), _VI))


@_intrinsic
def vfma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """a * b + c with one rounding (llvm.fma: vfmadd on this machine)."""
    if a != f32x8 or b != f32x8 or c != f32x8:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        fn = cgutils.get_or_insert_function(builder.module,
                                            ir.FunctionType(_VF, [_VF, _VF, _VF]),
                                            f"llvm.fma.v{W}f32")
        return builder.call(fn, args)

    return f32x8(a, b, c), codegen


@_intrinsic
def vabs(typingctx, a):  # type: ignore[no-untyped-def]
    if a != f32x8:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF, [_VF]),
                                            f"llvm.fabs.v{W}f32")
        return builder.call(fn, args)

    return f32x8(a), codegen


@_intrinsic
def vsel(typingctx, mask, a, b):  # type: ignore[no-untyped-def]
    """Lane-wise ``a if mask else b`` (mask: i32x8, non-zero = true)."""
    if mask != i32x8 or a != b or a not in (f32x8, i32x8):
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        m = builder.icmp_signed("!=", args[0], ir.Constant(_VI, None))
        return builder.select(m, args[1], args[2])

    return a(mask, a, b), codegen


@_intrinsic
def vmovmask(typingctx, mask):  # type: ignore[no-untyped-def]
    """Bit j of the result = lane j of the mask is true (int64)."""
    if mask != i32x8:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        m = builder.icmp_signed("!=", args[0], ir.Constant(_VI, None))
        bits = builder.bitcast(m, ir.IntType(W))
        return builder.zext(bits, ir.IntType(64))

    return types.int64(mask), codegen


@_intrinsic
def vlog_split(typingctx, q):  # type: ignore[no-untyped-def]
    """For positive normal q: (k, f) with q = 2^k (1 + f), 1 + f in [2/3, 4/3), lane-wise."""
    if q != f32x8:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        c = ir.Constant(_VI, 0x3F2AAAAB)  # bits of 2/3
        ix = builder.sub(builder.bitcast(args[0], _VI), c)
        k = builder.sitofp(builder.ashr(ix, ir.Constant(_VI, 23)), _VF)
        mb = builder.add(builder.and_(ix, ir.Constant(_VI, 0x007FFFFF)), c)
        f = builder.fsub(builder.bitcast(mb, _VF), ir.Constant(_VF, 1.0))
        return context.make_tuple(builder, sig.return_type, (k, f))

    return types.UniTuple(f32x8, 2)(q), codegen


# ---------------------------------------------------------------------------------------------
# vectorised approximations (W lanes at once)
# ---------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def vexpm1_neg(a):  # type: ignore[no-untyped-def]
    """expm1(-a) lane-wise for 0 <= a <= 18: polynomial on -a/32, then 5 doublings."""
    x = vmul(a, vsplat(np.float32(-0.03125)))
    x2 = vmul(x, x)
    # Estrin: E0 + E1 x + x^2 (E2 + E3 x + E4 x^2)
    p = vfma(x2, vfma(x2, vsplat(_E4), vfma(x, vsplat(_E3), vsplat(_E2))),
             vfma(x, vsplat(_E1), vsplat(_E0)))
    u = vfma(x2, p, x)
    two = vsplat(np.float32(2.0))
    for _ in range(5):
        u = vmul(u, vadd(u, two))  # expm1(2y) = expm1(y) (expm1(y) + 2)
    return u


@njit(cache=True, nogil=True)
def vlog(q):  # type: ignore[no-untyped-def]
    """Natural log lane-wise for positive normal q."""
    k, f = vlog_split(q)
    f2 = vmul(f, f)
    f4 = vmul(f2, f2)
    # Estrin: (C0 + C1 f) + f^2 (C2 + C3 f) + f^4 (C4 + C5 f + C6 f^2)
    p = vfma(f4, vfma(f2, vsplat(_C6), vfma(f, vsplat(_C5), vsplat(_C4))),
             vfma(f2, vfma(f, vsplat(_C3), vsplat(_C2)), vfma(f, vsplat(_C1), vsplat(_C0))))
    r = vfma(vmul(f2, f), p, vfma(f2, vsplat(np.float32(-0.5)), f))
    return vfma(k, vsplat(_LN2_HI), vfma(k, vsplat(_LN2_LO), r))


@njit(cache=True, nogil=True)
def apply_expm1_neg(a):  # type: ignore[no-untyped-def]
    """The kernel's expm1(-a) applied to a float32 array whose length is a multiple of W."""
    out = np.empty_like(a)
    a2 = a.reshape(-1, W)
    o2 = out.reshape(-1, W)
    for i in range(a2.shape[0]):
        vstore(o2, i, vexpm1_neg(vload(a2, i)))
    return out


@njit(cache=True, nogil=True)
def apply_log(q):  # type: ignore[no-untyped-def]
    """The kernel's log applied to a float32 array whose length is a multiple of W."""
    out = np.empty_like(q)
    q2 = q.reshape(-1, W)
    o2 = out.reshape(-1, W)
    for i in range(q2.shape[0]):
        vstore(o2, i, vlog(vload(q2, i)))
    return out


# ---------------------------------------------------------------------------------------------
# one layered sweep over all checks, all lanes
# ---------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _sp_factor(tv, vtcl, two, zero):  # type: ignore[no-untyped-def]
    """sign(t) (1 - e^-|t|), 1 + e^-|t| and the zero mask of one edge (W lanes)."""
    u = vexpm1_neg(vmin(vabs(tv), vtcl))
    gs = vsel(vlt(tv, zero), u, vsub(zero, u))
    return gs, vadd(two, u), veq(u, zero)


@njit(cache=True, nogil=True)
def _sp_message(gs, d, N, D, NZ, one, mone, zero, viq):  # type: ignore[no-untyped-def]
    """R = 2 atanh(prod over the other edges of tanh(t/2)) = log((A + B) / (A - B))."""
    z = veq(gs, zero)
    A = vmul(D, vsel(z, one, vabs(gs)))
    B = vmul(vmul(N, d), vsel(vlt(gs, zero), mone, one))
    B = vsel(vieq(NZ, z), B, zero)  # p = 0 if a zero factor is among the others
    num = vadd(A, B)
    den = vsub(A, B)
    return vlog(vdiv(vmax(num, vmul(den, viq)), vmax(den, vmul(num, viq))))


@njit(cache=True, nogil=True)
def _sweep_sp(check_ptr, check_idx, Lg, Rg, sfl, T, G, Dd, uns_out, coldm, tcl, inv_q, ahead):  # type: ignore[no-untyped-def]
    # the edge loops are unrolled by two: two independent dependency chains in flight (the
    # per-edge chain is long: ~60 cycles of FMA / division latency)
    m = check_ptr.shape[0] - 1
    one = vsplat(np.float32(1.0))
    mone = vsplat(np.float32(-1.0))
    zero = vsplat(np.float32(0.0))
    two = vsplat(np.float32(2.0))
    vtcl = vsplat(tcl)
    viq = vsplat(inv_q)
    izero = vsplat(np.int32(0))
    cm = vload(coldm, 0)  # lanes whose messages R are still to be read as 0 (fresh frames)
    uns = izero
    for c in range(m):
        e0 = check_ptr[c]
        deg = check_ptr[c + 1] - e0
        sg = vload(sfl, c)
        if ahead > 0 and c + ahead < m:
            _prefetch_check(check_ptr, check_idx, Lg, c + ahead)
        N = sg  # (-1)^s prod sign(t) (1 - e^-|t|) over the non-zero factors
        D = one  # prod (1 + e^-|t|)
        NZ = izero  # minus the number of zero factors
        for k in range(0, deg - 1, 2):
            t0 = vsub(vload(Lg, check_idx[e0 + k]), vsel(cm, zero, vload(Rg, e0 + k)))
            t1 = vsub(vload(Lg, check_idx[e0 + k + 1]), vsel(cm, zero, vload(Rg, e0 + k + 1)))
            g0, d0, z0 = _sp_factor(t0, vtcl, two, zero)
            g1, d1, z1 = _sp_factor(t1, vtcl, two, zero)
            vstore(T, k, t0)
            vstore(T, k + 1, t1)
            vstore(G, k, g0)
            vstore(G, k + 1, g1)
            vstore(Dd, k, d0)
            vstore(Dd, k + 1, d1)
            N = vmul(N, vmul(vsel(z0, one, g0), vsel(z1, one, g1)))
            D = vmul(D, vmul(d0, d1))
            NZ = viadd(NZ, viadd(z0, z1))
        if deg % 2 == 1:
            k = deg - 1
            t0 = vsub(vload(Lg, check_idx[e0 + k]), vsel(cm, zero, vload(Rg, e0 + k)))
            g0, d0, z0 = _sp_factor(t0, vtcl, two, zero)
            vstore(T, k, t0)
            vstore(G, k, g0)
            vstore(Dd, k, d0)
            N = vmul(N, vsel(z0, one, g0))
            D = vmul(D, d0)
            NZ = viadd(NZ, z0)
        par = vlt(sg, zero)
        for k in range(0, deg - 1, 2):
            r0 = _sp_message(vload(G, k), vload(Dd, k), N, D, NZ, one, mone, zero, viq)
            r1 = _sp_message(vload(G, k + 1), vload(Dd, k + 1), N, D, NZ, one, mone, zero, viq)
            vstore(Rg, e0 + k, r0)
            vstore(Rg, e0 + k + 1, r1)
            l0 = vadd(vload(T, k), r0)
            l1 = vadd(vload(T, k + 1), r1)
            vstore(Lg, check_idx[e0 + k], l0)
            vstore(Lg, check_idx[e0 + k + 1], l1)
            par = vxor(par, vxor(vlt(l0, zero), vlt(l1, zero)))
        if deg % 2 == 1:
            k = deg - 1
            r0 = _sp_message(vload(G, k), vload(Dd, k), N, D, NZ, one, mone, zero, viq)
            vstore(Rg, e0 + k, r0)
            l0 = vadd(vload(T, k), r0)
            vstore(Lg, check_idx[e0 + k], l0)
            par = vxor(par, vlt(l0, zero))
        uns = visub(uns, par)
    vstore(uns_out, 0, uns)


@njit(cache=True, nogil=True)
def _sweep_ms(check_ptr, check_idx, Lg, Rg, sfl, T, uns_out, coldm, alpha, beta, ahead):  # type: ignore[no-untyped-def]
    m = check_ptr.shape[0] - 1
    one = vsplat(np.float32(1.0))
    mone = vsplat(np.float32(-1.0))
    zero = vsplat(np.float32(0.0))
    big = vsplat(np.float32(3e38))
    va = vsplat(alpha)
    vb = vsplat(beta)
    izero = vsplat(np.int32(0))
    cm = vload(coldm, 0)  # lanes whose messages R are still to be read as 0 (fresh frames)
    uns = izero
    for c in range(m):
        e0 = check_ptr[c]
        deg = check_ptr[c + 1] - e0
        sg = vload(sfl, c)
        if ahead > 0 and c + ahead < m:
            _prefetch_check(check_ptr, check_idx, Lg, c + ahead)
        S = sg
        M1 = big
        M2 = big
        IM = vsplat(np.int32(-1))
        for k in range(deg):
            tv = vsub(vload(Lg, check_idx[e0 + k]), vsel(cm, zero, vload(Rg, e0 + k)))
            vstore(T, k, tv)
            a = vabs(tv)
            lt = vlt(a, M1)
            M2 = vsel(lt, M1, vmin(M2, a))
            IM = vsel(lt, vsplat(np.int32(k)), IM)
            M1 = vsel(lt, a, M1)
            S = vmul(S, vsel(vlt(tv, zero), mone, one))
        M1 = vmax(vsub(vmul(va, M1), vb), zero)
        M2 = vmax(vsub(vmul(va, M2), vb), zero)
        par = vlt(sg, zero)
        for k in range(deg):
            tv = vload(T, k)
            mag = vsel(vieq(IM, vsplat(np.int32(k))), M2, M1)
            r = vmul(mag, vmul(S, vsel(vlt(tv, zero), mone, one)))
            vstore(Rg, e0 + k, r)
            lv = vadd(tv, r)
            vstore(Lg, check_idx[e0 + k], lv)
            par = vxor(par, vlt(lv, zero))
        uns = visub(uns, par)
    vstore(uns_out, 0, uns)


@njit(cache=True, nogil=True)
def _unsatisfied_lanes(check_ptr, check_idx, Lg, sy, sb):
    """Bit j set iff lane j's hard decision violates some check (bytes of packed signs)."""
    n = Lg.shape[0]
    m = check_ptr.shape[0] - 1
    zero = vsplat(np.float32(0.0))
    for v in range(n):
        sb[v] = vmovmask(vlt(vload(Lg, v), zero))
    bad = 0
    for c in range(m):
        x = sy[c]
        for e in range(check_ptr[c], check_ptr[c + 1]):
            x ^= sb[check_idx[e]]
        bad |= x
    return bad


@njit(cache=True, nogil=True)
def _finish(lanes, nl, lane_f, res, cold, Lg, Rg, out, its, Lio, Rio, write_l, write_r):
    """Write out the frames of lanes[:nl] (one pass over the rows for all of them)."""
    n = Lg.shape[0]
    for i in range(n):
        for q in range(nl):
            j = lanes[q]
            x = Lg[i, j]
            out[lane_f[j], i] = 1 if x < 0.0 else 0
            if write_l:
                Lio[lane_f[j], i] = x
    if write_r:
        for e in range(Rg.shape[0]):
            for q in range(nl):
                j = lanes[q]
                Rio[lane_f[j], e] = 0.0 if cold[j] else Rg[e, j]
    for q in range(nl):
        its[lane_f[lanes[q]]] = res[lanes[q]]


@njit(cache=True, nogil=True)
def _fill(lanes, nl, lane_f, cold, llr, synd, warm, Lio, Rio, Lg, Rg, sfl, sy):
    """Load the frames lane_f[lanes[:nl]] into their lanes (one pass over the rows).

    A cold frame's check messages are not written: the lane is marked ``cold`` and the next
    sweep reads its R as 0 (and overwrites it), which saves a pass over R per frame.
    """
    n = Lg.shape[0]
    m = sfl.shape[0]
    for i in range(n):
        for q in range(nl):
            j = lanes[q]
            f = lane_f[j]
            Lg[i, j] = Lio[f, i] if warm[f] else np.float32(llr[f, i])
    nwarm = 0
    for q in range(nl):
        j = lanes[q]
        cold[j] = not warm[lane_f[j]]
        if not cold[j]:
            nwarm += 1
    if nwarm > 0:
        for e in range(Rg.shape[0]):
            for q in range(nl):
                j = lanes[q]
                if not cold[j]:
                    Rg[e, j] = Rio[lane_f[j], e]
    for c in range(m):
        for q in range(nl):
            j = lanes[q]
            bit = _MASK_T(1 << j)
            if synd[lane_f[j], c] != 0:
                sfl[c, j] = -1.0
                sy[c] |= bit
            else:
                sfl[c, j] = 1.0
                sy[c] &= ~bit


@njit(cache=True, nogil=True)
def decode_stream(check_ptr, check_idx, frames, llr, synd, max_iter, alg, alpha, beta, max_deg,
                  out, its, Lio, Rio, warm, patience, write_l, write_r, ahead):
    """Decode ``frames`` (indices into the batch) with W lanes; results into out / its / Lio / Rio.

    ``its[f]`` = iterations, negative if not converged (as the scalar kernel). ``Lio`` / ``Rio``
    are read for warm frames and written when ``write_l`` / ``write_r``.
    """
    n = llr.shape[1]
    m = check_ptr.shape[0] - 1
    E = check_idx.shape[0]
    Lg = np.zeros((n, W), dtype=np.float32)
    Rg = np.zeros((E, W), dtype=np.float32)
    sfl = np.ones((m, W), dtype=np.float32)
    sy = np.zeros(m, dtype=_MASK_T)
    sb = np.zeros(n, dtype=_MASK_T)
    md = max(max_deg, 1)
    T = np.zeros((md, W), dtype=np.float32)
    G = np.zeros((md, W), dtype=np.float32)
    Dd = np.zeros((md, W), dtype=np.float32)
    uns = np.zeros(W, dtype=np.int32)
    coldm = np.zeros(W, dtype=np.int32)  # -1 on lanes whose R is to be read as 0
    lane_f = np.full(W, -1, dtype=np.int64)
    cold = np.zeros(W, dtype=np.bool_)
    it = np.zeros(W, dtype=np.int64)
    best = np.zeros(W, dtype=np.int64)
    it_best = np.zeros(W, dtype=np.int64)
    res = np.zeros(W, dtype=np.int64)
    lanes = np.zeros(W, dtype=np.int64)
    done = np.zeros(W, dtype=np.int64)
    tcl = np.float32(18.0)
    pcl = np.float32(1.0 - 2.0**-23)
    inv_q = (np.float32(1.0) - pcl) / (np.float32(1.0) + pcl)
    a32 = np.float32(alpha)
    b32 = np.float32(beta)
    nf = frames.shape[0]
    nxt = 0
    nl = 0
    for j in range(W):  # every lane starts empty
        lanes[nl] = j
        nl += 1
    while True:
        # (re)fill the free lanes[:nl]; a frame already satisfying its syndrome ends here with
        # 0 iterations and frees its lane again
        while nl > 0 and nxt < nf:
            nfill = 0
            for q in range(nl):
                if nxt < nf:
                    j = lanes[q]
                    lane_f[j] = frames[nxt]
                    nxt += 1
                    lanes[nfill] = j
                    nfill += 1
            for q in range(nfill, nl):
                lane_f[lanes[q]] = -1
            _fill(lanes, nfill, lane_f, cold, llr, synd, warm, Lio, Rio, Lg, Rg, sfl, sy)
            bad = _unsatisfied_lanes(check_ptr, check_idx, Lg, sy, sb)
            nd = 0
            for q in range(nfill):
                j = lanes[q]
                it[j] = 0
                best[j] = m + 1
                it_best[j] = 0
                if (bad >> j) & 1 == 0:
                    res[j] = 0
                    done[nd] = j
                    nd += 1
            _finish(done, nd, lane_f, res, cold, Lg, Rg, out, its, Lio, Rio, write_l, write_r)
            for q in range(nd):
                lane_f[done[q]] = -1
                lanes[q] = done[q]
            nl = nd
        for q in range(nl):  # no frame left for these lanes: idle (their results are ignored)
            lane_f[lanes[q]] = -1
        live = 0
        for j in range(W):
            coldm[j] = -1 if cold[j] else 0
            if lane_f[j] >= 0:
                live += 1
        if live == 0:
            break
        if alg == 0:
            _sweep_sp(check_ptr, check_idx, Lg, Rg, sfl, T, G, Dd, uns, coldm, tcl, inv_q, ahead)
        else:
            _sweep_ms(check_ptr, check_idx, Lg, Rg, sfl, T, uns, coldm, a32, b32, ahead)
        for j in range(W):
            cold[j] = False
        bad = _unsatisfied_lanes(check_ptr, check_idx, Lg, sy, sb)
        nl = 0
        for j in range(W):
            f = lane_f[j]
            if f < 0:
                continue
            it[j] += 1
            fin = False
            if (bad >> j) & 1 == 0:
                fin = True
                res[j] = it[j]
            else:
                if uns[j] < best[j]:
                    best[j] = uns[j]
                    it_best[j] = it[j]
                elif patience[f] > 0 and it[j] - it_best[j] >= patience[f]:
                    fin = True
                    res[j] = -it[j]
                if not fin and it[j] >= max_iter:
                    fin = True
                    res[j] = -it[j]
            if fin:
                lanes[nl] = j
                nl += 1
        _finish(lanes, nl, lane_f, res, cold, Lg, Rg, out, its, Lio, Rio, write_l, write_r)
        for q in range(nl):
            lane_f[lanes[q]] = -1


@njit(cache=True, nogil=True, parallel=True)
def decode_batch_simd(check_ptr, check_idx, bounds, llr, synd, max_iter, alg, alpha, beta,
                      max_deg, out, its, Lio, Rio, warm, patience, write_l, write_r, ahead):
    """Streams ``bounds[s]:bounds[s + 1]`` of the batch decoded in parallel (one per thread)."""
    S = bounds.shape[0] - 1
    for s in prange(S):
        frames = np.arange(bounds[s], bounds[s + 1])
        decode_stream(check_ptr, check_idx, frames, llr, synd, max_iter, alg, alpha, beta,
                      max_deg, out, its, Lio, Rio, warm, patience, write_l, write_r, ahead)
