"""New York: vote history packed in the last field, entries separated by ``;``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from voterolls.formats.spec import Format
from voterolls.formats.writer import PolicyView, lit, map_expr, registration_value, write_table


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
    type_native = map_expr(reg.codes[eh.type_codes], "h.election_type", None)
    entry = (
        "'"
        + eh.entry_template.replace(
            "{date}", "' || strftime(h.election_date, " + lit(eh.date_format) + ") || '"
        ).replace("{type}", "' || " + type_native + " || '")
        + "'"
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


def history_sql(plan, state: str) -> str:  # noqa: ANN001 - FilePlan (import cycle)
    """Split the packed history field into VOTE_HISTORY rows (SQL text).

    Entries whose date cannot be read are skipped (VOTE_HISTORY needs a date);
    ``unreadable_history_issue`` names them in the registration's ``_issues``.
    """
    from voterolls.formats.engine import rows_sql

    reg = plan.layout
    eh = reg.embedded_history
    cm = reg.codes[eh.type_codes]
    k = plan.idx(eh.column)
    id_idx = plan.idx(reg.by_target("state_voter_id")[0].name)
    county_idx = plan.idx(reg.by_target("county")[0].name)
    whens = " ".join(f"WHEN {lit(a)} THEN {lit(b)}" for a, b in cm.map.items())
    pat = lit(eh.entry_pattern)
    date_e = f"CAST(try_strptime(regexp_extract(e, {pat}, 1), {lit(eh.date_format)}) AS DATE)"
    return f"""SELECT {lit(state)} AS state, nullif(trim({plan.fld(id_idx)}), '') AS state_voter_id,
        nullif(trim({plan.fld(county_idx)}), '') AS county, {date_e} AS election_date,
        coalesce(CASE regexp_extract(e, {pat}, 2) {whens} END, {lit(cm.default or "other")}) AS election_type,
        trim(e) AS election_desc, 'unknown' AS vote_method, NULL AS vote_method_code, NULL AS party_ballot,
        _sha AS source_file, CAST(line_no AS BIGINT) AS source_line
      FROM (SELECT *, unnest(string_split({plan.fld(k)}, {lit(eh.separator)})) AS e FROM ({rows_sql(plan, valid=True)}))
      WHERE trim(e) <> '' AND {date_e} IS NOT NULL AND nullif(trim({plan.fld(id_idx)}), '') IS NOT NULL"""


def unreadable_history_issue(plan) -> tuple[str, str]:  # noqa: ANN001
    eh = plan.layout.embedded_history
    k = plan.idx(eh.column)
    pat = lit(eh.entry_pattern)
    cond = (
        f"len(list_filter(string_split(coalesce({plan.fld(k)}, ''), {lit(eh.separator)}), "
        f"lambda e: trim(e) <> '' AND try_strptime(regexp_extract(e, {pat}, 1), {lit(eh.date_format)}) IS NULL)) > 0"
    )
    return ("vote_history", cond)
