"""Ohio SWVF: the vote-history rows pivoted into ``GENERAL-11/05/2024``-style columns.

``X`` = voted, a party letter = the primary ballot taken; the registrations
are split into the four county-range files the SOS publishes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from voterolls.formats.spec import Column, Format
from voterolls.sql import identifier as ident
from voterolls.sql import literal as lit
from voterolls.synth.native.writer import (
    PolicyView,
    code_expr,
    label_sql,
    registration_value,
    write_table,
)

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
