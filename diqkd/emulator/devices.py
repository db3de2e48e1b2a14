"""Emulated devices: the honest link and faulty or cheating variants that the pipeline must catch.

A device is named by a string ``"name"`` or ``"name:key=value,key=value"`` (CLI form) or a
:class:`Device`. Parameters refer to the run's round index i in [0, N) (rounds are heralded
events), so a device behaves the same whatever the chunk size.

=========  ================================================================================
honest     the physical link model
lhv        local hidden variables: each event draws one of the 8 deterministic strategies
           with CHSH value 2 (and b2 = a0) from shared randomness; S = 2, QBER = 0 by
           construction
drift      coherence multiplied by 1 - amount * i / N (visibility drifting down over the run)
           ``amount`` (default 0.2)
burst      noise bursts: ``count`` bursts (default 5) at uniform positions, each of ``length``
           rounds (default N / 50), in which an event is white noise with probability ``level``
           (default 0.8)
outage     rounds [start N, (start + fraction) N) are white noise (``mode=random``, default),
           or the link delivers nothing for ``gap_s`` seconds before round start N
           (``mode=gap``: a time gap only); ``start`` 0.5, ``fraction`` 0.1, ``gap_s`` 600
=========  ================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diqkd.errors import ConfigError

__all__ = ["Device", "DEVICES", "parse_device"]

DEVICES: dict[str, dict[str, Any]] = {
    "honest": {},
    "lhv": {},
    "drift": {"amount": 0.2},
    "burst": {"count": 5, "length": None, "level": 0.8},
    "outage": {"start": 0.5, "fraction": 0.1, "mode": "random", "gap_s": 600.0},
}


@dataclass(frozen=True)
class Device:
    """A device by name with its parameters (defaults from :data:`DEVICES`)."""

    name: str = "honest"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in DEVICES:
            raise ConfigError(f"unknown device {self.name!r}; known: {', '.join(DEVICES)}")
        merged = dict(DEVICES[self.name])
        for key, value in self.params.items():
            if key not in merged:
                raise ConfigError(f"device {self.name}: unknown parameter {key!r}; known: "
                                  f"{sorted(merged) or 'none'}")
            merged[key] = value
        object.__setattr__(self, "params", merged)
        self._validate()

    def _validate(self) -> None:
        p = self.params
        def need(cond: bool, key: str) -> None:
            if not cond:
                raise ConfigError(f"device {self.name}: bad value {key} = {p[key]!r}")
        if self.name == "drift":
            need(0.0 <= float(p["amount"]) <= 1.0, "amount")
        elif self.name == "burst":
            need(int(p["count"]) >= 0, "count")
            need(p["length"] is None or int(p["length"]) >= 1, "length")
            need(0.0 <= float(p["level"]) <= 1.0, "level")
        elif self.name == "outage":
            need(0.0 <= float(p["start"]) <= 1.0, "start")
            need(0.0 <= float(p["fraction"]) <= 1.0, "fraction")
            need(p["mode"] in ("random", "gap"), "mode")
            need(float(p["gap_s"]) >= 0.0, "gap_s")

    def spec(self) -> str:
        """The ``name:key=value`` form (for metadata and the CLI)."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))


def _value(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return None if text == "None" else text


def parse_device(device: str | Device | dict[str, Any]) -> Device:
    """``"drift"``, ``"drift:amount=0.3"``, ``{"name": "drift", "amount": 0.3}`` or a Device."""
    if isinstance(device, Device):
        return device
    if isinstance(device, dict):
        d = dict(device)
        name = d.pop("name", "honest")
        return Device(name, d)
    if not isinstance(device, str):
        raise ConfigError(f"device must be a name or a Device, got {device!r}")
    name, _, rest = device.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, val = item.partition("=")
        if not eq:
            raise ConfigError(f"device {device!r}: expected key=value, got {item!r}")
        params[key.strip()] = _value(val.strip())
    return Device(name.strip(), params)
