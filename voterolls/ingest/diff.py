"""What changed between a state's last two snapshots: added, removed, changed registrations.

List maintenance and auditors want to know how a state's roll moved between
two deliveries.  The comparison is by ``state_voter_id`` (the state's own
key), in DuckDB over the two immutable Parquet files; the result is counts
only - how many registrations were added, removed, changed, and for the
changed ones how many times each field changed.  No value is ever returned,
so the output can be printed and logged.

Provenance columns (``source_file``, ``source_line``) are not compared: a
re-delivered file moves every line.  A state_voter_id that occurs more than
once in a snapshot is compared on its first occurrence (by source line) and
the number of such duplicates is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from voterolls.errors import UserError
from voterolls.schema import REGISTRATION_SCHEMA
from voterolls.sql import literal as _lit
from voterolls.store import Workspace, check_state

COMPARED = tuple(
    f.name for f in REGISTRATION_SCHEMA if f.name not in ("state", "state_voter_id", "source_file", "source_line")
)


@dataclass
class SnapshotDiff:
    state: str
    old_snapshot: str
    new_snapshot: str
    old_rows: int
    new_rows: int
    added: int
    removed: int
    changed: int
    unchanged: int
    duplicate_ids_old: int
    duplicate_ids_new: int
    vote_history_old: int
    vote_history_new: int
    #: field -> registrations whose value of that field changed (counts only)
    changed_fields: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_snapshots(ws: Workspace, state: str, old: str | None = None, new: str | None = None) -> SnapshotDiff:
    """Compare two snapshots of ``state`` (default: the last two)."""
    state = check_state(state)
    snaps = [s["snapshot_id"] for s in ws.snapshots(state)]
    if new is None:
        cur = ws.current().get(state)
        new = cur if cur is not None else (snaps[-1] if snaps else None)
    if new is None:
        raise UserError(f"no snapshot of {state} in this workspace", file=ws.path)
    if old is None:
        earlier = [s for s in snaps if s < new]
        if not earlier:
            raise UserError(f"{state} has only one snapshot; ingest a newer file to compare", file=ws.path)
        old = earlier[-1]
    for sid in (old, new):
        if sid not in snaps:
            raise UserError(f"no snapshot {sid!r} of {state}", file=ws.path)
    po = ws.snapshot_dir(state, old) / "registrations.parquet"
    pn = ws.snapshot_dir(state, new) / "registrations.parquet"
    con = duckdb.connect(config={"memory_limit": "1GB", "temp_directory": str(ws.path / "tmp" / "duckdb")})
    con.execute("SET enable_progress_bar = false")
    try:
        for alias, path in (("o", po), ("n", pn)):
            con.execute(
                f"CREATE TEMP VIEW {alias}_all AS SELECT * FROM read_parquet({_lit(str(path))})"
            )
            con.execute(
                f"CREATE TEMP VIEW {alias}_one AS SELECT * FROM {alias}_all "
                f"QUALIFY row_number() OVER (PARTITION BY state_voter_id ORDER BY source_line) = 1"
            )
        counts = con.execute(
            "SELECT (SELECT count(*) FROM o_all), (SELECT count(*) FROM n_all), "
            "(SELECT count(*) - count(DISTINCT state_voter_id) FROM o_all), "
            "(SELECT count(*) - count(DISTINCT state_voter_id) FROM n_all)"
        ).fetchall()[0]
        both = "o.state_voter_id IS NOT NULL AND n.state_voter_id IS NOT NULL"
        diffs = ", ".join(f'count(*) FILTER (WHERE {both} AND o."{c}" IS DISTINCT FROM n."{c}")' for c in COMPARED)
        any_diff = " OR ".join(f'o."{c}" IS DISTINCT FROM n."{c}"' for c in COMPARED)
        row = con.execute(
            "SELECT count(*) FILTER (WHERE o.state_voter_id IS NULL), "
            "count(*) FILTER (WHERE n.state_voter_id IS NULL), "
            f"count(*) FILTER (WHERE o.state_voter_id IS NOT NULL AND n.state_voter_id IS NOT NULL AND ({any_diff})), "
            f"count(*) FILTER (WHERE o.state_voter_id IS NOT NULL AND n.state_voter_id IS NOT NULL AND NOT ({any_diff})), "
            f"{diffs} "
            "FROM o_one o FULL OUTER JOIN n_one n ON o.state_voter_id = n.state_voter_id"
        ).fetchall()[0]
        vh = []
        for sid in (old, new):
            p = ws.snapshot_dir(state, sid) / "vote_history.parquet"
            vh.append(
                int(con.execute(f"SELECT count(*) FROM read_parquet({_lit(str(p))})").fetchall()[0][0]) if p.exists() else 0
            )
    finally:
        con.close()
    changed_fields = {c: int(v) for c, v in zip(COMPARED, row[4:], strict=True) if v}
    return SnapshotDiff(
        state=state,
        old_snapshot=old,
        new_snapshot=new,
        old_rows=int(counts[0]),
        new_rows=int(counts[1]),
        added=int(row[0]),
        removed=int(row[1]),
        changed=int(row[2]),
        unchanged=int(row[3]),
        duplicate_ids_old=int(counts[2]),
        duplicate_ids_new=int(counts[3]),
        vote_history_old=vh[0],
        vote_history_new=vh[1],
        changed_fields=dict(sorted(changed_fields.items(), key=lambda kv: (-kv[1], kv[0]))),
    )
