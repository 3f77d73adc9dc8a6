"""Nothing changes unaudited: write-ahead audit entries, a torn log stops the service, one error shape.

Issue 17: with the audit log's last line torn (a crash mid-write) an upload
answered 500 was still ingested, job and account reads were served unlogged
and ``/api/audit/verify`` was a bare 500.  Here every action's entry must be
durable before the action, a log that cannot take one refuses the request in
the service's error shape (``{"error": ...}``) with nothing done, and FastAPI's
own validation errors use that shape too, never echoing what was sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from service_fakes import NC_FILE, Env, bearer

from voterolls.service.audit import AuditLog, AuditUnavailable

TORN = b'{"seq": 99, "time": "2026-'  # what a crash in the middle of a write leaves


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def _tear(env: Env) -> None:
    env.client.get("/healthz")  # at least one entry
    with open(env.svc.audit.path, "ab") as f:
        f.write(TORN)


def _entries(env: Env) -> list[dict]:
    return [json.loads(x) for x in env.svc.audit.path.read_text().splitlines() if x.endswith("}")]


def _is_refusal(r, status: int = 503) -> None:  # noqa: ANN001
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and "audit log" in body["error"] and "voterolls audit repair" in body["error"]
    assert "Traceback" not in r.text and str(Path.cwd()) not in r.text


def test_torn_audit_log_refuses_every_request_and_ingests_nothing(env: Env) -> None:
    sid_before = env.upload("NC", NC_FILE).json()["submission"]
    env.wait(sid_before)
    calls = len(env.ingest.calls)
    _tear(env)
    nc, admin, aud = (bearer(env.tokens[k]) for k in ("nc-upload", "admin", "auditor"))
    _is_refusal(env.upload("NC", NC_FILE + b"4\tD\n"))
    _is_refusal(env.client.get(f"/api/states/NC/jobs/{sid_before}", headers=nc))
    _is_refusal(env.client.get("/api/accounts", headers=admin))
    _is_refusal(env.client.post("/api/accounts", headers=admin, json={"name": "new-one", "role": "analyst"}))
    _is_refusal(env.client.get("/api/audit/verify", headers=aud))
    _is_refusal(env.client.get("/healthz"))
    assert len(env.ingest.calls) == calls, "an upload refused for want of an audit entry was ingested"
    assert env.store.get("new-one") is None
    assert [r["id"] for r in env.svc.jobs.list("NC")] == [sid_before]
    assert env.svc.audit.path.read_bytes().endswith(TORN), "something was glued to the torn line"


def test_upload_whose_entry_cannot_be_written_is_refused_and_not_ingested(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills between the tail check and the upload's own entry: 503, folder gone, no ingest."""
    real = AuditLog.append

    def append(self, **kw):  # noqa: ANN001, ANN003, ANN202
        if kw.get("action") == "upload received":
            raise AuditUnavailable("the audit log cannot be written (No space left on device)")
        return real(self, **kw)

    monkeypatch.setattr(AuditLog, "append", append)
    _is_refusal(env.upload("NC", NC_FILE))
    assert env.ingest.calls == [] and env.svc.jobs.list("NC") == []
    assert not any((env.w / "service" / "uploads").rglob("*.txt"))


