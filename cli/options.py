"""Option parsing shared by several commands."""

from __future__ import annotations

import math

from diqkd.errors import ConfigError

__all__ = ["parse_rounds"]


def parse_rounds(text: str | None, *, minimum: int = 1, option: str = "--rounds") -> int | None:
    """A round count written as an integer or in scientific notation (``1.2e6``); None stays None.

    Raises ConfigError (exit 2) naming the option and the value when it is not a whole number
    >= ``minimum``.
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{option} must be a number like 1.2e6, got {text!r}") from None
    if not (math.isfinite(value) and value >= minimum and value.is_integer()):
        raise ConfigError(f"{option} must be a whole number >= {minimum}, got {text!r}")
    return int(value)
