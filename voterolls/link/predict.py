"""Scoring: Splink predictions -> ``W/link/pairs.parquet`` in the contract's columns.

Contract (docs/ARCHITECTURE.md, "Linkage output"): one row per scored
candidate pair, ``state_l, state_voter_id_l, state_r, state_voter_id_r,
match_probability, match_weight, dob_granularity_l, dob_granularity_r`` and
one ``gamma_<comparison>`` per comparison.  Splink orders each pair so that
``unique_id_l < unique_id_r``; ``unique_id`` is ``state:state_voter_id``, so
the left side is the alphabetically first state (then id), which makes the
file deterministic.

Splink scores with the prior it was given; :mod:`voterolls.link.train`
re-estimates the prior on the scored pairs, and the final weights here are
Splink's weights shifted by the change of prior log-odds (``shift``), which
is exactly what scoring again with the new prior would give.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from voterolls.link.comparisons import COMPARISON_NAMES
from voterolls.link.train import log2_odds
from voterolls.sql import literal

PAIR_COLUMNS = (
    "state_l",
    "state_voter_id_l",
    "state_r",
    "state_voter_id_r",
    "match_probability",
    "match_weight",
    "dob_granularity_l",
    "dob_granularity_r",
) + tuple(f"gamma_{c}" for c in COMPARISON_NAMES)


def score_pairs(linker):
    """Splink's ``predict`` keeping only what the output needs: ids, retained columns, gammas, weights.

    ``linker.inference.predict()`` with ``retain_matching_columns`` copies both
    sides of every compared column into the scored table (names, dates,
    address, sealed tokens: ~50 columns per pair), and without it Splink drops
    the ``gamma_*`` columns the contract needs.  This runs the same SQL
    pipeline (blocked pairs -> comparison vectors -> weights) with Splink's
    *training* column selection, which keeps the gammas and nothing else, so
    the scored table is ~4x narrower (less memory, faster to write and to
    cluster).  The model itself is unchanged, so a saved model still works
    with plain ``predict()`` (the external-list matcher uses that).
    """
    from splink.internals.comparison_vector_values import (
        compute_comparison_vector_values_from_id_pairs_sqls,
    )
    from splink.internals.dialects import SplinkDialect
    from splink.internals.pipeline import CTEPipeline
    from splink.internals.predict import predict_from_comparison_vectors_sqls
    from splink.internals.vertically_concatenate import enqueue_df_concat_with_tf

    settings = linker._settings_obj
    blocked, from_cache = linker.inference._get_or_compute_blocked_pairs_for_predict_chunk(
        left_chunk=(1, 1), right_chunk=(1, 1)
    )
    keep = settings._retain_matching_columns
    try:
        settings._retain_matching_columns = False
        pipeline = CTEPipeline([blocked])
        enqueue_df_concat_with_tf(linker, pipeline)
        pipeline.enqueue_list_of_sqls(
            compute_comparison_vector_values_from_id_pairs_sqls(
                settings._columns_to_select_for_blocking,
                settings._columns_to_select_for_comparison_vector_values,
                input_tablename_l="__splink__df_concat_with_tf",
                input_tablename_r="__splink__df_concat_with_tf",
                source_dataset_input_column=settings.column_info_settings.source_dataset_input_column,
                unique_id_input_column=settings.column_info_settings.unique_id_input_column,
                link_type=settings._link_type,
                sql_dialect_str=linker._sql_dialect_str,
            )
        )
        pipeline.enqueue_list_of_sqls(
            predict_from_comparison_vectors_sqls(
                unique_id_input_columns=settings.column_info_settings.unique_id_input_columns,
                core_model_settings=settings.core_model_settings,
                sql_dialect=SplinkDialect.from_string(settings._sql_dialect_str),
                retain_matching_columns=False,
                retain_intermediate_calculation_columns=False,
                training_mode=True,  # keeps gamma_* (Splink's training selection)
                additional_columns_to_retain=settings._additional_columns_to_retain,
            )
        )
        predictions = linker._db_api.sql_pipeline_to_splink_dataframe(pipeline)
    finally:
        settings._retain_matching_columns = keep
        if not from_cache:
            blocked.drop_table_from_database_and_remove_from_cache()
    return predictions


def weight_expr(shift: float) -> str:
    return f"(match_weight + ({shift!r}))"


def probability_expr(shift: float) -> str:
    w = weight_expr(shift)
    return f"(1.0 / (1.0 + pow(2.0, -least(greatest({w}, -1000.0), 1000.0))))"


def export_pairs(engine, df_predict, out: Path, *, shift: float, min_probability: float) -> int:
    """Write pairs with probability >= ``min_probability`` to ``out``; return the row count."""
    cols = [
        "state_l",
        "state_voter_id_l",
        "state_r",
        "state_voter_id_r",
        f"{probability_expr(shift)} AS match_probability",
        f"{weight_expr(shift)} AS match_weight",
        "dob_granularity_l",
        "dob_granularity_r",
    ] + [f"gamma_{c}" for c in COMPARISON_NAMES]
    where = None
    if min_probability > 0:
        where = f"{weight_expr(shift)} >= {log2_odds(min_probability)!r}"
    raw = (
        out.parent / "_work" / ("pairs_raw" if engine.EXPORT_IS_DIRECTORY else "pairs_raw.parquet")
    )
    glob = engine.export(df_predict, raw, columns=cols, where=where)
    return finalise(
        glob, out, PAIR_COLUMNS, order="state_l, state_voter_id_l, state_r, state_voter_id_r"
    )


def finalise(
    glob: str,
    out: Path,
    columns: tuple[str, ...] | list[str],
    *,
    order: str,
    select: str | None = None,
) -> int:
    """Rewrite the engine's export as one sorted Parquet file at ``out`` (atomic rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    con = duckdb.connect()
    try:
        sel = select or ", ".join(columns)
        con.execute(
            f"COPY (SELECT {sel} FROM read_parquet({literal(glob)}) ORDER BY {order}) "
            f"TO {literal(tmp)} (FORMAT PARQUET, COMPRESSION ZSTD)"
        ).fetchall()
        n = con.execute(
            f"SELECT count(*) FROM read_parquet({literal(tmp)})"
        ).fetchall()[0][0]
    finally:
        con.close()
    os.replace(tmp, out)
    return int(n)
