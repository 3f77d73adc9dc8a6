"""DuckDB backend: embedded, the default; one machine, all cores, spills to disk."""

from __future__ import annotations

from pathlib import Path

import duckdb
from splink import DuckDBAPI
from splink.internals.splink_dataframe import SplinkDataFrame

from voterolls.link.engines.base import LinkEngine


def _sql_path(p: Path | str) -> str:
    return str(p).replace("'", "''")


class DuckDBEngine(LinkEngine):
    NAME = "duckdb"
    SQL_DIALECT = "duckdb"
    DISTRIBUTED = False
    NEEDS_JVM = False
    SEEDED_SAMPLING = True
    EXPORT_IS_DIRECTORY = False

    def __init__(self, workdir: str | Path, *, threads: int | None = None) -> None:
        super().__init__(workdir, threads=threads)
        # Our own in-memory connection: Splink creates tables, which must not
        # land in the workspace catalog.  Large intermediates spill to workdir.
        self.con = duckdb.connect()
        self.con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
        self.con.execute(f"SET temp_directory='{_sql_path(self.workdir / 'duckdb_tmp')}'")
        self.con.execute("SET preserve_insertion_order=false")
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        self._api = DuckDBAPI(connection=self.con)

    @property
    def db_api(self) -> DuckDBAPI:
        return self._api

    def register_input(self, parquet: Path, name: str = "link_input") -> SplinkDataFrame:
        self.con.execute(
            f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet('{_sql_path(parquet)}')"
        )
        return self._api.register(name, dataset_display_name=name)

    def export(
        self, table: SplinkDataFrame, path: Path, *, columns: list[str], where: str | None = None
    ) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        cond = f"WHERE {where}" if where else ""
        self.con.execute(
            f"COPY (SELECT {', '.join(columns)} FROM {table.physical_name} {cond}) "
            f"TO '{_sql_path(path)}' (FORMAT PARQUET, COMPRESSION ZSTD)"
        )
        return str(path)

    def row(self, sql: str) -> tuple:
        return tuple(self.con.execute(sql).fetchall()[0])

    def close(self) -> None:
        self.con.close()
