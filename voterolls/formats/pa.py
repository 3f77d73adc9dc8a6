"""Pennsylvania FVE: 40 (method, party) election slots decoded by a per-county election map.

Reading (``history_sql``) unpivots the slots of each registration line and
decodes them with the county's election map.  The writer is
``voterolls.synth.native.pa``.
"""

from __future__ import annotations

from voterolls.formats.engine import FilePlan, election_type_from_desc, rows_sql
from voterolls.formats.history import code_sql, entries_sql, field_sql, history_rows_sql
from voterolls.sql import literal as lit


def history_sql(plan: FilePlan, map_plans: list[FilePlan], state: str) -> str:
    """Unpivot the 40 slots and decode them with the county's election map (SQL text)."""
    sh = plan.layout.slot_history
    if not map_plans:
        return ""
    slots = ", ".join(
        f"{{'n': {i}, 'm': {field_sql(plan, sh.method_template.format(i=i))}, "
        f"'p': {field_sql(plan, sh.party_template.format(i=i))}}}"
        for i in range(1, sh.slots + 1)
    )
    maps = []
    for mp in map_plans:
        lay = mp.layout
        c = {col.target: mp.idx(col.name) for col in lay.columns if col.target}
        dfmt = lay.by_target("election_date")[0].date_format
        maps.append(
            f"SELECT {field_sql(mp, c['county'])} AS county, try_cast({field_sql(mp, c['election_number'])} AS INTEGER) AS n, "
            f"{field_sql(mp, c['election_desc'])} AS descr, CAST(try_strptime({field_sql(mp, c['election_date'])}, {lit(dfmt)}) AS DATE) AS d "
            f"FROM ({rows_sql(mp, valid=True)})"
        )
    elections = f"(SELECT DISTINCT county, n, descr, d FROM ({' UNION ALL '.join(maps)}) WHERE d IS NOT NULL) m"
    return history_rows_sql(
        state, f"{entries_sql(plan, f'[{slots}]', county=sh.county_column)} "
        f"JOIN {elections} ON m.county = s.county AND m.n = s.e.n",
        where=["s.e.m IS NOT NULL"],
        election_date="m.d", election_type=election_type_from_desc("m.descr"), election_desc="m.descr",
        vote_method=code_sql(plan.layout.codes[sh.method_codes], "s.e.m", "unknown"),
        vote_method_code="s.e.m", party_ballot="s.e.p",
    )  # fmt: skip
