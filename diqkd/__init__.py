"""diqkd: device-independent QKD post-processing.

Bell-test records in, certified secret keys and an audit report out::

    import diqkd
    result = diqkd.run("alice.h5", "bob.h5", "protocol.toml", seed=7)
    result.key_alice, result.key_bob, result.report

``run``, ``Session``, ``Protocol`` and ``Result`` are imported lazily (on first use), so that
``import diqkd`` stays cheap for tools that need only a sub-package.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("diqkd")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "run", "Session", "Protocol", "Result"]

_LAZY = {
    "run": ("diqkd.pipeline", "run"),
    "Result": ("diqkd.pipeline", "Result"),
    "Session": ("diqkd.session", "Session"),
    "Protocol": ("diqkd.protocol", "Protocol"),
}

if TYPE_CHECKING:  # pragma: no cover
    from diqkd.pipeline import Result, run
    from diqkd.protocol import Protocol
    from diqkd.session import Session


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'diqkd' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
