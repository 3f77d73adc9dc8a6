"""The audit log: a hash chain that names the first edited, removed or reordered entry."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_fakes import FakeIngest, fake_detect
from typer.testing import CliRunner

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app
from voterolls.service.audit import GENESIS, AuditLog, entry_hash, verify

N = 8


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real log (each append fsynced), copied for every test: fsync is slow on a busy disk."""
    folder = tmp_path_factory.mktemp("audit-template")
    a = AuditLog(folder / "audit.log")
    for i in range(N):
        a.append(actor=f"user{i % 3}", role="state", action=f"GET /api/x/{i}", target="NC", status=200)
    return folder


@pytest.fixture
def log(tmp_path: Path, template: Path) -> AuditLog:
    (tmp_path / "service").mkdir()
    for name in ("audit.log", "audit.head"):
        shutil.copy(template / name, tmp_path / "service" / name)
    return AuditLog(tmp_path / "service" / "audit.log")


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(lines), encoding="utf-8")


def test_intact_chain_verifies(log: AuditLog) -> None:
    res = log.verify()
    assert res.ok and res.entries == N and res.head_seq == N
    entries = list(log.entries())
    assert entries[0]["prev_hash"] == GENESIS
    for prev, cur in zip(entries, entries[1:], strict=False):
        assert cur["prev_hash"] == prev["hash"] and cur["seq"] == prev["seq"] + 1
    assert all(entry_hash(e) == e["hash"] for e in entries)
    assert set(entries[0]) == {"seq", "time", "actor", "role", "action", "target", "status", "prev_hash", "hash"}


@pytest.mark.parametrize("seq", range(1, N + 1))
@pytest.mark.parametrize("field", ["actor", "action", "status", "time", "target", "role"])
def test_editing_any_field_of_any_entry_is_detected(log: AuditLog, seq: int, field: str) -> None:
    lines = _lines(log)
    entry = json.loads(lines[seq - 1])
    entry[field] = entry[field] + "x"
    lines[seq - 1] = json.dumps(entry) + "\n"
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.bad_seq == seq and "edited" in res.message


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_edit_with_recomputed_hash_is_still_detected(log: AuditLog, seq: int) -> None:
    """Re-hashing the edited entry breaks the link from the next one (or the head file)."""
    lines = _lines(log)
    entry = json.loads(lines[seq - 1])
    entry["actor"] = "someone-else"
    entry["hash"] = entry_hash(entry)
    lines[seq - 1] = json.dumps(entry) + "\n"
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.bad_seq == min(seq + 1, N)


@pytest.mark.parametrize("seq", range(1, N + 1))
def test_removing_any_entry_is_detected(log: AuditLog, seq: int) -> None:
    lines = _lines(log)
    del lines[seq - 1]
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.bad_seq == seq
    assert "removed" in res.message


@pytest.mark.parametrize(("a", "b"), [(1, 2), (3, 4), (2, 7), (N - 1, N)])
def test_reordering_two_entries_is_detected(log: AuditLog, a: int, b: int) -> None:
    lines = _lines(log)
    lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.bad_seq == a


def test_renumbered_reorder_is_detected(log: AuditLog) -> None:
    """Swapping two entries and fixing their seq and hash still breaks the prev_hash links."""
    entries = [json.loads(x) for x in _lines(log)]
    entries[2], entries[3] = entries[3], entries[2]
    for i, e in enumerate(entries[2:4], start=3):
        e["seq"] = i
        e["hash"] = entry_hash(e)
    _write(log, [json.dumps(e) + "\n" for e in entries])
    res = log.verify()
    assert not res.ok and res.bad_seq == 3 and "chain" in res.message


def test_cutting_off_the_tail_is_detected_by_the_head_file(log: AuditLog) -> None:
    _write(log, _lines(log)[:-2])
    res = log.verify()
    assert not res.ok and res.bad_seq == N - 1 and "removed from the end" in res.message


def test_a_full_rewrite_is_caught_by_an_anchor(log: AuditLog) -> None:
    anchor = (log.verify().head_seq, log.verify().head_hash)
    forged = []
    prev = GENESIS
    for e in (json.loads(x) for x in _lines(log)):
        e["actor"] = "forger"
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e)
        forged.append(json.dumps(e) + "\n")
    _write(log, forged)
    log.head_path.write_text(json.dumps({"seq": N, "hash": prev}))
    assert log.verify().ok  # a consistent forgery fools the chain alone ...
    res = log.verify(anchor=anchor)
    assert not res.ok and res.bad_seq == N and "anchor" in res.message  # ... not the anchor


