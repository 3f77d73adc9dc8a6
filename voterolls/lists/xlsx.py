"""A list as an Excel workbook an election office can open without damaging it.

The CSV is for tools; staff open lists in Excel, which reads a CSV's ZIP
``08320`` as the number 8320 and a voter id ``000123`` as 123, and shows a
probability as 0.999873456123.  This writer types every cell itself:

* every text column (voter ids, ZIP codes, county codes, names) is a text cell
  in a text-formatted column, so leading zeros survive opening and editing;
* dates are date cells; the match probability is cut to
  :data:`PROBABILITY_DECIMALS` places for display, so a near-certain match
  never shows as 1 (the CSV and Parquet keep full precision);
* three NVRA columns say when a confirmation notice may be sent and when
  removal could first follow if it goes unanswered
  (:func:`voterolls.lists.actions.notice_window`), on the rows whose action is
  a notice or a hold; an "about" sheet explains them.

The rows come from DuckDB as Arrow columns and are written column by column
(a workbook is written cell by cell whatever the tool; lists are per state and
reviewed by people, so they are small next to the registrations).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import pyarrow as pa

from voterolls.lists.actions import HOLD, SEND_NOTICE, ActionPolicy, notice_window
from voterolls.log import get_logger
from voterolls.sql import literal

__all__ = ["NVRA_COLUMNS", "PROBABILITY_DECIMALS", "display_probability", "write_xlsx"]

log = get_logger(__name__)

PROBABILITY_DECIMALS = 4
#: Excel's row limit, header included.
MAX_ROWS = 1_048_576
#: The date columns added to the workbook (not to the CSV / Parquet).
NVRA_COLUMNS = ("nvra_notice_from", "nvra_notice_by", "nvra_earliest_removal")


def display_probability(p: float) -> float:
    """``p`` cut (not rounded) to :data:`PROBABILITY_DECIMALS` places: 0.99997 shows 0.9999, not 1.

    Rounding would show near-certain matches as certain; cutting understates by
    less than one unit of the last place.
    """
    scale = 10**PROBABILITY_DECIMALS
    return math.floor(round(float(p) * scale, 6)) / scale  # round first: 0.29 * 1e4 is 2899.99...


def _nvra_sql(policy: ActionPolicy) -> str:
    """The three NVRA date columns as DuckDB expressions over ``recommended_action``."""
    w = notice_window(policy)
    rows_with_notice = f"recommended_action IN ({literal(SEND_NOTICE)}, {literal(HOLD)})"
    return ", ".join(
        f"CASE WHEN {rows_with_notice} THEN DATE {literal(day.isoformat())} END AS {name}"
        for name, day in zip(NVRA_COLUMNS, (w.notice_from, w.notice_by, w.earliest_removal), strict=True)
    )


def _about(name: str, policy: ActionPolicy, rows: int) -> list[tuple[str, str]]:
    w = notice_window(policy)
    return [
        ("list", name),
        ("rows", f"{rows:,}"),
        ("as of", policy.today.isoformat()),
        ("next federal general election", policy.election.isoformat()),
        ("in the 90-day quiet period", "yes" if policy.in_quiet_period else "no"),
        ("notice threshold", f"{policy.notice_threshold}"),
        ("review threshold", f"{policy.review_threshold}"),
        ("match_probability", f"cut (not rounded) to {PROBABILITY_DECIMALS} decimals for display, so 0.99997 shows as 0.9999; the CSV and Parquet files keep full precision"),
        ("nvra_notice_from / nvra_notice_by",
         f"{w.notice_from.isoformat()} to {w.notice_by.isoformat()}: when a confirmation notice may be sent as part of a "
         "systematic program (before the 90-day quiet period of the next federal general election, 52 U.S.C. "
         "20507(c)(2)(A); a federal primary's quiet period depends on the state's primary date and is not shown)"),
        ("nvra_earliest_removal",
         f"{w.earliest_removal.isoformat()}: the day after the second federal general election following a notice sent "
         "on nvra_notice_from; removal is lawful only if the notice went unanswered and the registrant did not vote "
         "or appear through that election (52 U.S.C. 20507(d)(1)(B))"),
        ("dates shown on", "rows whose action is a confirmation notice or an NVRA hold; blank elsewhere"),
        ("what a row is", "evidence for review; no row of this list is a removal"),
    ]


def write_xlsx(con: duckdb.DuckDBPyConnection, source: str, path: Path, policy: ActionPolicy) -> Path | None:
    """Write the rows of ``source`` (a table or a parenthesised query in ``con``) to ``path``.

    Returns the path, or ``None`` (with a warning) when the list has more rows
    than a worksheet holds; the CSV and Parquet hold every row.
    """
    import xlsxwriter

    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    nvra = f", {_nvra_sql(policy)}" if "recommended_action" in cols else ""
    table: pa.Table = con.sql(f"SELECT *{nvra} FROM {source}").to_arrow_table()
    if table.num_rows >= MAX_ROWS:
        log.warning("%s has %s rows, more than a worksheet holds: no .xlsx written", path.name, table.num_rows)
        return None
    book = xlsxwriter.Workbook(str(path), {"remove_timezone": True})
    try:
        sheet = book.add_worksheet("list")
        header = book.add_format({"bold": True})
        text = book.add_format({"num_format": "@"})
        date = book.add_format({"num_format": "yyyy-mm-dd"})
        prob = book.add_format({"num_format": "0." + "0" * PROBABILITY_DECIMALS})
        for j, field in enumerate(table.schema):
            _write_column(sheet, j, field, table.column(j), header, text, date, prob)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, max(table.num_rows, 1), table.num_columns - 1)
        about = book.add_worksheet("about")
        about.set_column(0, 0, 34)
        about.set_column(1, 1, 120)
        for i, (key, value) in enumerate(_about(path.stem, policy, table.num_rows)):
            about.write_string(i, 0, key, header)
            about.write_string(i, 1, value)
    finally:
        book.close()
    return path


def _write_column(sheet, j: int, field: pa.Field, column: pa.ChunkedArray, header, text, date, prob) -> None:
    """One column: a typed header cell, then typed cells (nulls stay blank)."""
    sheet.write_string(0, j, field.name, header)
    values = column.to_pylist()
    t = field.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        sheet.set_column(j, j, 12, date)
        for i, v in enumerate(values, start=1):
            if v is not None:
                sheet.write_datetime(i, j, v if isinstance(v, dt.datetime) else dt.datetime.combine(v, dt.time()), date)
    elif field.name == "match_probability":
        sheet.set_column(j, j, 10, prob)
        for i, v in enumerate(values, start=1):
            if v is not None:
                sheet.write_number(i, j, display_probability(v), prob)
    elif pa.types.is_boolean(t):
        for i, v in enumerate(values, start=1):
            if v is not None:
                sheet.write_boolean(i, j, v)
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        for i, v in enumerate(values, start=1):
            if v is not None:
                sheet.write_number(i, j, v)
    else:  # text (ids, ZIP and county codes, names, lists of evidence): a text cell, never a number
        sheet.set_column(j, j, max(10, min(40, len(field.name) + 2)), text)
        for i, v in enumerate(values, start=1):
            if v is not None:
                sheet.write_string(i, j, v if isinstance(v, str) else str(v), text)
