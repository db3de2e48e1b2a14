"""``diqkd run``: records in, keys and an audit report out (or the built-in default job).

\b
  diqkd run --alice A.h5 --bob B.h5 --protocol P.toml --out DIR [--seed N] [--json]
  diqkd run                      # emulate the default link into ./diqkd-out and process it

Exit status: 0 key written, 3 protocol abort (report written, no key files), 2 bad input or
configuration, 1 internal error.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from diqkd.errors import ConfigError, ProtocolAbort
from diqkd_cli.options import parse_rounds

__all__ = ["command", "DEFAULT_PRESET", "DEFAULT_ROUNDS", "default_protocol"]

#: The built-in default job: a preset link that yields a positive finite-size key in about a
#: minute on a 2-core machine (emulation + processing).
DEFAULT_PRESET = "oxford-2022"
DEFAULT_ROUNDS = 3_000_000
DEFAULT_OUT = "diqkd-out"

#: Protocol settings of the default job (the expected S and QBER come from the emulator's
#: analytic model of the chosen preset, so the protocol fits whichever link is emulated).
DEFAULT_SETTINGS: dict[str, Any] = {
    "gamma": 0.07,  # near the optimum for oxford-2022 at 3e6 rounds (security.optimal_gamma)
    "method": "eat2",
    "epsilon": {"eps_s": 1e-10, "eps_pa": 1e-10, "eps_ea": 1e-10, "eps_cor": 1e-10,
                "eps_complete": 1e-2},
}


def default_protocol(preset: str, link: Any = None) -> Any:
    """The default protocol for an emulator preset: DEFAULT_SETTINGS + the link's expected S, Q."""
    from diqkd.emulator import expected, load_link
    from diqkd.protocol import Protocol

    link = link if link is not None else load_link(preset)
    exp = expected(link)
    data = {**DEFAULT_SETTINGS, "name": f"default ({preset})",
            "description": f"built-in default protocol for the emulated {preset} link",
            "expected": {"S": round(float(exp.S), 6), "qber": round(float(exp.qber), 6)}}
    return Protocol.from_dict(data, source=f"default protocol for {preset}")



