"""Linkage input prepared on Spark: the same columns and capped keys as :mod:`voterolls.link.prepare`.

Preparation is whole-input work (the capped keys count every block), so on
one machine it was the step that kept the national job from being
distributed (docs/SCALE.md).  Here the very SQL of :mod:`voterolls.link.prepare`
and :func:`voterolls.link.blocking.capped_keys_select_sql` is translated
from DuckDB's dialect to Spark SQL by sqlglot (which Splink already uses for
the same purpose), with three fixes sqlglot does not make:

* DuckDB's ``hash`` (64-bit) becomes Spark's ``xxhash64``, not ``hash``
  (32-bit murmur3: collisions ~2^-31 per compared pair); the ids differ
  between engines, equality does not, so the same pairs are found;
* a list's last element (``list[-1]`` in DuckDB) is ``element_at(list, -1)``;
* a list's length is ``size``, not ``length``.

The block counts are window counts (``count(*) OVER (PARTITION BY key)``),
which Spark distributes by key.  Only counts come back to the driver.
"""

from __future__ import annotations

from pathlib import Path

from voterolls.errors import UserError
from voterolls.link.blocking import CAPPED_KEYS, capped_keys_select_sql
from voterolls.link.fields import FieldProfile, profile_from_row, profile_sql
from voterolls.link.prepare import (
    KEY_ONLY_COLUMNS,
    base_select_sql,
    check_columns,
    derived_select_sql,
    last_name_parts_sql,
)


def spark_sql(duckdb_sql: str) -> str:
    """``duckdb_sql`` (one of prepare's statements) in Spark SQL."""
    import sqlglot

    out = sqlglot.transpile(duckdb_sql, read="duckdb", write="spark")[0]
    out = out.replace("HASH(", "XXHASH64(")
    out = out.replace("LENGTH(_last_tokens)", "SIZE(_last_tokens)")
    return out.replace("_last_tokens[-2]", "ELEMENT_AT(_last_tokens, -1)")


def prepare_spark(
    spark, registrations: str | Path, out: str | Path, *, block_cap: int
) -> tuple[int, dict[str, int], FieldProfile]:
    """Write the link input (Parquet directory ``out``) from registrations Parquet; Spark does the work.

    Returns (registrations, registrations that lost each capped key, the
    field profile).  Duplicate ``(state, state_voter_id)`` are a
    :class:`UserError`, as in :func:`voterolls.link.prepare.prepare_input`.
    """
    src = spark.read.parquet(str(registrations))
    present = set(src.columns)
    check_columns(present)
    src.createOrReplaceTempView("_vr_src")
    spark.sql(spark_sql(base_select_sql("_vr_src", present))).createOrReplaceTempView("_vr_base")
    spark.sql(spark_sql(last_name_parts_sql("_vr_base"))).createOrReplaceTempView("_vr_last")
    derived = spark.sql(spark_sql(derived_select_sql("_vr_base", "_vr_last")))
    derived.createOrReplaceTempView("_vr_derived")
    keep = [c for c in derived.columns if c not in KEY_ONLY_COLUMNS]
    keyed = spark.sql(spark_sql(capped_keys_select_sql("_vr_derived", block_cap, keep)))
    staged = Path(str(out) + "_keyed")
    keyed.write.mode("overwrite").parquet(str(staged))
    keyed = spark.read.parquet(str(staged))
    keyed.createOrReplaceTempView("_vr_keyed")
    lost_cols = [f"_{n}_lost" for n in CAPPED_KEYS]
    row = spark.sql(
        "SELECT count(*), count(DISTINCT unique_id), "
        + ", ".join(f"count(CASE WHEN {c} THEN 1 END)" for c in lost_cols)
        + " FROM _vr_keyed"
    ).collect()[0]
    n, distinct = int(row[0]), int(row[1])
    if n != distinct:
        raise UserError(
            f"{n - distinct} registrations share a (state, state_voter_id) with another; "
            "the workspace must hold one row per registration",
            field="state_voter_id",
        )
    dropped = {k: int(v) for k, v in zip(CAPPED_KEYS, row[2:], strict=True)}
    final = keyed.drop(*lost_cols)
    final.write.mode("overwrite").parquet(str(out))
    final = spark.read.parquet(str(out))
    final.createOrReplaceTempView("_vr_prepared")
    profile = profile_from_row(spark.sql(profile_sql("_vr_prepared")).collect()[0])
    return n, dropped, profile
