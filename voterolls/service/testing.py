"""Test doubles for the service: a fake ingest and format detector.

The service takes its ingest and format detector as arguments so its own
tests (authorisation, uploads, audit) do not depend on the ingest pipeline
being finished, and so other stages can drive the service in their tests.
The fake ingest behaves like the real contract in the two ways the service
relies on: it is idempotent by file SHA-256 (the same file twice gives the
same snapshot), and it reports progress through the ``progress`` callback.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from voterolls.errors import UserError


class FakeIngest:
    """Counts rows (lines) per file; one snapshot per distinct set of file hashes."""

    def __init__(self, delay: float = 0.0, fail_with: str | None = None) -> None:
        self.delay = delay
        self.fail_with = fail_with
        self.snapshots: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, list[str]]] = []
        self.running: dict[str, int] = {}
        self.max_running: dict[str, int] = {}
        self.intervals: list[tuple[str, float, float]] = []
        self.gate: threading.Event | None = None
        self._lock = threading.Lock()

    def __call__(self, workspace: Path, state: str, paths: list[Path], format: str | None = None, progress=None):
        start = time.monotonic()
        with self._lock:
            self.running[state] = self.running.get(state, 0) + 1
            self.max_running[state] = max(self.max_running.get(state, 0), self.running[state])
            self.calls.append((state, [p.name for p in paths]))
        try:
            if progress:
                progress("reading the files", 0.25)
            if self.gate is not None:
                self.gate.wait(10)
            if self.delay:
                time.sleep(self.delay)
            if self.fail_with:
                raise UserError(self.fail_with, file=paths[0].name, line=3, field="dob")
            digest = hashlib.sha256()
            rows = 0
            for p in sorted(paths):
                data = p.read_bytes()
                digest.update(hashlib.sha256(data).digest())
                skip = 2 if data.startswith(b"FORMAT=") else 1  # marker line, header
                rows += max(data.count(b"\n") - skip, 0)
            key = (state, digest.hexdigest())
            with self._lock:
                created = key not in self.snapshots
                snap = self.snapshots.setdefault(key, f"{state}-{len(self.snapshots) + 1:04d}")
            if progress:
                progress("applying the state's policy", 0.75)
            bad = min(rows, 1)
            return {  # the shape of voterolls.ingest.pipeline.IngestResult.to_dict()
                "state": state,
                "status": "new" if created else "unchanged",
                "snapshot_id": snap,
                "format": format,
                "files": [{"file_name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                           "role": "registrations", "encoding": "utf-8", "rows_read": rows,
                           "loaded": rows - bad, "quarantined": bad} for p in paths],
                "rows_read": rows,
                "loaded": rows - bad,
                "quarantined": bad,
                "protected_excluded": 0,
                "policy": {"dob_disclosure": "year", "allowed": {"dob": False, "birth_year": True, "phone": False},
                           "values_removed": {"phone": rows}},
                "issues": {},
                "quarantine": {"rows": bad, "by_reason": [{"field": "dob", "reason": "unparseable date", "rows": bad}]},
            }
        finally:
            with self._lock:
                self.running[state] -= 1
                self.intervals.append((state, start, time.monotonic()))


def fake_detect(paths: list[Path]) -> str:
    """Recognises a file whose first line starts with ``FORMAT=<name>``; else says it cannot tell."""
    first = Path(paths[0]).read_bytes()[:200].split(b"\n", 1)[0]
    if first.startswith(b"FORMAT="):
        return first[7:].decode().strip()
    if first.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "generic"
    raise UserError("no known layout matches this file", file=Path(paths[0]).name, line=1)
