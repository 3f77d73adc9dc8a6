"""Background ingest of a submission, one state at a time, with visible progress.

An upload answers ``202 Accepted`` at once; a thread runs the ingest and the
state's page polls ``/api/states/XX/jobs/<id>``.  Each state has a lock, so a
second submission for the same state waits ("queued") until the first is
done, while other states proceed.  Ingest is idempotent by file SHA-256, so
the same file sent twice ends in one snapshot.

The record of a submission (``submission.json`` beside its files) holds only
file names, sizes, hashes, counts and reasons, never a row's content.  Once
the ingest has finished the uploaded files are deleted: what the law allows
is now in the workspace snapshot, and the raw file (which may hold fields the
law withholds) should not linger.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.schema import PERSONAL_FIELDS
from voterolls.store import WorkspacePaths

log = get_logger(__name__)

#: ingest(workspace_dir, state, paths, format=..., progress=...) -> result
IngestFn = Callable[..., Any]
#: detect(paths) -> format name; raises UserError when it cannot tell
DetectFn = Callable[[list[Path]], str]

ACTIVE = ("queued", "ingesting")
#: Submission ids as :meth:`JobManager.new_id` makes them; anything else is never a path.
_SID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ adapters
#: The real pipeline's phases, as words for the page and a rough share of the work.
PHASES = {
    "hash": ("checking file hashes", 0.03),
    "unpack": ("unpacking compressed files", 0.05),
    "scan": ("reading the files", 0.08),
    "registrations": ("loading registrations", 0.10),
    "vote_history": ("loading vote history", 0.72),
    "reconcile": ("reconciling counts", 0.82),
    "delivery": ("checking the delivery against the state's current parts", 0.85),
    "uniformity": ("measuring field uniformity", 0.88),
    "commit": ("committing the snapshot", 0.96),
}


def real_ingest(
    workspace: Path, state: str, paths: list[Path], format: str | None = None, progress=None,
    *, allow_shrink: bool = False, replace_state: bool = False,
):  # fmt: skip
    """Run ``voterolls.ingest.pipeline.ingest``; add the quarantine counts by field and reason.

    ``allow_shrink`` / ``replace_state``: the uploader's explicit confirmations
    (voterolls.ingest.delivery); each file otherwise replaces only its scope.
    """
    from voterolls.ingest.delivery import DeliveryOptions
    from voterolls.ingest.pipeline import ingest
    from voterolls.service import sealed
    from voterolls.store import Workspace

    if format == sealed.SEALED_FORMAT:  # a sealed-only delivery (checked on arrival)
        return sealed.ingest_submission(workspace, state, paths, progress)

    def report(phase: str, done: int, total: int | None) -> None:
        if progress is None:
            return
        label, share = PHASES.get(phase, (phase.replace("_", " "), None))
        if phase == "registrations" and total:
            share = 0.10 + 0.60 * min(done / total, 1.0)
            label = f"loading registrations: {done:,} of {total:,} rows"
        progress(label, share)

    ws = Workspace(workspace)
    delivery = DeliveryOptions(allow_shrink=allow_shrink, replace_state=replace_state)
    result = ingest(ws, state, paths, format=format, progress=report, delivery=delivery)
    out = result.to_dict() if hasattr(result, "to_dict") else result
    if isinstance(out, dict):
        out.pop("path", None)  # a server path means nothing to the state
        qfile = ws.snapshot_dir(state, result.snapshot_id) / "quarantine.parquet"
        if qfile.is_file():
            import pyarrow.parquet as pq

            cols = [c for c in ("field", "reason") if c in pq.read_schema(qfile).names]
            out["quarantine"] = pq.read_table(qfile, columns=cols)  # summarised to counts below
    return out


def real_detect(paths: list[Path]) -> str:
    from voterolls.formats import detect_format

    return detect_format(paths)


def format_state(fmt: str) -> str | None:
    """The state a format belongs to (``nc_ncvoter_2022`` -> ``NC``); None = any state (generic)."""
    try:
        from voterolls.formats import get_format

        st = get_format(fmt).state
        return st.upper() if st else None
    except Exception:  # formats not installed, or a name it does not know: use the prefix
        head = fmt.split("_", 1)[0].upper()
        return head if len(head) == 2 and head.isalpha() and fmt != "generic" else None


# ------------------------------------------------------------ result summary
#: Longest list / dict kept in a job's summary: every file of a county-split delivery (uploads.MAX_FILES).
_MAX_ITEMS = 1_000


def _clean(value: Any, depth: int = 0) -> Any:
    """Counts, short strings and small structures only; anything row-like is dropped."""
    if depth > 5:
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:199] + "…"
    if isinstance(value, Path):
        return value.name
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "num_rows") and hasattr(value, "column_names"):  # a pyarrow table
        return _table_summary(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "model_dump"):
        value = value.model_dump()
    elif hasattr(value, "to_dict") and not isinstance(value, dict):
        try:
            value = value.to_dict()
        except Exception:
            return None
    if isinstance(value, dict):
        out = {}
        for k, v in list(value.items())[:_MAX_ITEMS]:
            key = str(k)
            if key.startswith("_"):
                continue
            if key in PERSONAL_FIELDS and not isinstance(v, bool | int | float):
                continue  # a flag or count about ``dob`` is fine; a value of it never
            cleaned = _clean(v, depth + 1)
            if cleaned is not None:
                out[key] = cleaned
        return out
    if isinstance(value, list | tuple | set):
        return [c for c in (_clean(v, depth + 1) for v in list(value)[:_MAX_ITEMS]) if c is not None]
    return None


def _table_summary(table) -> dict:
    """A quarantine table becomes counts by (field, reason): no line content, no values."""
    cols = set(table.column_names)
    out: dict[str, Any] = {"rows": table.num_rows}
    if {"reason"} <= cols and table.num_rows:
        keys = [c for c in ("field", "reason") if c in cols]
        grouped = table.group_by(keys).aggregate([([], "count_all")]).to_pylist()
        grouped.sort(key=lambda r: -r["count_all"])
        out["by_reason"] = [
            {**{k: (str(r[k]) if r[k] is not None else None) for k in keys}, "rows": r["count_all"]}
            for r in grouped[:_MAX_ITEMS]
        ]
    return out


def summarise_result(result: Any) -> dict:
    cleaned = _clean(result)
    return cleaned if isinstance(cleaned, dict) else {"result": cleaned}


# ------------------------------------------------------------------ manager
class JobManager:
    """Owns submissions on disk and the threads that ingest them."""

    def __init__(
        self,
        workspace: Path,
        ingest: IngestFn,
        *,
        on_event: Callable[..., None] | None = None,
        keep_uploads: bool = False,
        max_parallel: int = 2,
    ) -> None:
        self.workspace = Path(workspace)
        #: Ingests of different states run side by side, but at most this many at once
        #: (each one is a DuckDB pipeline with its own memory budget).
        self._slots = threading.BoundedSemaphore(max(1, max_parallel))
        self.root = WorkspacePaths(self.workspace).uploads_dir
        self.ingest = ingest
        self.keep_uploads = keep_uploads
        self._on_event = on_event or (lambda **_: None)
        self._state_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._recover()

    # ---------------------------------------------------------- storage
    def folder(self, state: str, sid: str) -> Path:
        return self.root / state / sid

    def _record_path(self, state: str, sid: str) -> Path:
        return self.folder(state, sid) / "submission.json"

    def _write(self, rec: dict) -> None:
        path = self._record_path(rec["state"], rec["id"])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    def get(self, state: str, sid: str) -> dict | None:
        if not _SID.fullmatch(sid):
            return None
        path = self._record_path(state, sid)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def list(self, state: str) -> list[dict]:
        folder = self.root / state
        if not folder.is_dir():
            return []
        recs = [r for r in (self.get(state, p.name) for p in folder.iterdir()) if r]
        return sorted(recs, key=lambda r: r["id"], reverse=True)

    def _recover(self) -> None:
        """A submission caught mid-ingest by a restart is marked interrupted, files removed."""
        if not self.root.is_dir():
            return
        for state_dir in self.root.iterdir():
            for rec in self.list(state_dir.name):
                if rec["status"] in ACTIVE:
                    rec.update(status="interrupted", finished=_now(),
                               message="The service restarted before this ingest finished; please upload again.")
                    self._write(rec)
                    self._remove_files(rec)

    def _remove_files(self, rec: dict) -> None:
        if self.keep_uploads:
            return
        folder = self.folder(rec["state"], rec["id"])
        for f in rec.get("files", []):
            p = folder / f["name"]
            if p.is_file():
                p.unlink()

    # ---------------------------------------------------------- lifecycle
    @staticmethod
    def new_id() -> str:
        return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + os.urandom(4).hex()

    def discard(self, state: str, sid: str) -> None:
        shutil.rmtree(self.folder(state, sid), ignore_errors=True)

    def submit(
        self, *, state: str, sid: str, account: str, files: list, fmt: str | None, options: dict | None = None
    ) -> dict:
        """Record a received submission and start its ingest in the background.

        ``options``: the delivery flags the uploader confirmed (``allow_shrink``,
        ``replace_state``), passed to the ingest as keywords when set.
        """
        rec = {
            "id": sid,
            "state": state,
            "account": account,
            "created": _now(),
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files],
            "format": fmt,
            "options": dict(options or {}),
            "status": "queued",
            "stage": "waiting for this state's previous ingest",
            "progress": 0.0,
            "message": "",
            "result": None,
            "finished": None,
        }
        self._write(rec)
        t = threading.Thread(target=self._run, args=(rec,), name=f"ingest-{state}-{sid}", daemon=True)
        with self._lock:
            self._threads[sid] = t
        t.start()
        return rec

    def _state_lock(self, state: str) -> threading.Lock:
        with self._lock:
            return self._state_locks.setdefault(state, threading.Lock())

    def busy(self, state: str) -> bool:
        return self._state_lock(state).locked()

    def wait(self, sid: str, timeout: float = 30) -> None:
        """Tests and the CLI: block until a submission's thread is done."""
        t = self._threads.get(sid)
        if t is not None:
            t.join(timeout)

    def _run(self, rec: dict) -> None:
        state = rec["state"]
        with self._state_lock(state):
            if not self._slots.acquire(blocking=False):
                rec.update(stage="waiting for a free ingest slot (other states are ingesting)")
                self._write(rec)
                self._slots.acquire()
            try:
                if self._audit_start(rec):
                    self._ingest(rec)
            finally:
                self._slots.release()
        try:
            self._on_event(actor=rec["account"], role="state", action="ingest",
                           target=f"{state}/{rec['id']}", status=rec["status"])
        except UserError as exc:  # the outcome is on the record; the start was audited write-ahead
            log.error("audit entry for the end of submission %s not written: %s", rec["id"], exc)

    def _audit_start(self, rec: dict) -> bool:
        """Write-ahead: the ingest's audit entry is durable before it starts; if not, it never starts."""
        try:
            self._on_event(actor=rec["account"], role="state", action="ingest started",
                           target=f"{rec['state']}/{rec['id']}", status="ingesting")
        except UserError as exc:  # AuditUnavailable: the log cannot take the entry
            log.error("submission %s not ingested: %s", rec["id"], exc)
            rec.update(status="failed", stage="failed", finished=_now(),
                       message="Not ingested: the service cannot write its audit log. Nothing was stored; "
                       "please upload again once the administrator has repaired it.")
            self._write(rec)
            self._remove_files(rec)
            return False
        return True

    def _ingest(self, rec: dict) -> None:
        state = rec["state"]
        started = time.monotonic()
        rec.update(status="ingesting", stage="reading the files", progress=0.02)
        self._write(rec)

        def progress(stage: str | None = None, fraction: float | None = None) -> None:
            if stage:
                rec["stage"] = str(stage)[:120]
            if fraction is not None:
                rec["progress"] = max(0.0, min(1.0, float(fraction)))
            self._write(rec)

        paths = [self.folder(state, rec["id"]) / f["name"] for f in rec["files"]]
        try:
            extra = {k: v for k, v in (rec.get("options") or {}).items() if v}
            result = self.ingest(self.workspace, state, paths, format=rec["format"], progress=progress, **extra)
            rec.update(status="done", stage="finished", progress=1.0,
                       result=summarise_result(result), message="")
        except UserError as exc:
            rec.update(status="failed", stage="failed", message=str(exc))
        except Exception as exc:  # a bug: say so without leaking row content
            log.exception("ingest of submission %s for %s crashed", rec["id"], state)
            rec.update(status="failed", stage="failed",
                       message=f"The ingest stopped on an internal error ({type(exc).__name__}). "
                       "Nothing was stored; the administrator can see the server log.")
        rec["finished"] = _now()
        rec["seconds"] = round(time.monotonic() - started, 2)
        self._write(rec)
        self._remove_files(rec)
