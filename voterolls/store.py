"""The workspace: a DuckDB catalog plus immutable Parquet snapshots per state.

Layout (docs/ARCHITECTURE.md, "Workspace")::

    W/catalog.duckdb                  snapshots, file_manifests, current
    W/states/XX/<snapshot_id>/        registrations.parquet, vote_history.parquet,
                                      quarantine.parquet, uniformity.parquet, manifest.json
    W/tmp/                            snapshots being written, DuckDB spill files

Why it is built this way:

* **Atomic.** A snapshot is written into ``W/tmp/<name>/``, fsynced, renamed
  into ``W/states/XX/`` (one ``rename``, atomic on one file system) and only
  then made current in one catalog transaction.  A process killed at any
  point leaves either the old ``current`` row (the new directory is an orphan
  or a temp dir, removed on the next open) or the new one; never a half.
* **Idempotent.** Each snapshot records an ``ingest_key`` (hash of the input
  files' sha256, sealed sidecar, override and policy); the same key for a
  state's current snapshot means "nothing to do".
* **Concurrent.** DuckDB allows one writer process per database file, so every
  catalog access takes an ``flock`` on ``W/catalog.lock`` (exclusive to write,
  shared to read) and holds the catalog open only for that access.  Ingests of
  different states run in parallel; only their short commits serialise.
* **Readers never block writers.** :meth:`Workspace.connect` returns an
  in-memory DuckDB connection with views over the Parquet files of the current
  snapshots; snapshots are immutable, so a reader sees a consistent picture
  while another state is being ingested.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from voterolls.errors import UserError, not_a_memory_size
from voterolls.log import get_logger
from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, sql_type
from voterolls.sql import literal

log = get_logger(__name__)

DEFAULT_WORKSPACE = Path("workspace")

SNAPSHOT_FILES = (
    "registrations.parquet",
    "vote_history.parquet",
    "quarantine.parquet",
    "uniformity.parquet",
    "manifest.json",
)

_CATALOG_DDL = """
CREATE TABLE IF NOT EXISTS snapshots (
    state VARCHAR NOT NULL,
    snapshot_id VARCHAR NOT NULL PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    format VARCHAR,
    file_sha256s VARCHAR[],
    ingest_key VARCHAR,
    rows_read BIGINT,
    loaded BIGINT,
    quarantined BIGINT,
    protected_excluded BIGINT,
    vote_history_loaded BIGINT,
    vote_history_withheld BIGINT,
    sealed_sha256 VARCHAR,
    sealed_matched BIGINT,
    override_fields VARCHAR[],
    override_legal_basis VARCHAR,
    policy_fingerprint VARCHAR,
    elapsed_s DOUBLE,
    path VARCHAR
);
CREATE TABLE IF NOT EXISTS current (
    state VARCHAR PRIMARY KEY,
    snapshot_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS file_manifests (
    state VARCHAR NOT NULL,
    snapshot_id VARCHAR NOT NULL,
    file_name VARCHAR,
    sha256 VARCHAR,
    role VARCHAR,
    encoding VARCHAR,
    rows_read BIGINT,
    loaded BIGINT,
    quarantined BIGINT,
    protected_excluded BIGINT,
    vote_history_loaded BIGINT,
    vote_history_withheld BIGINT
);
ALTER TABLE file_manifests ADD COLUMN IF NOT EXISTS scope VARCHAR;
ALTER TABLE file_manifests ADD COLUMN IF NOT EXISTS container_sha256 VARCHAR;
ALTER TABLE file_manifests ADD COLUMN IF NOT EXISTS part_snapshot VARCHAR;
"""

#: Columns of ``snapshots`` in insertion order (``SnapshotRecord`` fields).
SNAPSHOT_COLUMNS = (
    "state", "snapshot_id", "created_at", "format", "file_sha256s", "ingest_key", "rows_read",
    "loaded", "quarantined", "protected_excluded", "vote_history_loaded", "vote_history_withheld",
    "sealed_sha256", "sealed_matched", "override_fields", "override_legal_basis",
    "policy_fingerprint", "elapsed_s", "path",
)  # fmt: skip

#: ``scope``: the part of the state the file covers (``state``, ``county:ALA``, ``range:1-22``;
#: voterolls.ingest.delivery); ``container_sha256``: the archive it was unpacked from;
#: ``part_snapshot``: the snapshot that first ingested it (files carried into later
#: snapshots keep it).  Catalogs made before these columns existed gain them empty.
FILE_MANIFEST_COLUMNS = (
    "state", "snapshot_id", "file_name", "sha256", "role", "encoding", "rows_read", "loaded",
    "quarantined", "protected_excluded", "vote_history_loaded", "vote_history_withheld",
    "scope", "container_sha256", "part_snapshot",
)  # fmt: skip


def empty_select(schema: pa.Schema) -> str:
    """A zero-row ``SELECT`` with ``schema``'s columns and types (for views over no files)."""
    cols = ", ".join(f'NULL::{sql_type(f.type)} AS "{f.name}"' for f in schema)
    return f"SELECT {cols} WHERE false"


def new_snapshot_id(now: dt.datetime | None = None) -> str:
    """Sortable, unique snapshot id: UTC time to the microsecond plus a random tail."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def fsync_tree(path: Path) -> None:
    """fsync every file in ``path`` and the directory itself (durability before rename)."""
    for p in sorted(path.rglob("*")):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_damage(exc: duckdb.Error) -> bool:
    """Does a DuckDB error raised while using the catalog say the file itself is bad?"""
    if isinstance(exc, (duckdb.IOException, duckdb.SerializationException, duckdb.FatalException)):
        return True
    if isinstance(exc, duckdb.InternalException):
        return True  # what DuckDB raises when a block decodes to nonsense
    msg = str(exc)
    return type(exc) is duckdb.Error or "Corrupt" in msg or "checksum" in msg


def catalog_error(path: Path, exc: BaseException) -> UserError:
    """The ``UserError`` for a catalog DuckDB cannot open or read, naming the file and what to do."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    log.debug("catalog %s unusable: %s", path, reason)
    if "Could not set lock" in reason or "Conflicting lock" in reason:
        return UserError(
            "the workspace catalog (catalog.duckdb) is held open by another program "
            f"({reason}); close it and try again",
            file=path,
        )
    return UserError(
        f"the workspace catalog (catalog.duckdb) cannot be used ({reason}); if it is damaged, "
        "restore catalog.duckdb from a backup. The snapshots under states/ are separate Parquet "
        "files and are not affected; do not delete catalog.duckdb, a new empty catalog cannot see them",
        file=path,
    )


def check_state(state: str) -> str:
    code = (state or "").strip().upper()
    if code not in JURISDICTIONS:
        raise UserError(f"unknown state code {state!r}: expected one of the 50 states or DC", field="state")
    return code


@dataclass
class StagedSnapshot:
    """A snapshot being written: its temp directory, held under a lock until committed."""

    workspace: Workspace
    state: str
    snapshot_id: str
    dir: Path
    _lock_fd: int | None = None

    @property
    def tmp_dir(self) -> Path:
        """Scratch space (DuckDB spill) for this ingest, removed with the stage."""
        d = self.dir / "_scratch"
        d.mkdir(exist_ok=True)
        return d

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


@dataclass(frozen=True)
class LinkFiles:
    """The files of a linkage run's output directory (``W/link`` in a workspace)."""

    dir: Path

    @property
    def pairs(self) -> Path:
        """Every scored candidate pair (docs/ARCHITECTURE.md, "Linkage output")."""
        return self.dir / "pairs.parquet"

    @property
    def clusters(self) -> Path:
        return self.dir / "clusters.parquet"

    @property
    def model(self) -> Path:
        """The trained Splink model with this data's prior (external lists score with it)."""
        return self.dir / "model.json"

    @property
    def report(self) -> Path:
        """The linkage stage's summary (counts, timings, training)."""
        return self.dir / "link_report.json"

    @property
    def calibration(self) -> Path:
        """The linkage probabilities' calibration, checked without truth by the estimates stage."""
        return self.dir / "calibration.json"


@dataclass(frozen=True)
class WorkspacePaths:
    """Where each product of a workspace lives: the one place that spells those paths.

    Pure paths, no I/O, so a reader can ask before anything exists (the report
    says "no estimates yet" rather than creating a catalog).  ``Workspace.paths``
    gives the same for an open workspace.
    """

    root: Path

    @property
    def link(self) -> LinkFiles:
        return LinkFiles(self.root / "link")

    @property
    def estimates_dir(self) -> Path:
        return self.root / "estimates"

    @property
    def estimates(self) -> Path:
        return self.estimates_dir / "estimates.json"

    @property
    def tracker(self) -> Path:
        """The records-request tracker (voterolls.requests)."""
        return self.root / "requests" / "tracker.json"

    @property
    def lists_dir(self) -> Path:
        return self.root / "lists"

    def state_lists(self, state: str) -> Path:
        """A state's list-maintenance files as the service builds them."""
        return self.lists_dir / state

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def service_dir(self) -> Path:
        return self.root / "service"

    @property
    def accounts(self) -> Path:
        return self.service_dir / "accounts.json"

    @property
    def audit_log(self) -> Path:
        return self.service_dir / "audit.log"

    @property
    def uploads_dir(self) -> Path:
        """Uploaded files waiting for (or kept after) their ingest."""
        return self.service_dir / "uploads"


class Workspace:
    """A directory holding the catalog and the per-state snapshots (see module docstring)."""

    @property
    def paths(self) -> WorkspacePaths:
        """Where this workspace's products live (pairs, model, estimates, tracker, lists, ...)."""
        return WorkspacePaths(self.path)

    def __init__(self, path: str | Path = DEFAULT_WORKSPACE, *, create: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            if not create:
                raise UserError("workspace does not exist", file=self.path)
            self.path.mkdir(parents=True)
        elif not self.path.is_dir():
            raise UserError("workspace path is not a directory", file=self.path)
        self.catalog_path = self.path / "catalog.duckdb"
        self.lock_path = self.path / "catalog.lock"
        (self.path / "states").mkdir(exist_ok=True)
        (self.path / "tmp").mkdir(exist_ok=True)
        if not self.catalog_path.exists():
            self._refuse_lost_catalog()
        with self._catalog(write=True) as con:
            con.execute(_CATALOG_DDL)
            self._clean_stale(con)

    # -- locking and catalog access ---------------------------------------------
    @contextlib.contextmanager
    def _flock(self, exclusive: bool) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def _catalog(self, write: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The catalog, opened for the duration of one access under the file lock.

        A catalog DuckDB cannot open or read (bit rot, a truncated copy, not a
        DuckDB file, another program holding it) is a ``UserError`` naming
        ``catalog.duckdb``, never a traceback (see :func:`catalog_error`).
        """
        with self._flock(exclusive=write):
            if not write and not self.catalog_path.exists():
                con = duckdb.connect()
                con.execute(_CATALOG_DDL)
            else:
                try:
                    con = duckdb.connect(str(self.catalog_path), read_only=not write)
                except duckdb.Error as exc:
                    raise catalog_error(self.catalog_path, exc) from None
            try:
                yield con
            except duckdb.Error as exc:
                if _is_damage(exc):
                    raise catalog_error(self.catalog_path, exc) from None
                raise
            finally:
                con.close()

    def _refuse_lost_catalog(self) -> None:
        """No catalog but committed-looking snapshot directories: the catalog was lost.

        A new, empty catalog would make every snapshot directory look
        uncommitted, and :meth:`_clean_stale` would delete them all; refuse
        instead, so the catalog can be restored.
        """
        snaps = [
            d
            for state_dir in (self.path / "states").iterdir()
            if state_dir.is_dir()
            for d in state_dir.iterdir()
            if d.is_dir()
        ]
        if snaps:
            raise UserError(
                f"the workspace catalog (catalog.duckdb) is missing, but states/ holds {len(snaps)} "
                f"snapshot director{'y' if len(snaps) == 1 else 'ies'}; restore catalog.duckdb from a "
                "backup (starting a new catalog would discard every snapshot)",
                file=self.catalog_path,
            )

    def _clean_stale(self, con: duckdb.DuckDBPyConnection) -> None:
        """Remove temp dirs of dead ingests and snapshot dirs never committed (under the lock)."""
        tmp = self.path / "tmp"
        for d in tmp.iterdir():
            if not (d.is_dir() and len(d.name) > 3 and d.name[:2] in JURISDICTIONS and d.name[2] == "-"):
                continue  # not a staged snapshot (e.g. the shared DuckDB spill directory)
            fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live ingest holds it
            try:
                shutil.rmtree(d, ignore_errors=True)
                log.info("removed stale ingest directory %s", d.name)
            finally:
                os.close(fd)
        known = {r[0] for r in con.execute("SELECT snapshot_id FROM snapshots").fetchall()}
        for state_dir in (self.path / "states").iterdir():
            if not state_dir.is_dir():
                continue
            for snap in state_dir.iterdir():
                if snap.is_dir() and snap.name not in known:
                    # renamed into place but its commit never happened: not a snapshot
                    shutil.rmtree(snap, ignore_errors=True)
                    log.info("removed uncommitted snapshot %s/%s", state_dir.name, snap.name)

    # -- writing ------------------------------------------------------------------
    @contextlib.contextmanager
    def state_lock(self, state: str) -> Iterator[None]:
        """Serialise ingests of one state (different states still run in parallel).

        Held from the "is this input already current?" check to the commit, so
        two processes given the same files at once make one snapshot: the
        second waits, then finds the first one's snapshot current.
        """
        d = self.path / "locks"
        d.mkdir(exist_ok=True)
        fd = os.open(d / f"{check_state(state)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def stage(self, state: str) -> StagedSnapshot:
        """Create a locked temp directory for a new snapshot of ``state``."""
        state = check_state(state)
        sid = new_snapshot_id()
        d = self.path / "tmp" / f"{state}-{sid}"
        d.mkdir(parents=True)
        fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return StagedSnapshot(self, state, sid, d, fd)

    def discard(self, staged: StagedSnapshot) -> None:
        """Throw away a staged snapshot (an ingest that failed or found nothing new)."""
        shutil.rmtree(staged.dir, ignore_errors=True)
        staged.release()

    def commit(
        self,
        staged: StagedSnapshot,
        snapshot: dict[str, Any],
        files: list[dict[str, Any]],
    ) -> Path | None:
        """Make ``staged`` the current snapshot of its state, atomically.

        Returns None (and discards the stage) when the state's current snapshot
        already has the same ``ingest_key``: another process ingested the same
        inputs first.

        Order: fsync the files, then under the exclusive catalog lock rename the
        directory into ``states/XX/`` and record it + flip ``current`` in one
        transaction.  A crash between rename and commit leaves an orphan that
        the next open removes; the previous snapshot stays current.
        """
        scratch = staged.dir / "_scratch"
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
        fsync_tree(staged.dir)
        final = self.path / "states" / staged.state / staged.snapshot_id
        final.parent.mkdir(parents=True, exist_ok=True)
        record = {**snapshot, "state": staged.state, "snapshot_id": staged.snapshot_id}
        record["path"] = str(final.relative_to(self.path))
        missing = [c for c in SNAPSHOT_COLUMNS if c not in record]
        if missing:
            raise ValueError(f"snapshot record lacks {missing}")
        with self._catalog(write=True) as con:
            same = con.execute(
                "SELECT s.snapshot_id FROM current c JOIN snapshots s USING (snapshot_id) "
                "WHERE c.state = ? AND s.ingest_key = ?",
                [staged.state, record.get("ingest_key")],
            ).fetchall()
            if same and record.get("ingest_key"):
                self.discard(staged)
                return None
            os.rename(staged.dir, final)
            _fsync_dir(final.parent)
            _fsync_dir(self.path / "tmp")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(
                    f"INSERT INTO snapshots ({', '.join(SNAPSHOT_COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in SNAPSHOT_COLUMNS)})",
                    [record[c] for c in SNAPSHOT_COLUMNS],
                )
                for f in files:
                    row = {**f, "state": staged.state, "snapshot_id": staged.snapshot_id}
                    con.execute(
                        f"INSERT INTO file_manifests ({', '.join(FILE_MANIFEST_COLUMNS)}) VALUES "
                        f"({', '.join('?' for _ in FILE_MANIFEST_COLUMNS)})",
                        [row.get(c) for c in FILE_MANIFEST_COLUMNS],
                    )
                con.execute(
                    "INSERT OR REPLACE INTO current (state, snapshot_id) VALUES (?, ?)",
                    [staged.state, staged.snapshot_id],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                shutil.rmtree(final, ignore_errors=True)
                raise
        staged.release()
        (final / ".lock").unlink(missing_ok=True)
        log.info("snapshot %s/%s committed", staged.state, staged.snapshot_id)
        return final

    # -- reading ------------------------------------------------------------------
    def current(self) -> dict[str, str]:
        """State -> current snapshot id."""
        with self._catalog() as con:
            return dict(con.execute("SELECT state, snapshot_id FROM current ORDER BY state").fetchall())

    def record_built_from(self, product_dir: Path) -> dict[str, str]:
        """Write ``product_dir/built_from.json``: the snapshot of every state a derived
        product (linkage, estimates, lists) was just built from (``voterolls.freshness``)."""
        snaps = self.current()
        product_dir = Path(product_dir)
        product_dir.mkdir(parents=True, exist_ok=True)
        tmp = product_dir / ".built_from.json.tmp"
        tmp.write_text(json.dumps({"snapshots": snaps, "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}))
        os.replace(tmp, product_dir / "built_from.json")
        return snaps

    def built_from(self, product_dir: Path) -> dict[str, str] | None:
        """The snapshots a derived product records, or None when it records none."""
        try:
            doc = json.loads((Path(product_dir) / "built_from.json").read_text())
            return {str(k): str(v) for k, v in doc["snapshots"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def snapshots(self, state: str | None = None) -> list[dict[str, Any]]:
        """Snapshot records (newest last), optionally of one state."""
        sql = f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM snapshots"
        params: list[Any] = []
        if state:
            sql += " WHERE state = ?"
            params.append(check_state(state))
        sql += " ORDER BY state, created_at, snapshot_id"
        with self._catalog() as con:
            rows = con.execute(sql, params).fetchall()
        return [dict(zip(SNAPSHOT_COLUMNS, r, strict=True)) for r in rows]

    def current_snapshot(self, state: str) -> dict[str, Any] | None:
        sid = self.current().get(check_state(state))
        if sid is None:
            return None
        return next(s for s in self.snapshots(state) if s["snapshot_id"] == sid)

    def file_manifests(self, state: str, snapshot_id: str) -> list[dict[str, Any]]:
        with self._catalog() as con:
            rows = con.execute(
                f"SELECT {', '.join(FILE_MANIFEST_COLUMNS)} FROM file_manifests "
                "WHERE state = ? AND snapshot_id = ? ORDER BY file_name",
                [check_state(state), snapshot_id],
            ).fetchall()
        return [dict(zip(FILE_MANIFEST_COLUMNS, r, strict=True)) for r in rows]

    def snapshot_dir(self, state: str, snapshot_id: str) -> Path:
        return self.path / "states" / check_state(state) / snapshot_id

    def manifest(self, state: str, snapshot_id: str | None = None) -> dict[str, Any]:
        """The ``manifest.json`` of a snapshot (default: the current one)."""
        if snapshot_id is None:
            snap = self.current_snapshot(state)
            if snap is None:
                raise UserError(f"no snapshot of {state} in this workspace", file=self.path)
            snapshot_id = snap["snapshot_id"]
        return json.loads((self.snapshot_dir(state, snapshot_id) / "manifest.json").read_text())

    def connect(self, read_only: bool = True, *, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with views over the current snapshot of every state.

        Views: ``registrations``, ``vote_history``, ``quarantine``,
        ``uniformity`` (union by name over the current snapshots) and tables
        ``snapshots``, ``current``, ``file_manifests`` (a copy of the catalog
        taken at connect time).  The connection is in memory: the Parquet
        files are immutable, so it never blocks an ingest.  ``read_only=True``
        (the default) attaches nothing writable; with ``read_only=False`` the
        caller may create its own tables in the in-memory database (scratch
        work, e.g. linkage) - the snapshot data stay read-only either way.
        """
        cfg: dict[str, Any] = {}
        _ = read_only  # the snapshot data are read-only in every mode (see above)
        if memory_limit:
            cfg["memory_limit"] = memory_limit
        try:
            con = duckdb.connect(config=cfg)
        except duckdb.Error:
            raise not_a_memory_size(memory_limit) from None
        tmp = self.path / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {literal(tmp)}")
        with self._catalog() as cat:
            current = cat.execute(
                "SELECT c.state, c.snapshot_id, s.path FROM current c JOIN snapshots s USING (snapshot_id) ORDER BY c.state"
            ).fetchall()
            for table, cols in (
                ("snapshots", SNAPSHOT_COLUMNS),
                ("current", ("state", "snapshot_id")),
                ("file_manifests", FILE_MANIFEST_COLUMNS),
            ):
                arrow = cat.sql(f"SELECT {', '.join(cols)} FROM {table}").to_arrow_table()
                con.register(f"_vr_{table}", arrow)
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM _vr_{table}")
                con.unregister(f"_vr_{table}")
        dirs = [self.path / p for _, _, p in current]
        for state, sid, p in current:
            _check_snapshot_files(self.path / p, state, sid)
        for view, schema in (
            ("registrations", REGISTRATION_SCHEMA),
            ("vote_history", VOTE_HISTORY_SCHEMA),
            ("quarantine", None),
            ("uniformity", None),
        ):
            # registrations and vote history were checked above; quarantine and
            # uniformity may be absent (snapshots committed without them)
            files = [str(d / f"{view}.parquet") for d in dirs if (d / f"{view}.parquet").exists()]
            if files:
                lst = "[" + ", ".join(literal(f) for f in files) + "]"
                con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet({lst}, union_by_name = true)")
            elif schema is not None:
                con.execute(f"CREATE VIEW {view} AS {empty_select(schema)}")
            else:
                con.execute(f"CREATE VIEW {view} AS SELECT NULL::VARCHAR AS state WHERE false")
        return con

    def states(self) -> list[str]:
        return sorted(self.current())


#: Files every committed snapshot must have (the views would silently lose a state without them).
REQUIRED_SNAPSHOT_FILES = ("registrations.parquet", "vote_history.parquet")
#: Files an ingest writes besides those (older or hand-made snapshots may lack them).
DERIVED_SNAPSHOT_FILES = ("quarantine.parquet", "uniformity.parquet")


@dataclass(frozen=True)
class SnapshotDamage:
    """What is wrong with a snapshot's files: the file and its problem (``missing``, ``unreadable``, ...)."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file} {self.problem}"


def snapshot_damage(snap_dir: Path, record: dict[str, Any] | None = None, *, complete: bool = False) -> SnapshotDamage | None:
    """Why a snapshot's files cannot be trusted, or None: the one snapshot check.

    The registrations and vote history files must exist; every Parquet file
    present must have a readable footer.  With the catalog ``record``, their
    row counts must be the catalog's.  ``complete`` (a snapshot offered for
    reuse as "unchanged"): the files an ingest derives and ``manifest.json``
    must be there too.  Cheap: Parquet footers only, no data read, so it runs
    on every connect and every "unchanged" ingest.
    """
    import pyarrow.parquet as pq

    record = record or {}
    expected = {"registrations.parquet": record.get("loaded"), "vote_history.parquet": record.get("vote_history_loaded")}
    for name in (*REQUIRED_SNAPSHOT_FILES, *DERIVED_SNAPSHOT_FILES):
        p = snap_dir / name
        if not p.is_file():
            if name in REQUIRED_SNAPSHOT_FILES or complete:
                return SnapshotDamage(name, "missing")
            continue
        try:
            rows = pq.ParquetFile(p).metadata.num_rows
        except Exception:  # noqa: BLE001 - any failure to read the footer means damaged
            return SnapshotDamage(name, "unreadable")
        if expected.get(name) is not None and rows != int(expected[name]):
            return SnapshotDamage(name, f"has {rows} rows, the catalog {expected[name]}")
    if complete:
        try:
            json.loads((snap_dir / "manifest.json").read_text())
        except (OSError, ValueError):
            return SnapshotDamage("manifest.json", "missing or unreadable")
    return None


def _check_snapshot_files(snap_dir: Path, state: str, snapshot_id: str) -> None:
    """A current snapshot whose data files are gone or cut short is an error, never zero rows."""
    damage = snapshot_damage(snap_dir)
    if damage is None:
        return
    if damage.problem == "missing":
        raise UserError(
            f"{state}'s current snapshot {snapshot_id} is missing {damage.file}, so {state} would "
            "silently have no rows; restore the workspace from a backup or ingest the state's "
            "files again",
            file=snap_dir / damage.file,
        )
    raise UserError(
        f"{state}'s current snapshot {snapshot_id} has a damaged {damage.file} (not a whole "
        "Parquet file); restore the workspace from a backup or ingest the state's files again",
        file=snap_dir / damage.file,
    )


def workspace_option_default() -> Path:
    """``--workspace`` default: ``$VOTEROLLS_WORKSPACE`` or ``./workspace``."""
    return Path(os.environ.get("VOTEROLLS_WORKSPACE", str(DEFAULT_WORKSPACE)))