def test_ingest_whose_start_entry_cannot_be_written_never_runs(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    real = AuditLog.append

    def append(self, **kw):  # noqa: ANN001, ANN003, ANN202
        if kw.get("action") == "ingest started":
            raise AuditUnavailable("the audit log cannot be written (No space left on device)")
        return real(self, **kw)

    monkeypatch.setattr(AuditLog, "append", append)
    r = env.upload("NC", NC_FILE)
    assert r.status_code == 202
    env.wait(r.json()["submission"])
    rec = env.svc.jobs.get("NC", r.json()["submission"])
    assert env.ingest.calls == [] and rec["status"] == "failed" and "audit log" in rec["message"]
    assert not any((env.w / "service" / "uploads").rglob("*.txt")), "the raw upload outlived its refusal"


def test_action_entries_are_durable_before_the_action(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Account create / revoke / token and an ingest find their entry already in the log."""
    seen: dict[str, bool] = {}
    log_path = env.svc.audit.path

    def logged(action: str, target: str) -> bool:
        return any(e["action"] == action and e["target"] == target
                   for e in map(json.loads, log_path.read_text().splitlines()))

    for method, action in (("create", "create account"), ("revoke", "revoke account"), ("issue_token", "issue token")):
        real = getattr(type(env.store), method)

        def spy(self, name, *a, _real=real, _action=action, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
            seen[_action] = logged(_action, f"account {name}")
            return _real(self, name, *a, **kw)

        monkeypatch.setattr(type(env.store), method, spy)
    admin = bearer(env.tokens["admin"])
    assert env.client.post("/api/accounts", headers=admin, json={"name": "wa-one", "role": "analyst"}).status_code == 201
    assert env.client.post("/api/accounts/rotate-me/tokens", headers=admin).status_code == 201
    assert env.client.post("/api/accounts/victim/revoke", headers=admin).status_code == 200
    assert seen == {"create account": True, "issue token": True, "revoke account": True}

    real_ingest = env.svc.jobs.ingest

    def ingest(workspace, state, paths, **kw):  # noqa: ANN001, ANN003, ANN202
        seen["ingest"] = any(e["action"] == "ingest started" for e in _entries(env))
        return real_ingest(workspace, state, paths, **kw)

    env.svc.jobs.ingest = ingest
    r = env.upload("NC", NC_FILE)
    env.wait(r.json()["submission"])
    assert seen["ingest"]
    # a refused action leaves its intent and its refusal
    assert env.client.post("/api/accounts/nobody/revoke", headers=admin).status_code == 404
    tail = [(e["action"], e["status"]) for e in _entries(env) if e["target"] == "account nobody"]
    assert tail == [("revoke account", "ok"), ("revoke account", "refused (404)")]


def test_job_and_account_reads_are_logged(env: Env) -> None:
    r = env.upload("NC", NC_FILE)
    sid = r.json()["submission"]
    env.wait(sid)
    assert env.client.get(f"/api/states/NC/jobs/{sid}", headers=bearer(env.tokens["nc-upload"])).status_code == 200
    assert env.client.get("/api/accounts", headers=bearer(env.tokens["admin"])).status_code == 200
    assert env.client.get("/admin", headers=bearer(env.tokens["admin"])).status_code == 200
    got = {(e["actor"], e["action"], e["target"]) for e in _entries(env)}
    assert ("nc-upload", "read submission", f"NC/{sid}") in got
    assert ("admin", "list accounts", "accounts") in got
    assert ("admin", "view accounts", "accounts") in got


@pytest.mark.parametrize(("path", "who", "param"), [
    ("/api/states/NC/matches?limit=MARY-1962-03-15", "nc-upload", "limit"),
    ("/api/audit?limit=1e9x", "auditor", "limit"),
    ("/states/NC?job=1&x=2", "nc-upload", None),  # unknown query parameters are ignored
])
def test_validation_errors_use_the_error_shape_without_the_value(env: Env, path: str, who: str, param: str | None) -> None:
    r = env.client.get(path, headers=bearer(env.tokens[who]))
    if param is None:
        assert r.status_code == 200
        return
    assert r.status_code == 422
    assert r.json() == {"error": f"The parameter '{param}' must be a whole number."}
    value = path.split("=", 1)[1]
    assert value not in r.text


def test_every_error_status_has_the_same_shape(env: Env) -> None:
    nc = bearer(env.tokens["nc-upload"])
    cases = [
        env.client.get("/api/no-such-thing", headers=nc),  # 404
        env.client.delete("/api/me", headers=nc),  # 405
        env.client.get("/api/me"),  # 401
        env.client.get("/api/aggregates", headers=nc),  # 403
        env.client.get("/api/states/NC/jobs/19990101-000000-deadbeef", headers=nc),  # 404 from a route
        env.client.post("/api/accounts", headers=bearer(env.tokens["admin"]), content=b"{not json"),  # 400
    ]
    assert [r.status_code for r in cases] == [404, 405, 401, 403, 404, 400]
    for r in cases:
        body = r.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"].endswith(".")


def test_a_bug_in_a_route_is_a_500_in_the_error_shape(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    def broken(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise KeyError("MARY")

    monkeypatch.setattr(env.svc.jobs, "list", broken)
    client = TestClient(env.app, raise_server_exceptions=False)
    r = client.get("/api/states/NC/submissions", headers=bearer(env.tokens["nc-upload"]))
    assert r.status_code == 500
    assert r.json() == {"error": "The service stopped on an internal error (KeyError); "
                                 "the administrator can see the server log."}
