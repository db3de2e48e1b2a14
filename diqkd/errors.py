"""Exception types shared by every stage.

The command line maps them to exit statuses (see ``diqkd_cli.main``): :class:`InputError` and
:class:`ConfigError` exit with 2, :class:`ProtocolAbort` with 3, anything else with 1.
Messages never carry key material: they name files, fields, rows and *input* values only.
"""

from __future__ import annotations

from typing import Any


class DiqkdError(Exception):
    """Base class of every error raised on purpose by diqkd."""


class InputError(DiqkdError, ValueError):
    """Bad input data: names the file, the field (column), the row and the offending value.

    Parameters
    ----------
    message
        What is wrong, in one sentence.
    file, field, row, value
        Where it is. ``row`` is 0-based (the first data row is row 0; for CSV files the error
        also states the 1-based line number in the message where the reader knows it).
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        field: str | None = None,
        row: int | None = None,
        value: Any = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.field = field
        self.row = row
        self.value = value
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if self.field is not None:
            where.append(f"column {self.field!r}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.value is not None:
            where.append(f"value {self.value!r}")
        return self.message + (f" ({', '.join(where)})" if where else "")

    def with_file(self, file: str) -> InputError:
        """The same error, with the file name filled in (readers add it on the way out)."""
        if self.file is not None:
            return self
        return InputError(self.message, file=file, field=self.field, row=self.row, value=self.value)


class ConfigError(DiqkdError, ValueError):
    """An invalid parameter, protocol file or command-line combination."""


class ProtocolAbort(DiqkdError):
    """The protocol ended without a key (Bell test failed, verification failed, no positive key).

    This is an expected outcome of an honest protocol, not a bug: the pipeline records it in the
    report and the CLI exits with status 3.
    """

    def __init__(self, reason: str, *, code: str = "abort") -> None:
        self.reason = reason
        self.code = code
        super().__init__(reason)
