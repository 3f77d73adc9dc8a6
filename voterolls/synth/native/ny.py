"""New York: each voter's vote history packed into the last field, entries separated by ``;``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from voterolls.formats.spec import Format
from voterolls.sql import literal as lit
from voterolls.synth.native.writer import PolicyView, label_sql, registration_value, write_table


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
