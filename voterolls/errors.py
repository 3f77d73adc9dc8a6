"""Errors meant for the person at the keyboard.

A ``UserError`` is a mistake in the input or the invocation (a wrong file, an
unknown format, a missing key).  The CLI prints its message as one sentence
and exits non-zero, never with a traceback.  Messages name the file, line and
field, and never a voter's name, date of birth or address.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message  # the sentence without its file / line / field prefix
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        where = []
        if self.file:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field {field!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)


class PolicyViolation(UserError):
    """An operation would store or publish a field the state's law does not allow."""


def not_a_memory_size(value: str | None) -> UserError:
    """The one sentence for a memory limit DuckDB cannot read (``--memory-limit``, the env variables)."""
    return UserError(f"not a memory size: {value!r} (e.g. 8GB, 512MB)", field="memory_limit")


def require_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a Path if it is an existing regular file; otherwise one sentence saying what it is.

    One check for every command that reads a file, so a directory is called a
    directory (not "not found") and a missing file is named with its role.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"is a directory; give the {what} itself (a file inside it)", file=p)
    if not p.exists():
        raise UserError(f"{what} not found", file=p)
    if not p.is_file():
        raise UserError(f"is not a regular {what} (a device, socket or pipe)", file=p)
    return p
