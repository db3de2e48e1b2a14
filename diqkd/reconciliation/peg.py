"""Progressive edge growth (Hu, Eleftheriou, Arnold, IEEE TIT 51, 386 (2005)) and QC lifting.

Everything here is integer arithmetic driven by a splitmix64 generator implemented in numba, so a
construction is bit-identical on every machine for the same (degrees, seed, parameters): the code
digest is a known answer.

PEG places the edges of each variable node one by one (variables in order of non-decreasing
degree, as in the paper). The first edge goes to an available check of lowest current degree; each
further edge goes to a check as far as possible from the variable in the current graph: a breadth
first search from the variable grows level by level until it either stops growing (then any check
not reached is a candidate: no cycle is closed) or it reaches every check that still has spare
capacity (then the candidates are the checks first reached at the last level). Among candidates the
lowest current check degree wins, ties broken by the seeded generator. Check degrees are capped by
the target (concentrated) check degrees, so the output matches the requested edge counts exactly.

The shortest cycle closed by each placed edge is known at placement time, and every cycle of the
final graph is closed by its last-placed edge, so the minimum over placements is the exact girth
(when the search depth is capped, candidates beyond the cap only give a lower bound, reported as
such).

For long frames `max_depth` caps the search (the neighbourhood at the cap is small compared with
the graph, so the cost per edge stops growing with n), and :func:`qc_lift` builds a code Z times
longer from a PEG base graph with circulant permutations; a lift never has a shorter girth than its
base graph (a cycle of the lift projects onto a closed non-backtracking walk of the base).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["peg_edges", "qc_lift", "qc_lift_no4", "girth", "splitmix_ints", "splitmix64"]

@njit(cache=True, nogil=True)
def splitmix64(s: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover - numba
    """(next state, output) of splitmix64 (Steele, Lea, Flood, OOPSLA 2014): the generator of the
    code construction and of the reconciliation's public permutation."""
    s = s + np.uint64(0x9E3779B97F4A7C15)
    z = s
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return s, z ^ (z >> np.uint64(31))


@njit(cache=True)
def _splitmix(state: np.ndarray) -> np.uint64:
    state[0], z = splitmix64(state[0])
    return z


@njit(cache=True)
def _below(state: np.ndarray, k: int) -> int:
    """Integer in [0, k) (k >= 1), modulo reduction of a 64-bit draw (bias < k / 2^64)."""
    return int(_splitmix(state) % np.uint64(k))


@njit(cache=True)
def _splitmix_ints(seed: int, count: int, bound: int) -> np.ndarray:
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        out[i] = _below(state, bound)
    return out


def splitmix_ints(seed: int, count: int, bound: int) -> np.ndarray:
    """`count` deterministic integers in [0, bound) from the construction generator."""
    return _splitmix_ints(int(seed) & 0x7FFFFFFFFFFFFFFF, int(count), int(bound))


