"""What an ingest returns: per-file and per-delivery counts (and the error for counts that do not add up)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class ReconciliationError(RuntimeError):
    """Counts did not add up: a bug in a reader or in ingest, never a user mistake."""


@dataclass
class FileResult:
    file_name: str
    sha256: str
    role: str
    encoding: str | None
    rows_read: int
    loaded: int
    quarantined: int
    protected_excluded: int
    vote_history_loaded: int = 0
    vote_history_withheld: int = 0
    #: the part of the state the file covers (voterolls.ingest.delivery): state, county:X, range:a-b
    scope: str = "state"
    #: sha256 of the archive the file was unpacked from (None: given as a plain file)
    container_sha256: str | None = None
    #: the snapshot that first ingested the file (later snapshots carry its rows over)
    part_snapshot: str | None = None
    #: issue tags and values the law removed, counted over this file's loaded rows
    issues: dict[str, int] = field(default_factory=dict)
    values_removed: dict[str, int] = field(default_factory=dict)


@dataclass
class IngestResult:
    state: str
    status: str  # "new" | "unchanged"
    snapshot_id: str
    format: str | None
    files: list[FileResult] = field(default_factory=list)
    rows_read: int = 0
    loaded: int = 0
    quarantined: int = 0
    protected_excluded: int = 0
    vote_history_loaded: int = 0
    vote_history_withheld: int = 0
    sealed_matched: int | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    issues: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
