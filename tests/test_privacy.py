"""Small-cell suppression of published aggregates."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from voterolls.privacy import suppress_small_cells, suppressed_count


def _table() -> pa.Table:
    return pa.table(
        {
            "state": ["NC", "NC", "NC", "OH", "OH", "WA"],
            "county": ["a", "b", "c", "x", "y", "z"],
            "n": pa.array([5, 120, 40, 0, 3, 9], pa.int64()),
            "m": pa.array([50, 60, 10, 80, None, 1], pa.int32()),
        }
    )


def test_cells_under_threshold_are_nulled_and_flagged() -> None:
    out = suppress_small_cells(_table(), ["n", "m"])
    assert out.column("n").to_pylist() == [None, 120, 40, 0, None, None]
    assert out.column("n_suppressed").to_pylist() == [True, False, False, False, True, True]
    assert out.column("m").to_pylist() == [50, 60, 10, 80, None, None]  # 10 is published
    assert out.column("m_suppressed").to_pylist() == [False, False, False, False, False, True]
    assert out.schema.field("n").type == pa.int64() and out.schema.field("m").type == pa.int32()
    assert out.column("county").to_pylist() == ["a", "b", "c", "x", "y", "z"]  # order kept
    assert suppressed_count(out) == 4


def test_threshold_and_zero_options() -> None:
    out = suppress_small_cells(_table(), ["n"], threshold=4, suppress_zero=True)
    assert out.column("n").to_pylist() == [5, 120, 40, None, None, 9]


def test_accepts_duckdb_relation_and_empty_table() -> None:
    rel = duckdb.connect().sql("SELECT * FROM (VALUES ('a', 3), ('b', 30)) t(k, n)")
    assert suppress_small_cells(rel, ["n"]).column("n").to_pylist() == [None, 30]
    empty = suppress_small_cells(_table().slice(0, 0), ["n"])
    assert empty.num_rows == 0 and "n_suppressed" in empty.column_names
    with pytest.raises(ValueError):
        suppress_small_cells(_table(), ["nope"])
