"""Repeater-link emulator: heralded memory-memory entanglement over fibre, sampled into records.

Public API::

    link = load_link("ustc-atoms-11km", distance_km=20)   # LinkParams (frozen, validated)
    exp = expected(link)                                    # analytic S, QBER, rates, ...
    alice, bob = emulate(link, 100_000, seed=7)             # Records of both parties
    for a_chunk, b_chunk in iter_emulate(link, 10**8, seed=7): ...
    emulate_to_files(link, 10**6, "out/", seed=7)           # alice.h5, bob.h5

See ``docs/emulator.md`` for the model, the presets and their sources.
"""

from diqkd.emulator.devices import DEVICES, Device, parse_device
from diqkd.emulator.params import PRESETS, LinkParams, load_link, preset_info
from diqkd.emulator.physics import Expected, expected, link_model
from diqkd.emulator.sampler import (
    BLOCK_ROWS,
    EMULATOR_VERSION,
    emulate,
    emulate_to_files,
    iter_emulate,
)
from diqkd.emulator.tally import Tally

__all__ = [
    "BLOCK_ROWS",
    "DEVICES",
    "EMULATOR_VERSION",
    "PRESETS",
    "Device",
    "Expected",
    "Tally",
    "LinkParams",
    "emulate",
    "emulate_to_files",
    "expected",
    "iter_emulate",
    "link_model",
    "load_link",
    "parse_device",
    "preset_info",
]
