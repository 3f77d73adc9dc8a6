"""Linkage engines: one API, a DuckDB backend (default) and a Spark backend.

The model, the comparisons and the blocking rules do not depend on the engine;
an engine only says where Splink's SQL runs and how tables get in and out.
Both read the prepared input from Parquet and export results to Parquet, so
everything around the engine (preparation, the output contract, evaluation)
is plain DuckDB on files.
"""

from __future__ import annotations

from pathlib import Path

from voterolls.errors import UserError
from voterolls.link.engines.base import LinkEngine

ENGINES = ("duckdb", "spark")


def make_engine(name: str, workdir: str | Path, *, threads: int | None = None) -> LinkEngine:
    """The engine called ``name`` (``duckdb`` | ``spark``) working under ``workdir``."""
    if name == "duckdb":
        from voterolls.link.engines.duckdb import DuckDBEngine

        return DuckDBEngine(workdir, threads=threads)
    if name == "spark":
        from voterolls.link.engines.spark import SparkEngine

        return SparkEngine(workdir, threads=threads)
    raise UserError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}", field="engine")


__all__ = ["ENGINES", "LinkEngine", "make_engine"]
