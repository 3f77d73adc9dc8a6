"""Ohio SWVF: one column per election after the fixed columns.

Reading (``history_sql``) unpivots the election columns (``GENERAL-11/05/2024``:
``X`` = voted, a party letter = the primary ballot taken) into vote-history
rows.  The writer is ``voterolls.synth.native.oh``.
"""

from __future__ import annotations

import datetime as dt
import re

from voterolls.formats.engine import FilePlan
from voterolls.formats.history import entries_sql, field_sql, history_rows_sql
from voterolls.sql import literal as lit


def history_sql(plan: FilePlan, state: str) -> str:
    """Unpivot the election columns of a SWVF file into VOTE_HISTORY rows (SQL text)."""
    reg = plan.layout
    wh = reg.wide_history
    cm = reg.codes[wh.type_codes]
    pat = re.compile(wh.pattern, re.IGNORECASE)
    targeted = {c.name for c in reg.columns if c.target}
    items = []  # one struct per election column (the header is read once, not per row)
    # election columns are wherever the header has them (header-driven reading: any order)
    for i, name in enumerate(plan.header_names, start=1):
        m = None if name in targeted else pat.match(name)
        if not m:
            continue
        try:
            d = dt.datetime.strptime(m.group("date"), wh.date_format).date()
        except ValueError:
            continue
        etype = cm.map.get(m.group("type").upper(), cm.default or "other")
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
