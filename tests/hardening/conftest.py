"""Fixtures of the hardening tests and the end-of-session report of the counts (see
``hardening_support``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hardening_support import KEY_N, counts, key_protocol, sample, write_inputs

from diqkd.records import Records


def _counts_path(config: pytest.Config) -> Path:
    env = os.environ.get("DIQKD_HARDENING_COUNTS")
    if env:
        return Path(env)
    factory = getattr(config, "_tmp_path_factory", None)
    base = factory.getbasetemp() if factory is not None else Path.cwd()
    return Path(base) / "hardening-counts.json"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    data = counts()
    if not data:
        return
    path = _counts_path(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError:
        pass
    terminalreporter.section("diqkd hardening counts")
    for sec, items in sorted(data.items()):
        terminalreporter.write_line(
            f"{sec:<22} " + ", ".join(f"{k} {v}" for k, v in sorted(items.items())))
    terminalreporter.write_line(f"(written to {path})")


@pytest.fixture(scope="session")
def key_records() -> tuple[Records, Records]:
    return sample(KEY_N, seed=2026)


@pytest.fixture(scope="session")
def key_inputs(tmp_path_factory: pytest.TempPathFactory, key_records) -> tuple[Path, Path, Path]:
    """(alice.h5, bob.h5, protocol.toml) of a run that yields a key."""
    d = tmp_path_factory.mktemp("key-inputs")
    return write_inputs(d, *key_records, key_protocol())


@pytest.fixture(scope="session")
def key_result(key_records):
    """The in-process reference run on :func:`key_records` (seed 7): must give a key."""
    from diqkd.pipeline import run

    r = run(*key_records, key_protocol(), seed=7)
    assert r.ok, f"the hardening reference configuration no longer yields a key: {r.abort}"
    return r


