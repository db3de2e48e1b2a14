"""Link parameters of the repeater-link emulator: the dataclass, its validation, TOML presets.

Every field carries its unit in its name or its doc. ``LinkParams`` is frozen; derive variants
with :meth:`LinkParams.replace` (validated again). Presets live in ``presets/*.toml`` next to this
file, each with a ``[link]`` table (the parameters) and a ``[published]`` table (the figures the
preset is calibrated against, with their sources); see ``docs/emulator.md``.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from diqkd.errors import ConfigError

__all__ = ["LinkParams", "load_link", "PRESETS", "preset_info", "preset_path"]

_PRESET_DIR = Path(__file__).with_name("presets")


@dataclass(frozen=True)
class LinkParams:
    """Physical parameters of a heralded memory-memory link (optionally a repeater chain).

    Topology: Alice and Bob hold one memory qubit each; the fibre of total length
    ``distance_km`` is split evenly into ``segments`` elementary links, each with a heralding
    station in its middle; ``segments - 1`` repeater nodes join them by Bell-state measurements
    (entanglement swapping) once every segment holds entanglement.
    """

    #: Label (preset name or "custom"); not physics.
    name: str = "custom"
    #: Heralding scheme: "spi" (single-photon interference) or "tpi" (two-photon interference).
    scheme: str = "spi"
    #: Total Alice-Bob fibre length, km (>= 0).
    distance_km: float = 10.0
    #: Number of elementary links (1 = direct heralded link, no repeater).
    segments: int = 1
    #: Probability that a memory emits a photon into the collection fibre (emission x collection
    #: x coupling), per attempt and node, dimensionless in (0, 1].
    collection_efficiency: float = 0.1
    #: Quantum frequency conversion efficiency (1 = no conversion), in (0, 1].
    conversion_efficiency: float = 1.0
    #: Fibre attenuation at the (converted) wavelength, dB/km (>= 0).
    fiber_loss_db_per_km: float = 0.2
    #: Transmission of spectral/temporal filters, in (0, 1].
    filter_efficiency: float = 1.0
    #: Single-photon detector efficiency at the heralding station, in (0, 1].
    detector_efficiency: float = 0.9
    #: Dark-count (or background) probability per detector per detection window, in [0, 1).
    dark_count_probability: float = 0.0
    #: SPI excitation probability alpha of the bright state per attempt, in (0, 0.5]
    #: (ignored for TPI).
    excitation_probability: float = 0.05
    #: Photon indistinguishability = HOM visibility |<phi_A|phi_B>|^2, in [0, 1]. The heralded
    #: coherence factor is its square root for SPI and the visibility itself for TPI.
    hom_visibility: float = 1.0
    #: RMS residual optical phase error of the SPI interferometer, rad (>= 0; coherence factor
    #: exp(-sigma^2 / 2)).
    phase_noise_rad: float = 0.0
    #: Parallel modes (memories or time bins) per attempt and segment, integer >= 1.
    multiplexing: int = 1
    #: Speed of light in the fibre, m/s (> 0).
    fiber_speed_m_per_s: float = 2.0e8
    #: Node preparation time per attempt (cooling, pumping, excitation), s (>= 0). An attempt
    #: lasts the round trip to the heralding station plus this time.
    prep_time_s: float = 1.0e-6
    #: Fraction of wall-clock time the link is attempting (the rest: recooling, calibration,
    #: reloading), in (0, 1]; event times are stretched by 1 / duty_cycle.
    duty_cycle: float = 1.0
    #: Memory coherence time T2 (exponential dephasing, single-qubit coherence exp(-t / T2)),
    #: s (> 0; inf = no dephasing).
    t2_s: float = math.inf
    #: State-readout error per node (symmetric bit flip of the outcome), in [0, 0.5).
    readout_error: float = 0.0
    #: Probability per node and event of a Pauli-X error along the key axis (imperfect
    #: spin-photon mapping or analysis pulses), in [0, 0.5). Lowers the test correlators, not the
    #: key correlator.
    bitflip_error: float = 0.0
    #: Probability per entanglement swap of a fully random Pauli frame on Bob's side
    #: (depolarising BSM/gate error), in [0, 1].
    swap_error: float = 0.0
    #: Default probability gamma of a test round (else a key round x = 0, y = 2), in (0, 1].
    test_probability: float = 0.1
    #: Measurement angles (alpha0, alpha1, beta0, beta1, beta2) in the equatorial plane, rad;
    #: empty = CHSH-optimal for the link's mean state (key setting beta2 aligned with alpha0).
    angles_rad: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "angles_rad", tuple(float(a) for a in self.angles_rad))
        _validate(self)

    def replace(self, **changes: Any) -> LinkParams:
        """A copy with some fields changed (validated; unknown names are a ConfigError)."""
        known = {f.name for f in fields(self)}
        for key in changes:
            if key not in known:
                raise ConfigError(f"unknown link parameter {key!r}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    # -- derived quantities --------------------------------------------------------------------
    @property
    def segment_km(self) -> float:
        """Length of one elementary link, km."""
        return self.distance_km / self.segments

    @property
    def arm_efficiency(self) -> float:
        """Memory-to-click probability of one arm (node to its heralding station)."""
        fibre = 10.0 ** (-self.fiber_loss_db_per_km * self.segment_km / 2.0 / 10.0)
        return (self.collection_efficiency * self.conversion_efficiency * fibre
                * self.filter_efficiency * self.detector_efficiency)

    @property
    def attempt_period_s(self) -> float:
        """Round trip from a node to its heralding station plus the preparation time, s."""
        return self.segment_km * 1e3 / self.fiber_speed_m_per_s + self.prep_time_s

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (inf written as the string "inf")."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and math.isinf(v):
                v = "inf"
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "link parameters") -> LinkParams:
        known = {f.name: f for f in fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown parameter {key!r}; known: {sorted(known)}")
            if value == "inf":
                value = math.inf
            if key == "angles_rad":
                value = tuple(value)
            kw[key] = value
        return cls(**kw)


_PROB_CLOSED = ("hom_visibility", "swap_error")
_EFFICIENCIES = ("collection_efficiency", "conversion_efficiency", "filter_efficiency",
                 "detector_efficiency", "duty_cycle", "test_probability")


def _bad(name: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"link parameter {name} = {value!r}: {why}")


def _validate(p: LinkParams) -> None:
    for f in fields(p):
        v = getattr(p, f.name)
        if f.name in ("name", "scheme", "angles_rad"):
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _bad(f.name, v, "must be a number")
        if math.isnan(v):
            raise _bad(f.name, v, "must not be NaN")
    if not isinstance(p.name, str):
        raise _bad("name", p.name, "must be a string")
    if p.scheme not in ("spi", "tpi"):
        raise _bad("scheme", p.scheme, "must be 'spi' or 'tpi'")
    for name in ("segments", "multiplexing"):
        v = getattr(p, name)
        if int(v) != v or v < 1:
            raise _bad(name, v, "must be an integer >= 1")
        object.__setattr__(p, name, int(v))
    for name in _EFFICIENCIES:
        v = getattr(p, name)
        if not 0.0 < v <= 1.0:
            raise _bad(name, v, "must lie in (0, 1]")
    for name in _PROB_CLOSED:
        v = getattr(p, name)
        if not 0.0 <= v <= 1.0:
            raise _bad(name, v, "must lie in [0, 1]")
    for name in ("readout_error", "bitflip_error"):
        v = getattr(p, name)
        if not 0.0 <= v < 0.5:
            raise _bad(name, v, "must lie in [0, 0.5)")
    if not 0.0 <= p.dark_count_probability < 1.0:
        raise _bad("dark_count_probability", p.dark_count_probability, "must lie in [0, 1)")
    if not 0.0 < p.excitation_probability <= 0.5:
        raise _bad("excitation_probability", p.excitation_probability, "must lie in (0, 0.5]")
    for name in ("distance_km", "fiber_loss_db_per_km", "phase_noise_rad", "prep_time_s"):
        v = getattr(p, name)
        if not (v >= 0.0 and math.isfinite(v)):
            raise _bad(name, v, "must be finite and >= 0")
    if not (p.fiber_speed_m_per_s > 0 and math.isfinite(p.fiber_speed_m_per_s)):
        raise _bad("fiber_speed_m_per_s", p.fiber_speed_m_per_s, "must be finite and > 0")
    if not p.t2_s > 0:
        raise _bad("t2_s", p.t2_s, "must be > 0 (inf for an ideal memory)")
    if p.attempt_period_s <= 0:
        raise _bad("prep_time_s", p.prep_time_s, "attempt period must be > 0 (zero distance "
                   "needs a positive preparation time)")
    if p.angles_rad and len(p.angles_rad) != 5:
        raise _bad("angles_rad", p.angles_rad,
                   "must be empty or (alpha0, alpha1, beta0, beta1, beta2)")
    if not all(math.isfinite(a) for a in p.angles_rad):
        raise _bad("angles_rad", p.angles_rad, "angles must be finite")
    if p.arm_efficiency <= 0.0:
        raise _bad("distance_km", p.distance_km, "fibre transmission underflows to zero")


def preset_path(name: str) -> Path:
    return _PRESET_DIR / f"{name}.toml"


def _preset_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in _PRESET_DIR.glob("*.toml")))


#: Names of the bundled presets.
PRESETS: tuple[str, ...] = _preset_names()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def preset_info(name: str) -> dict[str, Any]:
    """The whole preset file: ``{"link": {...}, "published": {...}, "description": ...}``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return _read_toml(preset_path(name))


def load_link(name_or_path: str | Path, **overrides: Any) -> LinkParams:
    """A preset by name, or a TOML file (a ``[link]`` table or top-level keys), plus overrides.

    Overrides use the field names of :class:`LinkParams` (``distance_km=50, segments=2``).
    """
    text = str(name_or_path)
    if text in PRESETS:
        data = dict(preset_info(text).get("link", {}))
        data.setdefault("name", text)
        where = f"preset {text}"
    else:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"unknown preset or missing file {text!r}; presets: "
                              f"{', '.join(PRESETS)}")
        raw = _read_toml(path)
        data = dict(raw["link"]) if isinstance(raw.get("link"), dict) else {
            k: v for k, v in raw.items() if not isinstance(v, dict)}
        data.setdefault("name", path.stem)
        where = str(path)
    data.update(overrides)
    return LinkParams.from_dict(data, where=where)
