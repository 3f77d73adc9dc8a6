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
is exactly what scoring again with the new prior would give.  The scoring
itself (:func:`score_pairs`) lives in :mod:`voterolls.link.splink_adapter`,
the one module that uses Splink's internals.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from voterolls.link.comparisons import COMPARISON_NAMES
from voterolls.link.splink_adapter import score_pairs
from voterolls.link.train import log2_odds
from voterolls.sql import literal

__all__ = ["PAIR_COLUMNS", "export_pairs", "finalise", "probability_expr", "score_pairs", "weight_expr"]

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
        glob, out, PAIR_COLUMNS, order="state_l, state_voter_id_l, state_r, state_voter_id_r",
        engine=engine,
    )  # fmt: skip


def finalise(
    glob: str,
    out: Path,
    columns: tuple[str, ...] | list[str],
    *,
    order: str,
    select: str | None = None,
    engine=None,
) -> int:
    """Rewrite the engine's export as one sorted Parquet file at ``out`` (atomic rename).

    The sort is bounded like the link itself: on the DuckDB engine it runs on
    the engine's own connection (its memory limit and spill directory, one
    budget for the process); otherwise on a connection given the engine's
    ``memory_limit`` (else :func:`default_memory_limit`) and a spill directory
    beside ``out``.  An unbounded connection here sorted every candidate pair
    of a zero-threshold 10M link in up to 80% of RAM, beside the engine's
    own buffers (docs/SCALE.md, "10M at national density").
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    shared = engine.duckdb_connection() if engine is not None else None
    con = shared if shared is not None else _bounded_connection(engine, out.parent / "_work")
    try:
        sel = select or ", ".join(columns)
        if shared is not None:
            # the engine's connection does not keep insertion order; the sort must
            con.execute("SET preserve_insertion_order=true")
        con.execute(
            f"COPY (SELECT {sel} FROM read_parquet({literal(glob)}) ORDER BY {order}) "
            f"TO {literal(tmp)} (FORMAT PARQUET, COMPRESSION ZSTD)"
        ).fetchall()
        n = con.execute(
            f"SELECT count(*) FROM read_parquet({literal(tmp)})"
        ).fetchall()[0][0]
    finally:
        if shared is None:
            con.close()
        else:
            con.execute("SET preserve_insertion_order=false")
    os.replace(tmp, out)
    return int(n)


def _bounded_connection(engine, spill: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the engine's memory limit (else the link default) spilling to ``spill``."""
    from voterolls.link.engines.duckdb import default_memory_limit

    limit = getattr(engine, "memory_limit", None) or default_memory_limit()
    con = duckdb.connect()
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory={literal(spill / 'finalise_tmp')}")
    if limit:
        con.execute(f"SET memory_limit={literal(limit)}")
    return con
