"""The service with the real pipeline: native NC files in, one snapshot, aggregates and report out."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app

pipeline = pytest.importorskip("voterolls.ingest.pipeline", reason="voterolls.ingest.pipeline is not built yet")
sample = pytest.importorskip("voterolls.formats.sample", reason="voterolls.formats.sample is not built yet")


def _native(state: str, n: int, out: Path) -> list[Path]:
    regs, history = sample.national_sample(state, n)
    from voterolls.synth.native import write_native

    return write_native(state, regs, history, out)


def test_real_ingest_through_the_service(tmp_path: Path) -> None:
    from voterolls.store import Workspace

    w = tmp_path / "ws"
    store = AccountStore(w / "service" / "accounts.json")
    nc = {"Authorization": "Bearer " + store.create("nc-upload", "state", "NC")[1]}
    analyst = {"Authorization": "Bearer " + store.create("analyst", "analyst")[1]}
    app = create_app(w)  # the real detect_format and ingest
    client = TestClient(app)
    paths = _native("NC", 60, tmp_path / "nc")
    voter_file = next(p for p in paths if p.name.startswith("ncvoter"))
    lines = voter_file.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[5] = "a line a state's export garbled\n"  # must be quarantined, with a reason, not lost
    voter_file.write_text("".join(lines), encoding="utf-8")
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
    assert res["quarantined"] == 1 and res["quarantine"]["rows"] == 1
    reason = res["quarantine"]["by_reason"][0]["reason"]
    assert "garbled" not in str(res)  # reasons, never the line's content
    q = client.get("/api/states/NC/quarantine", headers=nc).json()
    assert q["quarantine"]["by_reason"][0]["reason"] == reason
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
    assert r.status_code == 422 and "the layout is OH's (oh_swvf), not NC's" in r.json()["error"]

    r = client.post("/api/states/NC/submissions", headers=nc,
                    files={"files": ("mystery.txt", b"nothing a reader knows\n1\n", "text/plain")})
    assert r.status_code == 422 and "mystery.txt" in r.json()["error"]
    assert str(w) not in r.json()["error"] and "--format" not in r.json()["error"]

    agg = client.get("/api/aggregates", headers=analyst).json()
    assert agg["states"] == [{"state": "NC", "registrations": res["loaded"]}]
    page = client.get("/states/NC", headers=nc)
    assert "Latest ingest" in page.text and res["snapshot_id"] in page.text
    assert "every row accounted for" in page.text
    report = client.get("/report", headers=analyst)
    assert report.status_code == 200 and "<html" in report.text.lower()
