"""The parts of a delivery: each new file's scope, the guards, and the parts carried over.

A state's roll may arrive in parts (per county, a county range, the whole
state; ``voterolls.ingest.delivery`` decides which part a file is and which
old parts a delivery replaces).  The new snapshot is the old snapshot's
parts this delivery does not replace, copied row for row by ``source_file``,
followed by the new part's rows.  Protected voters travel with the
registrations part that says so: their digests (``protected.parquet``) are
kept for the carried-over parts, so history arriving later is withheld too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from voterolls.errors import UserError
from voterolls.ingest import archives
from voterolls.ingest.delivery import (
    STATE,
    DeliveryOptions,
    PartFile,
    check_guards,
    normalise_scope,
    plan_retained,
    scope_from_name,
)
from voterolls.ingest.results import FileResult
from voterolls.ingest.writer import BATCH_ROWS, parquet_writer, quiet, scratch_connection
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA
from voterolls.sql import literal as _lit
from voterolls.store import StagedSnapshot, Workspace

#: Protected voters' ids are never stored; their digests are, so that vote history arriving in
#: a later part is withheld too (``protected.parquet``).  A digest of an id is not a secret to
#: someone holding the state's roll; it keeps the ids out of plain view, nothing more.
PROTECTED_DIGEST_SQL = "sha256(CAST({id} AS VARCHAR))"
PROTECTED_FILE = "protected.parquet"


def _member_name(display: str) -> str:
    """The file's own name inside a container (``a.zip!dir/x.txt`` -> ``x.txt``)."""
    return display.rsplit("!", 1)[-1].rsplit("/", 1)[-1]


def _layouts(spec: Any) -> dict[str, Any]:
    return spec.layouts() if spec is not None and hasattr(spec, "layouts") else {}


def assign_scopes(
    files: list[FileResult], options: DeliveryOptions, state: str, spec: Any, reg_path: Path, vh_path: Path
) -> None:
    """Each new file's scope: as given, else from its name, else from its rows' one county, else the state."""
    layouts = _layouts(spec)
    by_data: list[FileResult] = []
    for fr in files:
        if options.scope is not None:
            fr.scope = options.scope
            continue
        found = scope_from_name(_member_name(fr.file_name), fr.role, state, layouts)
        lay = layouts.get(fr.role)
        if found is None and lay is not None and getattr(lay, "per_county", False):
            by_data.append(fr)
        fr.scope = found or STATE
    if not by_data:
        return
    con = quiet(duckdb.connect())
    try:
        for path, role in ((reg_path, "registrations"), (vh_path, "history")):
            want = [fr for fr in by_data if fr.role == role]
            if not want:
                continue
            rows = con.execute(
                f"SELECT source_file, count(DISTINCT county), any_value(county) FROM read_parquet({_lit(str(path))}) "
                "WHERE source_file IN (SELECT unnest(?)) GROUP BY source_file",
                [[fr.sha256 for fr in want]],
            ).fetchall()
            one = {sha: value for sha, n, value in rows if n == 1 and value}
            for fr in want:
                if fr.sha256 in one:
                    try:
                        fr.scope = normalise_scope("county:" + str(one[fr.sha256]))
                    except UserError:
                        fr.scope = STATE  # a county value that is no scope name: the file stays statewide
    finally:
        con.close()


def base_protected(ws: Workspace, base: dict[str, Any] | None, options: DeliveryOptions) -> Path | None:
    """The digests of protected voters known from the parts the new snapshot builds on."""
    if base is None or options.replace_state:
        return None
    p = ws.path / base["path"] / PROTECTED_FILE
    return p if p.is_file() else None


def still_protecting(
    ws: Workspace, base: dict[str, Any] | None, options: DeliveryOptions, inputs: Sequence[archives.Input],
    scan: Any, state: str,
) -> set[str]:  # fmt: skip
    """The current snapshot's registration files whose protected voters still count for new history.

    Those this delivery does not replace: judged by the new registration
    files' names (a file whose scope only its rows tell counts as replacing
    nothing, so more history is withheld, never less).
    """
    if base is None or options.replace_state:
        return set()
    layouts = _layouts(getattr(scan, "format_spec", None))
    new_scopes = set()
    for f in getattr(scan, "files", []):
        if f.role != "registrations":
            continue
        name = next((i.display for i in inputs if str(i.path) == str(f.path)), Path(f.path).name)
        found = options.scope or scope_from_name(_member_name(name), "registrations", state, layouts)
        if found is not None:
            new_scopes.add(found)
    if STATE in new_scopes:
        return set()
    return {fr.sha256 for fr in base_files(ws, base) if fr.role == "registrations" and fr.scope not in new_scopes}


def base_files(ws: Workspace, base: dict[str, Any]) -> list[FileResult]:
    """The current snapshot's files, with their scopes and per-file counts (older manifests: defaults)."""
    manifest = json.loads((ws.path / base["path"] / "manifest.json").read_text())
    names = {f.name for f in dataclasses.fields(FileResult)}
    out = []
    for entry in manifest.get("files", []):
        fr = FileResult(**{k: v for k, v in entry.items() if k in names})
        fr.scope = fr.scope or STATE
        fr.part_snapshot = fr.part_snapshot or base["snapshot_id"]
        out.append(fr)
    return out


def _part(fr: FileResult) -> PartFile:
    return PartFile(
        file_name=fr.file_name, sha256=fr.sha256, role=fr.role, scope=fr.scope, loaded=fr.loaded,
        vote_history_loaded=fr.vote_history_loaded, rows_read=fr.rows_read,
    )  # fmt: skip


