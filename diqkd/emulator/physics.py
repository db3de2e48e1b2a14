"""Physics of the link: heralded two-qubit states, swapping, outcome tables, expected figures.

Every heralded event is described by an exact 4 x 4 density matrix in the basis |q_A q_B>
(index 2 q_A + q_B), expressed in the psi+ frame: the Z part of the Pauli frame (the psi+/psi-
herald of each segment and of each swap) is *not* corrected but written into Bob's ``herald``
field, which is exactly an inversion of Bob's outcome for equatorial measurements (see
``diqkd.records.model``); the X part is corrected by the end nodes before measuring.

Noise that varies from event to event (memory dephasing while a segment waits for the slower
ones, drift, bursts) is a Pauli channel, i.e. a probabilistic mixture of exact Kraus branches.
The sampler therefore draws, per event, a discrete *class* (the branch: the static state, the
state with a Z error, white noise) with the event's own branch probabilities, and then the
outcomes from the class's exact Born-rule table. No discretisation of noise parameters is needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from diqkd.emulator.params import LinkParams

__all__ = [
    "Expected",
    "expected",
    "segment_state",
    "swap",
    "outcome_table",
    "optimal_angles",
    "link_model",
    "LinkModel",
]

_I = np.eye(2, dtype=complex)
_X = np.array([[0, 1], [1, 0]], dtype=complex)
_Y = np.array([[0, -1j], [1j, 0]], dtype=complex)
_Z = np.array([[1, 0], [0, -1]], dtype=complex)
_PAULIS = (_I, _X, _Y, _Z)

_PSI_PLUS = np.array([0, 1, 1, 0], dtype=complex) / math.sqrt(2)
_BELL = (
    np.array([1, 0, 0, 1], dtype=complex) / math.sqrt(2),   # phi+
    np.array([1, 0, 0, -1], dtype=complex) / math.sqrt(2),  # phi-
    np.array([0, 1, 1, 0], dtype=complex) / math.sqrt(2),   # psi+
    np.array([0, 1, -1, 0], dtype=complex) / math.sqrt(2),  # psi-
)


def _proj(v: np.ndarray) -> np.ndarray:
    return np.outer(v, v.conj())


def _kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.kron(a, b)


def pauli_channel(rho: np.ndarray, op: np.ndarray, p: float, qubit: int) -> np.ndarray:
    """rho -> (1 - p) rho + p P rho P with P = op on ``qubit`` (0 = A, 1 = B)."""
    full = _kron(op, _I) if qubit == 0 else _kron(_I, op)
    return (1.0 - p) * rho + p * full @ rho @ full.conj().T


def dephase(rho: np.ndarray, lam: float, qubit: int) -> np.ndarray:
    """Exponential dephasing of one qubit: coherence times exp(-lam) (lam = t / T2)."""
    if lam <= 0:
        return rho
    return pauli_channel(rho, _Z, (1.0 - math.exp(-lam)) / 2.0, qubit)


@dataclass(frozen=True)
class SegmentHerald:
    """Herald probability per attempt of one elementary link and the heralded state."""

    p_attempt: float        # per attempt, multiplexed modes included
    p_mode: float           # per mode
    p_true: float           # per mode, heralds from photons (not dark counts)
    rho: np.ndarray         # heralded state (psi+ frame), herald-wait dephasing included


def segment_state(link: LinkParams) -> SegmentHerald:
    """Exact heralded state and herald probability of one elementary link."""
    eta = link.arm_efficiency
    pd = link.dark_count_probability
    v = link.hom_visibility
    odd_mix = np.diag([0.0, 0.5, 0.5, 0.0]).astype(complex)
    if link.scheme == "spi":
        a = link.excitation_probability
        coh = math.sqrt(v) * math.exp(-link.phase_noise_rad ** 2 / 2.0)
        rho_c = odd_mix.copy()
        rho_c[1, 2] = rho_c[2, 1] = coh / 2.0
        w_c = 2 * a * (1 - a) * eta * (1 - pd)                       # one excitation, detected
        w_2 = a * a * (2 * eta * (1 - eta) + eta * eta * (1 + v) / 2)  # double excitation
        w_d1 = 2 * a * (1 - a) * (1 - eta) * 2 * pd * (1 - pd)       # photon lost, dark count
        w_d0 = (1 - a) ** 2 * 2 * pd * (1 - pd)                      # no photon, dark count
        total = w_c + w_2 + w_d1 + w_d0
        rho = (w_c * rho_c + w_2 * _proj(np.eye(4)[3].astype(complex))
               + w_d1 * odd_mix + w_d0 * _proj(np.eye(4)[0].astype(complex))) / total
        p_true = w_c + w_2
    else:
        rho_c = odd_mix.copy()
        rho_c[1, 2] = rho_c[2, 1] = v / 2.0
        w_c = eta * eta / 2.0 * (1 - pd) ** 2          # both photons, a psi+/- pattern
        w_d = 2 * eta * (1 - eta) * 2 * pd               # one photon + one dark count
        total = w_c + w_d
        rho = (w_c * rho_c + w_d * np.eye(4, dtype=complex) / 4.0) / total
        p_true = w_c
    # both memories hold their qubit from emission until the herald is back
    lam = link.segment_km * 1e3 / link.fiber_speed_m_per_s / link.t2_s
    rho = dephase(dephase(rho, lam, 0), lam, 1)
    p_att = -math.expm1(link.multiplexing * math.log1p(-min(total, 1.0 - 1e-300)))
    return SegmentHerald(p_attempt=p_att, p_mode=total, p_true=p_true, rho=rho)


def _swap_corrections() -> list[np.ndarray]:
    """For each BSM outcome k, the Pauli on B that maps the ideal swapped state back to psi+."""
    out = []
    rho = np.kron(_proj(_PSI_PLUS), _proj(_PSI_PLUS))
    for bell in _BELL:
        post = _project_middle(rho, bell)
        post /= np.trace(post).real
        for pauli in _PAULIS:
            corr = np.kron(_I, pauli)
            if abs(_PSI_PLUS.conj() @ corr @ post @ corr.conj().T @ _PSI_PLUS - 1) < 1e-9:
                out.append(pauli)
                break
    return out


def _project_middle(rho16: np.ndarray, bell: np.ndarray) -> np.ndarray:
    """<bell|_{R1 R2} rho |bell>_{R1 R2} on the qubit order (A, R1, R2, B) -> 4 x 4 on (A, B)."""
    r = rho16.reshape(2, 2, 2, 2, 2, 2, 2, 2)
    b = bell.reshape(2, 2)
    return np.einsum("mn,amnbcpqd,pq->abcd", b.conj(), r, b).reshape(4, 4)


_CORRECTIONS = _swap_corrections()


def swap(rho_ar: np.ndarray, rho_rb: np.ndarray) -> np.ndarray:
    """Entanglement swapping with Pauli-corrected outcomes, averaged over the BSM outcomes."""
    rho16 = np.kron(rho_ar, rho_rb)
    out = np.zeros((4, 4), dtype=complex)
    for bell, pauli in zip(_BELL, _CORRECTIONS, strict=True):
        corr = np.kron(_I, pauli)
        out += corr @ _project_middle(rho16, bell) @ corr.conj().T
    return out / np.trace(out).real


def _sigma(phi: float) -> np.ndarray:
    return math.cos(phi) * _X + math.sin(phi) * _Y


def outcome_table(rho: np.ndarray, angles: tuple[float, ...], readout_error: float = 0.0
                  ) -> np.ndarray:
    """P(a, b | x, y) as an array [3 x + y, 2 a + b] (6 x 4) by the Born rule, then readout flips.

    ``angles`` = (alpha0, alpha1, beta0, beta1, beta2). Outcome 0 is the +1 eigenvalue.
    """
    al = angles[:2]
    be = angles[2:]
    table = np.zeros((6, 4))
    flip = np.array([[1 - readout_error, readout_error], [readout_error, 1 - readout_error]])
    for x in range(2):
        for y in range(3):
            sa, sb = _sigma(al[x]), _sigma(be[y])
            p = np.zeros((2, 2))
            for a in range(2):
                pa = (_I + (-1) ** a * sa) / 2
                for b in range(2):
                    pb = (_I + (-1) ** b * sb) / 2
                    p[a, b] = np.trace(rho @ np.kron(pa, pb)).real
            p = np.clip(p, 0.0, None)
            p = flip @ p @ flip.T
            table[3 * x + y] = (p / p.sum()).reshape(4)
    return table


def optimal_angles(rho: np.ndarray) -> tuple[float, float, float, float, float]:
    """CHSH-optimal equatorial angles for ``rho``; the key setting beta2 maximises E(alpha0, .).

    With the equatorial correlation block T (T_ij = <s_i s_j>, i, j in {X, Y}) = U diag(s1, s2)
    V^T: alpha0, alpha1 along U's columns, beta0,1 = cos t v1 +- sin t v2 with tan t = s2 / s1,
    beta2 = v1. Then S = 2 sqrt(s1^2 + s2^2) and E_key = s1.
    """
    paulis = (_X, _Y)
    t = np.array([[np.trace(rho @ np.kron(p, q)).real for q in paulis] for p in paulis])
    u, s, vt = np.linalg.svd(t)
    v = vt.T
    theta = math.atan2(s[1], s[0]) if s[0] > 0 else math.pi / 4

    def ang(vec: np.ndarray) -> float:
        return math.atan2(vec[1], vec[0])

    b0 = math.cos(theta) * v[:, 0] + math.sin(theta) * v[:, 1]
    b1 = math.cos(theta) * v[:, 0] - math.sin(theta) * v[:, 1]
    return (ang(u[:, 0]), ang(u[:, 1]), ang(b0), ang(b1), ang(v[:, 0]))


def chsh_from_table(table: np.ndarray) -> tuple[float, float]:
    """(S, QBER) from a 6 x 4 outcome table."""
    sign = np.array([1, -1, -1, 1])
    e = table @ sign
    s = e[0] + e[1] + e[3] - e[4]
    qber = table[2, 1] + table[2, 2]
    return float(s), float(qber)


@dataclass(frozen=True)
class LinkModel:
    """Everything the sampler needs: the per-class states and tables and the timing."""

    link: LinkParams
    angles: tuple[float, ...]  # (alpha0, alpha1, beta0, beta1, beta2), rad
    rho_static: np.ndarray      # class 0
    rho_zflip: np.ndarray       # class 1: Z error on one end (dephasing branch)
    tables: np.ndarray          # [class (0 static, 1 Z, 2 white noise), setting, outcome]
    p_attempt: float            # per segment
    p_false_fraction: float     # fraction of heralds (per segment) from dark counts
    attempt_period_s: float
    comm_time_s: float          # end nodes wait for the swap outcomes, s
    wait_decay: float           # x = exp(-2 T_att / T2): coherence factor per attempt waited
    mean_coherence: float       # E[d] over the chain's waiting-time distribution
    mean_attempts: float        # E[max_i K_i]


def _chain_waiting(p: float, n: int, x: float) -> tuple[float, float]:
    """E[max K] and E[x^W], W = sum_i (max K - K_i), K_i iid geometric(p) on {1, 2, ...}.

    With f_k = sum_{j<=k} p q^(j-1) x^(k-j) = p (x^k - q^k) / (x - q) (q = 1 - p), one has
    E[x^W 1{max K = k}] = f_k^n - x^n f_(k-1)^n, summed over k up to where P(max K >= k) is
    negligible.
    Sums over very many k use a stride (the summands are smooth on the scale 1 / p).
    """
    if n == 1:
        return 1.0 / p, 1.0
    q = 1.0 - p
    if q <= 0.0:
        return 1.0, 1.0
    kmax = math.ceil(math.log(1e-17 / n) / math.log(q)) + 2
    stride = max(1, kmax // 1_000_000)
    k = np.arange(1, kmax + 1, stride, dtype=float)
    cdf = -np.expm1(k * math.log(q))
    mean_max = 1.0 + stride * float(np.sum(1.0 - cdf ** n))
    if x >= 1.0:
        return mean_max, 1.0
    if abs(x - q) > 1e-12:
        f = p * (np.exp(k * math.log(x)) - np.exp(k * math.log(q))) / (x - q) if x > 0 else \
            p * np.exp((k - 1) * math.log(q))
    else:
        f = p * k * np.exp((k - 1) * math.log(q))
    if abs(x - q) > 1e-12:
        f_prev = p * (np.exp((k - 1) * math.log(x)) - np.exp((k - 1) * math.log(q))) / (x - q) \
            if x > 0 else np.where(k > 1, p * np.exp((k - 2) * math.log(q)), 0.0)
    else:
        f_prev = p * (k - 1) * np.exp((k - 2) * math.log(q))
    return mean_max, float(stride * np.sum(f ** n - x ** n * f_prev ** n))


def link_model(link: LinkParams) -> LinkModel:
    """Build the exact states, tables and timing of ``link``."""
    seg = segment_state(link)
    rho = seg.rho
    for _ in range(link.segments - 1):
        rho = swap(rho, seg.rho)
    n = link.segments
    for _ in range(n - 1):
        rho = (1 - link.swap_error) * rho + link.swap_error / 4 * sum(
            np.kron(_I, p) @ rho @ np.kron(_I, p).conj().T for p in _PAULIS)
    v = link.fiber_speed_m_per_s
    comm = (n - 1) / n * link.distance_km * 1e3 / v if n > 1 else 0.0
    lam = comm / link.t2_s
    rho = dephase(dephase(rho, lam, 0), lam, 1)
    rho = pauli_channel(pauli_channel(rho, _X, link.bitflip_error, 0), _X, link.bitflip_error, 1)
    rho_z = pauli_channel(rho, _Z, 1.0, 0)
    period = link.attempt_period_s
    x = math.exp(-2.0 * period / link.t2_s)
    mean_k, mean_d = _chain_waiting(seg.p_attempt, n, x)
    rho_mean = (1 + mean_d) / 2 * rho + (1 - mean_d) / 2 * rho_z
    angles = link.angles_rad if link.angles_rad else optimal_angles(rho_mean)
    tables = np.stack([
        outcome_table(rho, angles, link.readout_error),
        outcome_table(rho_z, angles, link.readout_error),
        np.full((6, 4), 0.25),
    ])
    return LinkModel(
        link=link, angles=tuple(angles), rho_static=rho, rho_zflip=rho_z, tables=tables,
        p_attempt=seg.p_attempt, p_false_fraction=1.0 - seg.p_true / seg.p_mode,
        attempt_period_s=period, comm_time_s=comm, wait_decay=x, mean_coherence=mean_d,
        mean_attempts=mean_k,
    )


def _h(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _g(s: float) -> float:
    """Pironio et al. (2009) bound H(A|E) >= 1 - h((1 + sqrt((S/2)^2 - 1)) / 2), 0 for S <= 2."""
    if s <= 2.0:
        return 0.0
    s = min(s, 2 * math.sqrt(2))
    return 1.0 - _h((1.0 + math.sqrt((s / 2) ** 2 - 1.0)) / 2.0)


@dataclass(frozen=True)
class Expected:
    """Analytic figures of a link (honest device), per heralded event unless stated."""

    S: float                       # CHSH value
    qber: float                    # P(a != b | x = 0, y = 2)
    fidelity: float                # <psi+| rho |psi+> of the mean state (before readout errors)
    win_probability: float         # CHSH winning probability (4 + S) / 8
    key_rate_per_event: float      # asymptotic r = g(S) - h(Q) (may be negative)
    key_rate_hz: float             # max(r, 0) x (1 - gamma) x event rate
    herald_probability: float      # per attempt and segment (multiplexing included)
    attempt_period_s: float        # per segment attempt
    mean_attempts: float           # E[attempts until all segments are ready]
    event_rate_hz: float           # heralded end-to-end events per wall-clock second
    arm_efficiency: float          # memory-to-click probability of one arm
    link_transmittance: float      # arm_efficiency^2: the full-link efficiency eta of a segment
    dark_herald_fraction: float    # per segment, fraction of heralds from dark counts
    mean_coherence: float          # E[exp(-sum of waiting times / T2)] from chain waiting
    repeaterless_bound: float      # -log2(1 - eta_total) bits per channel use, eta over distance
    angles_rad: tuple[float, ...]  # (alpha0, alpha1, beta0, beta1, beta2) used
    correlators: tuple[float, ...]  # E(x, y) for (0,0), (0,1), (1,0), (1,1), (0,2)
    test_probability: float

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["angles_rad"] = list(self.angles_rad)
        d["correlators"] = list(self.correlators)
        return d


def expected(link: LinkParams) -> Expected:
    """Analytic S, QBER, fidelity, rates of ``link`` (exact for the emulator's honest device)."""
    m = link_model(link)
    mean_d = m.mean_coherence
    table = (1 + mean_d) / 2 * m.tables[0] + (1 - mean_d) / 2 * m.tables[1]
    s, q = chsh_from_table(table)
    rho_mean = (1 + mean_d) / 2 * m.rho_static + (1 - mean_d) / 2 * m.rho_zflip
    fid = float((_PSI_PLUS.conj() @ rho_mean @ _PSI_PLUS).real)
    sign = np.array([1, -1, -1, 1])
    e = table @ sign
    event_time = (m.mean_attempts * m.attempt_period_s + m.comm_time_s) / link.duty_cycle
    rate = 1.0 / event_time
    r = _g(s) - _h(q)
    eta_total = (link.collection_efficiency * link.conversion_efficiency
                 * link.filter_efficiency * link.detector_efficiency) ** 2 \
        * 10 ** (-link.fiber_loss_db_per_km * link.distance_km / 10)
    bound = -math.log2(1 - eta_total) if eta_total < 1 else math.inf
    return Expected(
        S=s, qber=q, fidelity=fid, win_probability=(4 + s) / 8, key_rate_per_event=r,
        key_rate_hz=max(r, 0.0) * (1 - link.test_probability) * rate,
        herald_probability=m.p_attempt, attempt_period_s=m.attempt_period_s,
        mean_attempts=m.mean_attempts, event_rate_hz=rate,
        arm_efficiency=link.arm_efficiency, link_transmittance=link.arm_efficiency ** 2,
        dark_herald_fraction=m.p_false_fraction, mean_coherence=mean_d,
        repeaterless_bound=bound, angles_rad=tuple(m.angles),
        correlators=(float(e[0]), float(e[1]), float(e[3]), float(e[4]), float(e[2])),
        test_probability=link.test_probability,
    )
