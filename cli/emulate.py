"""``diqkd emulate``: generate records of an emulated repeater link, or sweep its expected figures.

\b
  diqkd emulate --preset ustc-atoms-100km --rounds 1e6 --seed 7 --out DIR
  diqkd emulate --preset ustc-atoms-11km --distance 50 --device drift --json --out DIR
  diqkd emulate --sweep distance=10:200:10 --plot rate.png --json
  diqkd emulate --list-presets
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import click

from diqkd.emulator import (
    DEVICES,
    PRESETS,
    Tally,
    emulate_to_files,
    expected,
    load_link,
    parse_device,
    preset_info,
)
from diqkd.emulator.params import LinkParams
from diqkd.errors import ConfigError
from diqkd_cli.options import parse_rounds

_SWEEP_KEYS = {"distance": "distance_km", "distance_km": "distance_km"}



def _parse_set(items: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, val = item.partition("=")
        if not eq:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        val = val.strip()
        parsed: Any = val
        for conv in (int, float):
            try:
                parsed = conv(val)
                break
            except ValueError:
                continue
        out[key.strip()] = parsed
    return out


def _link(preset: str, config: str | None, overrides: dict[str, Any]) -> LinkParams:
    if config is not None:
        # the file's parameters override the preset's
        import tomllib

        try:
            with open(config, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config}: not valid TOML: {exc}") from None
        data = raw["link"] if isinstance(raw.get("link"), dict) else {
            k: v for k, v in raw.items() if not isinstance(v, dict)}
        overrides = {**data, **overrides}
    return load_link(preset, **overrides)


def _sweep_values(spec: str) -> tuple[str, list[float]]:
    key, eq, rng = spec.partition("=")
    if not eq or key.strip() not in _SWEEP_KEYS:
        raise ConfigError(f"--sweep expects distance=START:STOP:STEP, got {spec!r}")
    parts = rng.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise ConfigError(f"--sweep: not numbers in {rng!r}") from None
    if len(nums) == 1:
        return _SWEEP_KEYS[key.strip()], nums
    if len(nums) != 3 or nums[2] <= 0 or nums[1] < nums[0]:
        raise ConfigError(f"--sweep expects START:STOP:STEP with STEP > 0, got {rng!r}")
    n = int(math.floor((nums[1] - nums[0]) / nums[2] + 1e-9)) + 1
    return _SWEEP_KEYS[key.strip()], [nums[0] + i * nums[2] for i in range(n)]


def _sweep_rows(link: LinkParams, field: str, values: list[float],
                segment_list: list[int]) -> list[dict[str, Any]]:
    rows = []
    for value in values:
        for n in segment_list:
            e = expected(link.replace(**{field: value, "segments": n}))
            uses = e.mean_attempts * link.multiplexing
            rows.append({
                field: value, "segments": n, "S": e.S, "qber": e.qber, "fidelity": e.fidelity,
                "event_rate_hz": e.event_rate_hz, "key_rate_per_event": e.key_rate_per_event,
                "key_rate_hz": e.key_rate_hz,
                "key_bits_per_channel_use": max(e.key_rate_per_event, 0.0)
                * (1 - link.test_probability) / uses,
                "repeaterless_bound": e.repeaterless_bound,
            })
    return rows


def _plot(rows: list[dict[str, Any]], field: str, segment_list: list[int], path: str,
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for n in segment_list:
        sel = [r for r in rows if r["segments"] == n]
        xs = [r[field] for r in sel]
        label = "1 segment (no repeater)" if n == 1 else f"{n} segments"
        ax1.semilogy(xs, [r["key_bits_per_channel_use"] or math.nan for r in sel], label=label)
        ax2.semilogy(xs, [r["key_rate_hz"] or math.nan for r in sel], label=label)
    sel = [r for r in rows if r["segments"] == segment_list[0]]
    ax1.semilogy([r[field] for r in sel], [r["repeaterless_bound"] for r in sel], "k--",
                 label="repeaterless bound -log2(1 - eta)")
    ax1.set_xlabel("distance (km)")
    ax1.set_ylabel("secret bits per channel use (asymptotic)")
    ax2.set_xlabel("distance (km)")
    ax2.set_ylabel("secret key rate (bit/s, asymptotic)")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("emulate")
@click.option("--preset", default="ustc-atoms-11km", show_default=True,
              help="Link preset (see --list-presets).")
@click.option("--config", "config", type=click.Path(dir_okay=False),
              help="TOML file of link parameters ([link] table or top-level keys); overrides "
                   "the preset's.")
@click.option("--rounds", default="1e6", show_default=True, help="Heralded events to emulate.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output directory (alice.<fmt>, bob.<fmt>).")
@click.option("--format", "fmt", type=click.Choice(["h5", "csv", "npz"]), default="h5",
              show_default=True)
@click.option("--distance", type=float, help="Override the total distance, km.")
@click.option("--segments", type=click.IntRange(min=1), help="Override the number of segments.")
@click.option("--device", default="honest", show_default=True,
              help=f"Device: {', '.join(DEVICES)} (parameters as name:key=value,...).")
@click.option("--test-probability", type=float, help="Test-round probability gamma.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any link parameter (repeatable).")
@click.option("--sweep", help="Print expected figures against distance: distance=START:STOP:STEP.")
@click.option("--sweep-segments", default="1,2,4", show_default=True,
              help="Segment counts compared in --sweep.")
@click.option("--plot", type=click.Path(dir_okay=False), help="With --sweep: write a PNG plot.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
@click.option("--list-presets", is_flag=True, help="List the presets and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def command(preset: str, config: str | None, rounds: str, seed: int, out_dir: str | None,
            fmt: str, distance: float | None, segments: int | None, device: str,
            test_probability: float | None, sets: tuple[str, ...], sweep: str | None,
            sweep_segments: str, plot: str | None, as_json: bool, list_presets: bool,
            no_progress: bool) -> None:
    """Emulate a heralded memory-memory link (or repeater chain) and write both parties' records.

    Writes OUT/alice.h5 and OUT/bob.h5 (rounds, settings, outcomes, herald, timestamps) with the
    link parameters, seed and device in the metadata. With --sweep, prints the expected CHSH
    value, QBER, event rate and asymptotic key rate against distance instead.
    """
    if list_presets:
        _list_presets(as_json)
        return
    overrides = _parse_set(sets)
    if distance is not None:
        overrides["distance_km"] = distance
    if segments is not None:
        overrides["segments"] = segments
    if test_probability is not None:
        overrides["test_probability"] = test_probability
    link = _link(preset, config, overrides)
    if sweep is not None:
        field, values = _sweep_values(sweep)
        try:
            seg_list = [int(s) for s in sweep_segments.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(
                f"--sweep-segments: expected integers, got {sweep_segments!r}") from None
        if not seg_list or min(seg_list) < 1:
            raise ConfigError(f"--sweep-segments: expected integers >= 1, got {sweep_segments!r}")
        rows = _sweep_rows(link, field, values, seg_list)
        if plot:
            _plot(rows, field, seg_list, plot, f"{link.name}: {link.scheme.upper()}")
        if as_json:
            click.echo(json.dumps({"link": link.to_dict(), "sweep": rows, "plot": plot},
                                  indent=2, default=str))
        else:
            click.echo(f"{'km':>7} {'seg':>3} {'S':>7} {'QBER':>7} {'events/s':>10} "
                       f"{'r bit/ev':>9} {'key bit/s':>10} {'bit/use':>10} {'PLOB':>10}")
            for r in rows:
                click.echo(f"{r[field]:7.1f} {r['segments']:3d} {r['S']:7.4f} {r['qber']:7.4f} "
                           f"{r['event_rate_hz']:10.4g} {r['key_rate_per_event']:9.4f} "
                           f"{r['key_rate_hz']:10.4g} {r['key_bits_per_channel_use']:10.3g} "
                           f"{r['repeaterless_bound']:10.3g}")
            if plot:
                click.echo(f"plot written to {plot}", err=True)
        return
    n = parse_rounds(rounds, minimum=0)
    if out_dir is None:
        raise ConfigError("--out DIR is required to write records (or use --sweep / "
                          "--list-presets)")
    dev = parse_device(device)
    exp = expected(link)
    tally = Tally()
    t0 = time.perf_counter()
    show = not no_progress
    with click.progressbar(length=n, label="emulating", file=sys.stderr,
                           show_pos=True) as bar:
        last = [0]

        def progress(done: int, total: int) -> None:
            if show:
                bar.update(done - last[0])
            last[0] = done

        a_path, b_path = emulate_to_files(
            link, n, out_dir, seed=seed, device=dev, fmt=fmt, progress=progress,
            on_chunk=tally.add)
    elapsed = time.perf_counter() - t0
    summary = {
        "alice": str(a_path), "bob": str(b_path), "rounds": n, "seed": seed,
        "device": dev.spec(), "preset": link.name, "format": fmt,
        "elapsed_s": elapsed, "rounds_per_s": n / elapsed if elapsed > 0 else None,
        "observed": tally.to_dict() if n else None,
        "expected": exp.to_dict(), "link": link.to_dict(),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        obs = tally.to_dict()
        click.echo(f"wrote {a_path} and {b_path}: {n} rounds in {elapsed:.2f} s")
        if n:
            click.echo(f"observed S = {obs['S']:.4f} +- {obs['S_err']:.4f}, "
                       f"QBER = {obs['qber']:.4f} +- {obs['qber_err']:.4f}")
        click.echo(f"expected S = {exp.S:.4f}, QBER = {exp.qber:.4f}, event rate "
                   f"{exp.event_rate_hz:.4g}/s, r = {exp.key_rate_per_event:.4f} bit/event")


def _list_presets(as_json: bool) -> None:
    items = []
    for name in PRESETS:
        info = preset_info(name)
        e = expected(load_link(name))
        items.append({"name": name, "description": info.get("description", ""),
                      "S": e.S, "qber": e.qber, "event_rate_hz": e.event_rate_hz,
                      "key_rate_per_event": e.key_rate_per_event,
                      "published": info.get("published", {})})
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for it in items:
        click.echo(f"{it['name']:<22} S={it['S']:.3f} QBER={it['qber']:.4f} "
                   f"rate={it['event_rate_hz']:.4g}/s  {it['description']}")
