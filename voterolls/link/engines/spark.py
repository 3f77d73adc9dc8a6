"""Spark backend: the same model on Apache Spark, for data that outgrows one machine.

Locally it runs ``local[N]`` with Splink's similarity jar (Jaro-Winkler and
friends as JVM UDFs); on a cluster, point ``VOTEROLLS_SPARK_MASTER`` at it.
Needs Java 17 and ``pyspark`` (``pip install voterolls[spark]``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from splink.internals.splink_dataframe import SplinkDataFrame

from voterolls.errors import UserError
from voterolls.link.engines.base import LinkEngine


class SparkEngine(LinkEngine):
    NAME = "spark"
    SQL_DIALECT = "spark"
    DISTRIBUTED = True
    NEEDS_JVM = True
    SEEDED_SAMPLING = True
    EXPORT_IS_DIRECTORY = True

    def __init__(self, workdir: str | Path, *, threads: int | None = None) -> None:
        super().__init__(workdir, threads=threads)
        try:
            from pyspark.sql import SparkSession
            from splink.backends.spark import SparkAPI, similarity_jar_location
        except ImportError:
            raise UserError(
                "the Spark engine needs pyspark: pip install 'voterolls[spark]'"
            ) from None
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise UserError("the Spark engine needs a Java runtime (Java 17); none found on PATH")
        n = threads or os.cpu_count() or 2
        master = os.environ.get("VOTEROLLS_SPARK_MASTER", f"local[{n}]")
        builder = (
            SparkSession.builder.appName("voterolls-link")
            .master(master)
            .config("spark.jars", similarity_jar_location())
            .config("spark.driver.memory", os.environ.get("VOTEROLLS_SPARK_DRIVER_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", str(max(4, 2 * n)))
            .config("spark.default.parallelism", str(max(4, 2 * n)))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.local.dir", str(self.workdir / "spark_local"))
        )
        self.spark = builder.getOrCreate()
        self.spark.sparkContext.setLogLevel("ERROR")
        self.spark.sparkContext.setCheckpointDir(str(self.workdir / "spark_checkpoints"))
        self._api = SparkAPI(spark_session=self.spark, break_lineage_method="parquet")

    @property
    def db_api(self):
        return self._api

    def register_input(self, parquet: Path, name: str = "link_input") -> SplinkDataFrame:
        df = self.spark.read.parquet(str(parquet))
        return self._api.register(df, table_name=name)

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

    def close(self) -> None:
        # The session is process-wide (getOrCreate); stopping it here would break
        # a caller that runs two linkages.  Tests stop it explicitly.
        pass

    def stop(self) -> None:
        self.spark.stop()
