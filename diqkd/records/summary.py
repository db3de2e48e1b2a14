"""Summaries of record files (what ``diqkd records inspect`` prints), in one streaming pass."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from diqkd.errors import InputError
from diqkd.records.formats import _open_source, _prepare, iter_records
from diqkd.records.model import SCHEMA_VERSION, Records

__all__ = ["summarize"]

_SETTING = {"alice": ("x", "a", 2), "bob": ("y", "b", 3)}


def summarize(
    records_or_paths: Records | str | os.PathLike[str] | Iterable[Any],
    *,
    party: str | None = None,
    chunk_rows: int = 1 << 20,
) -> dict[str, Any]:
    """Summary of records as a JSON-compatible dict.

    ``records_or_paths`` is one of: a :class:`Records`; a path (read in chunks, bounded memory);
    an iterable of :class:`Records` chunks of one party in order (e.g. from :func:`iter_records`);
    or a list/tuple of paths, which gives ``{"files": [summary, ...]}``.

    Keys of a summary: ``file``, ``format``, ``file_size``, ``schema_version``, ``party``,
    ``columns``, ``rounds``, ``first_round``, ``last_round``, ``time`` (``None`` without ``t_ns``;
    else ``first_ns``, ``last_ns``, ``span_s`` and ``event_rate_hz``), ``settings`` (e.g.
    ``{"x=0": n, "x=1": n}``), ``setting_outcome`` (``{"x=0,a=1": n, ...}``), ``herald``
    (Bob only: ``{"herald=0": n, "herald=1": n}``, or ``None``), ``metadata``.
    """
    if isinstance(records_or_paths, Records):
        return _summarize_chunks([records_or_paths], None, None)
    if isinstance(records_or_paths, str | os.PathLike):
        return _summarize_path(os.fspath(records_or_paths), party, chunk_rows)
    items = list(records_or_paths)
    if items and all(isinstance(i, str | os.PathLike) for i in items):
        return {"files": [_summarize_path(os.fspath(i), party, chunk_rows) for i in items]}
    if not items or not all(isinstance(i, Records) for i in items):
        raise InputError("summarize expects Records, a path, Records chunks or a list of paths")
    return _summarize_chunks(items, None, None)


def _summarize_path(path: str, party: str | None, chunk_rows: int) -> dict[str, Any]:
    src = _open_source(path)
    try:
        fmt = src.fmt
        _prepare(src, party)
        version = src.schema_version
    finally:
        src.close()
    out = _summarize_chunks(iter_records(path, chunk_rows=chunk_rows, party=party), path, fmt)
    out["schema_version"] = version
    return out


def _summarize_chunks(chunks: Iterable[Records], path: str | None,
                      fmt: str | None) -> dict[str, Any]:
    n = 0
    first_round = last_round = None
    t_min = t_max = t_first = t_last = None
    party = None
    columns: list[str] = []
    metadata: Mapping[str, Any] = {}
    so_counts: np.ndarray | None = None
    herald_counts: np.ndarray | None = None
    for rec in chunks:
        if party is None:
            party = rec.party
            columns = list(rec.columns)
            metadata = rec.metadata
            setting, outcome, ns = _SETTING[party]
            so_counts = np.zeros(ns * 2, dtype=np.int64)
            herald_counts = np.zeros(2, dtype=np.int64) if "herald" in rec else None
        elif rec.party != party:
            raise InputError("chunks of different parties in one summary")
        if not len(rec):
            continue
        rounds = rec["round"]
        if first_round is None:
            first_round = int(rounds[0])
        last_round = int(rounds[-1])
        n += len(rec)
        setting, outcome, ns = _SETTING[party]
        assert so_counts is not None
        code = rec[setting].astype(np.intp) * 2 + rec[outcome]
        so_counts += np.bincount(code, minlength=ns * 2)[: ns * 2]
        if herald_counts is not None:
            herald_counts += np.bincount(rec["herald"], minlength=2)[:2]
        if "t_ns" in rec:
            t = rec["t_ns"]
            lo, hi = int(t.min()), int(t.max())
            t_min = lo if t_min is None else min(t_min, lo)
            t_max = hi if t_max is None else max(t_max, hi)
            if t_first is None:
                t_first = int(t[0])
            t_last = int(t[-1])
    if party is None or so_counts is None:
        raise InputError("no records to summarize", file=path)
    setting, outcome, ns = _SETTING[party]
    time = None
    if t_min is not None and t_max is not None:
        span_ns = t_max - t_min
        time = {
            "first_ns": t_first,
            "last_ns": t_last,
            "min_ns": t_min,
            "max_ns": t_max,
            "span_s": span_ns / 1e9,
            "event_rate_hz": (n - 1) / (span_ns / 1e9) if span_ns > 0 and n > 1 else None,
        }
    settings = {f"{setting}={s}": int(so_counts[2 * s] + so_counts[2 * s + 1]) for s in range(ns)}
    setting_outcome = {
        f"{setting}={s},{outcome}={o}": int(so_counts[2 * s + o]) for s in range(ns) for o in (0, 1)
    }
    return {
        "file": path,
        "format": fmt,
        "file_size": os.path.getsize(path) if path is not None else None,
        "schema_version": SCHEMA_VERSION,
        "party": party,
        "columns": columns,
        "rounds": n,
        "first_round": first_round,
        "last_round": last_round,
        "time": time,
        "settings": settings,
        "setting_outcome": setting_outcome,
        "herald": None if herald_counts is None else {
            f"herald={h}": int(herald_counts[h]) for h in (0, 1)},
        "metadata": dict(metadata),
    }
