"""Test doubles for the service: a fake ingest and format detector, and a ready-made service.

The service takes its ingest and format detector as arguments so its own
tests (authorisation, uploads, audit) do not depend on the ingest pipeline
being finished, and so other stages can drive the service in their tests.
The fake ingest behaves like the real contract in the two ways the service
relies on: it is idempotent by file SHA-256 (the same file twice gives the
same snapshot), and it reports progress through the ``progress`` callback.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from voterolls.errors import UserError
from voterolls.service.accounts import AccountStore


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
        #: per-state gates: an ingest of that state waits until its event is set
        self.gates: dict[str, threading.Event] = {}
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
                self.gate.wait(30)
            if state in self.gates:
                self.gates[state].wait(30)
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


# ------------------------------------------------------------------ fixtures
NC_FILE = b"FORMAT=nc_ncvoter_2022\nid\tname\n1\tA\n2\tB\n3\tC\n"
OH_FILE = b"FORMAT=oh_swvf\nid,name\n1,A\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Env:
    """A workspace with one account per role (plus expired, revoked and bad tokens) and an app."""

    def __init__(self, tmp: Path, **kw) -> None:
        self.w = tmp / "ws"
        self.store = AccountStore(self.w / "service" / "accounts.json")
        self.tokens: dict[str, str] = {}
        for name, role, state in [
            ("nc-upload", "state", "NC"),
            ("oh-upload", "state", "OH"),
            ("analyst", "analyst", None),
            ("auditor", "auditor", None),
            ("admin", "admin", None),
            ("victim", "analyst", None),
            ("rotate-me", "analyst", None),
            ("gone", "state", "NC"),
        ]:
            self.tokens[name] = self.store.create(name, role, state)[1]
        # an expired token: make a token then move its expiry into the past
        _, self.tokens["expired"] = self.store.create("stale", "state", "NC", expires_days=1)
        raw = json.loads(self.store.path.read_text())
        raw["accounts"]["stale"]["tokens"][0]["expires"] = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.store.path.write_text(json.dumps(raw))
        self.store.revoke("gone")
        self.tokens["revoked"] = self.tokens.pop("gone")
        self.tokens["bad"] = "vr_0123456789ab_" + "A" * 43
        self.ingest = kw.pop("ingest", None) or FakeIngest()
        from voterolls.service.app import create_app

        self.app = create_app(self.w, ingest=self.ingest, detect=fake_detect, **kw)
        self.svc = self.app.state.service
        from fastapi.testclient import TestClient  # httpx: a test dependency only

        self.client = TestClient(self.app)

    def upload(self, state: str, body: bytes, token: str | None = None, name: str = "ncvoter.txt", **kw):
        token = token or self.tokens[f"{state.lower()}-upload"]
        files = {"files": (name, body, "text/plain")}
        return self.client.post(f"/api/states/{state}/submissions", headers=bearer(token), files=files, **kw)

    def wait(self, sid: str) -> None:
        self.svc.jobs.wait(sid)
