"""Concurrency: parallel ingests land whole, duplicates collapse to one snapshot, readers never see halves.

* two states ingested at once by two processes: both land, each exactly as
  a sequential ingest would store it;
* the same files ingested twice at once: exactly one snapshot, both
  processes succeed;
* a reader connecting again and again while another state is ingested sees
  either the old or the new picture, never a partial one;
* the same through the service: two states' uploads at once, and the same
  upload twice at once (real ingest, FastAPI TestClient).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    FULL,
    ROOT,
    ingest_cmd,
    state_fingerprint,
    without_id,
)

from voterolls.formats.sample import national_sample
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.store import Workspace
from voterolls.synth.native import write_native


def _files(tmp: Path, state: str, n: int = 30, seed: int = 7) -> list[Path]:
    regs, vh = national_sample(state, n, seed=seed, protected_every=7)
    return write_native(state, regs, vh, tmp / f"{state}_{seed}", policy=FULL)


def _together(jobs: list[tuple[Path, str, list[Path]]]) -> list[dict]:
    """Start one process per job, wait until all have imported, release them at once."""
    env = {**os.environ, "VR_WAIT_GO": "1"}
    procs = [
        subprocess.Popen(ingest_cmd(ws, st, paths), cwd=ROOT, env=env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for ws, st, paths in jobs
    ]  # fmt: skip
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conc")
    files = {"NC": _files(tmp, "NC"), "VT": _files(tmp, "VT")}
    refs = {}
    for st, paths in files.items():
        ws = tmp / f"ref_{st}"
        ingest(IngestRequest.of(ws, st, paths))
        refs[st] = without_id(state_fingerprint(ws, st))
    return tmp, files, refs


def test_two_states_at_once_both_land_whole(data) -> None:
    tmp, files, refs = data
    ws = tmp / "ws_two"
    Workspace(ws)
    res = _together([(ws, "NC", files["NC"]), (ws, "VT", files["VT"])])
    assert [r["status"] for r in res] == ["new", "new"]
    w = Workspace(ws)
    assert w.states() == ["NC", "VT"]
    assert len(w.snapshots()) == 2
    for st in ("NC", "VT"):
        assert without_id(state_fingerprint(ws, st)) == refs[st]
    con = w.connect()
    try:
        by_state = dict(con.execute("SELECT state, count(*) FROM registrations GROUP BY state").fetchall())
    finally:
        con.close()
    assert by_state == {"NC": refs["NC"]["registrations"], "VT": refs["VT"]["registrations"]}


def test_same_files_twice_at_once_make_one_snapshot(data) -> None:
    tmp, files, refs = data
    ws = tmp / "ws_dup"
    Workspace(ws)
    res = _together([(ws, "NC", files["NC"]), (ws, "NC", files["NC"])])
    snaps = Workspace(ws).snapshots("NC")
    assert len(snaps) == 1, (
        f"the same files ingested twice at once made {len(snaps)} snapshots "
        f"(statuses {[r['status'] for r in res]})"
    )
    assert sorted(r["status"] for r in res) == ["new", "unchanged"]
    assert without_id(state_fingerprint(ws, "NC")) == refs["NC"]


def test_readers_see_old_or_new_never_half(data) -> None:
    tmp, files, refs = data
    ws = tmp / "ws_read"
    ingest(IngestRequest.of(ws, "NC", files["NC"]))
    w = Workspace(ws)
    nc = refs["NC"]["registrations"]
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                con = w.connect()
                try:
                    seen.add(con.execute("SELECT count(*) FROM registrations").fetchone()[0])
                finally:
                    con.close()
                time.sleep(0.02)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    try:
        _together([(ws, "VT", files["VT"])])
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors
    assert seen <= {nc, nc + refs["VT"]["registrations"]}, seen


# ---------------------------------------------------------------------------
# through the service
# ---------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path):
    pytest.importorskip("voterolls.service.app")
    from fastapi.testclient import TestClient

    from voterolls.service.accounts import AccountStore
    from voterolls.service.app import create_app

    ws = tmp_path / "ws"
    store = AccountStore(ws / "service" / "accounts.json")
    tokens = {st: store.create(f"{st.lower()}-upload", "state", st)[1] for st in ("NC", "VT")}
    app = create_app(ws)
    with TestClient(app) as client:
        yield ws, app, client, tokens


def _post(client, state: str, token: str, paths: list[Path], out: dict) -> None:
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
    r = client.post(f"/api/states/{state}/submissions", headers={"Authorization": f"Bearer {token}"}, files=files)
    out.setdefault(state, []).append(r)


def _wait_done(app, client, state: str, token: str, sid: str, timeout: float = 240) -> dict:
    app.state.service.jobs.wait(sid, timeout=timeout)
    r = client.get(f"/api/states/{state}/jobs/{sid}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_service_two_states_upload_at_once(service, data) -> None:
    ws, app, client, tokens = service
    _, files, refs = data
    out: dict = {}
    threads = [threading.Thread(target=_post, args=(client, st, tokens[st], files[st], out)) for st in ("NC", "VT")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for st in ("NC", "VT"):
        (r,) = out[st]
        assert r.status_code == 202, r.text
        job = _wait_done(app, client, st, tokens[st], r.json()["submission"])
        assert job["status"] == "done", job
    w = Workspace(ws)
    assert w.states() == ["NC", "VT"]
    for st in ("NC", "VT"):
        assert without_id(state_fingerprint(ws, st)) == refs[st]


def test_service_same_upload_twice_at_once(service, data) -> None:
    ws, app, client, tokens = service
    _, files, refs = data
    out: dict = {}
    threads = [threading.Thread(target=_post, args=(client, "NC", tokens["NC"], files["NC"], out)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [r.status_code for r in out["NC"]] == [202, 202], [r.text for r in out["NC"]]
    jobs = [_wait_done(app, client, "NC", tokens["NC"], r.json()["submission"]) for r in out["NC"]]
    assert [j["status"] for j in jobs] == ["done", "done"], jobs
    assert sorted(j["result"]["status"] for j in jobs) == ["new", "unchanged"]
    assert len(Workspace(ws).snapshots("NC")) == 1
    assert without_id(state_fingerprint(ws, "NC")) == refs["NC"]
