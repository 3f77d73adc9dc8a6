"""What the service reads from the workspace, shaped for each role.

Two kinds of read, kept apart on purpose:

* :func:`state_matches` gives a state uploader the candidate pairs that
  involve *its own* registrations: its own voter ids, the other state's code,
  the probability and the evidence (which comparisons agreed).  It never
  returns another state's voter id or any personal field.
* :func:`aggregates` gives an analyst counts per state and category, with
  every count from 1 to 9 printed "<10" or merged with a neighbouring category
  (``voterolls.privacy``), and the report's histogram of match probabilities.
  There is no row-level read for an analyst anywhere in the service.

Both are DuckDB queries over the workspace files, never Python loops over rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from voterolls.log import get_logger
from voterolls.privacy import DEFAULT_THRESHOLD as SMALL_CELL
from voterolls.privacy import merge_small, shown
from voterolls.sql import literal as _lit
from voterolls.store import WorkspacePaths

log = get_logger(__name__)


def suppress(counts: list[int]) -> list[int | None]:
    """Small-cell suppression by the project rule (``voterolls.privacy``): 1..9 -> None ("<10")."""
    return [shown(int(n)) for n in counts]


def merged_row(values: list[str], counts: list[int]) -> dict[str, dict]:
    """One state's breakdown as published: small categories merged with a neighbour.

    The state's total is published beside the breakdown, so a lone "<10"
    could be recovered by subtraction; instead of hiding a large category
    under a false "<10", the small one is merged with the smallest other
    (``voterolls.privacy.merge_small``): "full + year: 2,389".  Each value maps
    to ``{"n": count or None, "group": [values published together], "lead": bool}``.
    """
    out: dict[str, dict] = {}
    for g in merge_small(counts):
        members = [values[i] for i in g]
        n = shown(sum(counts[i] for i in g))
        for j, i in enumerate(g):
            out[values[i]] = {"n": n, "group": members, "lead": j == 0}
    return out


def stale_products(workspace: Path) -> list[str]:
    """Banner texts for derived products (linkage, estimates) built on superseded snapshots.

    A state page must not show last month's pairs as if they matched today's
    file: after a new snapshot the matches and lists say they are out of date
    and name the command the operator runs (``voterolls.freshness``).
    """
    if not WorkspacePaths(Path(workspace)).catalog.exists():
        return []
    try:
        from voterolls.freshness import existing
        from voterolls.store import Workspace

        return [c.message() for c in existing(Workspace(workspace, create=False)) if c.message()]
    except Exception as exc:  # the banner is advisory; the page still renders
        log.debug("freshness not checked: %s", type(exc).__name__)
        return []


def _pairs_path(workspace: Path) -> Path:
    return WorkspacePaths(Path(workspace)).link.pairs


def state_matches(workspace: Path, state: str, limit: int = 500, pair_ref: str | None = None) -> dict:
    """Candidate pairs involving ``state``'s own registrations, most probable first.

    Every row carries the pair reference both states see alike
    (:func:`voterolls.lists.build.pair_ref_sql`); ``pair_ref`` narrows the
    answer to that one pair - only if it involves ``state``, which is how a
    state can open the waterfall of its own pairs and no other.
    """
    from voterolls.lists.build import pair_key, pair_ref_sql

    path = _pairs_path(workspace)
    if not path.is_file():
        return {"available": False, "total": 0, "rows": [], "note": "Linkage has not been run yet."}
    key = pair_key(path.parent)
    con = duckdb.connect()
    try:
        cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_lit(path)})").fetchall()}
        gammas = sorted(c for c in cols if c.startswith("gamma_"))
        g_left = ", ".join(f'"{g}"' for g in gammas)
        g_sel = (", " + g_left) if gammas else ""
        dl = "dob_granularity_l" if "dob_granularity_l" in cols else "NULL"
        dr = "dob_granularity_r" if "dob_granularity_r" in cols else "NULL"
        weight = "match_weight" if "match_weight" in cols else "NULL"
        # Orient every pair so the state's own record is on the left; for a
        # cross-state pair the other side keeps only its state code.
        sql = f"""
            WITH p AS (SELECT *, {pair_ref_sql(key)} AS pair_ref FROM read_parquet({_lit(path)})),
            own AS (
                SELECT pair_ref, state_voter_id_l AS voter_id,
                       CASE WHEN state_r = $s THEN state_voter_id_r END AS other_voter_id,
                       state_r AS other_state, match_probability, {weight} AS match_weight,
                       {dl} AS dob_granularity, {dr} AS other_dob_granularity{g_sel}
                FROM p WHERE state_l = $s
                UNION ALL
                SELECT pair_ref, state_voter_id_r, NULL, state_l, match_probability, {weight},
                       {dr}, {dl}{g_sel}
                FROM p WHERE state_r = $s AND state_l <> $s
            )
            SELECT *, count(*) OVER () AS _total FROM own
            WHERE $r IS NULL OR pair_ref = $r
            ORDER BY match_probability DESC, voter_id LIMIT $n
        """
        rel = con.execute(sql, {"s": state, "n": int(limit), "r": pair_ref})
        names = [d[0] for d in rel.description]
        rows = [dict(zip(names, r, strict=True)) for r in rel.fetchall()]
    finally:
        con.close()
    total = rows[0]["_total"] if rows else 0
    for r in rows:
        r.pop("_total", None)
        if r["match_probability"] is not None:
            r["match_probability"] = round(float(r["match_probability"]), 4)
        if r["match_weight"] is not None:
            r["match_weight"] = round(float(r["match_weight"]), 2)
    # The top level of each comparison means "agrees exactly"; 0 means "disagrees"; -1 no data.
    gamma_max = {g: max((r[g] for r in rows if r[g] is not None), default=0) for g in gammas}
    return {"available": True, "total": int(total), "rows": rows, "gammas": gammas, "gamma_max": gamma_max,
            "stale": stale_products(workspace)}


def _registrations(workspace: Path):
    """A DuckDB connection with the workspace views, or None when there is no data yet."""
    from voterolls.store import Workspace

    if not WorkspacePaths(Path(workspace)).catalog.exists():
        return None  # nothing ingested yet (and opening would create a catalog)
    try:
        ws = Workspace(workspace, create=False)
        if not ws.states():
            return None
        return ws.connect()
    except Exception as exc:  # no catalog yet, or an empty workspace
        log.debug("workspace not readable yet: %s", type(exc).__name__)
        return None


def aggregates(workspace: Path) -> dict:
    """Counts per state (total and by status, DOB granularity, party), suppressed; match histogram."""
    out: dict = {"states": [], "categories": {}, "match_histogram": None, "small_cell": SMALL_CELL}
    con = _registrations(workspace)
    if con is not None:
        try:
            totals = con.execute(
                "SELECT state, count(*) FROM registrations GROUP BY state ORDER BY state"
            ).fetchall()
            counts = suppress([n for _, n in totals])
            out["states"] = [{"state": s, "registrations": c} for (s, _), c in zip(totals, counts, strict=True)]
            for col in ("status", "dob_granularity", "party"):
                rows = con.execute(
                    f"SELECT state, coalesce({col}, 'not given') AS v, count(*) FROM registrations "
                    "GROUP BY ALL ORDER BY 1, 2"
                ).fetchall()
                values = sorted({v for _, v, _ in rows})
                table: dict[str, dict[str, dict]] = {}
                for st in sorted({s for s, _, _ in rows}):
                    cells = {v: n for s, v, n in rows if s == st}
                    table[st] = merged_row(values, [cells.get(v, 0) for v in values])
                out["categories"][col] = {"values": values, "by_state": table}
        except duckdb.Error as exc:
            log.debug("aggregate query failed: %s", type(exc).__name__)
        finally:
            con.close()
    if _pairs_path(workspace).is_file():
        # the report's histogram, bar for bar: two products never publish
        # different cuts of the same pairs (a difference could isolate a few)
        from voterolls.report.data import gather_matches

        md = gather_matches(Path(workspace)).data
        if md is not None:
            e = md.bin_edges
            out["match_histogram"] = [
                {"from": e[i], "to": e[i + 1], "pairs": c}
                for i, c in enumerate(md.series[0].counts)
            ]
    return out
