"""The intake service: authorisation matrix, no personal data leaks, accounts, jobs.

Everything here runs against a fake ingest (``tests/service_fakes.py``)
so it does not depend on the ingest pipeline; ``test_service_integration``
runs the real one.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from service_fakes import NC_FILE, OH_FILE, Env, FakeIngest, bearer, fake_detect

from voterolls.service import data as wsdata
from voterolls.service.accounts import AccountStore, AuthError
from voterolls.service.app import create_app


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


# --------------------------------------------------------------- the matrix
_counter = itertools.count()

#: (method, path, allowed roles, success status, is a page, request kwargs factory)
ENDPOINTS = [
    ("GET", "/api/me", {"nc-upload", "oh-upload", "analyst", "auditor", "admin"}, 200, False, None),
    ("POST", "/api/states/NC/submissions", {"nc-upload"}, 202, False,
     lambda: {"files": {"files": ("ncvoter.txt", NC_FILE, "text/plain")}}),
    ("GET", "/api/states/NC/submissions", {"nc-upload"}, 200, False, None),
    ("GET", "/api/states/NC/jobs/{job}", {"nc-upload"}, 200, False, None),
    ("GET", "/api/states/NC/quarantine", {"nc-upload"}, 200, False, None),
    ("GET", "/api/states/NC/matches", {"nc-upload"}, 200, False, None),
    # lists: no linkage has run in this workspace, so the state's own account gets 404 / 409, others 401 / 403
    ("GET", "/api/states/NC/lists/cross_state_movers.csv", {"nc-upload"}, 404, False, None),
    ("POST", "/api/states/NC/lists/external", {"nc-upload"}, 409, False,
     lambda: {"files": {"files": ("deaths.csv", b"CERT_NO,LAST\nD1,X\n", "text/csv")}}),
    ("GET", "/api/aggregates", {"analyst"}, 200, False, None),
    ("GET", "/api/audit", {"auditor"}, 200, False, None),
    ("GET", "/api/audit/verify", {"auditor"}, 200, False, None),
    ("GET", "/api/accounts", {"admin"}, 200, False, None),
    ("POST", "/api/accounts", {"admin"}, 201, False,
     lambda: {"json": {"name": f"new-{next(_counter)}", "role": "analyst"}}),
    ("POST", "/api/accounts/victim/revoke", {"admin"}, 200, False, None),
    ("POST", "/api/accounts/rotate-me/tokens", {"admin"}, 201, False, None),
    ("GET", "/states/NC", {"nc-upload"}, 200, True, None),
    ("GET", "/analyst", {"analyst"}, 200, True, None),
    ("GET", "/auditor", {"auditor"}, 200, True, None),
    ("GET", "/admin", {"admin"}, 200, True, None),
    ("GET", "/report", {"nc-upload", "oh-upload", "analyst"}, 200, True, None),
]
CALLERS = ["nc-upload", "oh-upload", "analyst", "auditor", "admin", None, "bad", "expired", "revoked"]


def test_authorisation_matrix(env: Env) -> None:
    """Every endpoint x every caller: the exact status code, nothing more and nothing less."""
    r = env.upload("NC", NC_FILE)
    assert r.status_code == 202, r.text
    job = r.json()["submission"]
    env.wait(job)
    failures = []
    for (method, path, allowed, ok, page, kw), caller in itertools.product(ENDPOINTS, CALLERS):
        url = path.format(job=job)
        headers = bearer(env.tokens[caller]) if caller else {}
        resp = env.client.request(method, url, headers=headers, follow_redirects=False, **(kw() if kw else {}))
        if caller is None:
            want = 303 if page else 401
        elif caller in ("bad", "expired", "revoked"):
            want = 401
        elif caller in allowed:
            want = ok
        else:
            want = 403
        if resp.status_code != want:
            failures.append(f"{caller or 'anonymous'} {method} {url}: {resp.status_code} (want {want}) {resp.text[:120]}")
        if resp.status_code == 401:
            assert "WWW-Authenticate" in resp.headers
        if caller is None and page:
            assert resp.headers["location"].startswith("/login?next=")
        if resp.status_code == 202:
            env.wait(resp.json()["submission"])
    assert not failures, "\n".join(failures)


def test_other_state_gets_403_with_clear_message(env: Env) -> None:
    r = env.client.get("/api/states/NC/matches", headers=bearer(env.tokens["oh-upload"]))
    assert r.status_code == 403
    assert r.json()["error"] == "Your account uploads for OH; it cannot see NC."
    # another state's job id through one's own state path is simply not found
    sid = env.upload("NC", NC_FILE).json()["submission"]
    env.wait(sid)
    assert env.client.get(f"/api/states/OH/jobs/{sid}", headers=bearer(env.tokens["oh-upload"])).status_code == 404
    # ids that are not submission ids are never looked up on disk
    for bad in ("..", "..%2F..%2Fservice", "20261124-000000-zzzzzzzz", "x" * 300):
        assert env.client.get(f"/api/states/NC/jobs/{bad}", headers=bearer(env.tokens["nc-upload"])).status_code == 404
    # an unknown state code: the caller is identified first, then refused
    assert env.client.get("/api/states/ZZ/matches").status_code == 401
    r = env.client.get("/api/states/ZZ/matches", headers=bearer(env.tokens["nc-upload"]))
    assert r.status_code == 403 and "cannot see that state" in r.json()["error"]


def test_expired_and_bad_tokens_say_why(env: Env) -> None:
    r = env.client.get("/api/me", headers=bearer(env.tokens["expired"]))
    assert r.status_code == 401 and "expired" in r.json()["error"]
    r = env.client.get("/api/me", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]
    # a bad bearer token never falls back to a valid session cookie
    env.client.post("/login", data={"token": env.tokens["analyst"]})
    assert env.client.get("/api/me").status_code == 200
    assert env.client.get("/api/me", headers=bearer(env.tokens["bad"])).status_code == 401


# ------------------------------------------------------- personal data checks
SECRET_NAMES = ["QUIZZLEFOOT", "MARGARETHA", "1937-02-11", "4421 ZINNIA WAY", "9195550142", "OHVOTER-77"]


def _plant_data(env: Env, monkeypatch) -> None:
    """Registrations with distinctive personal values and a pairs file involving NC and OH."""
    (env.w / "link").mkdir(parents=True, exist_ok=True)
    pairs = pa.table({
        "state_l": ["NC", "NC", "OH"] + ["NC"] * 12,
        "state_voter_id_l": ["NC-1", "NC-2", "OHVOTER-77"] + [f"NC-{i}" for i in range(10, 22)],
        "state_r": ["OH", "NC", "NC"] + ["OH"] * 12,
        "state_voter_id_r": ["OHVOTER-77", "NC-3", "NC-4"] + [f"OH-{i}" for i in range(10, 22)],
        "match_probability": [0.97, 0.42, 0.88] + [0.05] * 12,
        "match_weight": [9.1, -0.4, 5.2] + [-6.0] * 12,
        "dob_granularity_l": ["full", "year", "full"] + ["year"] * 12,
        "dob_granularity_r": ["full", "year", "year"] + ["year"] * 12,
        "gamma_last_name": [2, 1, 2] + [0] * 12,
        "gamma_dob": [1, 0, 1] + [0] * 12,
    })
    pq.write_table(pairs, env.w / "link" / "pairs.parquet")

    def fake_registrations(_w):
        con = duckdb.connect()
        con.execute("""
            CREATE TABLE registrations AS SELECT * FROM (VALUES
              ('NC', 'NC-1', 'QUIZZLEFOOT', 'MARGARETHA', DATE '1937-02-11', '4421 ZINNIA WAY', '9195550142', 'active', 'full', 'DEM'),
              ('OH', 'OHVOTER-77', 'QUIZZLEFOOT', 'MARGARETHA', DATE '1937-02-11', '4421 ZINNIA WAY', '9195550142', 'active', 'full', 'REP')
            ) t(state, state_voter_id, last_name, first_name, dob, residence_address, phone, status, dob_granularity, party)
        """)
        con.execute("INSERT INTO registrations SELECT 'NC', 'NC-' || i, 'X', 'Y', NULL, NULL, NULL, 'active', 'year', 'UNA' FROM range(100, 140) r(i)")
        return con

    monkeypatch.setattr(wsdata, "_registrations", fake_registrations)


def test_no_personal_data_for_analyst_or_other_state(env: Env, monkeypatch) -> None:
    _plant_data(env, monkeypatch)
    sid = env.upload("NC", NC_FILE).json()["submission"]
    env.wait(sid)
    urls = [path.format(job=sid) for method, path, *_ in ENDPOINTS if method == "GET"]
    for caller in ("analyst", "oh-upload", "auditor", "admin"):
        for url in urls:
            r = env.client.get(url, headers=bearer(env.tokens[caller]))
            for secret in SECRET_NAMES + ["NC-1", "NC-2", "NC-3"]:
                if caller == "oh-upload" and secret == "OHVOTER-77" and url.startswith("/api/states/OH"):
                    continue
                assert secret not in r.text, f"{caller} saw {secret!r} at {url}"


def test_state_sees_its_own_matches_but_not_the_other_states_ids(env: Env, monkeypatch) -> None:
    _plant_data(env, monkeypatch)
    r = env.client.get("/api/states/NC/matches", headers=bearer(env.tokens["nc-upload"]))
    assert r.status_code == 200
    body = r.json()
    assert body["total"] == 15
    top = body["rows"][0]
    assert (top["voter_id"], top["other_state"], top["match_probability"]) == ("NC-1", "OH", 0.97)
    assert top["other_voter_id"] is None and "OHVOTER-77" not in r.text
    in_state = next(row for row in body["rows"] if row["voter_id"] == "NC-2")
    assert in_state["other_voter_id"] == "NC-3"  # both records are NC's own
    oh = env.client.get("/api/states/OH/matches", headers=bearer(env.tokens["oh-upload"])).json()
    assert {row["voter_id"] for row in oh["rows"]} >= {"OHVOTER-77"} and "NC-1" not in json.dumps(oh)
    page = env.client.get("/states/NC", headers=bearer(env.tokens["nc-upload"]))
    assert "NC-1" in page.text and "OHVOTER-77" not in page.text


def test_analyst_aggregates_are_suppressed(env: Env, monkeypatch) -> None:
    _plant_data(env, monkeypatch)
    agg = env.client.get("/api/aggregates", headers=bearer(env.tokens["analyst"])).json()
    assert {s["state"]: s["registrations"] for s in agg["states"]} == {"NC": 41, "OH": None}
    party = agg["categories"]["party"]["by_state"]
    # DEM (1) is small and NC's total (41) is published: rather than hide UNA (40) under a
    # false "<10", DEM is merged with it and the pair is published as one figure
    assert party["NC"]["DEM"] == {"n": 41, "group": ["DEM", "UNA"], "lead": True}
    assert party["NC"]["UNA"] == {"n": 41, "group": ["DEM", "UNA"], "lead": False}
    assert party["OH"]["REP"]["n"] is None  # OH has fewer than 10 registrations in all
    # the report's bins: 12 pairs at 0.05 and one at 0.42 merged into one bar of 13;
    # the lone pairs at 0.88 and 0.97 read "<10" (true: 1 each)
    hist = [(round(b["from"], 2), round(b["to"], 2), b["pairs"]) for b in agg["match_histogram"]]
    assert (0.05, 0.5, 13) in hist and (0.0, 0.05, 0) in hist
    assert [p for lo, _, p in hist if lo >= 0.5 and p not in (0, None)] == []
    page = env.client.get("/analyst", headers=bearer(env.tokens["analyst"])).text
    assert "&lt;10" in page and "QUIZZLEFOOT" not in page and "DEM + UNA" in page


# ------------------------------------------------------------ pages, session
def test_login_sets_strict_httponly_cookie_and_logout_ends_it(env: Env) -> None:
    r = env.client.post("/login", data={"token": env.tokens["nc-upload"]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/states/NC"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and env.tokens["nc-upload"] not in cookie
    page = env.client.get("/states/NC")
    assert page.status_code == 200 and "Send a file" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    env.client.post("/logout", data={"csrf": csrf})
    assert env.client.get("/states/NC", follow_redirects=False).status_code == 303


def test_login_with_bad_or_expired_token_explains(env: Env) -> None:
    r = env.client.post("/login", data={"token": env.tokens["expired"]})
    assert r.status_code == 401 and "expired" in r.text
    r = env.client.post("/login", data={"token": "nonsense"})
    assert r.status_code == 401 and "not valid" in r.text and "set-cookie" not in r.headers


def test_login_next_cannot_redirect_off_site_or_to_another_role(env: Env) -> None:
    r = env.client.post("/login", data={"token": env.tokens["nc-upload"], "next": "//evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/states/NC"
    r = env.client.post("/login", data={"token": env.tokens["nc-upload"], "next": "/report"}, follow_redirects=False)
    assert r.headers["location"] == "/report"
    r = env.client.post("/login", data={"token": env.tokens["nc-upload"], "next": "/states/OH"}, follow_redirects=False)
    assert r.headers["location"] == "/states/NC"


def test_session_upload_needs_csrf(env: Env) -> None:
    env.client.post("/login", data={"token": env.tokens["nc-upload"]})
    files = {"files": ("ncvoter.txt", NC_FILE, "text/plain")}
    r = env.client.post("/api/states/NC/submissions", files=files)
    assert r.status_code == 403 and "reload the page" in r.json()["error"]
    assert not list((env.w / "service" / "uploads" / "NC").iterdir())
    page = env.client.get("/states/NC").text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    r = env.client.post("/api/states/NC/submissions", files=files, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 202
    env.wait(r.json()["submission"])
    # the no-script form: csrf travels as a form field and the browser is sent back to the page
    r = env.client.post("/api/states/NC/submissions", files=files, data={"csrf": csrf},
                        headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/states/NC?job=")
    env.wait(r.headers["location"].split("job=")[1])


def test_revoking_an_account_ends_its_session(env: Env) -> None:
    env.client.post("/login", data={"token": env.tokens["analyst"]})
    assert env.client.get("/analyst").status_code == 200
    env.client.post("/api/accounts/analyst/revoke", headers=bearer(env.tokens["admin"]))
    assert env.client.get("/analyst", follow_redirects=False).status_code == 303
    assert env.client.get("/api/me", headers=bearer(env.tokens["analyst"])).status_code == 401


def test_admin_page_creates_account_and_shows_token_once(env: Env) -> None:
    env.client.post("/login", data={"token": env.tokens["admin"]})
    page = env.client.get("/admin").text
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    r = env.client.post("/admin/accounts", data={"csrf": csrf, "name": "ga-upload", "role": "state", "state": "GA", "expires_days": "30"})
    assert r.status_code == 201
    token = r.text.split('id="new-token"', 1)[0].rsplit('value="', 1)[1].split('"', 1)[0]
    assert env.store.authenticate(token).state == "GA"
    assert token not in env.client.get("/admin").text  # shown once
    r = env.client.post("/admin/accounts", data={"csrf": csrf, "name": "x-upload", "role": "state", "state": ""})
    assert r.status_code == 400 and "exactly one state" in r.text
    r = env.client.post("/admin/accounts", data={"csrf": "wrong", "name": "y", "role": "analyst"})
    assert r.status_code == 403


# ------------------------------------------------------------------ accounts
def test_tokens_are_stored_only_as_hashes(env: Env) -> None:
    text = env.store.path.read_text()
    for token in env.tokens.values():
        assert token not in text
        assert token.split("_", 2)[2] not in text
    assert oct(env.store.path.stat().st_mode & 0o777) == "0o600"


def test_account_rules(tmp_path: Path) -> None:
    from voterolls.errors import UserError

    store = AccountStore(tmp_path / "a.json")
    with pytest.raises(UserError, match="exactly one state"):
        store.create("s1", "state")
    with pytest.raises(UserError, match="only state uploader"):
        store.create("s2", "analyst", "NC")
    with pytest.raises(UserError, match="unknown role"):
        store.create("s3", "root")
    with pytest.raises(UserError, match="account names"):
        store.create("../x", "admin")
    _, tok = store.create("s4", "state", "nc")
    assert store.authenticate(tok).state == "NC"
    with pytest.raises(UserError, match="already exists"):
        store.create("s4", "analyst")
    tok2 = store.issue_token("s4")
    assert store.authenticate(tok2).name == "s4" and store.authenticate(tok).name == "s4"
    with pytest.raises(AuthError, match="invalid"):
        store.authenticate(tok[:-1] + ("A" if tok[-1] != "A" else "B"))
    with pytest.raises(AuthError, match="expired"):
        store.authenticate(tok, now=datetime.now(UTC) + timedelta(days=91))
    store.revoke("s4")
    with pytest.raises(AuthError, match="revoked"):
        store.authenticate(tok2)


def test_cli_accounts_and_audit(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voterolls.cli import app

    runner = CliRunner()
    w = str(tmp_path / "ws")
    r = runner.invoke(app, ["accounts", "create", "nc-upload", "--role", "state", "--state", "NC", "--workspace", w])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("vr_")
    r = runner.invoke(app, ["accounts", "list", "--workspace", w])
    assert "nc-upload" in r.output and "active" in r.output and token not in r.output
    r = runner.invoke(app, ["accounts", "revoke", "nc-upload", "--workspace", w])
    assert r.exit_code == 0 and "revoked" in r.output
    r = runner.invoke(app, ["audit", "verify", "--workspace", w])
    assert r.exit_code == 0 and "intact: 3 entries" in r.output  # create, list (a read), revoke
    log = (tmp_path / "ws" / "service" / "audit.log").read_text()
    assert token not in log and "create account" in log


# ---------------------------------------------------------------------- jobs
def test_upload_ingests_in_background_with_visible_progress(tmp_path: Path) -> None:
    ingest = FakeIngest()
    ingest.gate = threading.Event()
    env = Env(tmp_path, ingest=ingest)
    r = env.upload("NC", NC_FILE)
    assert r.status_code == 202
    sid = r.json()["submission"]
    url = r.json()["job_url"]
    deadline = time.monotonic() + 30
    while True:
        rec = env.client.get(url, headers=bearer(env.tokens["nc-upload"])).json()
        if rec["stage"] == "reading the files" or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert rec["status"] == "ingesting" and rec["progress"] == 0.25
    page = env.client.get("/states/NC", headers=bearer(env.tokens["nc-upload"])).text
    assert f'data-job-url="/api/states/NC/jobs/{sid}"' in page
    ingest.gate.set()
    env.wait(sid)
    rec = env.client.get(url, headers=bearer(env.tokens["nc-upload"])).json()
    assert rec["status"] == "done" and rec["progress"] == 1.0
    assert rec["result"]["rows_read"] == 3 and rec["result"]["quarantined"] == 1
    # the raw upload is gone; its record (names, sizes, hashes, counts) stays
    folder = env.w / "service" / "uploads" / "NC" / sid
    assert sorted(p.name for p in folder.iterdir()) == ["submission.json"]
    page = env.client.get("/states/NC", headers=bearer(env.tokens["nc-upload"])).text
    assert "Latest ingest" in page and "unparseable date" in page and "every row accounted for" in page
    q = env.client.get("/api/states/NC/quarantine", headers=bearer(env.tokens["nc-upload"])).json()
    assert q["quarantine"]["by_reason"][0] == {"field": "dob", "reason": "unparseable date", "rows": 1}


def test_one_ingest_per_state_at_a_time(tmp_path: Path) -> None:
    ingest = FakeIngest(delay=0.05)
    ingest.gates["NC"] = threading.Event()  # NC's ingests hang until released
    env = Env(tmp_path, ingest=ingest)
    sids = [env.upload("NC", NC_FILE + f"{i}\tX\n".encode()).json()["submission"] for i in range(3)]
    oh = env.upload("OH", OH_FILE).json()["submission"]
    env.wait(oh)  # Ohio is not held up by North Carolina's queue
    assert env.svc.jobs.get("OH", oh)["status"] == "done"
    deadline = time.monotonic() + 30
    while True:  # the first NC thread may still be getting its turn on a busy machine
        statuses = sorted(env.svc.jobs.get("NC", s)["status"] for s in sids)
        if statuses == ["ingesting", "queued", "queued"] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert statuses == ["ingesting", "queued", "queued"]
    ingest.gates["NC"].set()
    for sid in sids:
        env.wait(sid)
    assert ingest.max_running["NC"] == 1
    assert [env.svc.jobs.get("NC", s)["status"] for s in sids] == ["done"] * 3


def test_parallel_ingests_are_capped(tmp_path: Path) -> None:
    env = Env(tmp_path, ingest=FakeIngest(delay=0.1), max_parallel_ingests=1)
    sids = [env.upload("NC", NC_FILE).json()["submission"], env.upload("OH", OH_FILE).json()["submission"]]
    for sid in sids:
        env.wait(sid)
    (_, s1, e1), (_, s2, e2) = sorted(env.ingest.intervals, key=lambda t: t[1])
    assert e1 <= s2  # one after the other, though the states differ


def test_same_file_twice_is_one_snapshot(env: Env) -> None:
    a = env.upload("NC", NC_FILE).json()
    env.wait(a["submission"])
    b = env.upload("NC", NC_FILE, name="again.txt").json()
    env.wait(b["submission"])
    assert b["note"].startswith(f"Identical to submission {a['submission']}")
    ra = env.svc.jobs.get("NC", a["submission"])["result"]
    rb = env.svc.jobs.get("NC", b["submission"])["result"]
    assert ra["snapshot_id"] == rb["snapshot_id"] and (ra["status"], rb["status"]) == ("new", "unchanged")


def test_failed_ingest_shows_the_reason_and_keeps_nothing(tmp_path: Path) -> None:
    env = Env(tmp_path, ingest=FakeIngest(fail_with="date not in MM/DD/YYYY"))
    sid = env.upload("NC", NC_FILE).json()["submission"]
    env.wait(sid)
    rec = env.svc.jobs.get("NC", sid)
    assert rec["status"] == "failed"
    assert rec["message"] == "ncvoter.txt, line 3, field 'dob': date not in MM/DD/YYYY"
    assert sorted(p.name for p in (env.w / "service" / "uploads" / "NC" / sid).iterdir()) == ["submission.json"]
    page = env.client.get("/states/NC", headers=bearer(env.tokens["nc-upload"])).text
    assert 'id="last-failure"' in page and "date not in MM/DD/YYYY" in page


def test_restart_marks_unfinished_ingest_interrupted(tmp_path: Path) -> None:
    ingest = FakeIngest()
    ingest.gate = threading.Event()
    env = Env(tmp_path, ingest=ingest)
    sid = env.upload("NC", NC_FILE).json()["submission"]
    time.sleep(0.1)
    app2 = create_app(env.w, ingest=FakeIngest(), detect=fake_detect)  # a restart
    rec = app2.state.service.jobs.get("NC", sid)
    assert rec["status"] == "interrupted" and "upload again" in rec["message"]
    ingest.gate.set()
    env.wait(sid)


def test_serve_refuses_plain_http_off_localhost(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voterolls.cli import app
    from voterolls.errors import UserError

    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--workspace", str(tmp_path / "ws")])
    assert r.exit_code != 0 and isinstance(r.exception, UserError)
    assert "refusing to serve voter files over plain HTTP" in str(r.exception)
    r = CliRunner().invoke(app, ["serve", "--max-upload", "lots", "--workspace", str(tmp_path / "ws")])
    assert isinstance(r.exception, UserError) and "2GiB" in str(r.exception)


def test_default_failure_limit_is_per_app_and_generous(env: Env) -> None:
    """The default limiter (100 failures a minute per address) leaves the matrix above untouched,
    then answers 429 with Retry-After; the details are in test_reliability_security."""
    from voterolls.service.accounts import DEFAULT_MAX_FAILURES, FailureLimiter

    lim = env.svc.auth_limiter
    assert isinstance(lim, FailureLimiter) and lim.max_failures == DEFAULT_MAX_FAILURES == 100
    codes = [env.client.get("/api/me", headers=bearer(env.tokens["bad"])).status_code for _ in range(101)]
    assert codes == [401] * 100 + [429]
    r = env.client.get("/api/me", headers=bearer(env.tokens["analyst"]))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "Too many failed sign-in attempts" in r.json()["error"]
    # a fresh app (a restart) starts with a clean slate; the limit lives in the process
    app2 = create_app(env.w, ingest=FakeIngest(), detect=fake_detect)
    from fastapi.testclient import TestClient

    assert TestClient(app2).get("/api/me", headers=bearer(env.tokens["analyst"])).status_code == 200
