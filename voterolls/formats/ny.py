"""New York: vote history packed in the last field, entries separated by ``;``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from voterolls.formats.history import code_sql, entries_sql, history_rows_sql, label_sql
from voterolls.formats.spec import EmbeddedHistory, Format
from voterolls.formats.writer import PolicyView, registration_value, write_table
from voterolls.sql import literal as lit


def write(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    state: str,
    pol: PolicyView,
    out_dir: Path,
    extract_date: dt.date,
) -> list[Path]:
    reg = fmt.registrations
    eh = reg.embedded_history
    assert eh is not None
    entry = label_sql(
        eh.entry_template, date_format=eh.date_format, type_codes=reg.codes[eh.type_codes]
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE hn AS SELECT h.state_voter_id, "
        f"string_agg({entry}, {lit(eh.separator)} ORDER BY h.election_date DESC, h.__j) AS hist FROM h GROUP BY h.state_voter_id"
    )
    values = []
    for c in reg.columns:
        if c.name == eh.column:
            values.append((c, "coalesce(hn.hist, '')"))
        else:
            values.append((c, registration_value(reg, c, pol)))
    return write_table(
        con, reg, values, "FROM r LEFT JOIN hn ON hn.state_voter_id = r.state_voter_id WHERE TRUE",
        header_names=reg.names, out_dir=out_dir,
        name_for=lambda c: reg.filename.format(date=extract_date.strftime("%Y%m%d"), state=state, county=c or ""),
        county_sql=None, order_sql="r.__i",
    )  # fmt: skip


def _entry_date(eh: EmbeddedHistory, entry: str) -> str:
    """The date of one history entry (NULL when it cannot be read)."""
    return (
        f"try_strptime(regexp_extract({entry}, {lit(eh.entry_pattern)}, 1), {lit(eh.date_format)})"
    )


def history_sql(plan, state: str) -> str:  # noqa: ANN001 - FilePlan (import cycle)
    """Split the packed history field into VOTE_HISTORY rows (SQL text).

    Entries whose date cannot be read are skipped (VOTE_HISTORY needs a date);
    ``unreadable_history_issue`` names them in the registration's ``_issues``.
    """
    eh = plan.layout.embedded_history
    date = f"CAST({_entry_date(eh, 'e')} AS DATE)"
    native_type = f"regexp_extract(e, {lit(eh.entry_pattern)}, 2)"
    entries = f"string_split({plan.fld(plan.idx(eh.column))}, {lit(eh.separator)})"
    return history_rows_sql(
        state, entries_sql(plan, entries), where=["trim(e) <> ''", f"{date} IS NOT NULL"],
        election_date=date, election_desc="trim(e)",
        election_type=code_sql(plan.layout.codes[eh.type_codes], native_type, "other"),
    )  # fmt: skip


def unreadable_history_issue(plan) -> tuple[str, str]:  # noqa: ANN001
    eh = plan.layout.embedded_history
    k = plan.idx(eh.column)
    cond = (
        f"len(list_filter(string_split(coalesce({plan.fld(k)}, ''), {lit(eh.separator)}), "
        f"lambda e: trim(e) <> '' AND {_entry_date(eh, 'e')} IS NULL)) > 0"
    )
    return ("vote_history", cond)
