"""The one way to put a value or a name into DuckDB SQL text.

Most SQL here is parameterised (``$state``); what cannot be a parameter -
a file path in ``read_parquet(...)`` / ``COPY ... TO``, a column name, a
code value inside a generated ``CASE`` - is quoted by these two functions,
so every module quotes the same way (SQL standard doubling, which DuckDB
follows) instead of keeping its own copy.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["identifier", "literal"]


def literal(value: str | PathLike[str]) -> str:
    """A single-quoted SQL string literal (a value or a file path): ``O'Neil`` -> ``'O''Neil'``."""
    return "'" + str(value).replace("'", "''") + "'"


def identifier(name: str) -> str:
    """A double-quoted SQL identifier (a quote inside the name is doubled)."""
    return '"' + str(name).replace('"', '""') + '"'

