"""The abstract engine API every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from splink.internals.database_api import DatabaseAPI
from splink.internals.splink_dataframe import SplinkDataFrame


class LinkEngine(ABC):
    """Where Splink runs.  Capabilities are class constants so callers can ask first.

    Lifecycle: ``register_input(parquet)`` -> Splink work through ``db_api``
    -> ``export(table, path, ...)`` -> ``close()`` (or use as a context manager).
    """

    #: Name used on the command line.
    NAME: ClassVar[str]
    #: Splink / sqlglot dialect of the generated SQL.
    SQL_DIALECT: ClassVar[str]
    #: Work is spread over several processes / machines.
    DISTRIBUTED: ClassVar[bool] = False
    #: Needs a Java runtime.
    NEEDS_JVM: ClassVar[bool] = False
    #: ``estimate_u_using_random_sampling(seed=...)`` is reproducible.
    SEEDED_SAMPLING: ClassVar[bool] = True
    #: Exported Parquet is a directory of part files rather than one file.
    EXPORT_IS_DIRECTORY: ClassVar[bool] = False

    def __init__(
        self,
        workdir: str | Path,
        *,
        threads: int | None = None,
        rows: int | None = None,
        memory_limit: str | None = None,
        shuffle_partitions: int | None = None,
    ) -> None:
        """``rows``: registrations to be linked (sizes partitions); ``memory_limit``
        (DuckDB, e.g. ``"8GB"``) and ``shuffle_partitions`` (Spark) are
        ignored by engines they do not apply to."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.threads = threads
        self.rows = rows
        self.memory_limit = memory_limit
        self.shuffle_partitions = shuffle_partitions

    @property
    @abstractmethod
    def db_api(self) -> DatabaseAPI:
        """The Splink database API bound to this engine."""

    @abstractmethod
    def register_input(self, parquet: Path, name: str = "link_input") -> SplinkDataFrame:
        """Load the prepared input Parquet as a Splink table."""

    @abstractmethod
    def register_sql(self, sql: str, name: str) -> SplinkDataFrame:
        """Materialise ``sql`` (over engine tables) as table ``name``, registered with Splink."""

    @abstractmethod
    def export(
        self, table: SplinkDataFrame, path: Path, *, columns: list[str], where: str | None = None
    ) -> str:
        """Write ``columns`` of ``table`` (rows matching SQL ``where``) to Parquet at ``path``.

        Returns a path / glob DuckDB's ``read_parquet`` accepts.
        """

    @abstractmethod
    def row(self, sql: str) -> tuple:
        """The first row of ``sql`` run on the engine (for counts and sums)."""

    @abstractmethod
    def columns(self, sql: str) -> list[Any]:
        """Every row of ``sql`` as one numpy array per column (small results only)."""

    def duckdb_connection(self) -> Any:
        """The engine's own DuckDB connection (DuckDB engine), else None: where the
        output files are sorted, so that they share the engine's memory limit."""
        return None

    def scalar(self, sql: str) -> Any:
        """First column of the first row of ``sql``."""
        return self.row(sql)[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (sessions, connections)."""

    def __enter__(self) -> LinkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