@njit(cache=True)
def _peg(var_deg: np.ndarray, check_cap: np.ndarray, seed: int, max_depth: int,
         staircase: int):
    n = var_deg.shape[0]
    m = check_cap.shape[0]
    max_dv = 0
    n_edges = 0
    for v in range(n):
        n_edges += var_deg[v]
        if var_deg[v] > max_dv:
            max_dv = var_deg[v]
    max_dc = 0
    for c in range(m):
        if check_cap[c] > max_dc:
            max_dc = check_cap[c]
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed)

    var_adj = np.empty((n, max_dv), dtype=np.int32)
    var_cnt = np.zeros(n, dtype=np.int32)
    head = 8  # room for checks pushed over their target degree by the dead-end fallback
    chk_adj = np.empty((m, max_dc + head), dtype=np.int32)
    chk_cnt = np.zeros(m, dtype=np.int32)

    # checks ordered by current degree: perm[bstart[d]:bstart[d+1]] have degree d
    perm = np.empty(m, dtype=np.int32)
    order = np.arange(m)
    for i in range(m - 1, 0, -1):  # seeded shuffle so that ties are not index-ordered
        j = _below(state, i + 1)
        t = order[i]
        order[i] = order[j]
        order[j] = t
    pos = np.empty(m, dtype=np.int64)
    for i in range(m):
        perm[i] = order[i]
        pos[order[i]] = i
    bstart = np.zeros(max_dc + head + 2, dtype=np.int64)  # all checks start at degree 0
    for d in range(1, max_dc + head + 2):
        bstart[d] = m
    overflows = 0

    chk_mark = np.zeros(m, dtype=np.int64)
    chk_lvl = np.zeros(m, dtype=np.int32)
    var_mark = np.zeros(n, dtype=np.int64)
    frontier = np.empty(m, dtype=np.int32)
    nxt = np.empty(m, dtype=np.int32)
    total_avail = m
    for c in range(m):
        if check_cap[c] == 0:
            total_avail -= 1
    stamp = 0
    girth = 1 << 30
    capped = False
    edge_c = np.empty(n_edges, dtype=np.int32)
    edge_v = np.empty(n_edges, dtype=np.int32)
    e = 0

    for v in range(n):
        for k in range(var_deg[v]):
            stamp += 1
            chosen = -1
            deepest = False
            hit_cap = False
            level = 0
            n_front = 0
            if v < staircase:
                # accumulate chain: variable v joins checks order[v], order[v + 1] (a path)
                chosen = order[v + k]
            elif k > 0:
                var_mark[v] = stamp
                reached_avail = 0
                for t in range(var_cnt[v]):
                    c = var_adj[v, t]
                    chk_mark[c] = stamp
                    chk_lvl[c] = 0
                    frontier[n_front] = c
                    n_front += 1
                    if chk_cnt[c] < check_cap[c]:
                        reached_avail += 1
                while True:
                    if reached_avail == total_avail:
                        deepest = True
                        break
                    if max_depth > 0 and level >= max_depth:
                        capped = True
                        hit_cap = True
                        break
                    n_next = 0
                    done = False
                    for f in range(n_front):
                        c = frontier[f]
                        for a in range(chk_cnt[c]):
                            u = chk_adj[c, a]
                            if var_mark[u] == stamp:
                                continue
                            var_mark[u] = stamp
                            for b in range(var_cnt[u]):
                                c2 = var_adj[u, b]
                                if chk_mark[c2] != stamp:
                                    chk_mark[c2] = stamp
                                    chk_lvl[c2] = level + 1
                                    nxt[n_next] = c2
                                    n_next += 1
                                    if chk_cnt[c2] < check_cap[c2]:
                                        reached_avail += 1
                                        if reached_avail == total_avail:
                                            done = True
                                            break
                            if done:
                                break
                        if done:
                            break
                    if n_next == 0:
                        break  # stopped growing: unreached checks close no cycle
                    level += 1
                    for f in range(n_next):
                        frontier[f] = nxt[f]
                    n_front = n_next
                    if done:
                        deepest = True
                        break
            if deepest and level == 0 and v >= staircase:
                deepest = False  # all available checks neighbour v: dead-end fallback below
            if deepest and chosen < 0:
                # candidates: available checks first reached at the last level
                best = 1 << 30
                ties = 0
                for f in range(n_front):
                    c = frontier[f]
                    if chk_cnt[c] >= check_cap[c] or chk_lvl[c] != level:
                        continue
                    d = chk_cnt[c]
                    if d < best:
                        best = d
                        ties = 1
                        chosen = c
                    elif d == best:
                        ties += 1
                        if _below(state, ties) == 0:
                            chosen = c
                if chosen >= 0:
                    cyc = 2 * level + 2
                    if cyc < girth:
                        girth = cyc
            if chosen < 0:
                # any available check not reached (lowest degree first, seeded start in bucket)
                for d in range(max_dc + 1):
                    lo = bstart[d]
                    hi = bstart[d + 1]
                    size = hi - lo
                    if size <= 0:
                        continue
                    start = _below(state, size)
                    for t in range(size):
                        c = perm[lo + (start + t) % size]
                        if chk_cnt[c] < check_cap[c] and (k == 0 or chk_mark[c] != stamp):
                            chosen = c
                            break
                    if chosen >= 0:
                        break
                if chosen < 0:
                    # dead end (every check with spare capacity already neighbours v): take the
                    # lowest-degree check not adjacent to v, exceeding its target degree
                    best = 1 << 30
                    for c in range(m):
                        adjacent = False
                        for t in range(var_cnt[v]):
                            if var_adj[v, t] == c:
                                adjacent = True
                                break
                        if not adjacent and chk_cnt[c] < best:
                            best = chk_cnt[c]
                            chosen = c
                    if chosen < 0 or best >= max_dc + head:
                        raise ValueError("PEG: degree sequence not realisable")
                    overflows += 1
                if hit_cap:
                    cyc = 2 * level + 4
                    if cyc < girth:
                        girth = cyc
            # place the edge (chosen, v)
            var_adj[v, var_cnt[v]] = chosen
            var_cnt[v] += 1
            d = chk_cnt[chosen]
            chk_adj[chosen, d] = v
            chk_cnt[chosen] = d + 1
            if d + 1 == check_cap[chosen]:
                total_avail -= 1
            # move chosen from bucket d to bucket d + 1
            last = bstart[d + 1] - 1
            p = pos[chosen]
            other = perm[last]
            perm[last] = chosen
            pos[chosen] = last
            perm[p] = other
            pos[other] = p
            bstart[d + 1] -= 1
            edge_c[e] = chosen
            edge_v[e] = v
            e += 1
    return edge_c, edge_v, girth, capped, overflows


