"""Vote history carried inside registration files (OH wide columns, NY packed field, PA slots).

The three layouts differ only in how one registration line holds its
elections: a column per election (Ohio), one ``;``-separated field (New York),
or forty numbered (method, party) slots decoded by a county election map
(Pennsylvania).  What they produce is the same: VOTE_HISTORY rows that carry
the line's voter id, county and source, and native codes mapped to the
national vocabulary.  That common part lives here (reading only; the
writers of these layouts are in ``voterolls.synth.native``) so a change to
VOTE_HISTORY_SCHEMA, to how ids are trimmed or to how a code map reads is made
once; ``ny``, ``oh`` and ``pa`` keep only what is particular to their layout.

Every helper returns SQL text.  A line's elections are expanded with DuckDB's
``unnest`` and filtered in SQL: no Python loop runs per row (loops here run
over columns or slots, once per file, while the query is built).
"""

from __future__ import annotations

from collections.abc import Sequence

from voterolls.formats.engine import FilePlan, rows_sql
from voterolls.formats.spec import CodeMap
from voterolls.schema import VOTE_HISTORY_SCHEMA
from voterolls.sql import identifier as ident
from voterolls.sql import literal as lit

# ---------------------------------------------------------------------------
# Reading: VOTE_HISTORY rows from the elections a registration line holds
# ---------------------------------------------------------------------------


def field_sql(plan: FilePlan, column: str | int) -> str:
    """A native field (by name or 1-based index), trimmed, blank as NULL."""
    i = plan.idx(column) if isinstance(column, str) else column
    return f"nullif(trim({plan.fld(i)}), '')"


def target_sql(plan: FilePlan, target: str) -> str:
    """The first native field mapped to national ``target`` (see ``field_sql``), or NULL."""
    cols = plan.layout.by_target(target)
    return field_sql(plan, cols[0].name) if cols else "NULL"


def code_sql(codes: CodeMap, expr: str, fallback: str) -> str:
    """National value of the native code ``expr``: the map's, else its default, else ``fallback``."""
    default = lit(codes.default or fallback)
    if not codes.map:
        return default
    whens = " ".join(f"WHEN {lit(a)} THEN {lit(b)}" for a, b in codes.map.items())
    return f"coalesce(CASE {expr} {whens} END, {default})"


def entries_sql(plan: FilePlan, entries: str, *, county: str | None = None) -> str:
    """FROM item ``s``: one row per element ``e`` of the SQL list ``entries`` on each valid line.

    Each row also has the line's voter id ``vid``, ``county`` (the named native
    column, else the one mapped to county), ``_sha`` and ``line_no``.
    """
    county_sql = field_sql(plan, county) if county else target_sql(plan, "county")
    return (
        f"(SELECT line_no, _sha, {target_sql(plan, 'state_voter_id')} AS vid, {county_sql} AS county, "
        f"unnest({entries}) AS e FROM ({rows_sql(plan, valid=True)})) s"
    )


def history_rows_sql(
    state: str, from_sql: str, *, where: Sequence[str] = (), **columns: str
) -> str:
    """SELECT of VOTE_HISTORY rows over ``from_sql`` (``entries_sql``, perhaps joined).

    ``columns`` gives the SQL of each VOTE_HISTORY column the layout knows;
    the others are the line's voter id, county and source, ``vote_method``
    'unknown', or NULL.  Rows without a voter id are not history rows.
    """
    names = [f.name for f in VOTE_HISTORY_SCHEMA]
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise ValueError(f"not VOTE_HISTORY columns: {', '.join(unknown)}")
    given = {
        "state": lit(state),
        "state_voter_id": "s.vid",
        "county": "s.county",
        "vote_method": "'unknown'",
        "source_file": "s._sha",
        "source_line": "CAST(s.line_no AS BIGINT)",
        **columns,
    }
    select = ", ".join(f"{given.get(n, 'NULL')} AS {ident(n)}" for n in names)
    return f"SELECT {select} FROM {from_sql} WHERE " + " AND ".join(["s.vid IS NOT NULL", *where])
