"""Clustering: pairs at or above the threshold -> persons (connected components).

Splink's ``cluster_pairwise_predictions_at_threshold`` runs on the engine that
scored the pairs.  Output ``W/link/clusters.parquet``: ``state,
state_voter_id, cluster_id`` for every registration (singletons included);
``cluster_id`` is a dense integer, numbered in order of each cluster's
smallest ``state:state_voter_id``, so the same links give the same ids.
"""

from __future__ import annotations

from pathlib import Path

from voterolls.link.predict import finalise
from voterolls.link.train import log2_odds
from voterolls.sql import literal

CLUSTER_COLUMNS = ("state", "state_voter_id", "cluster_id")


def export_clusters(
    engine, linker, df_predict, out: Path, *, threshold: float, shift: float
) -> tuple[int, int]:
    """Cluster at ``threshold`` (final probabilities) and write clusters; return (rows, clusters)."""
    # Final weight = Splink weight + shift, so the threshold on Splink's weight is:
    weight = log2_odds(threshold) - shift
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        df_predict, threshold_match_weight=weight
    )
    raw = (
        out.parent
        / "_work"
        / ("clusters_raw" if engine.EXPORT_IS_DIRECTORY else "clusters_raw.parquet")
    )
    glob = engine.export(
        clusters, raw, columns=["state", "state_voter_id", "cluster_id AS representative"]
    )
    n = finalise(
        glob,
        out,
        CLUSTER_COLUMNS,
        order="state, state_voter_id",
        select="state, state_voter_id, CAST(dense_rank() OVER (ORDER BY representative) AS BIGINT) AS cluster_id",
        engine=engine,
    )
    import duckdb

    con = duckdb.connect()
    try:
        k = con.execute(f"SELECT count(DISTINCT cluster_id) FROM read_parquet({literal(out)})").fetchall()[
            0
        ][0]
    finally:
        con.close()
    clusters.drop_table_from_database_and_remove_from_cache()
    return n, int(k)
