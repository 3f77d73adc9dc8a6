"""Sealed-only deliveries through the service: the three files ``voterolls seal --sealed-only`` wrote.

A state of a sealed-only consortium submits ``manifest.json``,
``registrations.parquet`` and ``vote_history.parquet`` in one submission (the
same route, the same role checks as a plaintext delivery).  On arrival,
before anything is queued, :func:`classify_submission`

* recognises the delivery (a ``manifest.json`` or a Parquet file in it),
* refuses it, in one sentence, when it mixes in anything else (a text file
  beside the sealed files could hold names and dates in the clear), lacks one
  of the three files, was sealed for another state, or its tables fail the
  ingest's checks (a column that is not a token or an encoding, a token
  column holding something else);
* refuses a plaintext submission from a state whose current snapshot is
  sealed-only (its names and dates would sit in the clear beside its sealed
  snapshot; it must seal first), and a Parquet file outside a sealed-only
  delivery.

The job then stores it with :func:`voterolls.ingest.sealed_only.ingest_sealed`
(:func:`ingest_submission`), which repeats the checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voterolls.errors import UserError
from voterolls.ingest.sealed_only import (
    DELIVERY_FILES,
    SEALED_FORMAT,
    check_delivery,
    ingest_sealed,
)
from voterolls.service.uploads import ReceivedFile, UploadRejected, is_parquet
from voterolls.store import Workspace, WorkspacePaths

_LIST = ", ".join(DELIVERY_FILES)


def _is_sealed(files: list[ReceivedFile]) -> bool:
    return any(f.name == "manifest.json" or is_parquet(f.head) for f in files)


def _state_is_sealed(workspace: Path, state: str) -> bool:
    if not WorkspacePaths(workspace).catalog.is_file():
        return False  # nothing ingested yet (and opening the catalog would create one)
    try:
        cur = Workspace(workspace).current_snapshot(state) or {}
    except UserError:
        return False
    return cur.get("format") == SEALED_FORMAT


def classify_submission(
    workspace: Path, state: str, files: list[ReceivedFile], folder: Path
) -> bool:
    """True for a complete, checked sealed-only delivery; False for a plaintext one.

    Raises :class:`UploadRejected` (422) with one sentence for a mix, an
    incomplete or failing sealed-only delivery, or plaintext from a sealed-only state.
    """
    if not _is_sealed(files):
        if _state_is_sealed(workspace, state):
            raise UploadRejected(
                422,
                f"{state} delivers sealed-only (its current snapshot holds tokens and name "
                "encodings only), so a plaintext file is not accepted: seal it with "
                f"`voterolls seal --sealed-only` and send {_LIST}.",
            )
        return False
    names = {f.name for f in files}
    other = sorted(names - set(DELIVERY_FILES))
    if other:
        raise UploadRejected(
            422,
            f"{other[0]} is not part of a sealed-only delivery ({_LIST}) and may hold plaintext "
            "names or dates, so the submission is refused: send the sealed files alone.",
        )
    missing = [n for n in DELIVERY_FILES if n not in names]
    if missing:
        raise UploadRejected(
            422,
            f"the sealed-only delivery lacks {missing[0]}: send {_LIST} together in one submission.",
        )
    wrong = [f.name for f in files if f.name.endswith(".parquet") and not is_parquet(f.head)]
    if wrong:
        raise UploadRejected(
            422, f"{wrong[0]} is not a Parquet file, so the submission is refused."
        )
    try:
        check_delivery(state, folder)
    except UserError as exc:
        # the sentence names the file and column (never a value); no server path
        raise UploadRejected(422, str(exc).replace(str(folder) + "/", "")) from None
    return True


def ingest_submission(
    workspace: Path, state: str, paths: list[Path], progress=None
) -> dict[str, Any]:  # noqa: ANN001
    """The job's ingest for a sealed-only submission, as a result the submission record shows."""
    if progress is not None:
        progress("checking and storing the sealed-only delivery", 0.1)
    ws = Workspace(workspace)
    r = ingest_sealed(ws, state, Path(paths[0]).parent)
    snap = ws.current_snapshot(state) or {}
    return {
        "state": r.state,
        "snapshot_id": r.snapshot_id,
        "status": "new" if r.status == "ingested" else r.status,
        "format": SEALED_FORMAT,
        # rows the state's seal read; the ones it quarantined stayed at the state (counted only)
        "rows_read": int(snap.get("rows_read") or r.loaded),
        "loaded": r.loaded,
        "quarantined": int(snap.get("quarantined") or 0),
        "protected_excluded": 0,
        "vote_history_loaded": r.vote_history_loaded,
    }


__all__ = ["SEALED_FORMAT", "classify_submission", "ingest_submission"]
