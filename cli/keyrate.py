"""``diqkd keyrate``: asymptotic and finite-size key rates for planning and what-if audits."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from diqkd.errors import ConfigError
from diqkd.security import (
    METHODS,
    S_MAX,
    EpsilonBudget,
    FiniteKeyBound,
    asymptotic_rate,
    finite_key_length,
    min_rounds,
    optimal_gamma,
    optimal_noise,
    plan_key_length,
    threshold_for_completeness,
)
from diqkd.security.entropy import omega_from_S
from diqkd_cli.options import parse_rounds

__all__ = ["command"]



def _stats_from_records(directory: str) -> dict[str, Any]:
    try:
        from diqkd.records.formats import read_records  # written concurrently (records issue)
    except ImportError:
        raise ConfigError("--records needs diqkd.records.formats.read_records, "
                          "which is not available in this build") from None
    from diqkd.estimation import Counts
    from diqkd.records.model import align

    d = Path(directory)
    alice, bob = d / "alice.h5", d / "bob.h5"
    for f in (alice, bob):
        if not f.is_file():
            raise ConfigError(f"--records {directory}: missing {f.name}")
    ra = read_records(str(alice), party="alice")
    rb = read_records(str(bob), party="bob")
    joint = align(ra, rb)
    c = Counts.from_joint(joint)
    if c.test_rounds == 0 or c.key_rounds == 0:
        raise ConfigError(f"--records {directory}: need both test and key rounds")
    # The protocol's gamma if the run recorded it, else the observed test fraction.
    gamma = ra.metadata.get("gamma", c.test_rounds / c.total)
    try:
        gamma = float(gamma)
    except (TypeError, ValueError):
        gamma = c.test_rounds / c.total
    return {"S": c.S, "qber": c.qber, "n": c.total, "gamma": gamma, "counts": c.to_dict()}


def _bound_for(method: str, n: int, S: float, qber: float, gamma: float | None,
               eps: EpsilonBudget, p: float, eff: float, leak: float | None,
               omega_thr: float | None) -> FiniteKeyBound:
    if leak is not None or omega_thr is not None:
        if gamma is None:
            raise ConfigError("--leak/--omega-threshold need --gamma")
        from diqkd.security import protocol_leakage_estimate

        if omega_thr is None:
            ec = eps.eps_complete if eps.eps_complete is not None else 1e-2
            omega_thr = threshold_for_completeness(n, gamma, omega_from_S(S), ec).omega_threshold
        if leak is None:
            leak = math.ceil(protocol_leakage_estimate(n, gamma, S, qber, eps.eps_cor, eff, p))
        return finite_key_length(n=n, gamma=gamma, omega_threshold=omega_thr, leak_ec_bits=leak,
                                 eps=eps, method=method, p_noise=p)
    if gamma is None:
        return optimal_gamma(n=n, S=S, qber=qber, eps=eps, method=method, p_noise=p,
                             efficiency=eff)
    return plan_key_length(n=n, S=S, qber=qber, gamma=gamma, eps=eps, method=method, p_noise=p,
                           efficiency=eff)


def _plot(path: str, S: float, qber: float, gamma: float | None, eps: EpsilonBudget, p: float,
          eff: float, asym: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ns = np.logspace(5, 11, 13)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in METHODS:
        rates = [_bound_for(method, int(n), S, qber, gamma, eps, p, eff, None, None).key_rate
                 for n in ns]
        ax.semilogx(ns, rates, marker="o", ms=3, label=f"finite size ({method})")
    ax.axhline(asym, color="k", ls="--", label="asymptotic (per round)")
    ax.set_xlabel("rounds n")
    ax.set_ylabel("key bits per round")
    ax.set_title(f"S = {S:.4f}, QBER = {qber:.2%}, p = {p:.3g}")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("keyrate")
@click.option("--S", "S", type=float, help="CHSH value S (2 < S <= 2.828).")
@click.option("--qber", type=float, help="Key-round QBER (fraction, e.g. 0.03).")
@click.option("--rounds", "rounds", type=str, help="Number of rounds n (e.g. 1.2e6).")
@click.option("--records", "records", type=click.Path(file_okay=False),
              help="Take S, QBER, n and gamma from a record set (DIR/alice.h5, DIR/bob.h5).")
@click.option("--method", type=click.Choice(list(METHODS) + ["all"]), default="eat2",
              show_default=True, help="Finite-size method: eat2 (Dupuis-Fawzi 2019), geat.")
@click.option("--gamma", type=float, default=None,
              help="Test-round probability; default: optimised for the largest key.")
@click.option("--p-noise", "p_noise", type=str, default="0", show_default=True,
              help="Noisy-preprocessing flip probability, or 'opt' (asymptotically optimal).")
@click.option("--efficiency", type=float, default=1.0, show_default=True,
              help="EC efficiency f multiplying n*H in the planned leakage.")
@click.option("--leak", type=float, default=None,
              help="Actual EC leakage in bits (syndrome + revealed + tag) instead of the estimate.")
@click.option("--omega-threshold", "omega_thr", type=float, default=None,
              help="Acceptance threshold on the winning probability (default: completeness).")
@click.option("--eps-snd", type=float, default=None,
              help="Total soundness, split evenly into eps_s, eps_pa, eps_ea, eps_cor.")
@click.option("--eps-s", type=float, default=1e-10, show_default=True, help="Smoothing.")
@click.option("--eps-pa", type=float, default=1e-10, show_default=True,
              help="Privacy amplification.")
@click.option("--eps-ea", type=float, default=1e-10, show_default=True,
              help="Entropy accumulation (Bell-test soundness).")
@click.option("--eps-cor", type=float, default=1e-10, show_default=True,
              help="Correctness (EC verification).")
@click.option("--eps-complete", type=float, default=1e-2, show_default=True,
              help="Honest abort probability used to set the threshold.")
@click.option("--min-rounds", "want_min", is_flag=True,
              help="Find the smallest n with a positive key instead.")
@click.option("--plot", "plot", type=click.Path(dir_okay=False),
              help="Write a PNG of key rate against n for each method.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(S: float | None, qber: float | None, rounds: str | None, records: str | None,
            method: str, gamma: float | None, p_noise: str, efficiency: float,
            leak: float | None, omega_thr: float | None, eps_snd: float | None, eps_s: float,
            eps_pa: float, eps_ea: float, eps_cor: float, eps_complete: float, want_min: bool,
            plot: str | None, as_json: bool) -> None:
    """Asymptotic and finite-size key for the spot-checking CHSH protocol.

    \b
    Examples:
      diqkd keyrate --S 2.612 --qber 0.03 --rounds 1.2e6
      diqkd keyrate --S 2.612 --qber 0.03 --min-rounds
      diqkd keyrate --S 2.604 --qber 0.018 --rounds 1.5e6 --gamma 0.0508 \\
          --omega-threshold 0.825538 --leak 296517 --eps-snd 1e-10
      diqkd keyrate --records RUN_DIR --json

    The finite-size key is the certified length ell of Arnon-Friedman et al. (2018) with the
    entropy accumulation theorem (see docs/security.md); every term is printed. Rates are per
    round (key and test rounds).
    """
    src: dict[str, Any] = {}
    if records:
        src = _stats_from_records(records)
        # a finite sample can exceed Tsirelson's bound; the bounds are evaluated at most there
        S = min(src["S"], S_MAX) if S is None else S
        qber = src["qber"] if qber is None else qber
        rounds = rounds or str(src["n"])
        gamma = src["gamma"] if gamma is None else gamma
    if S is None or qber is None:
        raise ConfigError("give --S and --qber (or --records DIR)")
    if not (-2.83 <= S <= 2.8285):
        raise ConfigError(f"--S must lie in [-2 sqrt2, 2 sqrt2], got {S}")
    if not (0.0 <= qber <= 0.5):
        raise ConfigError(f"--qber must lie in [0, 0.5], got {qber}")
    if gamma is not None and not (0.0 < gamma <= 1.0):
        raise ConfigError(f"--gamma must lie in (0, 1], got {gamma}")
    if efficiency < 1.0:
        raise ConfigError(f"--efficiency must be >= 1, got {efficiency}")
    n = parse_rounds(rounds)
    if n is None and not want_min:
        raise ConfigError("give --rounds N (or --min-rounds, or --records DIR)")
    eps = (EpsilonBudget.split(eps_snd, eps_complete) if eps_snd is not None
           else EpsilonBudget(eps_s=eps_s, eps_pa=eps_pa, eps_ea=eps_ea, eps_cor=eps_cor,
                              eps_complete=eps_complete))
    if p_noise == "opt":
        p = optimal_noise(S, qber)[0]
    else:
        try:
            p = float(p_noise)
        except ValueError:
            raise ConfigError(f"--p-noise must be a number or 'opt', got {p_noise!r}") from None
        if not (0.0 <= p < 0.5):
            raise ConfigError(f"--p-noise must lie in [0, 0.5), got {p}")
    asym = asymptotic_rate(S, qber, p)
    methods = list(METHODS) if method == "all" else [method]
    out: dict[str, Any] = {"S": S, "qber": qber, "p_noise": p,
                           "asymptotic_rate_per_key_round": asym, "eps": eps.to_dict()}
    if src:
        out["records"] = src
    if want_min:
        res = {}
        for m in methods:
            b = min_rounds(S=S, qber=qber, eps=eps, gamma=gamma, method=m, p_noise=p,
                           efficiency=efficiency)
            res[m] = None if b is None else b.to_dict()
        out["min_rounds"] = res
    else:
        assert n is not None
        out["n"] = n
        out["asymptotic_key_bits"] = max(0.0, asym) * n
        out["finite"] = {m: _bound_for(m, n, S, qber, gamma, eps, p, efficiency, leak,
                                       omega_thr).to_dict() for m in methods}
    if plot:
        _plot(plot, S, qber, gamma, eps, p, efficiency, max(asym, 0.0))
        out["plot"] = plot
    if as_json:
        click.echo(json.dumps(out, indent=2, default=float))
        return
    _print(out)


def _print(out: dict[str, Any]) -> None:
    e = out["eps"]
    click.echo(f"S = {out['S']:.4f}  QBER = {out['qber']:.4%}  noise p = {out['p_noise']:.4g}")
    rate = out["asymptotic_rate_per_key_round"]
    click.echo(f"asymptotic rate (per key round, Pironio/Ho): {rate:.6f}")
    click.echo(f"epsilons: eps_s={e['eps_s']:.3g} eps_pa={e['eps_pa']:.3g} "
               f"eps_ea={e['eps_ea']:.3g} eps_cor={e['eps_cor']:.3g} -> "
               f"eps_sec={e['eps_sec']:.3g}, eps_snd={e['eps_snd']:.3g}")
    if "min_rounds" in out:
        for m, b in out["min_rounds"].items():
            if b is None:
                click.echo(f"[{m}] no positive key up to 1e13 rounds")
            else:
                click.echo(f"[{m}] smallest n with a positive key: {b['n']:,} "
                           f"(gamma = {b['gamma']:.4g}, key = {b['key_bits']:,} bits)")
        if "plot" in out:
            click.echo(f"plot written to {out['plot']}")
        return
    click.echo(f"n = {out['n']:,}: asymptotic key {out['asymptotic_key_bits']:,.0f} bits "
               "(rate x n, key rounds only at gamma -> 0)")
    for m, b in out["finite"].items():
        click.echo("")
        click.echo(f"[{m}] finite-size key: {b['key_bits']:,} bits = {b['key_rate']:.6f} bit/round")
        click.echo(f"  gamma = {b['gamma']:.5g}, omega_thr = {b['omega_threshold']:.6f} "
                   f"(accept iff lost test games <= {b['max_losses']:,}), leak_EC = "
                   f"{b['leak_ec_bits']:,.0f} bits")
        pr = b["params"]
        click.echo(f"  tangent point t = {pr.get('tangent_point', float('nan')):.6f}, "
                   f"alpha = {pr.get('alpha', float('nan')):.6g}")
        click.echo(f"  {'term':<34}{'bits':>18}")
        for name, v in b["terms"].items():
            click.echo(f"  {name:<34}{v:>18,.1f}")
        click.echo(f"  {'sum (before floor)':<34}{b['raw_bound']:>18,.1f}")
    if "plot" in out:
        click.echo(f"\nplot written to {out['plot']}")
