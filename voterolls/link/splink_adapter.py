"""The one place voterolls reaches into Splink's private API.

Splink 5's public API has no way to

* read or change a linker's prior in place (voterolls re-estimates the prior
  on the scored pairs and saves the model with it: :func:`model_prior`,
  :func:`set_model_prior`);
* name the SQL dialect a linker generates (:func:`sql_dialect`);
* walk the model's comparisons and read a level's m / u as trained, telling
  "not observed" from a value (:func:`model_comparisons`, :func:`level_m`,
  :func:`level_u`; the public ``m_probability`` property hides that);
* score with the *training* column selection, which keeps the ``gamma_*``
  columns without copying both sides of every compared value
  (:func:`score_pairs`).

Each is one function here and tests/test_splink_adapter.py pins what it does,
so a Splink upgrade that moves an internal fails there, not in a run.  Other
modules use these functions, never the underscored attributes.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "comparison_gamma_sql",
    "level_m",
    "level_u",
    "model_comparisons",
    "model_prior",
    "score_pairs",
    "set_model_prior",
    "sql_dialect",
]


def model_prior(linker) -> float:
    """The prior (probability two random records match) the linker scores with."""
    return float(linker._settings_obj._probability_two_random_records_match)


def set_model_prior(linker, prior: float) -> None:
    """Score and save with ``prior`` from now on (``linker.misc.save_model_to_json`` writes it)."""
    linker._settings_obj._probability_two_random_records_match = float(prior)


def model_snapshot(linker) -> Any:
    """A copy of the linker's trained model (comparisons with their m/u), to put back later."""
    return linker._settings_obj.core_model_settings.copy()


def restore_model(linker, snapshot: Any) -> None:
    """Put back a model taken by :func:`model_snapshot` (an EM session edits it in place)."""
    linker._settings_obj.core_model_settings = snapshot


def sql_dialect(linker) -> str:
    """Splink's name of the SQL dialect the linker generates ("duckdb", "spark")."""
    return linker._sql_dialect_str


def model_comparisons(linker) -> list[Any]:
    """The model's comparisons (Splink ``Comparison`` objects, levels included), in order."""
    return list(linker._settings_obj.core_model_settings.comparisons)


def _trained(raw) -> float | None:
    from splink.internals.constants import LEVEL_NOT_OBSERVED_TEXT

    return None if raw is None or raw == LEVEL_NOT_OBSERVED_TEXT else float(raw)


def level_m(level) -> float | None:
    """A comparison level's m as trained; ``None`` when training never observed it."""
    return _trained(level._m_probability)


def level_u(level) -> float | None:
    """A comparison level's u as trained; ``None`` when training never observed it."""
    return _trained(level._u_probability)


def comparison_gamma_sql(comp) -> tuple[str, list[str]]:
    """A comparison's gamma as a SQL CASE over ``<column>_l`` / ``<column>_r``, and the columns it reads.

    The same CASE Splink scores with (its alias stripped), so SQL outside
    Splink can count a block's comparison levels exactly as Splink would.
    """
    import re

    case = re.sub(r"\s+as\s+\S+\s*$", "", comp._case_statement.strip(), flags=re.IGNORECASE)
    return case, [c.unquote().name for c in comp._input_columns_used_by_case_statement]


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
