"""The service with the real pipeline: native NC files in, one snapshot, aggregates and report out."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app

pipeline = pytest.importorskip("voterolls.ingest.pipeline", reason="voterolls.ingest.pipeline is not built yet")
formats = pytest.importorskip("voterolls.formats", reason="voterolls.formats is not built yet")
sample = pytest.importorskip("voterolls.formats.sample", reason="voterolls.formats.sample is not built yet")


def _native(state: str, n: int, out: Path) -> list[Path]:
    regs, history = sample.national_sample(state, n)
    return formats.write_native(state, regs, history, out)


def test_real_ingest_through_the_service(tmp_path: Path) -> None:
    from voterolls.store import Workspace

    w = tmp_path / "ws"
    store = AccountStore(w / "service" / "accounts.json")
    nc = {"Authorization": "Bearer " + store.create("nc-upload", "state", "NC")[1]}
    analyst = {"Authorization": "Bearer " + store.create("analyst", "analyst")[1]}
    app = create_app(w)  # the real detect_format and ingest
    client = TestClient(app)
    paths = _native("NC", 60, tmp_path / "nc")
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]

    r = client.post("/api/states/NC/submissions", headers=nc, files=files)
    assert r.status_code == 202, r.text
    assert r.json()["format"] == "nc_ncvoter_2022"
    first = r.json()["submission"]
    app.state.service.jobs.wait(first, timeout=120)
    rec = client.get(f"/api/states/NC/jobs/{first}", headers=nc).json()
    assert rec["status"] == "done", rec["message"]
    res = rec["result"]
    assert res["status"] == "new" and res["rows_read"] == 60
    assert res["loaded"] + res["quarantined"] + res["protected_excluded"] == res["rows_read"]
    assert "path" not in res

    # the same files again: the ingest recognises them; still one snapshot
    r = client.post("/api/states/NC/submissions", headers=nc, files=files)
    second = r.json()["submission"]
    assert "Identical to submission" in r.json()["note"]
    app.state.service.jobs.wait(second, timeout=120)
    rec2 = client.get(f"/api/states/NC/jobs/{second}", headers=nc).json()
    assert rec2["result"]["status"] == "unchanged"
    assert rec2["result"]["snapshot_id"] == res["snapshot_id"]
    assert len(Workspace(w).snapshots("NC")) == 1

    # an Ohio file is refused for the NC account, by its layout
    oh = _native("OH", 20, tmp_path / "oh")
    r = client.post("/api/states/NC/submissions", headers=nc,
                    files=[("files", (p.name, p.read_bytes(), "text/plain")) for p in oh])
    assert r.status_code == 422 and "OH file" in r.json()["error"]

    agg = client.get("/api/aggregates", headers=analyst).json()
    assert agg["states"] == [{"state": "NC", "registrations": res["loaded"]}]
    page = client.get("/states/NC", headers=nc)
    assert "Latest ingest" in page.text and res["snapshot_id"] in page.text
    report = client.get("/report", headers=analyst)
    assert report.status_code == 200 and "<html" in report.text.lower()
