"""``diqkd records``: inspect and convert record files."""

from __future__ import annotations

import click


@click.group()
def records() -> None:
    """Inspect and convert record files (HDF5, CSV, NPZ)."""
