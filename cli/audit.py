"""``diqkd audit``: replay a run and compare every figure; sign and check reports (Ed25519).

\b
  diqkd audit verify REPORT --alice A.h5 --bob B.h5 [--keys DIR] [--json]
  diqkd audit keygen --out DIR
  diqkd audit sign REPORT --key DIR/diqkd-ed25519.pem [--out REPORT.sig]
  diqkd audit check-signature REPORT --sig REPORT.sig --pubkey DIR/diqkd-ed25519.pub.pem

Exit status: 0 all checks pass, 4 a figure or digest differs / the signature is invalid,
2 bad input (missing or malformed file, unknown report schema), 1 internal error.
"""

from __future__ import annotations

import json

import click

__all__ = ["command", "EXIT_MISMATCH"]

#: Exit status of a failed audit or signature check.
EXIT_MISMATCH = 4


@click.group("audit")
def command() -> None:
    """Replay a run from its report and inputs; sign and check reports.

    Exit status: 0 pass, 4 mismatch or invalid signature, 2 bad input, 1 internal error.
    """


@command.command("verify")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--alice", required=True, type=click.Path(dir_okay=False),
              help="Alice's records (the file the run read).")
@click.option("--bob", required=True, type=click.Path(dir_okay=False), help="Bob's records.")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False), default=None,
              help="Directory with the key files (and alice.secret.json) to check too.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit result as JSON.")
@click.pass_context
def verify_cmd(ctx: click.Context, report: str, alice: str, bob: str, keys_dir: str | None,
               as_json: bool) -> None:
    """Rerun every stage from the recorded inputs and seeds and compare every figure.

    Exit 0 only if every figure and digest matches; otherwise the table names what differs.
    """
    from diqkd.audit import verify

    res = verify(report, alice, bob, keys_dir=keys_dir)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        w = max(len(c) for c, _, _ in res.rows)
        click.echo(f"audit of {report} ({res.figures_compared} figures compared)")
        for check, ok, detail in res.rows:
            click.echo(f"  {'PASS' if ok else 'FAIL'}  {check:<{w}}  {detail}")
        if res.mismatches:
            click.echo(f"\n  {len(res.mismatches)} figure(s) differ:")
            for m in res.mismatches[:40]:
                click.echo(f"    {m.describe()}")
            if len(res.mismatches) > 40:
                click.echo(f"    ... and {len(res.mismatches) - 40} more")
        click.echo("\naudit: " + ("PASS, every figure matches" if res.ok else "FAIL"))
    if not res.ok:
        first = res.mismatches[0].path if res.mismatches else next(
            c for c, ok, _ in res.rows if not ok)
        click.echo(f"audit failed: {first} differs", err=True)
        ctx.exit(EXIT_MISMATCH)


@command.command("keygen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for NAME.pem (private, 0600) and NAME.pub.pem.")
@click.option("--name", default="diqkd-ed25519", show_default=True, help="File name stem.")
def keygen_cmd(out_dir: str, name: str) -> None:
    """Create an Ed25519 key pair for signing reports."""
    from diqkd.audit import keygen

    priv, pub = keygen(out_dir, name)
    click.echo(f"private key {priv} (mode 0600)\npublic key  {pub}")


@command.command("sign")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="Ed25519 private key (PEM).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Signature file [default: REPORT.sig].")
def sign_cmd(report: str, key_path: str, out_path: str | None) -> None:
    """Write a detached Ed25519 signature over the canonical JSON of REPORT."""
    from diqkd.audit import sign

    path = sign(report, key_path, out_path)
    click.echo(f"signature {path}")


@command.command("check-signature")
@click.argument("report", type=click.Path(dir_okay=False))
@click.option("--sig", "sig_path", required=True, type=click.Path(dir_okay=False),
              help="Signature file written by `diqkd audit sign`.")
@click.option("--pubkey", required=True, type=click.Path(dir_okay=False),
              help="Ed25519 public key (PEM).")
@click.pass_context
def check_signature_cmd(ctx: click.Context, report: str, sig_path: str, pubkey: str) -> None:
    """Check a detached signature of REPORT; exit 0 if valid, 4 if not."""
    from diqkd.audit import check_signature

    ok, why = check_signature(report, sig_path, pubkey)
    click.echo(f"signature {'VALID' if ok else 'INVALID'}: {why}")
    if not ok:
        ctx.exit(EXIT_MISMATCH)
