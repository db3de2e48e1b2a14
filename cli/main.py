"""Entry point of the ``diqkd`` command: the top-level group and the mapping of errors to exits.

Exit statuses, for scripts:
  0  success (a key was produced, or the command did what it was asked)
  1  internal error (a bug: please report it; set DIQKD_DEBUG=1 for the traceback)
  2  bad input or configuration (the message names the file, field, row and value)
  3  protocol abort (Bell test failed, verification failed, no positive key); report written
  4  audit mismatch or invalid signature (`diqkd audit verify` / `check-signature`)
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from diqkd import __version__
from diqkd.errors import ConfigError, InputError, ProtocolAbort

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_ABORT = 0, 1, 2, 3


def _raised_at(exc: BaseException) -> str:
    """``module.py:line`` of the innermost frame of an exception's traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "an unknown place"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno}"


#: Sub-commands and the module:attribute that defines each. Modules are imported only when their
#: command runs (or --help lists them), so `diqkd records inspect` does not pay for scipy.stats,
#: numba or matplotlib at start-up.
COMMANDS: dict[str, str] = {
    "run": "diqkd_cli.run:command",
    "records": "diqkd_cli.records:records",
    "emulate": "diqkd_cli.emulate:command",
    "keyrate": "diqkd_cli.keyrate:command",
    "audit": "diqkd_cli.audit:command",
}


class DiqkdGroup(click.Group):
    """A click group that loads its commands lazily and turns diqkd's exceptions into
    one-paragraph messages and exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module_name, attr = COMMANDS[cmd_name].split(":")
            module = importlib.import_module(module_name)
            self.add_command(getattr(module, attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (InputError, ConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_INPUT)
        except ProtocolAbort as exc:
            click.echo(f"protocol abort: {exc.reason}", err=True)
            ctx.exit(EXIT_ABORT)
        except OSError as exc:
            # Unreadable input, unwritable output, disk full: the user's environment, not a bug.
            where = exc.filename or "no file name"
            if exc.filename2:  # rename(2) and friends: source -> target
                where = f"{where} -> {exc.filename2}"
            click.echo(f"error: {exc.strerror or exc} ({where})", err=True)
            ctx.exit(EXIT_INPUT)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("DIQKD_DEBUG"):
                traceback.print_exc()
            # An unexpected exception's text is not vetted like diqkd's own messages: it could
            # hold array contents, i.e. key bits. So only its type and where it was raised are
            # printed; the text and traceback need the explicit DIQKD_DEBUG opt-in.
            click.echo(
                f"internal error: {type(exc).__name__} raised at {_raised_at(exc)} "
                "(this is a bug in diqkd; set DIQKD_DEBUG=1 for the message and traceback)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=DiqkdGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="diqkd")
def cli() -> None:
    """diqkd: turn Bell-test records into certified device-independent QKD keys.

    \b
    Typical use:
      diqkd run                         emulate a repeater link and process it (the default job)
      diqkd run --alice A.h5 --bob B.h5 --protocol P.toml --out DIR
      diqkd records inspect FILE...     what is in a record file
      diqkd emulate --preset ustc-atoms-11km --rounds 1e6 --out DIR
      diqkd keyrate --S 2.612 --qber 0.03 --rounds 1.2e6
      diqkd audit verify REPORT --alice A.h5 --bob B.h5

    Exit status: 0 ok, 1 internal error, 2 bad input or configuration, 3 protocol abort,
    4 audit mismatch or bad signature.
    """


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="diqkd")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
