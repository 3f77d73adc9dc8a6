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

Per scope (``scopes``): a state delivered in parts (counties, county ranges;
``voterolls.ingest.delivery``) changes only the scopes of its files, so the
same counts are given per scope - a row belongs to its file's scope - with
``replaced`` saying whether the delivery brought new files for that scope.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from voterolls.errors import UserError
from voterolls.schema import REGISTRATION_SCHEMA
from voterolls.sql import literal as _lit
from voterolls.store import Workspace, check_state, snapshot_damage

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
    #: per scope: scope, replaced, old_rows, new_rows, added, removed, changed, vote_history_old/new
    scopes: list[dict[str, Any]] = field(default_factory=list)

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
    records = {s["snapshot_id"]: s for s in ws.snapshots(state)}
    dirs = {sid: _checked_dir(ws, records[sid]) for sid in (old, new)}
    po = dirs[old] / "registrations.parquet"
    pn = dirs[new] / "registrations.parquet"
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
        scopes = _per_scope(con, ws, state, (old, dirs[old]), (new, dirs[new]))
        vh = [
            int(con.execute(f"SELECT count(*) FROM read_parquet({_lit(str(dirs[sid] / 'vote_history.parquet'))})").fetchall()[0][0])
            for sid in (old, new)
        ]
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
        scopes=scopes,
    )


def _checked_dir(ws: Workspace, record: dict[str, Any]) -> Path:
    """The snapshot's directory, after the one snapshot check (:func:`voterolls.store.snapshot_damage`).

    A snapshot whose files are missing, cut short or of another row count
    than the catalog's would be compared as if rows had been added or
    removed: refuse it in one sentence instead.
    """
    state, sid = record["state"], record["snapshot_id"]
    snap_dir = ws.path / record["path"] if record.get("path") else ws.snapshot_dir(state, sid)
    damage = snapshot_damage(snap_dir, record)
    if damage is not None:
        raise UserError(
            f"snapshot {sid} of {state} cannot be compared: {damage}; restore the workspace from a "
            "backup or ingest the state's files again",
            file=snap_dir / damage.file,
        )
    return snap_dir


def _per_scope(
    con: duckdb.DuckDBPyConnection, ws: Workspace, state: str, old: tuple[str, Path], new: tuple[str, Path]
) -> list[dict[str, Any]]:
    """The diff's counts per scope; a row's scope is its file's (files without one: the state)."""
    files = {}
    for alias, (sid, _dir) in (("o", old), ("n", new)):
        rows = [(f["sha256"], f.get("scope") or "state") for f in ws.file_manifests(state, sid)]
        files[alias] = {sha: sc for sha, sc in rows}
        con.register(
            f"{alias}_scope",
            pa.table({"sha": pa.array([r[0] for r in rows], pa.string()), "scope": pa.array([r[1] for r in rows], pa.string())}),
        )
    out: dict[str, dict[str, Any]] = {}

    def entry(scope: str) -> dict[str, Any]:
        return out.setdefault(scope, {
            "scope": scope, "replaced": False, "old_rows": 0, "new_rows": 0, "added": 0, "removed": 0, "changed": 0,
            "vote_history_old": 0, "vote_history_new": 0,
        })  # fmt: skip

    for alias, key in (("o", "old_rows"), ("n", "new_rows")):
        for scope, n in con.execute(
            f"SELECT coalesce(s.scope, 'state'), count(*) FROM {alias}_all r LEFT JOIN {alias}_scope s ON s.sha = r.source_file GROUP BY 1"
        ).fetchall():
            entry(scope)[key] += int(n)
    any_diff = " OR ".join(f'o."{c}" IS DISTINCT FROM n."{c}"' for c in COMPARED)
    for scope, added, removed, changed in con.execute(
        "SELECT coalesce(ns.scope, os.scope, 'state'), "
        "count(*) FILTER (WHERE o.state_voter_id IS NULL), count(*) FILTER (WHERE n.state_voter_id IS NULL), "
        f"count(*) FILTER (WHERE o.state_voter_id IS NOT NULL AND n.state_voter_id IS NOT NULL AND ({any_diff})) "
        "FROM o_one o FULL OUTER JOIN n_one n ON o.state_voter_id = n.state_voter_id "
        "LEFT JOIN o_scope os ON os.sha = o.source_file LEFT JOIN n_scope ns ON ns.sha = n.source_file GROUP BY 1"
    ).fetchall():
        e = entry(scope)
        e["added"], e["removed"], e["changed"] = int(added), int(removed), int(changed)
    for alias, (_sid, snap_dir), key in (("o", old, "vote_history_old"), ("n", new, "vote_history_new")):
        p = snap_dir / "vote_history.parquet"
        for scope, n in con.execute(
            f"SELECT coalesce(s.scope, 'state'), count(*) FROM read_parquet({_lit(str(p))}) v "
            f"LEFT JOIN {alias}_scope s ON s.sha = v.source_file GROUP BY 1"
        ).fetchall():
            entry(scope)[key] += int(n)
    for scope in set(files["o"].values()) | set(files["n"].values()):
        before = {sha for sha, sc in files["o"].items() if sc == scope}
        after = {sha for sha, sc in files["n"].items() if sc == scope}
        entry(scope)["replaced"] = before != after
    return [out[k] for k in sorted(out)]