def carry_over(
    ws: Workspace, staged: StagedSnapshot, state: str, files: list[FileResult], base: dict[str, Any] | None,
    options: DeliveryOptions, new_protected: pa.Table,
) -> list[FileResult]:  # fmt: skip
    """Apply the guards, then carry the parts this delivery does not replace into the new snapshot.

    ``new_protected``: (state_voter_id, source_file) of the protected voters
    of the new files.  Returns the retained files (their counts as in the
    snapshot they come from, less vote-history rows of voters this delivery
    marks protected).  Rows are copied by ``source_file`` from the current
    snapshot's Parquet (DuckDB filter, Arrow batches; the new part's rows
    follow them).
    """
    old = base_files(ws, base) if base is not None else []
    new_parts = [_part(fr) for fr in files]
    old_parts = [_part(fr) for fr in old]
    new_shas = {fr.sha256 for fr in files}
    kept = [k for k in plan_retained(new_parts, old_parts, options, state) if k.sha256 not in new_shas]
    check_guards(state, new_parts, old_parts, kept, options)
    con = scratch_connection(staged.tmp_dir)
    try:
        con.register("_vr_new_prot", new_protected)
        keep_shas = {k.sha256 for k in kept}
        con.register("_vr_keep", pa.table({"sha": pa.array(sorted(keep_shas), pa.string())}))
        _write_protected(con, staged, base_protected(ws, base, options))
        if not kept:
            return []
        assert base is not None  # parts are kept only from a current snapshot
        retained = [fr for fr in old if fr.sha256 in keep_shas]
        old_dir = ws.path / base["path"]
        keep = "source_file IN (SELECT sha FROM _vr_keep)"
        _merge(con, old_dir, staged, "registrations.parquet", REGISTRATION_SCHEMA, keep)
        # vote history of voters this delivery marks protected is withheld from the retained parts too
        newly = "state_voter_id IN (SELECT state_voter_id FROM _vr_new_prot)"
        withheld = dict(
            con.execute(
                f"SELECT source_file, count(*) FROM read_parquet({_lit(str(old_dir / 'vote_history.parquet'))}) "
                f"WHERE {keep} AND {newly} GROUP BY source_file"
            ).fetchall()
        ) if new_protected.num_rows else {}  # fmt: skip
        _merge(con, old_dir, staged, "vote_history.parquet", VOTE_HISTORY_SCHEMA, f"{keep} AND NOT ({newly})")
        _merge(con, old_dir, staged, "quarantine.parquet", None, "sha256 IN (SELECT sha FROM _vr_keep)")
    finally:
        con.close()
    for fr in retained:
        n = int(withheld.get(fr.sha256, 0))
        fr.vote_history_loaded -= n
        fr.vote_history_withheld += n
    return retained


def _write_protected(con: duckdb.DuckDBPyConnection, staged: StagedSnapshot, earlier: Path | None) -> None:
    """``protected.parquet``: (digest, registration file) of every protected voter of the new view.

    A voter's protection comes with the registrations part that says so: the
    digests of a replaced part go with it, those of a carried-over part stay.
    """
    sql = f"SELECT DISTINCT {PROTECTED_DIGEST_SQL.format(id='state_voter_id')} AS d, source_file FROM _vr_new_prot"
    if earlier is not None:
        sql += (
            f" UNION SELECT d, source_file FROM read_parquet({_lit(str(earlier))}) "
            "WHERE source_file IN (SELECT sha FROM _vr_keep)"
        )
    table = con.sql(sql).to_arrow_table()
    if table.num_rows:
        pq.write_table(table.sort_by([("d", "ascending"), ("source_file", "ascending")]), staged.dir / PROTECTED_FILE, compression="zstd")


def _merge(
    con: duckdb.DuckDBPyConnection, old_dir: Path, staged: StagedSnapshot, name: str, schema: pa.Schema | None, where: str
) -> None:
    """``staged/name`` becomes the old snapshot's rows matching ``where`` followed by the new part's rows."""
    new = staged.dir / name
    part = staged.tmp_dir / f"part_{name}"
    os.replace(new, part)
    old = old_dir / name
    out_schema = schema if schema is not None else pq.read_schema(part)
    writer = parquet_writer(new, out_schema) if schema is not None else pq.ParquetWriter(new, out_schema, compression="zstd")
    try:
        sources: list[Iterable[pa.RecordBatch]] = []
        if old.is_file():
            sources.append(con.sql(f"SELECT * FROM read_parquet({_lit(str(old))}) WHERE {where}").to_arrow_reader(BATCH_ROWS))
        sources.append(pq.ParquetFile(part).iter_batches(BATCH_ROWS))
        for batches in sources:
            for b in batches:
                if b.num_rows:
                    t = pa.Table.from_batches([b]).select(out_schema.names).cast(out_schema)
                    writer.write_table(t, row_group_size=max(1, t.num_rows))
    finally:
        writer.close()
    part.unlink(missing_ok=True)


def scope_summary(files: list[FileResult]) -> list[dict[str, Any]]:
    """Per (role, scope): files, rows and the snapshot(s) the rows were first ingested in."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for fr in files:
        e = out.setdefault(
            (fr.role, fr.scope),
            {"role": fr.role, "scope": fr.scope, "files": 0, "loaded": 0, "vote_history_loaded": 0, "part_snapshots": []},
        )
        e["files"] += 1
        e["loaded"] += fr.loaded
        e["vote_history_loaded"] += fr.vote_history_loaded
        if fr.part_snapshot and fr.part_snapshot not in e["part_snapshots"]:
            e["part_snapshots"].append(fr.part_snapshot)
    return [out[k] for k in sorted(out)]
