"""Deliveries through the service with the real ingest: county-split states, archives, confirmations."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from delivery_files import FL_COUNTIES, fl_county_files
from fastapi.testclient import TestClient
from service_fakes import bearer

from voterolls.formats.sample import national_sample
from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app
from voterolls.store import Workspace
from voterolls.synth.native import write_native


class Svc:
    def __init__(self, tmp: Path) -> None:
        self.w = tmp / "ws"
        store = AccountStore(self.w / "service" / "accounts.json")
        self.tokens = {st: store.create(f"{st.lower()}-upload", "state", st)[1] for st in ("FL", "NC")}
        self.auditor = store.create("auditor", "auditor")[1]
        self.app = create_app(self.w, max_upload_bytes=64 * 1024 * 1024)
        self.client = TestClient(self.app)

    def send(self, state: str, paths: list[Path] | None = None, *, raw: list[tuple[str, bytes]] | None = None, **params):
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths or []]
        files += [("files", (name, body, "application/octet-stream")) for name, body in raw or []]
        r = self.client.post(f"/api/states/{state}/submissions", headers=bearer(self.tokens[state]), files=files, params=params)
        assert r.status_code == 202, r.text
        sid = r.json()["submission"]
        self.app.state.service.jobs.wait(sid, timeout=300)
        return self.app.state.service.jobs.get(state, sid)

    def counties(self, state: str) -> dict[str, int]:
        con = Workspace(self.w).connect()
        return dict(con.execute("SELECT county, count(*) FROM registrations WHERE state = ? GROUP BY 1", [state]).fetchall())


@pytest.fixture(scope="module")
def fl_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    return fl_county_files(tmp_path_factory.mktemp("fl"))


def test_all_134_fl_files_in_one_submission(fl_files, tmp_path: Path) -> None:
    reg, his = fl_files
    svc = Svc(tmp_path)
    rec = svc.send("FL", reg + his)
    assert rec["status"] == "done", rec["message"]
    assert len(rec["files"]) == 134 and len(rec["result"]["files"]) == 134
    counties = svc.counties("FL")
    assert set(counties) == set(FL_COUNTIES) and sum(counties.values()) == rec["result"]["loaded"]


def test_fl_in_three_submissions_holds_every_county_once(fl_files, tmp_path: Path) -> None:
    reg, his = fl_files
    one = Svc(tmp_path / "one")
    assert one.send("FL", reg + his)["status"] == "done"
    svc = Svc(tmp_path / "three")
    for a, b in ((0, 30), (30, 50), (50, 67)):
        rec = svc.send("FL", reg[a:b] + his[a:b])
        assert rec["status"] == "done", rec["message"]
        assert rec["result"]["status"] == "new"
    assert svc.counties("FL") == one.counties("FL")
    con_one, con = Workspace(one.w).connect(), Workspace(svc.w).connect()
    q = "SELECT count(*) FROM vote_history WHERE state = 'FL'"
    assert con.sql(q).fetchall() == con_one.sql(q).fetchall()


def test_zip_upload_and_shrink_confirmation(tmp_path: Path) -> None:
    regs, vh = national_sample("NC", 200, seed=21)
    files = write_native("NC", regs, vh, tmp_path / "nc")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            zf.write(f, f.name)
    svc = Svc(tmp_path)
    rec = svc.send("NC", raw=[("ncvoter_Statewide.zip", buf.getvalue())])
    assert rec["status"] == "done", rec["message"]
    names = {f["file_name"] for f in rec["result"]["files"]}
    assert names == {f"ncvoter_Statewide.zip!{f.name}" for f in files}
    loaded = rec["result"]["loaded"]
    # a much smaller registrations file: refused with the numbers, until confirmed
    reg = next(f for f in files if "ncvoter" in f.name)
    small = tmp_path / "small" / reg.name
    small.parent.mkdir()
    small.write_bytes(b"\n".join(reg.read_bytes().split(b"\n")[:41]) + b"\n")
    refused = svc.send("NC", [small])
    assert refused["status"] == "failed"
    assert f"from {loaded:,} to 40" in refused["message"] and "allow a smaller roll" in refused["message"]
    assert svc.counties("NC") and sum(svc.counties("NC").values()) == loaded
    confirmed = svc.send("NC", [small], allow_shrink="yes")
    assert confirmed["status"] == "done", confirmed["message"]
    assert confirmed["result"]["loaded"] == 40
    assert confirmed["result"]["vote_history_loaded"] == rec["result"]["vote_history_loaded"]  # history kept
    # the confirmation is in the audit trail, written before the ingest ran
    entries = svc.client.get("/api/audit", headers=bearer(svc.auditor)).json()["entries"]
    received = [e["status"] for e in entries if e["action"] == "upload received"]
    assert sum(x.endswith(", confirmed: allow_shrink") for x in received) == 1 and len(received) == 3


def test_another_states_file_in_a_zip_is_refused_by_the_ingest(tmp_path: Path) -> None:
    regs, vh = national_sample("NC", 50, seed=3)
    files = write_native("NC", regs, vh, tmp_path / "nc")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in files:
            zf.write(f, f.name)
    svc = Svc(tmp_path)
    rec = svc.send("FL", raw=[("fl.zip", buf.getvalue())])
    assert rec["status"] == "failed" and "the layout is NC's" in rec["message"]
    assert "FL" not in Workspace(svc.w).current()
