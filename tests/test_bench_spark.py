"""bench/spark.py: the pair agreement between Spark's and DuckDB's pairs files, on hand-made files."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.spark import pair_agreement  # noqa: E402


def _pairs(rows: list[tuple[str, str, float, int]]) -> pa.Table:
    """(left id, right id, probability, gamma) -> a pairs table in the contract's key columns."""
    return pa.table(
        {
            "state_l": [r[0].split(":")[0] for r in rows],
            "state_voter_id_l": [r[0].split(":")[1] for r in rows],
            "state_r": [r[1].split(":")[0] for r in rows],
            "state_voter_id_r": [r[1].split(":")[1] for r in rows],
            "match_probability": [r[2] for r in rows],
            "gamma_name": pa.array([r[3] for r in rows], pa.int8()),
        }
    )


def test_agreement_counts_links_in_both_and_in_one_only(tmp_path):
    duck = [
        ("NC:1", "OH:1", 0.99, 3),
        ("NC:2", "OH:2", 0.95, 3),
        ("NC:3", "OH:3", 0.5, 2),  # below the threshold in both
        ("NC:4", "OH:4", 0.91, 2),  # Spark puts it just under 0.9 (a level boundary)
        ("NC:5", "OH:5", 0.2, 1),  # DuckDB only, not a link
    ]
    spark = [
        ("OH:1", "NC:1", 0.99, 3),  # the other orientation: the same pair
        ("NC:2", "OH:2", 0.9502, 3),
        ("NC:3", "OH:3", 0.5, 2),
        ("NC:4", "OH:4", 0.89, 1),
        ("NC:6", "OH:6", 0.97, 3),  # Spark only, a link
    ]
    pq.write_table(_pairs(duck), tmp_path / "d.parquet")
    (tmp_path / "s").mkdir()  # Spark may write a directory of part files
    pq.write_table(_pairs(spark[:2]), tmp_path / "s" / "part-0.parquet")
    pq.write_table(_pairs(spark[2:]), tmp_path / "s" / "part-1.parquet")

    a = pair_agreement(tmp_path / "d.parquet", tmp_path / "s", 0.9)

    assert a["written"] == {
        "duckdb": 5, "spark": 5, "both": 4, "duckdb_only": 1, "spark_only": 1,
        "jaccard": pytest.approx(4 / 6, abs=1e-6),
    }  # fmt: skip
    # links: DuckDB {1, 2, 4}, Spark {1, 2, 6}
    assert a["at_threshold"] == {
        "duckdb": 3, "spark": 3, "both": 2, "duckdb_only": 1, "spark_only": 1, "jaccard": 0.5,
    }  # fmt: skip
    assert a["common_written_pairs"] == 4
    assert a["max_abs_probability_difference"] == pytest.approx(0.02)
    assert a["share_probability_within_1e-3"] == pytest.approx(3 / 4)
    assert a["share_gammas_equal"] == pytest.approx(3 / 4)


def test_identical_files_agree_fully(tmp_path):
    rows = [("NC:1", "OH:1", 0.99, 3), ("NC:2", "OH:2", 0.4, 1)]
    pq.write_table(_pairs(rows), tmp_path / "d.parquet")
    a = pair_agreement(tmp_path / "d.parquet", tmp_path / "d.parquet", 0.9)
    assert a["written"]["jaccard"] == a["at_threshold"]["jaccard"] == 1.0
    assert a["max_abs_probability_difference"] == 0.0
    assert a["share_gammas_equal"] == 1.0


def test_agreement_by_dob_class(tmp_path):
    """Per class: a recalibration applied by one engine only shows in its class, not in the others."""
    duck = [("NC:1", "OH:1", 0.99, 3), ("NC:2", "OH:2", 0.95, 3), ("NC:3", "OH:3", 0.92, 2)]
    spark = [("NC:1", "OH:1", 0.99, 3), ("NC:2", "OH:2", 0.80, 3), ("NC:3", "OH:3", 0.92, 2)]
    pq.write_table(_pairs(duck), tmp_path / "d.parquet")
    pq.write_table(_pairs(spark), tmp_path / "s.parquet")
    regs = pa.table(
        {
            "state": ["NC", "OH", "NC", "OH", "NC", "OH"],
            "state_voter_id": ["1", "1", "2", "2", "3", "3"],
            "dob_granularity": ["full", "full", "year", "full", "full", None],
        }
    )
    pq.write_table(regs, tmp_path / "r.parquet")
    a = pair_agreement(tmp_path / "d.parquet", tmp_path / "s.parquet", 0.9, tmp_path / "r.parquet")
    by = a["by_class"]
    assert by["full"]["at_threshold"]["jaccard"] == 1.0
    assert by["full"]["max_abs_probability_difference"] == 0.0
    assert by["year"]["at_threshold"] == {
        "duckdb": 1, "spark": 0, "both": 0, "duckdb_only": 1, "spark_only": 0, "jaccard": 0.0,
    }  # fmt: skip
    assert by["none"]["common_written_pairs"] == 1 and by["none"]["share_gammas_equal"] == 1.0
    assert a["at_threshold"]["duckdb_only"] == 1
