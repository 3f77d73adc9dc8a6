"""List-maintenance files for a state's own account, built by ``voterolls.lists.build_lists``.

The service does not have a second implementation of the lists: it calls
:func:`voterolls.lists.build_lists` (the function behind ``voterolls
lists``) with the default thresholds and today's date, into
``W/lists/XX/``, and serves the files from there.  They are rebuilt when
anything they depend on changes - a new snapshot of any state, a new
linkage, a new day (the NVRA quiet period depends on the date) - and
otherwise reused.  A build goes to a temporary directory that is renamed into
place, so a reader never sees half a list.

Only the state's own uploader reaches these functions (the routes check);
what a list may show of another state's record is limited by both states'
policies inside ``build_lists``.

An external list (death records, ...) is uploaded by the state, matched by
:func:`match_external_upload` (the same ``match_external`` as ``voterolls
lists --external``) in a temporary directory outside the workspace, answered
as CSV and deleted: the service keeps neither the list nor the matches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.store import WorkspacePaths

log = get_logger(__name__)

#: Lists the service builds and serves from ``W/lists/XX``.  External lists need a file only the
#: state holds: they are matched per upload (:func:`match_external_upload`) and never stored.
SERVED_LISTS = ("cross_state_movers", "in_state_duplicates")
LIST_TITLES = {
    "cross_state_movers": "Cross-state movers",
    "in_state_duplicates": "In-state duplicates",
    "external_matches": "External-list matches",
}
KEY_FILE = ".inputs"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(workspace: Path, state: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(f"{Path(workspace).resolve()}:{state}", threading.Lock())


def lists_dir(workspace: Path, state: str) -> Path:
    return WorkspacePaths(Path(workspace)).state_lists(state)


def _inputs_key(workspace: Path, today: dt.date) -> str:
    """Changes when a snapshot, the linkage or the date changes."""
    w = Path(workspace)
    parts = [today.isoformat()]
    parts += sorted(str(p.relative_to(w)) for p in w.glob("states/*/*") if p.is_dir())
    link = WorkspacePaths(w).link
    for f in (link.pairs, link.model):
        if f.is_file():
            st = f.stat()
            parts.append(f"{f.name}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _unavailable(note: str) -> dict[str, Any]:
    return {"available": False, "note": note, "lists": []}


def state_lists(workspace: Path, state: str, *, today: dt.date | None = None) -> dict[str, Any]:
    """The state's list summaries (``summary.json``), building the lists first if stale."""
    with _lock(Path(workspace), state):
        doc = _ensure(Path(workspace), state, today or dt.date.today())
    for lst in doc.get("lists", []):
        lst["title"] = LIST_TITLES.get(lst["name"], lst["name"].replace("_", " "))
        lst["served"] = lst["name"] in SERVED_LISTS
        lst.pop("files", None)  # server paths are not for the browser
    return doc


def _ensure(w: Path, state: str, today: dt.date) -> dict[str, Any]:
    """Build if stale (caller holds the state's lock); the summary, or why there is none."""
    if not WorkspacePaths(w).link.pairs.is_file():
        return _unavailable("Linkage has not been run yet.")
    if not WorkspacePaths(w).catalog.is_file():
        return _unavailable("No state file has been ingested yet.")
    key = _inputs_key(w, today)
    target = lists_dir(w, state)
    key_file = target / KEY_FILE
    if not (key_file.is_file() and key_file.read_text() == key and (target / "summary.json").is_file()):
        try:
            _build(w, state, target, key, today)
        except UserError as exc:
            return _unavailable(str(exc).replace(str(w), "the workspace"))
        except Exception as exc:  # a failing stage must not take the page down
            log.exception("list build failed for %s", state)
            return _unavailable(f"The lists could not be built ({type(exc).__name__}; see the server log).")
    doc = json.loads((target / "summary.json").read_text())
    doc["available"] = True
    return doc