def peg_edges(var_deg: np.ndarray, check_cap: np.ndarray, seed: int = 0, max_depth: int = 0,
              staircase: int = 0):
    """Run PEG. Returns (checks, variables, girth, girth_is_lower_bound, overflows).

    `var_deg[v]` is the degree of variable v (variables are processed in index order, so pass
    them sorted by non-decreasing degree), `check_cap[c]` the exact final degree of check c
    (sum(check_cap) must equal sum(var_deg)). `max_depth` > 0 caps the breadth-first search at that
    many check levels (0: unlimited, the original algorithm). girth is 2**30 for a cycle-free graph.
    `overflows` counts dead ends (all checks with spare capacity already adjacent: short codes with
    very high variable degrees), resolved by exceeding a check's target degree; when it is 0 the
    check degrees equal `check_cap` exactly.

    `staircase` > 0 places the first `staircase` variables (which must have degree 2, and
    staircase <= m - 1) as an accumulate chain before PEG: variable v joins checks o[v] and
    o[v + 1] for a seeded check order o, so these degree-2 variables form a path (no cycle made
    only of degree-2 variables, hence no low-weight codeword supported on them); PEG then places
    all other edges around the chain. 0 (default) is the original algorithm, bit for bit.
    """
    var_deg = np.ascontiguousarray(var_deg, dtype=np.int64)
    check_cap = np.ascontiguousarray(check_cap, dtype=np.int64)
    if var_deg.sum() != check_cap.sum():
        raise ValueError("sum of variable degrees must equal sum of check degrees")
    if var_deg.size and var_deg.max() > check_cap.shape[0]:
        raise ValueError("a variable degree exceeds the number of checks")
    staircase = int(staircase)
    if staircase:
        if staircase > check_cap.shape[0] - 1 or np.any(var_deg[:staircase] != 2):
            raise ValueError("staircase: the first `staircase` variables must have degree 2 "
                             "and staircase <= m - 1")
        if np.any(check_cap < 2):
            raise ValueError("staircase: every check needs capacity >= 2")
    c, v, g, capped, over = _peg(var_deg, check_cap, int(seed) & 0x7FFFFFFFFFFFFFFF,
                                 int(max_depth), staircase)
    return c, v, int(g), bool(capped), int(over)