def test_garbage_and_blank_lines_are_reported(log: AuditLog) -> None:
    lines = _lines(log)
    lines[4] = "{not json\n"
    _write(log, lines)
    res = log.verify()
    assert not res.ok and res.bad_seq == 5 and "not valid JSON" in res.message


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    a = AuditLog(tmp_path / "audit.log")
    b = AuditLog(tmp_path / "audit.log")  # a second writer (another process in real life)

    def work(log: AuditLog, who: str) -> None:
        for i in range(40):
            log.append(actor=who, role="state", action="GET", target=str(i), status=200)

    threads = [threading.Thread(target=work, args=(x, f"w{i}")) for i, x in enumerate([a, b, a, b])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = verify(tmp_path / "audit.log")
    assert res.ok and res.entries == 160


def test_values_are_clipped_and_made_printable(tmp_path: Path) -> None:
    a = AuditLog(tmp_path / "audit.log")
    e = a.append(actor="x\n{\"seq\":1}", role="r", action="A" * 1000, target="t\x00", status=200)
    assert "\n" not in e["actor"] and len(e["action"]) == 300 and e["target"] == "t?"
    assert a.verify().ok and len(_lines(a)) == 1


def test_cli_verify_names_the_broken_seq(log: AuditLog, tmp_path: Path) -> None:
    from voterolls.cli import app

    runner = CliRunner()
    ws = str(tmp_path)
    r = runner.invoke(app, ["audit", "verify", "--workspace", ws])
    assert r.exit_code == 0 and f"intact: {N} entries" in r.output
    head = r.output.strip().rsplit("hash ", 1)[1]
    r = runner.invoke(app, ["audit", "verify", "--workspace", ws, "--anchor", f"{N}:{head}"])
    assert r.exit_code == 0
    lines = _lines(log)
    del lines[3]
    _write(log, lines)
    r = runner.invoke(app, ["audit", "verify", "--workspace", ws])
    assert r.exit_code == 1 and "broken at seq 4" in r.output
    r = runner.invoke(app, ["audit", "verify", "--workspace", ws, "--anchor", "nonsense"])
    assert r.exit_code != 0


def test_service_logs_every_request_and_data_access_without_tokens(tmp_path: Path) -> None:
    w = tmp_path / "ws"
    store = AccountStore(w / "service" / "accounts.json")
    _, nc = store.create("nc-upload", "state", "NC")
    _, aud = store.create("auditor", "auditor")
    app = create_app(w, ingest=FakeIngest(), detect=fake_detect)
    c = TestClient(app)
    r = c.post("/api/states/NC/submissions", headers={"Authorization": f"Bearer {nc}"},
               files={"files": ("ncvoter.txt", b"FORMAT=nc_ncvoter_2022\nid\n1\n", "text/plain")})
    app.state.service.jobs.wait(r.json()["submission"])
    c.get("/api/states/NC/matches", headers={"Authorization": f"Bearer {nc}"})
    c.get("/api/me", headers={"Authorization": "Bearer vr_000000000000_" + "Z" * 43})
    c.post("/login", data={"token": nc + "x"})
    c.get("/api/states/NC/matches?secret=abc", headers={"Authorization": f"Bearer {nc}"})
    body = c.get("/api/audit", headers={"Authorization": f"Bearer {aud}"}).json()["entries"]
    actions = [(e["actor"], e["action"], e["status"]) for e in reversed(body)]
    assert ("nc-upload", "POST /api/states/{state}/submissions", "202") in actions
    assert ("nc-upload", "upload received", "1 file, 28 bytes") in actions
    assert ("nc-upload", "ingest", "done") in actions
    assert ("nc-upload", "read own matches", "0 of 0 pairs") in actions
    assert ("anonymous", "GET /api/me", "401") in actions
    assert ("anonymous", "POST /login", "401") in actions
    c.get(f"/api/{nc}", headers={"Authorization": f"Bearer {nc}"})  # a token pasted into a path
    text = (w / "service" / "audit.log").read_text()
    assert "vr_[redacted]" in text
    assert nc not in text and aud not in text and nc.split("_", 2)[2] not in text and "Z" * 43 not in text
    assert "secret=abc" not in text  # query strings are not logged
    v = c.get("/api/audit/verify", headers={"Authorization": f"Bearer {aud}"}).json()
    assert v["ok"] and v["bad_seq"] is None
    page = c.get("/auditor", headers={"Authorization": f"Bearer {aud}"})
    assert "Chain intact" in page.text
    lines = (w / "service" / "audit.log").read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("nc-upload", "oh-upload")
    (w / "service" / "audit.log").write_text("".join(lines))
    page = c.get("/auditor", headers={"Authorization": f"Bearer {aud}"})
    assert "Chain broken at seq 2" in page.text
