"""Spark backend: the same model on Apache Spark, for data that outgrows one machine.

Locally it runs ``local[N]`` with Splink's similarity jar (Jaro-Winkler and
friends as JVM UDFs); on a cluster, point ``VOTEROLLS_SPARK_MASTER`` at it.
Needs Java 17 and ``pyspark`` (``pip install voterolls[spark]``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from splink.internals.splink_dataframe import SplinkDataFrame

from voterolls.errors import UserError
from voterolls.link.engines.base import LinkEngine

#: Registrations per shuffle partition by default: a partition of the scored
#: pairs (~3 per registration, ~20 columns) stays well under 100 MB.
ROWS_PER_PARTITION = 100_000
#: Environment variable that overrides the number of shuffle partitions.
PARTITIONS_ENV = "VOTEROLLS_SPARK_SHUFFLE_PARTITIONS"


def shuffle_partitions(cores: int, rows: int | None = None, given: int | None = None) -> int:
    """Spark shuffle partitions: ``given``, else ``$VOTEROLLS_SPARK_SHUFFLE_PARTITIONS``,
    else scaled to the data: one per :data:`ROWS_PER_PARTITION` registrations,
    at least two per core (so every core has work) and at most 4,000.

    Spark's own default (200) is far too many for a laptop-sized run (each
    partition is a task with fixed overhead) and too few for a national one.
    """
    if given is None:
        env = os.environ.get(PARTITIONS_ENV, "").strip()
        if env:
            try:
                given = int(env)
            except ValueError:
                raise UserError(
                    f"{PARTITIONS_ENV} must be a whole number, got {env!r}", field=PARTITIONS_ENV
                ) from None
    if given is not None:
        if given < 1:
            raise UserError("shuffle partitions must be at least 1", field="shuffle_partitions")
        return int(given)
    by_size = -(-int(rows) // ROWS_PER_PARTITION) if rows else 0
    return int(min(4000, max(2 * cores, 4, by_size)))


def _stop_if_scratch_is_gone(session: Any) -> None:
    """Stop a running session whose ``spark.local.dir`` no longer exists.

    The session is process-wide (``getOrCreate``) and its scratch directory
    (shuffle and spill files) is static: it stays the first linkage's
    ``W/link/_work/spark_local``.  A later linkage in the same process (a
    second test, a bench that links twice) replaces that work directory, and
    the reused session would then fail on its first shuffle with
    FileNotFoundException.  Stopping it lets ``getOrCreate`` start a session
    with this linkage's own scratch directory.
    """
    if session is None:
        return
    local = session.sparkContext.getConf().get("spark.local.dir", None)
    if local and not all(Path(d).is_dir() for d in local.split(",")):
        session.stop()


class SparkEngine(LinkEngine):
    NAME = "spark"
    SQL_DIALECT = "spark"
    DISTRIBUTED = True
    NEEDS_JVM = True
    SEEDED_SAMPLING = True
    EXPORT_IS_DIRECTORY = True

    def __init__(self, workdir: str | Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        try:
            from pyspark.sql import SparkSession
            from splink.backends.spark import SparkAPI, similarity_jar_location
        except ImportError:
            raise UserError(
                "the Spark engine needs pyspark: pip install 'voterolls[spark]'"
            ) from None
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise UserError("the Spark engine needs a Java runtime (Java 17); none found on PATH")
        n = self.threads or os.cpu_count() or 2
        # Under spark-submit (its JVM gateway is already up) the cluster manager
        # and master come from spark-submit; otherwise VOTEROLLS_SPARK_MASTER or local.
        submitted = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))
        master = os.environ.get("VOTEROLLS_SPARK_MASTER") or (None if submitted else f"local[{n}]")
        partitions = shuffle_partitions(n, self.rows, self.shuffle_partitions)
        builder = (
            SparkSession.builder.appName("voterolls-link")
            .config("spark.jars", similarity_jar_location())
            .config("spark.driver.memory", os.environ.get("VOTEROLLS_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", str(partitions))
            .config("spark.default.parallelism", str(partitions))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.local.dir", str(self.workdir / "spark_local"))
        )
        if master:
            builder = builder.master(master)
        _stop_if_scratch_is_gone(SparkSession.getActiveSession())
        self.spark = builder.getOrCreate()
        # getOrCreate reuses a running session: its static settings stay, but
        # the shuffle partitions are a runtime setting and follow this run.
        self.spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        self.partitions = partitions
        self.spark.sparkContext.setLogLevel("ERROR")
        self.spark.sparkContext.setCheckpointDir(str(self.workdir / "spark_checkpoints"))
        self._api = SparkAPI(spark_session=self.spark, break_lineage_method="parquet")

    @property
    def db_api(self):
        return self._api

    def register_input(self, parquet: Path, name: str = "link_input") -> SplinkDataFrame:
        df = self.spark.read.parquet(str(parquet))
        return self._api.register(df, table_name=name)

    def register_sql(self, sql: str, name: str) -> SplinkDataFrame:
        return self._api.register(self.spark.sql(sql), table_name=name)

    def export(
        self, table: SplinkDataFrame, path: Path, *, columns: list[str], where: str | None = None
    ) -> str:
        df = self.spark.table(table.physical_name)
        if where:
            df = df.where(where)
        df.selectExpr(*columns).write.mode("overwrite").parquet(str(path))
        return str(path / "*.parquet")

    def row(self, sql: str) -> tuple:
        return tuple(self.spark.sql(sql).collect()[0])

    def columns(self, sql: str) -> list[Any]:
        import numpy as np

        df = self.spark.sql(sql)
        rows = df.collect()
        return [np.array([r[i] for r in rows]) for i in range(len(df.columns))]

    def close(self) -> None:
        # The session is process-wide (getOrCreate); stopping it here would break
        # a caller that runs two linkages.  Tests stop it explicitly.
        pass

    def stop(self) -> None:
        self.spark.stop()
