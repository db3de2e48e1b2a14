"""``diqkd records``: inspect and convert record files."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import click

from diqkd.errors import InputError
from diqkd.records import open_writer, summarize
from diqkd.records.formats import _open_for_chunks, format_of

_PARTY = click.Choice(["alice", "bob"])
#: Inputs at least this large get a progress bar in ``convert`` (rows, or bytes for CSV).
_PROGRESS_MIN_ROWS = 5_000_000
_PROGRESS_MIN_BYTES = 64 << 20


@click.group()
def records() -> None:
    """Inspect and convert record files (HDF5, CSV, NPZ).

    \b
    A record file holds one party's measurement rounds:
      Alice: round, x (setting 0/1), a (outcome 0/1), optional t_ns
      Bob:   round, y (setting 0/1/2; 2 = key), b (outcome 0/1), optional herald, optional t_ns
    The format follows the extension: .h5/.hdf5 (canonical), .csv, .npz.
    Bad files end with exit status 2 and a message naming file, column, row and value.
    """


@records.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of summaries (one per file) instead of a table.")
@click.option("--party", type=_PARTY, default=None,
              help="Insist on this party's records (default: whatever the file says).")
@click.pass_context
def inspect(ctx: click.Context, files: tuple[str, ...], as_json: bool, party: str | None) -> None:
    """Validate record files and summarise them.

    For each FILE: format, size, party, number of rounds, first/last round, time span and event
    rate (when there is a t_ns column), counts per setting and per (setting, outcome), herald
    counts and run metadata. Every row is validated, in chunks (bounded memory).

    \b
    Examples:
      diqkd records inspect alice.h5 bob.h5
      diqkd records inspect --json run1/*.h5 > summary.json
    """
    summaries: list[dict[str, Any]] = []
    failed = 0
    for path in files:
        try:
            summaries.append(summarize(path, party=party))
        except InputError as exc:
            failed += 1
            click.echo(f"error: {exc}", err=True)
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    else:
        for i, s in enumerate(summaries):
            if i:
                click.echo("")
            click.echo(_table(s))
    if failed:
        ctx.exit(2)


def _table(s: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    rows.append(("file", f"{s['file']}"))
    rows.append(("format", f"{s['format']}, {_size(s['file_size'])}, schema version "
                           f"{s['schema_version']}"))
    rows.append(("party", f"{s['party']} (columns: {', '.join(s['columns'])})"))
    rows.append(("rounds", f"{s['rounds']:,} (first {s['first_round']:,}, "
                           f"last {s['last_round']:,})"))
    t = s["time"]
    if t is not None:
        rate = t["event_rate_hz"]
        rows.append(("time span", f"{t['span_s']:.6g} s (t_ns {t['min_ns']:,} .. "
                                  f"{t['max_ns']:,})"))
        rows.append(("event rate", "n/a" if rate is None else f"{rate:.6g} /s"))
    n = max(1, s["rounds"])
    rows.append(("settings", "  ".join(f"{k}: {v:,} ({100 * v / n:.1f}%)"
                                       for k, v in s["settings"].items())))
    so = list(s["setting_outcome"].items())
    for i in range(0, len(so), 2):
        rows.append(("counts" if i == 0 else "",
                     "  ".join(f"{k}: {v:,}" for k, v in so[i:i + 2])))
    if s["herald"] is not None:
        rows.append(("herald", "  ".join(f"{k}: {v:,}" for k, v in s["herald"].items())))
    for key, value in sorted(s["metadata"].items()):
        rows.append(("metadata" if key == sorted(s["metadata"])[0] else "",
                     f"{key} = {json.dumps(value)}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" if k != "file" else v for k, v in rows)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@records.command()
@click.argument("src", metavar="IN", type=click.Path(dir_okay=False))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["hdf5", "csv", "npz"]), default=None,
              help="Output format (default: from OUT's extension: .h5/.hdf5, .csv, .npz).")
@click.option("--party", type=_PARTY, default=None,
              help="Insist on this party's records (default: whatever the file says).")
@click.option("--force", "-f", is_flag=True, help="Replace OUT if it exists.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              help="Rows held in memory at a time.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: for big inputs).")
def convert(src: str, dst: str, fmt: str | None, party: str | None, force: bool,
            chunk_rows: int, progress: bool | None) -> None:
    """Convert a record file IN to OUT (HDF5, CSV, NPZ), validating every row.

    Party, schema version and run metadata carry over. The conversion streams in chunks, so files
    of 1e8 rounds convert in bounded memory. OUT appears only
    when the conversion succeeded.

    \b
    Examples:
      diqkd records convert lab_export.csv alice.h5
      diqkd records convert bob.h5 bob.csv --force
    """
    out_fmt = format_of(dst, fmt)
    if os.path.exists(dst) and not force:
        raise click.UsageError(f"{dst} exists; pass --force to replace it")
    p, metadata, names, chunks, prog, source = _open_for_chunks(src, chunk_rows=chunk_rows,
                                                                party=party)
    with contextlib.closing(source):
        total = prog.total
        big = total >= (_PROGRESS_MIN_BYTES if source.fmt == "csv" else _PROGRESS_MIN_ROWS)
        show = big if progress is None else progress
        bar: Any = (click.progressbar(length=max(total, 1), label=f"converting {src}",
                                      file=sys.stderr) if show else contextlib.nullcontext())
        with bar, open_writer(dst, p, metadata=metadata, columns=names, fmt=out_fmt) as w:
            done = 0
            for chunk in chunks:
                w.append(chunk)
                if show:
                    bar.update(prog.done - done)
                    done = prog.done
    click.echo(f"wrote {dst} ({out_fmt}, {w.rows:,} rounds of {p}'s records)", err=True)
