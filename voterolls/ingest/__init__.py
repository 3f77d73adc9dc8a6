"""Ingest: native files -> the state's law -> normalised Parquet snapshot in the workspace.

Public: :func:`ingest` with one :class:`IngestRequest` (one state's files, atomic and
idempotent; returns an :class:`IngestResult`) and :func:`diff_snapshots` (what changed between two
snapshots).  Loaded lazily, so ``import voterolls.ingest`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "ingest": "pipeline", "IngestRequest": "pipeline", "IngestResult": "pipeline", "FileResult": "pipeline",
    "diff_snapshots": "diff", "SnapshotDiff": "diff",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"voterolls.ingest.{_HOME[name]}"), name)
    raise AttributeError(name)


__all__ = ["FileResult", "IngestRequest", "IngestResult", "SnapshotDiff", "diff_snapshots", "ingest"]