def qc_lift(checks: np.ndarray, variables: np.ndarray, n_base: int, m_base: int, z: int,
            seed: int = 0):
    """Lift a base graph by circulant permutations of size z (edge (c, v) -> z edges).

    Base check c, variable v become blocks c*z.., v*z..; edge with shift s joins (c*z + i) with
    (v*z + (i + s) mod z). Shifts come from the seeded generator. Degrees are preserved exactly,
    and girth(lift) >= girth(base). Returns lifted (checks, variables).
    """
    checks = np.asarray(checks, dtype=np.int64)
    variables = np.asarray(variables, dtype=np.int64)
    shifts = splitmix_ints(seed ^ 0x5EED_C1C0, checks.size, z)
    i = np.arange(z, dtype=np.int64)
    lc = (checks[:, None] * z + i[None, :]).ravel()
    lv = (variables[:, None] * z + (i[None, :] + shifts[:, None]) % z).ravel()
    return lc, lv


@njit(cache=True)
def _no4_shifts(checks: np.ndarray, variables: np.ndarray, n_base: int, m_base: int, z: int,
                seed: int):
    """Circulant shifts, edge by edge, that avoid lifting a base 4-cycle to a 4-cycle."""
    ne = checks.shape[0]
    # adjacency (edge ids) of the base graph
    cdeg = np.zeros(m_base, dtype=np.int64)
    vdeg = np.zeros(n_base, dtype=np.int64)
    for e in range(ne):
        cdeg[checks[e]] += 1
        vdeg[variables[e]] += 1
    cptr = np.zeros(m_base + 1, dtype=np.int64)
    vptr = np.zeros(n_base + 1, dtype=np.int64)
    for c in range(m_base):
        cptr[c + 1] = cptr[c] + cdeg[c]
    for v in range(n_base):
        vptr[v + 1] = vptr[v] + vdeg[v]
    cfill = cptr[:-1].copy()
    vfill = vptr[:-1].copy()
    cedge = np.empty(ne, dtype=np.int64)
    vedge = np.empty(ne, dtype=np.int64)
    for e in range(ne):
        cedge[cfill[checks[e]]] = e
        cfill[checks[e]] += 1
        vedge[vfill[variables[e]]] = e
        vfill[variables[e]] += 1
    state = np.empty(1, dtype=np.uint64)
    state[0] = np.uint64(seed)
    shift = np.full(ne, -1, dtype=np.int64)
    mark = np.full(m_base, -1, dtype=np.int64)  # mark[c'] = edge id (c', v) for c' in N(v)
    bad = np.zeros(z, dtype=np.int64)
    left = 0
    for e in range(ne):
        c = checks[e]
        v = variables[e]
        for t in range(vptr[v], vptr[v + 1]):
            e2 = vedge[t]
            if e2 != e and shift[e2] >= 0:
                mark[checks[e2]] = e2
        for k in range(z):
            bad[k] = 0
        # 4-cycle c - v - c2 - v2 - c: edges e=(c,v), a=(c2,v), b=(c2,v2), d=(c,v2)
        for t in range(cptr[c], cptr[c + 1]):
            d = cedge[t]
            if d == e or shift[d] < 0:
                continue
            v2 = variables[d]
            for u in range(vptr[v2], vptr[v2 + 1]):
                b = vedge[u]
                c2 = checks[b]
                if c2 == c or shift[b] < 0 or mark[c2] < 0:
                    continue
                a = mark[c2]
                # lifted 4-cycle iff s_e - s_a + s_b - s_d == 0 (mod z)
                k = (shift[a] - shift[b] + shift[d]) % z
                bad[k] += 1
        for t in range(vptr[v], vptr[v + 1]):
            mark[checks[vedge[t]]] = -1
        best = 1 << 60
        for k in range(z):
            if bad[k] < best:
                best = bad[k]
        ties = 0
        chosen = 0
        for k in range(z):
            if bad[k] == best:
                ties += 1
                if _below(state, ties) == 0:
                    chosen = k
        shift[e] = chosen
        left += best
    return shift, left


