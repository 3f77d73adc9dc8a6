"""Pennsylvania FVE: 40 (method, party) election slots and a per-county election map.

The writer numbers the (up to) 40 most recent elections in the vote history
1..40 in date order, writes each voter's slot columns and one election map file
per county.  Elections older than the 40 slots cannot be represented in the
format and are not written (as in the real export).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from voterolls.formats.spec import Format
from voterolls.sql import identifier as ident
from voterolls.synth.native.writer import (
    PolicyView,
    history_value,
    map_expr,
    native_file_name,
    registration_value,
    write_table,
)


def write(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    state: str,
    pol: PolicyView,
    out_dir: Path,
    extract_date: dt.date,
) -> list[Path]:
    reg = fmt.registrations
    sh = reg.slot_history
    emap = fmt.election_map
    assert sh is not None and emap is not None
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE pe AS
        SELECT election_date, election_type, election_desc,
               row_number() OVER (ORDER BY election_date, election_type) AS n
        FROM (SELECT election_date, coalesce(election_type, 'other') AS election_type,
                     min(coalesce(election_desc, upper(coalesce(election_type, 'other')) || ' ' || strftime(election_date, '%Y'))) AS election_desc
              FROM h GROUP BY 1, 2 ORDER BY election_date DESC, election_type DESC LIMIT {sh.slots})"""
    )
    method = map_expr(reg.codes[sh.method_codes], "h.vote_method", "h.vote_method_code")
    party_col = next(c for c in reg.columns if c.target == "party")
    party = map_expr(reg.code_map(party_col), "r.party", "r.party_code") if pol.party else "''"
    aggs = []
    for i in range(1, sh.slots + 1):
        aggs.append(f"max(CASE WHEN pe.n = {i} THEN {method} END) AS {ident('m' + str(i))}")
        aggs.append(f"max(CASE WHEN pe.n = {i} THEN {party} END) AS {ident('p' + str(i))}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE hp AS SELECT h.state_voter_id, {", ".join(aggs)}
        FROM h JOIN pe ON h.election_date = pe.election_date AND coalesce(h.election_type, 'other') = pe.election_type
        JOIN r ON r.state_voter_id = h.state_voter_id GROUP BY h.state_voter_id"""
    )
    values = []
    for c in reg.columns:
        slot = _slot_of(c.name, sh.method_template, sh.party_template, sh.slots)
        if slot:
            kind, i = slot
            values.append((c, f"coalesce(hp.{ident(kind + str(i))}, '')"))
        else:
            values.append((c, registration_value(reg, c, pol)))
    paths = write_table(
        con, reg, values, "FROM r LEFT JOIN hp ON hp.state_voter_id = r.state_voter_id WHERE TRUE",
        header_names=reg.names, out_dir=out_dir,
        name_for=lambda c: native_file_name(reg.filename, state=state, county=c, date=extract_date),
        county_sql="r.county", order_sql="r.__i",
    )  # fmt: skip
    # one election map per county file
    mvalues = []
    for c in emap.columns:
        if c.target == "county":
            mvalues.append((c, "coalesce(rc.county, '')"))
        elif c.target == "election_number":
            mvalues.append((c, "CAST(pe.n AS VARCHAR)"))
        else:
            mvalues.append((c, history_value(emap, c, "pe")))
    paths += write_table(
        con, emap, mvalues, "FROM (SELECT DISTINCT county FROM r) rc CROSS JOIN pe WHERE TRUE",
        header_names=emap.names, out_dir=out_dir,
        name_for=lambda c: native_file_name(emap.filename, state=state, county=c, date=extract_date),
        county_sql="rc.county", order_sql="pe.n",
    )  # fmt: skip
    return paths


def _slot_of(name: str, method_t: str, party_t: str, slots: int) -> tuple[str, int] | None:
    for i in range(1, slots + 1):
        if name == method_t.format(i=i):
            return ("m", i)
        if name == party_t.format(i=i):
            return ("p", i)
    return None
