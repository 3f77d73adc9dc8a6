"""The service takes sealed-only deliveries: the state's three sealed files in, a sealed snapshot out.

Real pipeline (no fakes): native NC files are sealed as the state would
(``voterolls seal --sealed-only``), uploaded through FastAPI's TestClient and
ingested by the job; plaintext mixed into such a delivery is refused on arrival.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app

pytest.importorskip("clkhash")
sample = pytest.importorskip("voterolls.formats.sample")

KEY = b"0123456789abcdef0123456789abcdef-service-test"
SEALED = ("manifest.json", "registrations.parquet", "vote_history.parquet")


def _native(state: str, n: int, out: Path) -> tuple[list[Path], pa.Table]:
    from voterolls.synth.native import write_native

    regs, history = sample.national_sample(state, n)
    return write_native(state, regs, history, out), regs


@pytest.fixture(scope="module")
def nc(tmp_path_factory) -> tuple[Path, list[Path], pa.Table]:
    from voterolls.policy.sealed_only import SealedOnlyRequest, seal_sealed_only

    root = tmp_path_factory.mktemp("nc")
    paths, regs = _native("NC", 80, root / "native")
    seal_sealed_only(
        SealedOnlyRequest(files=tuple(paths), state="NC", out_dir=root / "sealed", key=KEY)
    )
    return root / "sealed", paths, regs


def _files(delivery: Path, names=SEALED, extra: list[tuple[str, bytes]] = ()) -> list:
    out = [("files", (n, (delivery / n).read_bytes(), "application/octet-stream")) for n in names]
    return out + [("files", (n, b, "text/plain")) for n, b in extra]


@pytest.fixture()
def svc(tmp_path):
    w = tmp_path / "ws"
    store = AccountStore(w / "service" / "accounts.json")
    heads = {
        name: {"Authorization": "Bearer " + store.create(name, role, st)[1]}
        for name, role, st in (
            ("nc", "state", "NC"),
            ("oh", "state", "OH"),
            ("analyst", "analyst", None),
        )
    }
    app = create_app(w)
    return w, app, TestClient(app), heads


def _uploads_left(w: Path, state: str) -> list[Path]:
    d = w / "service" / "uploads" / state
    return sorted(d.iterdir()) if d.exists() else []


def test_a_sealed_only_delivery_is_uploaded_checked_and_ingested(svc, nc):
    from bench.sealed_vs_plain import plaintext_hits
    from voterolls.ingest.sealed_only import SEALED_FORMAT
    from voterolls.store import Workspace

    w, app, client, h = svc
    delivery, _paths, regs = nc
    # role checks as for any delivery: another state's account and an analyst are refused
    r = client.post("/api/states/NC/submissions", headers=h["oh"], files=_files(delivery))
    assert r.status_code == 403 and "uploads for OH" in r.json()["error"]
    r = client.post("/api/states/NC/submissions", headers=h["analyst"], files=_files(delivery))
    assert r.status_code == 403
    # the NC account's own sealed delivery sealed for NC, sent to OH's route: refused by the manifest
    r = client.post("/api/states/OH/submissions", headers=h["oh"], files=_files(delivery))
    assert r.status_code == 422 and "sealed for 'NC', not OH" in r.json()["error"]
    assert _uploads_left(w, "OH") == []

    r = client.post("/api/states/NC/submissions", headers=h["nc"], files=_files(delivery))
    assert r.status_code == 202, r.text
    assert r.json()["format"] == SEALED_FORMAT
    sid = r.json()["submission"]
    app.state.service.jobs.wait(sid, timeout=120)
    rec = client.get(f"/api/states/NC/jobs/{sid}", headers=h["nc"]).json()
    assert rec["status"] == "done", rec["message"]
    n = pq.read_metadata(delivery / "registrations.parquet").num_rows
    res = rec["result"]
    assert res["status"] == "new" and res["loaded"] == n
    assert res["loaded"] + res["quarantined"] == res["rows_read"]
    ws = Workspace(w)
    assert ws.current_snapshot("NC")["format"] == SEALED_FORMAT
    con = ws.connect()
    try:
        assert con.execute(
            "SELECT count(*), count(first_name), count(first_name_bf) FROM registrations"
        ).fetchall()[0] == (n, 0, n)
    finally:
        con.close()
    # the same delivery again: one snapshot
    r = client.post("/api/states/NC/submissions", headers=h["nc"], files=_files(delivery))
    app.state.service.jobs.wait(r.json()["submission"], timeout=120)
    rec = client.get(f"/api/states/NC/jobs/{r.json()['submission']}", headers=h["nc"]).json()
    assert rec["result"]["status"] == "unchanged" and len(ws.snapshots("NC")) == 1
    # nothing of the plaintext sample anywhere in the workspace (service files included)
    d = regs.to_pydict()
    values = {
        "first_name": {v for v in d["first_name"] if v and len(v) >= 4},
        "last_name": {v for v in d["last_name"] if v and len(v) >= 4},
        "dob": {str(v) for v in d["dob"] if v is not None},
    }
    assert values["last_name"] and values["dob"]
    assert plaintext_hits(w, values) == {"first_name": [], "last_name": [], "dob": []}


def test_plaintext_mixed_into_a_sealed_only_delivery_is_refused_in_one_sentence(svc, nc, tmp_path):
    w, _app, client, h = svc
    delivery, paths, _regs = nc
    voter_file = next(p for p in paths if p.name.startswith("ncvoter"))
    r = client.post(
        "/api/states/NC/submissions",
        headers=h["nc"],
        files=_files(delivery, extra=[(voter_file.name, voter_file.read_bytes())]),
    )
    assert r.status_code == 422
    msg = r.json()["error"]
    assert msg.startswith(f"{voter_file.name} is not part of a sealed-only delivery")
    assert "may hold plaintext names or dates" in msg and msg.count(". ") == 0
    assert _uploads_left(w, "NC") == []  # nothing kept, nothing queued

    # a plaintext column inside the sealed table: refused, naming the column, never a value
    t = pq.read_table(delivery / "registrations.parquet")
    t = t.append_column("last_name", pa.array(["ZZQUIRKSON"] * t.num_rows))
    buf = io.BytesIO()
    pq.write_table(t, buf)
    files = [f for f in _files(delivery) if f[1][0] != "registrations.parquet"]
    files.append(("files", ("registrations.parquet", buf.getvalue(), "application/octet-stream")))
    r = client.post("/api/states/NC/submissions", headers=h["nc"], files=files)
    assert r.status_code == 422
    msg = r.json()["error"]
    assert "last_name are not part of a sealed-only delivery and may be plaintext" in msg
    assert "ZZQUIRKSON" not in msg and str(w) not in msg

    # an incomplete delivery
    r = client.post(
        "/api/states/NC/submissions", headers=h["nc"], files=_files(delivery, SEALED[:2])
    )
    assert r.status_code == 422 and "lacks vote_history.parquet" in r.json()["error"]
    assert _uploads_left(w, "NC") == []


def test_a_sealed_only_state_cannot_send_plaintext(svc, nc):
    w, app, client, h = svc
    delivery, paths, _regs = nc
    r = client.post("/api/states/NC/submissions", headers=h["nc"], files=_files(delivery))
    app.state.service.jobs.wait(r.json()["submission"], timeout=120)
    r = client.post(
        "/api/states/NC/submissions",
        headers=h["nc"],
        files=[("files", (p.name, p.read_bytes(), "text/plain")) for p in paths],
    )
    assert r.status_code == 422
    assert r.json()["error"].startswith("NC delivers sealed-only")
    assert "voterolls seal --sealed-only" in r.json()["error"]