def qc_lift_no4(checks: np.ndarray, variables: np.ndarray, n_base: int, m_base: int, z: int,
                seed: int = 0):
    """Like :func:`qc_lift`, but each shift is drawn (seeded) among those that close the fewest
    lifted 4-cycles with the edges already shifted (edges in the given order).

    A 4-cycle of the lift projects onto a 4-cycle of the base whose shifts s1 - s2 + s3 - s4
    vanish mod z, so when every base 4-cycle gets a non-vanishing sum the lift has girth >= 6
    even though the base graph has girth 4. Returns (lifted checks, lifted variables, number of
    lifted 4-cycle classes that could not be avoided; each is z 4-cycles of the lift).
    """
    checks = np.asarray(checks, dtype=np.int64)
    variables = np.asarray(variables, dtype=np.int64)
    shifts, left = _no4_shifts(checks, variables, int(n_base), int(m_base), int(z),
                               (int(seed) ^ 0x5EED_C1C4) & 0x7FFFFFFFFFFFFFFF)
    i = np.arange(z, dtype=np.int64)
    lc = (checks[:, None] * z + i[None, :]).ravel()
    lv = (variables[:, None] * z + (i[None, :] + shifts[:, None]) % z).ravel()
    return lc, lv, int(left)


@njit(cache=True)
def _girth(n: int, m: int, var_ptr: np.ndarray, var_idx: np.ndarray, check_ptr: np.ndarray,
           check_idx: np.ndarray, limit: int) -> int:
    # nodes: variables 0..n-1, checks n..n+m-1; BFS from every variable, stop at depth > best/2
    tot = n + m
    dist = np.full(tot, -1, dtype=np.int64)
    parent = np.full(tot, -1, dtype=np.int64)
    queue = np.empty(tot, dtype=np.int64)
    touched = np.empty(tot, dtype=np.int64)
    best = limit
    for s in range(n):
        head = 0
        tail = 0
        nt = 0
        queue[tail] = s
        tail += 1
        dist[s] = 0
        touched[nt] = s
        nt += 1
        stop = False
        while head < tail and not stop:
            x = queue[head]
            head += 1
            if 2 * dist[x] + 1 >= best:
                break
            if x < n:
                lo = var_ptr[x]
                hi = var_ptr[x + 1]
            else:
                lo = check_ptr[x - n]
                hi = check_ptr[x - n + 1]
            for t in range(lo, hi):
                if x < n:
                    y = n + var_idx[t]
                else:
                    y = check_idx[t]
                if y == parent[x]:
                    continue
                if dist[y] >= 0:
                    cyc = dist[x] + dist[y] + 1
                    if cyc < best:
                        best = cyc
                    stop = True
                    continue
                dist[y] = dist[x] + 1
                parent[y] = x
                queue[tail] = y
                tail += 1
                touched[nt] = y
                nt += 1
        for t in range(nt):
            dist[touched[t]] = -1
            parent[touched[t]] = -1
    return best


def girth(code, limit: int = 1 << 30) -> int:
    """Exact girth of the Tanner graph of `code` (an LdpcCode); `limit` if no shorter cycle.

    O(n * neighbourhood) BFS: fine for n <= ~2e4; long codes record the construction's girth.
    """
    return int(_girth(code.n, code.m, code.var_ptr.astype(np.int64), code.var_idx.astype(np.int64),
                      code.check_ptr.astype(np.int64), code.check_idx.astype(np.int64), limit))