class _StderrProgress:
    """Per-stage progress lines on stderr (a bar while a stage reports its fraction)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def stage_start(self, stage: str) -> None:
        if not self.quiet and self.tty:
            click.echo(f"  {stage:<11} ...", err=True, nl=False)

    def update(self, stage: str, done: float, total: float) -> None:
        if self.quiet or not self.tty or total <= 0:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        frac = min(1.0, done / total)
        bar = "#" * int(frac * 30)
        click.echo(f"\r  {stage:<11} [{bar:<30}] {100 * frac:5.1f} %", err=True, nl=False)

    def stage_end(self, stage: str, seconds: float, info: str = "") -> None:
        if self.quiet:
            return
        prefix = "\r" if self.tty else ""
        click.echo(f"{prefix}  {stage:<11} {seconds:8.2f} s  {info}" + " " * 20, err=True)


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def summary_table(report: dict[str, Any]) -> str:
    """The closing summary: rounds, S, QBER, leakage, f, key bits, key per round, stage times."""
    st = report.get("statistics") or {}
    bt = report.get("bell_test") or {}
    lk = report.get("leakage") or {}
    keys = report.get("keys") or {}
    n = st.get("rounds")
    rows = [
        ("rounds", _fmt(n, ",")),
        ("test rounds", _fmt(st.get("test_rounds"), ",")),
        ("S", _fmt(st.get("S"), ".4f")),
        ("win fraction", _fmt(st.get("win_fraction"), ".5f")),
        ("omega threshold", _fmt(bt.get("omega_threshold"), ".5f")),
        ("lost games / allowed",
         f"{_fmt(bt.get('losses'), ',')} / {_fmt(bt.get('max_losses'), ',')}"),
        ("QBER", _fmt(st.get("qber"), ".4%")),
        ("EC leakage [bits]", _fmt(lk.get("ec_bits"), ",")),
        ("efficiency f", _fmt(lk.get("efficiency_f"), ".3f")),
        ("statistics leakage [bits]", _fmt(lk.get("published_statistics_bits"), ",")),
        ("key bits", _fmt(keys.get("bits", 0), ",")),
        ("key per round", _fmt((keys.get("bits", 0) / n) if n else None, ".5f")),
    ]
    for stage, t in (report.get("timings_s") or {}).items():
        rows.append((f"time {stage} [s]", f"{t:.2f}"))
    rows.append(("total time [s]", f"{sum((report.get('timings_s') or {}).values()):.2f}"))
    verdict = report.get("verdict")
    if verdict == "abort":
        ab = report.get("abort") or {}
        rows.append(("verdict", f"ABORT ({ab.get('code')}): {ab.get('reason')}"))
    else:
        rows.append(("verdict", f"KEY {keys.get('key_id', '')}"))
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{w}}  {v}" for k, v in rows)


@click.command("run")
@click.option("--alice", type=click.Path(dir_okay=False), help="Alice's records (HDF5, CSV, NPZ).")
@click.option("--bob", type=click.Path(dir_okay=False), help="Bob's records.")
@click.option("--protocol", "protocol_path", type=click.Path(dir_okay=False),
              help="Protocol TOML (required with --alice/--bob; default job: built in).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=DEFAULT_OUT,
              show_default=True, help="Output directory (keys, sidecars, report).")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Master seed (public, recorded). Default: drawn from the OS CSPRNG.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option("--drop-unmatched", is_flag=True,
              help="Drop rounds that only one party has (counted in the report).")
@click.option("--preset", default=None,
              help=f"Default job: emulator preset [default: {DEFAULT_PRESET}].")
@click.option("--rounds", "rounds_text", default=None,
              help=f"Default job: rounds to emulate [default: {DEFAULT_ROUNDS:.0e}].")
@click.option("--device", default=None, help="Default job: emulated device (honest, lhv, ...).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
def command(alice: str | None, bob: str | None, protocol_path: str | None, out_dir: str,
            seed: int | None, as_json: bool, drop_unmatched: bool, preset: str | None,
            rounds_text: str | None, device: str | None, quiet: bool) -> None:
    """Process Bell-test records into certified keys and an audit report.

    With --alice, --bob and --protocol: process those files. With no inputs: the default job,
    emulate a repeater link (written into --out too, so the run can be audited) and process it.

    Exit status: 0 key written, 3 protocol abort (report written, no key files), 2 bad input or
    configuration, 1 internal error.
    """
    from diqkd.fileio import atomic_write_text
    from diqkd.pipeline import Seeds, load_protocol, run
    from diqkd.report import prepare_out_dir

    rounds = parse_rounds(rounds_text)
    given = [o for o, v in (("--alice", alice), ("--bob", bob)) if v]
    emulate = not given
    if given and len(given) != 2:
        raise ConfigError("--alice and --bob go together (missing "
                          f"{'--bob' if alice else '--alice'})")
    if not emulate:
        clash = [o for o, v in (("--preset", preset), ("--rounds", rounds_text),
                                ("--device", device)) if v is not None]
        if clash:
            raise ConfigError(f"{', '.join(clash)} only apply to the default (emulated) job, not "
                              "with --alice/--bob")
        if protocol_path is None:
            raise ConfigError("--protocol is required with --alice/--bob")
    progress = _StderrProgress(quiet)
    proto = load_protocol(protocol_path) if protocol_path else None
    out = prepare_out_dir(out_dir)
    seeds = Seeds.make(seed)
    context: dict[str, Any] = {}
    t_start = time.perf_counter()
    if emulate:
        from diqkd.emulator import emulate_to_files, expected, load_link

        name = preset or DEFAULT_PRESET
        link = load_link(name)
        if proto is None:
            proto = default_protocol(name, link)
        n_rounds = rounds or DEFAULT_ROUNDS
        emu_seed = seeds.child("emulator")
        dev = device or "honest"
        exp = expected(link)
        if not quiet:
            click.echo(f"diqkd run: default job, emulating {n_rounds:,} rounds of {name} "
                       f"(device {dev}; expected S {exp.S:.4f}, QBER {exp.qber:.2%}) into "
                       f"{out}", err=True)
        t0 = time.perf_counter()
        progress.stage_start("emulate")
        alice, bob = emulate_to_files(
            link, n_rounds, out, seed=emu_seed, test_probability=proto.gamma, device=dev,
            progress=lambda done, total: progress.update("emulate", done, total))
        emu_time = time.perf_counter() - t0
        progress.stage_end("emulate", emu_time, f"{n_rounds:,} rounds -> {Path(alice).name}, "
                                                f"{Path(bob).name}")
        context["emulator"] = {"preset": name, "rounds": n_rounds, "seed": emu_seed,
                               "seed_stream": "emulator", "device": dev,
                               "test_probability": proto.gamma,
                               "expected": {"S": exp.S, "qber": exp.qber}}
        atomic_write_text(out / "protocol.toml", proto.to_toml())
    else:
        if not quiet:
            click.echo(f"diqkd run: {alice} + {bob} with {protocol_path} -> {out}", err=True)
    assert proto is not None and alice is not None and bob is not None
    result = run(alice, bob, proto, seed=seeds, drop_unmatched=drop_unmatched,
                 progress=progress, context=context or None)
    t0 = time.perf_counter()
    result.write(out)
    if not quiet:
        progress.stage_end("write", time.perf_counter() - t0, f"-> {out}")
    report = result.report
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    table = summary_table(report)
    click.echo(table, err=as_json)
    if not quiet:
        click.echo(f"  wall time {time.perf_counter() - t_start:.1f} s; "
                   f"report {out / 'report.json'}", err=True)
    if not result.ok:
        ab = result.abort or {}
        raise ProtocolAbort(f"{ab.get('reason')} (report: {out / 'report.json'}; no key files)",
                            code=str(ab.get("code")))
