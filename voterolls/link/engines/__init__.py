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

__all__ = ["ENGINES", "LinkEngine", "make_engine"]

ENGINES = ("duckdb", "spark")


def make_engine(
    name: str,
    workdir: str | Path,
    *,
    threads: int | None = None,
    rows: int | None = None,
    memory_limit: str | None = None,
    shuffle_partitions: int | None = None,
) -> LinkEngine:
    """The engine called ``name`` (``duckdb`` | ``spark``) working under ``workdir``.

    ``rows`` (registrations to link) sizes Spark's shuffle partitions unless
    ``shuffle_partitions`` or ``$VOTEROLLS_SPARK_SHUFFLE_PARTITIONS`` says;
    ``memory_limit`` caps DuckDB (it spills to ``workdir`` beyond it).
    """
    kw = {
        "threads": threads,
        "rows": rows,
        "memory_limit": memory_limit,
        "shuffle_partitions": shuffle_partitions,
    }
    if name == "duckdb":
        from voterolls.link.engines.duckdb import DuckDBEngine

        return DuckDBEngine(workdir, **kw)
    if name == "spark":
        from voterolls.link.engines.spark import SparkEngine

        return SparkEngine(workdir, **kw)
    raise UserError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}", field="engine")


__all__ = ["ENGINES", "LinkEngine", "make_engine"]
