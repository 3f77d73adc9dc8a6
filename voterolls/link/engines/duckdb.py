"""DuckDB backend: embedded, the default; one machine, all cores, spills to disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
from splink import DuckDBAPI
from splink.internals.splink_dataframe import SplinkDataFrame

from voterolls.errors import not_a_memory_size
from voterolls.link.engines.base import LinkEngine
from voterolls.sql import literal

#: Environment variable for the engine's memory limit (``--memory-limit`` wins).
MEMORY_ENV = "VOTEROLLS_LINK_MEMORY_LIMIT"
#: Default share of physical memory the engine's connection may use before
#: spilling to disk.  DuckDB's own default (80%) is per connection and keeps
#: freed buffers cached up to it; the linkage also has the caller's
#: connection (preparation) in the same process, and the machine is shared.
DEFAULT_MEMORY_SHARE = 0.4


def default_memory_limit() -> str | None:
    """``$VOTEROLLS_LINK_MEMORY_LIMIT``, else half the physical memory (None if unknown)."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        return env
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return f"{int(total * DEFAULT_MEMORY_SHARE / 2**20)}MB"


class ConnectionQueries:
    """The engine's two small-result queries (:meth:`LinkEngine.row`, :meth:`LinkEngine.columns`)
    on any DuckDB connection: what a module that only reads (stranger-corrected m,
    recalibration) needs of an engine, so a bench or test can hand it a plain connection."""

    NAME = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def columns(self, sql: str) -> list[Any]:
        return list(self.con.execute(sql).fetchnumpy().values())

    def row(self, sql: str) -> tuple:
        return tuple(self.con.execute(sql).fetchall()[0])


class DuckDBEngine(LinkEngine):
    NAME = "duckdb"
    SQL_DIALECT = "duckdb"
    DISTRIBUTED = False
    NEEDS_JVM = False
    SEEDED_SAMPLING = True
    EXPORT_IS_DIRECTORY = False

    def __init__(self, workdir: str | Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        # Our own in-memory connection: Splink creates tables, which must not
        # land in the workspace catalog.  Large intermediates spill to workdir
        # once memory_limit (default: DuckDB's, 80% of RAM) is reached.
        self.con = duckdb.connect()
        self.con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
        self.con.execute(f"SET temp_directory={literal(self.workdir / 'duckdb_tmp')}")
        self.con.execute("SET preserve_insertion_order=false")
        if self.threads:
            self.con.execute(f"SET threads={int(self.threads)}")
        if self.memory_limit is None:
            self.memory_limit = default_memory_limit()
        if self.memory_limit:
            try:
                self.con.execute(f"SET memory_limit={literal(self.memory_limit)}")
            except duckdb.Error:
                self.con.close()
                raise not_a_memory_size(self.memory_limit) from None
        self._api = DuckDBAPI(connection=self.con)

    @property
    def db_api(self) -> DuckDBAPI:
        return self._api

    def register_input(self, parquet: Path, name: str = "link_input") -> SplinkDataFrame:
        self.con.execute(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet({literal(parquet)})"
        )
        return self._api.register(name, dataset_display_name=name)

    def register_sql(self, sql: str, name: str) -> SplinkDataFrame:
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        return self._api.register(name, dataset_display_name=name)

    def export(
        self, table: SplinkDataFrame, path: Path, *, columns: list[str], where: str | None = None
    ) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        cond = f"WHERE {where}" if where else ""
        self.con.execute(
            f"COPY (SELECT {', '.join(columns)} FROM {table.physical_name} {cond}) "
            f"TO {literal(path)} (FORMAT PARQUET, COMPRESSION ZSTD)"
        )
        return str(path)

    def columns(self, sql: str) -> list[Any]:
        return ConnectionQueries(self.con).columns(sql)

    def duckdb_connection(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def row(self, sql: str) -> tuple:
        return ConnectionQueries(self.con).row(sql)

    def close(self) -> None:
        self.con.close()