def _build(w: Path, state: str, target: Path, key: str, today: dt.date) -> None:
    from voterolls.lists import ActionPolicy, build_lists
    from voterolls.store import Workspace

    tmp = WorkspacePaths(w).lists_dir / f".{state}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        build_lists(Workspace(w, create=False), state, tmp, ActionPolicy(as_of=today))
        (tmp / KEY_FILE).write_text(key)
        old = None
        if target.exists():
            old = target.with_name(f".{state}-old-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def list_csv(workspace: Path, state: str, name: str, *, today: dt.date | None = None) -> tuple[bytes, int] | None:
    """(CSV bytes, rows) of one served list, up to date; None when there is no such list.

    Read under the state's lock so a concurrent rebuild cannot swap the file
    mid-read.
    """
    if name not in SERVED_LISTS:
        return None
    w = Path(workspace)
    with _lock(w, state):
        doc = _ensure(w, state, today or dt.date.today())
        if not doc["available"]:
            return None
        rows = next((x["rows"] for x in doc["lists"] if x["name"] == name), None)
        path = lists_dir(w, state) / f"{name}.csv"
        if rows is None or not path.is_file():
            return None
        return path.read_bytes(), int(rows)


# ---------------------------------------------------------------- external lists (death records, ...)
#: Largest external list the service accepts, whatever the general upload cap:
#: a state's death extract is a few megabytes a year; a bound this size keeps
#: one request from filling the server's temporary disk.  The service's own
#: upload cap applies when it is smaller.
MAX_EXTERNAL_BYTES = 256 * 1024**2


class ExternalBusy(Exception):
    """A match for this state is already running (one at a time per state: each is a full scoring run)."""


def external_unavailable(workspace: Path) -> str | None:
    """Why no external list can be matched yet (None: it can)."""
    w = Path(workspace)
    if not WorkspacePaths(w).link.model.is_file():
        return "Linkage has not been run yet: external lists are matched with the trained model."
    if not WorkspacePaths(w).catalog.is_file():
        return "No state file has been ingested yet."
    return None


def match_external_upload(
    workspace: Path,
    state: str,
    files: list[Path],
    format: str | None,
    scratch: Path,
    *,
    today: dt.date | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Match an uploaded external list against ``state``'s registrations; (CSV bytes, summary).

    The same :func:`voterolls.lists.external.match_external` as ``voterolls
    lists --external``, with the default thresholds and today's date.  Files
    are written under ``scratch`` (the caller's temporary directory, outside
    the workspace, removed after the response): neither the external list nor
    the matches are kept by the service.  The summary holds counts only.
    """
    from voterolls.lists import ActionPolicy
    from voterolls.lists.external import match_external
    from voterolls.store import Workspace

    out = scratch / "out"
    out.mkdir(parents=True, exist_ok=True)
    policy = ActionPolicy(as_of=today or dt.date.today())
    lock = _lock(Path(workspace), f"{state}:external")
    if not lock.acquire(blocking=False):
        raise ExternalBusy(state)
    try:
        ws = Workspace(Path(workspace), create=False)
        con = ws.connect(read_only=True)
        try:
            present = con.execute("SELECT count(*) FROM registrations WHERE state = ?", [state]).fetchall()[0][0]
            if not present:
                raise UserError(f"{state} has no ingested registrations yet: upload the state's voter file first")
            summary = match_external(con, ws, state, files, format, out, policy)
        finally:
            con.close()
    finally:
        lock.release()
    body = (out / f"{summary.name}.csv").read_bytes()
    doc = {
        "state": state,
        "as_of": policy.today.isoformat(),
        "review_threshold": policy.review_threshold,
        "rows": summary.rows,
        "by_action": summary.by_action,
        "at_or_above_review_threshold": summary.rows - summary.below_review_threshold,
        "expected_false_positives_at_review": summary.expected_false_positives_at_review,
        "source": {k: v for k, v in (summary.source or {}).items() if k != "files"},
    }
    return body, doc
