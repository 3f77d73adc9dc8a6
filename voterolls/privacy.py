"""Small-cell suppression for every published aggregate.

A count of 1 to 9 people in a cell (a county x age band x party, a state's
"possible double voters" in one precinct, ...) can single out a person when
combined with public knowledge, so published tables never show it.  This is
the usual statistical-disclosure rule (threshold 10, as in many official
statistics and in CMS's cell-size policy); see docs/PRIVACY.md.

:func:`suppress_small_cells` replaces each count in ``1 .. threshold-1`` by
NULL and adds a boolean ``<column>_suppressed`` flag beside it, so a reader
sees "suppressed", never a misleading 0.  Zero is published by default (a
true zero rarely discloses, and hiding it would hide coverage gaps); pass
``suppress_zero=True`` to treat it as small too.

With ``group_by`` it also applies *complementary* suppression: where a group
(e.g. a state) would have exactly one suppressed cell in a column, the
smallest other cell of that group is suppressed too, so the hidden value
cannot be recovered by subtracting the others from a published total.  This
is the simple one-extra-cell rule, not an optimal secondary-suppression
solver; with several hierarchical totals, check the published margins too.

:func:`small_cell_mask` is the rule itself (which counts are small); every
caller, the report's included, goes through it, so the threshold and the
treatment of zero live here and nowhere else.

Vectorised: primary suppression is Arrow compute; complementary suppression is
one DuckDB window query per count column.  No row loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from voterolls.sql import identifier as _q

if TYPE_CHECKING:  # duckdb is imported only where a query runs (keeps this module light)
    import duckdb

DEFAULT_THRESHOLD = 10


def small_cell_mask(
    counts: pa.Array | pa.ChunkedArray,
    threshold: int = DEFAULT_THRESHOLD,
    *,
    suppress_zero: bool = False,
) -> pa.Array | pa.ChunkedArray:
    """The small-cell rule: True where a count must not be published (never null).

    A count is small when ``lo <= count < threshold`` with ``lo`` 1, or 0 with
    ``suppress_zero``; a missing count is not small (there is nothing to hide).
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    lo = 0 if suppress_zero else 1
    small = pc.and_(pc.greater_equal(counts, lo), pc.less(counts, threshold))
    return pc.fill_null(small, False)


def suppress_small_cells(
    table: pa.Table | duckdb.DuckDBPyRelation,
    count_columns: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    *,
    group_by: Sequence[str] | None = None,
    suppress_zero: bool = False,
) -> pa.Table:
    """Return ``table`` with small counts nulled and ``<col>_suppressed`` flags added.

    Row order is preserved.  ``threshold`` is the smallest count published.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if not isinstance(table, pa.Table):  # a DuckDB relation
        table = table.to_arrow_table()
    missing = [c for c in count_columns if c not in table.column_names]
    if missing:
        raise ValueError(f"no such count column(s): {', '.join(missing)}")
    groups = list(group_by or [])
    missing = [g for g in groups if g not in table.column_names]
    if missing:
        raise ValueError(f"no such group column(s): {', '.join(missing)}")
    masks = {
        c: small_cell_mask(table.column(c), threshold, suppress_zero=suppress_zero)
        for c in count_columns
    }
    if not groups or table.num_rows == 0:
        out = table
        for c, small in masks.items():
            col = table.column(c)
            hidden = pc.if_else(small, pa.scalar(None, col.type), col)
            out = out.set_column(out.column_names.index(c), c, hidden)
        for c, small in masks.items():
            out = out.append_column(f"{c}_suppressed", small)
        return out
    return _with_complementary(table, count_columns, masks, groups)


def _with_complementary(
    table: pa.Table,
    count_columns: Sequence[str],
    masks: dict[str, pa.Array | pa.ChunkedArray],
    groups: list[str],
) -> pa.Table:
    """Primary masks applied, plus the smallest other cell of a group hiding exactly one.

    The partner is the smallest *non-zero* shown cell (a zero only when there is
    none): hiding a zero beside a published total still lets the small cell be
    recovered by subtraction.  ``voterolls.report.suppress.suppress_group`` applies
    the same rule to one in-memory group.
    """
    import duckdb

    work = table.append_column("_rid", pa.array(range(table.num_rows), pa.int64()))
    for i, c in enumerate(count_columns):
        work = work.append_column(f"_m{i}", masks[c])
    con = duckdb.connect()
    con.register("_t", work)
    part = ", ".join(_q(g) for g in groups)
    current = "_t"
    for i, c in enumerate(count_columns):
        qc = _q(c)
        sql = f"""
            WITH q AS (
                SELECT *, _m{i} AS _s,
                       sum(_m{i}::INT) OVER (PARTITION BY {part}) AS _ns,
                       count({qc}) OVER (PARTITION BY {part}) AS _nc,
                       row_number() OVER (PARTITION BY {part}, _m{i} ORDER BY {qc} = 0, {qc}, _rid) AS _rk
                FROM {current})
            SELECT * EXCLUDE (_s, _ns, _nc, _rk, {qc}),
                   CASE WHEN _s OR (_ns = 1 AND _nc > 1 AND NOT _s AND {qc} IS NOT NULL AND _rk = 1)
                        THEN NULL ELSE {qc} END AS {qc},
                   (_s OR (_ns = 1 AND _nc > 1 AND NOT _s AND {qc} IS NOT NULL AND _rk = 1)) AS {_q(c + "_suppressed")}
            FROM q
        """
        name = f"_s{i}"
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        current = name
    order = [*table.column_names]
    flags = [f"{c}_suppressed" for c in count_columns]
    out = con.sql(
        f"SELECT {', '.join(_q(c) for c in order + flags)} FROM {current} ORDER BY _rid"
    ).to_arrow_table()
    con.close()
    # Keep the input's count types (DuckDB may widen them).
    cols = []
    for name in out.column_names:
        col = out.column(name)
        if name in table.column_names and col.type != table.schema.field(name).type:
            col = col.cast(table.schema.field(name).type)
        cols.append(col)
    return pa.Table.from_arrays(cols, names=out.column_names)


def suppressed_count(table: pa.Table) -> int:
    """How many cells a suppressed table hides (sum of all ``*_suppressed`` flags)."""
    total = 0
    for name in table.column_names:
        if name.endswith("_suppressed"):
            total += int(pc.sum(table.column(name).cast(pa.int64())).as_py() or 0)
    return total
