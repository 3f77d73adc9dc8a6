"""Ohio SWVF: one column per election after the fixed columns.

Writing pivots the vote-history rows into ``GENERAL-11/05/2024``-style columns
(``X`` = voted, a party letter = the primary ballot taken) and splits the
registrations into the four county-range files the SOS publishes.  Reading
(``history_relation``) unpivots the election columns back into vote-history rows.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb

from voterolls.formats.history import entries_sql, field_sql, history_rows_sql, label_sql
from voterolls.formats.spec import Column, Format
from voterolls.formats.writer import (
    PolicyView,
    code_expr,
    registration_value,
    write_table,
)
from voterolls.sql import identifier as ident
from voterolls.sql import literal as lit

COUNTY_RANGES = ((1, 22), (23, 44), (45, 66), (67, 88))


def write(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    state: str,
    pol: PolicyView,
    out_dir: Path,
    extract_date: dt.date,
) -> list[Path]:
    reg = fmt.registrations
    wh = reg.wide_history
    assert wh is not None
    hdr = label_sql(
        wh.header_template, date_format=wh.date_format, type_codes=reg.codes[wh.type_codes]
    )
    party_col = next((c for c in reg.columns if c.target == "party"), None)
    party_keys = (
        ", ".join(lit(k) for k in reg.code_map(party_col).map)
        if party_col and reg.code_map(party_col)
        else "''"
    )
    party_native = code_expr(reg, party_col, "h.party_ballot", None) if party_col else "''"
    val = (
        f"(CASE WHEN h.election_type = 'primary' AND h.party_ballot IN ({party_keys}) THEN h.party_ballot "
        f"WHEN h.election_type = 'primary' AND {party_native} NOT IN ('', {lit(wh.voted_value)}) THEN {party_native} "
        f"ELSE {lit(wh.voted_value)} END)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE h2 AS SELECT h.state_voter_id, {hdr} AS hdr, h.election_date, {val} AS val FROM h"
    )
    headers = [
        row[0]
        for row in con.execute(
            "SELECT hdr FROM h2 GROUP BY hdr ORDER BY min(election_date), hdr"
        ).fetchall()
    ]
    if headers:
        aggs = ", ".join(
            f"max(CASE WHEN hdr = {lit(h)} THEN val END) AS {ident('e' + str(i))}"
            for i, h in enumerate(headers)
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE hw AS SELECT state_voter_id, {aggs} FROM h2 GROUP BY state_voter_id"
        )
    else:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE hw AS SELECT NULL::VARCHAR AS state_voter_id WHERE FALSE"
        )
    values = [(c, registration_value(reg, c, pol)) for c in reg.columns]
    for i, h in enumerate(headers):
        values.append((Column(name=h), f"coalesce(hw.{ident('e' + str(i))}, '')"))
    cases = " ".join(
        f"WHEN try_cast(r.county AS INTEGER) BETWEEN {a} AND {b} THEN '{a}_{b}'"
        for a, b in COUNTY_RANGES
    )
    range_sql = f"(CASE {cases} ELSE 'other' END)"
    return write_table(
        con, reg, values, "FROM r LEFT JOIN hw ON hw.state_voter_id = r.state_voter_id WHERE TRUE",
        header_names=reg.names + headers, out_dir=out_dir,
        name_for=lambda c: reg.filename.replace("{county_range}", c or "other"),
        county_sql=range_sql, order_sql="r.__i", split=True,
    )  # fmt: skip


def history_sql(plan, state: str) -> str:  # noqa: ANN001 - FilePlan (import cycle)
    """Unpivot the election columns of a SWVF file into VOTE_HISTORY rows (SQL text)."""
    reg = plan.layout
    wh = reg.wide_history
    cm = reg.codes[wh.type_codes]
    pat = re.compile(wh.pattern)
    items = []  # one struct per election column (the header is read once, not per row)
    for i, name in enumerate(plan.header_names[len(reg.columns) :], start=len(reg.columns) + 1):
        m = pat.match(name)
        if not m:
            continue
        try:
            d = dt.datetime.strptime(m.group("date"), wh.date_format).date()
        except ValueError:
            continue
        etype = cm.map.get(m.group("type"), cm.default or "other")
        items.append(
            f"{{'d': DATE '{d.isoformat()}', 't': {lit(etype)}, 'desc': {lit(name)}, 'v': {field_sql(plan, i)}}}"
        )
    if not items:
        return ""
    return history_rows_sql(
        state, entries_sql(plan, f"[{', '.join(items)}]"), where=["e.v IS NOT NULL"],
        election_date="e.d", election_type="e.t", election_desc="e.desc", vote_method_code="e.v",
        party_ballot=f"CASE WHEN e.v <> {lit(wh.voted_value)} THEN e.v END",
    )  # fmt: skip
