"""Adversarial tests of the intake service (the service's own tests hold the authorisation matrix).

* hostile upload names (hypothesis over arbitrary text) and hostile URL paths
  never write or read outside the submission folder;
* oversized, too many, binary and archive uploads are refused with the
  right status and a message that says what to do; junk that passes the text
  check fails its ingest cleanly, with nothing stored;
* missing, malformed, forged, tampered, expired, revoked and orphaned tokens
  get 401 with a reason; one state's token gets 403 on another state's data
  and never learns whether an id exists there;
* a flood of 500 requests from 16 threads against ``voterolls serve`` on
  127.0.0.1 is answered in bounded time, the server stays responsive, does
  not grow without bound (memory, threads, file descriptors), and every
  request lands in an unbroken audit chain;
* failed authentications are limited per client address: after the allowed
  number of wrong tokens (or login-form attempts) an address gets 429 with
  ``Retry-After`` before any check, other addresses and requests without
  credentials are unaffected, and the right token works again once the
  window has passed (in process with a fake clock, and against a real
  server on loopback: 127.0.0.1 floods, 127.0.0.2 is the normal client).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import FULL, ROOT, fuzz_settings

pytest.importorskip("voterolls.service.app")

from fastapi.testclient import TestClient  # noqa: E402
from service_fakes import FakeIngest, fake_detect  # noqa: E402

from voterolls.service.accounts import (  # noqa: E402
    DEFAULT_MAX_FAILURES,
    DEFAULT_WINDOW_S,
    AccountStore,
    FailureLimiter,
)
from voterolls.service.app import create_app  # noqa: E402
from voterolls.service.uploads import safe_filename  # noqa: E402

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TEXT = b"FORMAT=generic\nstate_voter_id,last_name\n1,A\n2,B\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Svc:
    """A service over a temp workspace with NC and VT uploaders, an analyst and hostile tokens."""

    def __init__(self, tmp: Path, *, real: bool = False, max_upload_bytes: int = 64 * 1024) -> None:
        self.w = tmp / "ws"
        self.store = AccountStore(self.w / "service" / "accounts.json")
        self.tokens = {
            name: self.store.create(name, role, state)[1]
            for name, role, state in [
                ("nc-upload", "state", "NC"),
                ("vt-upload", "state", "VT"),
                ("analyst", "analyst", None),
                ("expiring", "state", "NC"),
                ("revoked", "state", "NC"),
                ("deleted", "state", "NC"),
            ]
        }
        raw = json.loads(self.store.path.read_text())
        past = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        raw["accounts"]["expiring"]["tokens"][0]["expires"] = past
        del raw["accounts"]["deleted"]
        self.store.path.write_text(json.dumps(raw))
        self.store.revoke("revoked")
        kw = {} if real else {"ingest": FakeIngest(), "detect": fake_detect}
        self.app = create_app(self.w, max_upload_bytes=max_upload_bytes, **kw)
        self.client = TestClient(self.app)

    def upload(self, state: str, files, token: str | None = None, **kw):
        token = token or self.tokens[f"{state.lower()}-upload"]
        return self.client.post(f"/api/states/{state}/submissions", headers=bearer(token), files=files, **kw)

    def wait(self, sid: str) -> None:
        self.app.state.service.jobs.wait(sid, timeout=120)


@pytest.fixture
def svc(tmp_path: Path) -> Svc:
    return Svc(tmp_path)


def _files_under(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- names and paths


@fuzz_settings(300)
@given(name=st.text(max_size=300), others=st.lists(st.text(max_size=40), max_size=5))
def test_safe_filename_on_any_text(name: str, others: list[str]) -> None:
    folder = Path("/srv/uploads/NC/sub")
    taken: set[str] = set()
    got = [safe_filename(n, taken) for n in [*others, name, name]]
    for g in got:
        assert SAFE.match(g) and len(g) <= 100, g
        assert (folder / g).resolve().parent == folder
    assert len({g.lower() for g in got}) == len(got), "two uploads would share a stored name"


@fuzz_settings(15)
@given(name=st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
def test_hostile_upload_names_end_to_end(tmp_path_factory, name: str) -> None:
    tmp = tmp_path_factory.mktemp("names")
    svc = Svc(tmp)
    before = _files_under(tmp)
    r = svc.upload("NC", {"files": (name, TEXT, "text/plain")})
    assert r.status_code == 202, r.text
    sid = r.json()["submission"]
    svc.wait(sid)
    stored = r.json()["files"][0]["name"]
    assert SAFE.match(stored), stored
    folder = (svc.w / "service" / "uploads" / "NC" / sid).resolve()
    for p in _files_under(tmp) - before:
        assert p.is_relative_to(folder) or p.parent == (svc.w / "service").resolve(), p


@pytest.mark.parametrize(
    "path",
    [
        "/api/states/..%2F..%2Fservice/submissions",
        "/api/states/NC/jobs/..%2F..%2F..%2Fservice%2Faccounts.json",
        "/api/states/NC/jobs/%2e%2e",
        "/api/states/NC%2F..%2FVT/submissions",
        "/api/states/NC/jobs/" + "..%2F" * 20 + "etc%2Fpasswd",
        "/static/..%2F..%2Fservice%2Faccounts.json",
        "/static/%2e%2e/%2e%2e/%2e%2e/ws/service/accounts.json",
        "/static/../app.py",
        "/static/..%5c..%5capp.py",
        "/api/states/NC/jobs/20260101-000000-0000000%00",
    ],
)
def test_path_traversal_in_urls_reads_nothing(svc: Svc, path: str) -> None:
    r = svc.client.get(path, headers=bearer(svc.tokens["nc-upload"]))
    assert r.status_code in (400, 403, 404), (path, r.status_code)
    body = r.text
    for secret in ("sha256", "tokens", "def create_app", "root:", "accounts"):
        assert secret not in body, (path, body[:200])


# ---------------------------------------------------------------- size and content


def test_oversized_multi_file_upload_is_413_and_leaves_nothing(svc: Svc) -> None:
    part = TEXT + b"9,Z\n" * 5000  # ~20 KiB each, 4 of them > 64 KiB
    files = [("files", (f"f{i}.csv", part, "text/plain")) for i in range(4)]
    r = svc.upload("NC", files)
    assert r.status_code == 413
    assert "larger than this service accepts" in r.json()["error"]
    assert not any((svc.w / "service" / "uploads").rglob("*.csv"))


def test_too_many_files_is_400(tmp_path: Path) -> None:
    from voterolls.service.uploads import MAX_FILES

    svc = Svc(tmp_path, max_upload_bytes=4 * 1024 * 1024)  # the count, not the size, is refused
    files = [("files", (f"f{i}.csv", TEXT, "text/plain")) for i in range(MAX_FILES + 1)]
    r = svc.upload("NC", files)
    assert r.status_code == 400 and f"at most {MAX_FILES} files" in r.json()["error"]
    assert not any((svc.w / "service" / "uploads").rglob("*.csv"))


BINARIES = {
    "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 64,
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 32,
    "bzip2": b"BZh91AY&SY" + b"\x00" * 20,
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "sqlite": b"SQLite format 3\x00" + b"\x10\x00" * 40,
    "xz": b"\xfd7zXZ\x00\x00\x04",
}


@pytest.mark.parametrize("kind", ["zip", "gzip"])
def test_damaged_archives_are_422_and_leave_nothing(svc: Svc, kind: str) -> None:
    """ZIP and gzip are read as sent (issue 16); one that cannot be opened is refused on arrival."""
    blob = b"PK\x03\x04" + b"\x14\x00" * 20 if kind == "zip" else b"\x1f\x8b\x08\x00" + b"\x00" * 20
    r = svc.upload("NC", {"files": ("voters.zip", blob, "application/octet-stream")})
    assert r.status_code == 422, (kind, r.status_code, r.text)
    assert "cannot be read" in r.json()["error"] and "voters.zip" in r.json()["error"]
    assert not any((svc.w / "service" / "uploads").rglob("voters.zip"))


@pytest.mark.parametrize("kind", sorted(BINARIES))
def test_binary_uploads_are_415_with_advice(svc: Svc, kind: str) -> None:
    r = svc.upload("NC", {"files": ("voters.txt", BINARIES[kind], "text/plain")})
    assert r.status_code == 415, (kind, r.status_code, r.text)
    msg = r.json()["error"]
    assert "not a text voter file" in msg and "voters.txt" in msg
    assert not any((svc.w / "service" / "uploads").rglob("voters.txt"))


@st.composite
def sparse_nul_binary(draw) -> bytes:
    """Random bytes with a few NULs in the first KiB (not the every-other-byte pattern of UTF-16)."""
    body = bytearray(b"x" + draw(st.binary(min_size=8, max_size=2048)).replace(b"\x00", b"\x01"))
    for pos in draw(st.lists(st.integers(0, min(len(body), 1000) - 1), min_size=1, max_size=3)):
        body[pos] = 0
    return bytes(body)


@fuzz_settings(20)
@given(blob=sparse_nul_binary())
def test_random_binary_with_nul_bytes_is_refused(tmp_path_factory, blob: bytes) -> None:
    svc = Svc(tmp_path_factory.mktemp("bin"))
    r = svc.upload("NC", {"files": ("x.txt", blob, "text/plain")})
    assert r.status_code == 415, (r.status_code, r.text)
    assert r.json()["error"]


def test_text_junk_fails_its_real_ingest_cleanly(tmp_path: Path) -> None:
    """Passes the text check, is not a voter file: refused at detection, nothing stored."""
    svc = Svc(tmp_path, real=True)
    junk = ("lorem ipsum dolor sit amet\n" * 50).encode()
    r = svc.upload("NC", {"files": ("ncvoter_Statewide.txt", junk, "text/plain")})
    assert r.status_code == 422, r.text
    assert "could not recognise" in r.json()["error"]
    assert "Traceback" not in r.text
    assert not (svc.w / "states").exists() or not any((svc.w / "states").iterdir())


def test_valid_header_then_garbage_fails_or_quarantines_with_nothing_lost(tmp_path: Path) -> None:
    """A real header followed by noise: the job ends (done or failed) with counts that add up."""
    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    regs, vh = national_sample("NC", 6)
    paths = write_native("NC", regs, vh, tmp_path / "nc", policy=FULL)
    voters = next(p for p in paths if p.name.startswith("ncvoter"))
    header = voters.read_bytes().split(b"\n", 1)[0]
    body = header + b"\n" + b"\n".join(bytes(range(32, 127))[i : i + 40] for i in range(0, 95, 7)) + b"\n"
    svc = Svc(tmp_path, real=True)
    r = svc.upload("NC", {"files": (voters.name, body, "text/plain")})
    assert r.status_code == 202, r.text
    sid = r.json()["submission"]
    svc.wait(sid)
    job = svc.client.get(f"/api/states/NC/jobs/{sid}", headers=bearer(svc.tokens["nc-upload"])).json()
    assert job["status"] in ("done", "failed"), job
    if job["status"] == "done":
        res = job["result"]
        assert res["rows_read"] == res["loaded"] + res["quarantined"] + res["protected_excluded"]
        assert res["quarantined"] == res["rows_read"]
    else:
        assert "internal error" not in job["message"], job["message"]
    assert not (svc.w / "service" / "uploads" / "NC" / sid / voters.name).exists(), "raw upload kept"


# ---------------------------------------------------------------- tokens


def test_bad_credentials_are_401_with_a_reason(svc: Svc) -> None:
    good = svc.tokens["nc-upload"]
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    cases = {
        "missing": ({}, "Not authenticated"),
        "basic": ({"Authorization": "Basic bmM6dXBsb2Fk"}, "Bearer"),
        "empty bearer": ({"Authorization": "Bearer "}, "Bearer"),
        "bare token": ({"Authorization": good}, "Bearer"),
        "garbage": (bearer("not-a-token"), "invalid token"),
        "forged id": (bearer("vr_0123456789ab_" + "A" * 43), "invalid token"),
        "tampered": (bearer(tampered), "invalid token"),
        "sql": (bearer("vr_' OR 1=1 --_x"), "invalid token"),
        "huge": (bearer("vr_" + "a" * 20000), "invalid token"),
        "expired": (bearer(svc.tokens["expiring"]), "expired"),
        "revoked": (bearer(svc.tokens["revoked"]), "revoked"),
        "deleted account": (bearer(svc.tokens["deleted"]), "invalid token"),
    }
    for label, (headers, words) in cases.items():
        for method, url in (("GET", "/api/me"), ("GET", "/api/states/NC/submissions"), ("POST", "/api/states/NC/submissions")):
            kw = {"files": {"files": ("a.txt", TEXT, "text/plain")}} if method == "POST" else {}
            r = svc.client.request(method, url, headers=headers, **kw)
            assert r.status_code == 401, (label, url, r.status_code, r.text)
            assert words in r.json()["error"], (label, r.json())
            assert "WWW-Authenticate" in r.headers
            token = headers.get("Authorization", "").partition(" ")[2]
            if len(token) > 8:
                assert token not in r.text, f"{label}: the token is echoed"
    assert not (svc.w / "service" / "uploads").exists() or not any((svc.w / "service" / "uploads").rglob("a.txt"))


def test_one_states_token_cannot_touch_another_states_data(svc: Svc) -> None:
    r = svc.upload("VT", {"files": ("vt_voters.csv", TEXT, "text/plain")})
    assert r.status_code == 202
    vt_sid = r.json()["submission"]
    svc.wait(vt_sid)
    nc = bearer(svc.tokens["nc-upload"])
    for method, url in [
        ("GET", "/api/states/VT/submissions"),
        ("GET", f"/api/states/VT/jobs/{vt_sid}"),
        ("GET", "/api/states/VT/jobs/does-not-exist"),
        ("GET", "/api/states/VT/quarantine"),
        ("GET", "/api/states/VT/matches"),
        ("GET", "/api/states/vt/matches"),
        ("GET", "/api/states/Vt/submissions"),
        ("POST", "/api/states/VT/submissions"),
        ("GET", "/states/VT"),
    ]:
        kw = {"files": {"files": ("a.txt", TEXT, "text/plain")}} if method == "POST" else {}
        r = svc.client.request(method, url, headers=nc, follow_redirects=False, **kw)
        # 403 for an existing id and for a made-up one: existence is not revealed
        assert r.status_code == 403, (url, r.status_code)
        assert vt_sid not in r.text and "vt_voters" not in r.text
        assert "cannot see VT" in r.text or "cannot see" in r.text
    # VT's job id through NC's own path: simply not found, and nothing about it
    r = svc.client.get(f"/api/states/NC/jobs/{vt_sid}", headers=nc)
    assert r.status_code == 404 and "vt_voters" not in r.text
    # an analyst is not a state uploader either
    r = svc.client.get("/api/states/VT/submissions", headers=bearer(svc.tokens["analyst"]))
    assert r.status_code == 403
    # the NC listing never shows VT's submission
    r = svc.client.get("/api/states/NC/submissions", headers=nc)
    assert r.status_code == 200 and vt_sid not in r.text


def test_a_session_cookie_is_bound_to_its_state(svc: Svc) -> None:
    r = svc.client.post("/login", data={"token": svc.tokens["nc-upload"]}, follow_redirects=False)
    assert r.status_code == 303
    assert svc.client.get("/states/NC").status_code == 200
    r = svc.client.get("/states/VT", follow_redirects=False)
    assert r.status_code == 403
    # a forged cookie is simply no session
    svc.client.cookies.clear()
    svc.client.cookies.set("vr_session", "A" * 43)
    r = svc.client.get("/api/me")
    assert r.status_code == 401


# ---------------------------------------------------------------- flood


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(proc: subprocess.Popen, base: str, log: Path) -> None:
    """Poll /healthz for up to 60 s; kill the server and fail with its log if it never answers."""
    import httpx

    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("server did not start: " + log.read_text()[-2000:])
        time.sleep(0.2)


def _stop(proc: subprocess.Popen, log: IO[str]) -> None:
    """Stop a live-server fixture's process (kill it if it does not exit in 15 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def server(tmp_path: Path):
    psutil = pytest.importorskip("psutil")
    ws = tmp_path / "ws"
    store = AccountStore(ws / "service" / "accounts.json")
    tokens = {n: store.create(n, r, s)[1] for n, r, s in [("nc-upload", "state", "NC"), ("analyst", "analyst", None), ("auditor", "auditor", None)]}
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(os.sys.executable).parent / "voterolls"), "serve", "--workspace", str(ws), "--host", "127.0.0.1",
         "--port", str(port), "--max-upload", "64KiB"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _wait_until_serving(proc, base, tmp_path / "serve.log")
    yield base, tokens, psutil.Process(proc.pid), tmp_path / "serve.log"
    _stop(proc, log)


FLOOD = 500
#: The flood's attacker and its normal client: both loopback, two addresses (the limiter counts per address).
ATTACKER, NORMAL = "127.0.0.1", "127.0.0.2"


def _client_from(address: str, base: str, timeout: float = 60):
    import httpx

    return httpx.Client(base_url=base, timeout=timeout, transport=httpx.HTTPTransport(local_address=address))


def test_request_flood_is_bounded_and_audited(server) -> None:
    """Forged tokens come from 127.0.0.1 (401, then 429 once its failures are used up); the
    legitimate callers from 127.0.0.2 get exactly their status; credential-less requests from
    the attacker's address stay 401."""
    base, tokens, proc, log_path = server
    plan = []
    for i in range(FLOOD):
        k = i % 5
        if k == 0:
            plan.append(("GET", "/healthz", {}, 200, NORMAL))
        elif k == 1:
            plan.append(("GET", "/api/me", bearer("vr_0123456789ab_" + "B" * 43), 401, ATTACKER))
        elif k == 2:
            plan.append(("GET", "/api/aggregates", bearer(tokens["analyst"]), 200, NORMAL))
        elif k == 3:
            plan.append(("GET", "/api/states/VT/submissions", bearer(tokens["nc-upload"]), 403, NORMAL))
        else:
            plan.append(("POST", "/api/states/NC/submissions", {"X-Filename": "x.txt"}, 401, ATTACKER))
    started = time.monotonic()
    clients = {a: _client_from(a, base, 30) for a in (ATTACKER, NORMAL)}
    forged: list[tuple[int, str | None]] = []  # (status, Retry-After) of every forged-token answer

    def send(c, method, url, headers):
        r = c.request(method, url, headers=headers, content=b"a,b\n" if method == "POST" else None)
        if "Authorization" in headers and "B" * 43 in headers["Authorization"]:
            forged.append((r.status_code, r.headers.get("retry-after")))
        return r

    # warm-up, then measure the server's footprint
    for method, url, headers, _, addr in plan[:25]:
        send(clients[addr], method, url, headers)
    for c in clients.values():
        c.close()
    rss0, threads0, fds0 = proc.memory_info().rss, proc.num_threads(), proc.num_fds()

    statuses: list[tuple[int, int, str]] = []
    lock = threading.Lock()
    latencies: list[float] = []

    def worker(chunk):
        cs = {a: _client_from(a, base) for a in (ATTACKER, NORMAL)}
        try:
            for method, url, headers, want, addr in chunk:
                r = send(cs[addr], method, url, headers)
                with lock:
                    statuses.append((r.status_code, want, url))
        finally:
            for c in cs.values():
                c.close()

    stop = threading.Event()

    def prober():
        with _client_from(NORMAL, base) as c:
            while not stop.is_set():
                t = time.monotonic()
                assert c.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - t)
                time.sleep(0.2)

    flood_started = time.monotonic()
    probe = threading.Thread(target=prober)
    probe.start()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(worker, [plan[i::16] for i in range(16)]))
    elapsed = time.monotonic() - flood_started
    stop.set()
    probe.join(60)

    # forged tokens: 401 until the address used up its failures, then 429 with Retry-After
    wrong = [(g, w, u) for g, w, u in statuses if g != w and not (w == 401 and g == 429 and u == "/api/me")]
    assert len(statuses) == FLOOD and not wrong, wrong[:10]
    windows = 1 + int((time.monotonic() - started) // DEFAULT_WINDOW_S)
    n401 = sum(1 for g, _ in forged if g == 401)
    assert n401 <= DEFAULT_MAX_FAILURES * windows, (n401, windows)
    assert all(g in (401, 429) for g, _ in forged)
    assert all(ra is not None and 1 <= int(ra) <= DEFAULT_WINDOW_S for g, ra in forged if g == 429)
    assert elapsed < 120, f"{FLOOD} requests took {elapsed:.0f} s"
    assert latencies and max(latencies) < 15, f"health check stalled {max(latencies):.1f} s during the flood"
    time.sleep(1)
    rss1, threads1, fds1 = proc.memory_info().rss, proc.num_threads(), proc.num_fds()
    assert rss1 - rss0 < 100 * 1024**2, f"server grew by {(rss1 - rss0) / 1024**2:.0f} MiB"
    assert threads1 <= threads0 + 50, (threads0, threads1)
    assert fds1 <= fds0 + 20, f"file descriptors {fds0} -> {fds1}"
    with _client_from(NORMAL, base, 30) as c:
        t = time.monotonic()
        assert c.get("/healthz").status_code == 200
        assert time.monotonic() - t < 5
        v = c.get("/api/audit/verify", headers=bearer(tokens["auditor"])).json()
    assert v["ok"], v
    assert v["entries"] >= FLOOD + 25, v
    assert "Traceback" not in log_path.read_text()
    n429 = sum(1 for g, _ in forged if g == 429)
    print(f"flood: {FLOOD} requests in {elapsed:.1f} s; forged tokens {n401} x 401, {n429} x 429; "
          f"health max {max(latencies):.2f} s; "
          f"rss {rss0 / 1024**2:.0f}->{rss1 / 1024**2:.0f} MiB; threads {threads0}->{threads1}; fds {fds0}->{fds1}")


# ---------------------------------------------------------------- failed-authentication limit


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _limited(tmp: Path, max_failures: int = 5, window_s: float = 60.0) -> tuple[Svc, FakeClock, FailureLimiter]:
    svc = Svc(tmp)
    clock = FakeClock()
    limiter = FailureLimiter(max_failures, window_s, clock=clock)
    svc.app = create_app(svc.w, ingest=FakeIngest(), detect=fake_detect, auth_limiter=limiter)
    svc.client = TestClient(svc.app)
    return svc, clock, limiter


def test_wrong_token_flood_is_cut_off_after_the_allowed_failures(tmp_path: Path) -> None:
    svc, clock, limiter = _limited(tmp_path, max_failures=5, window_s=60)
    wrong = bearer("vr_0123456789ab_" + "C" * 43)
    t0 = time.monotonic()
    got = [svc.client.get("/api/me", headers=wrong) for _ in range(200)]
    took = time.monotonic() - t0
    assert [r.status_code for r in got[:5]] == [401] * 5
    assert {r.status_code for r in got[5:]} == {429}
    for r in got[5:]:
        assert r.headers["Retry-After"] == "60"
        assert "Too many failed sign-in attempts" in r.json()["error"] and "60 seconds" in r.json()["error"]
        assert "C" * 43 not in r.text
    assert limiter.refused == 195
    assert took < 30, f"200 refused attempts took {took:.1f} s"
    # blocked for credentials of any kind from this address, the right token included ...
    good = bearer(svc.tokens["nc-upload"])
    assert svc.client.get("/api/me", headers=good).status_code == 429
    assert svc.client.get("/api/states/NC/submissions", headers=good).status_code == 429
    r = svc.client.post("/login", data={"token": svc.tokens["nc-upload"]}, follow_redirects=False)
    assert r.status_code == 429 and "Too many failed sign-in attempts" in r.text and "Retry-After" in r.headers
    # ... but not a request without credentials, and not the health probe
    assert svc.client.get("/api/me").status_code == 401
    assert svc.client.get("/healthz").status_code == 200
    # another client address is not affected
    other = TestClient(svc.app, client=("192.0.2.7", 40000))
    assert other.get("/api/me", headers=good).status_code == 200
    assert other.get("/api/me", headers=wrong).status_code == 401
    # the Retry-After counts down; once the window has passed, the right token works again
    clock.t += 45
    r = svc.client.get("/api/me", headers=good)
    assert r.status_code == 429 and r.headers["Retry-After"] == "15"
    clock.t += 15
    assert svc.client.get("/api/me", headers=good).status_code == 200
    # successes are not remembered: the address has its full allowance again
    got = [svc.client.get("/api/me", headers=wrong).status_code for _ in range(6)]
    assert got == [401] * 5 + [429]
    # every refused request is in the audit trail, as anonymous
    entries = [json.loads(ln) for ln in (svc.w / "service" / "audit.log").read_text().splitlines()]
    refused = [e for e in entries if str(e["status"]) == "429" and e["action"] == "GET /api/me"]
    assert len(refused) >= 195 and {e["actor"] for e in refused} == {"anonymous"}


def test_login_form_failures_count_and_are_limited(tmp_path: Path) -> None:
    svc, clock, _ = _limited(tmp_path, max_failures=3, window_s=30)
    for _ in range(3):
        r = svc.client.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert r.status_code == 401 and "not valid" in r.text
    r = svc.client.post("/login", data={"token": svc.tokens["nc-upload"]}, follow_redirects=False)
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert "Too many failed sign-in attempts" in r.text and "vr_session" not in r.headers.get("set-cookie", "")
    # the form and the API share one allowance per address
    assert svc.client.get("/api/me", headers=bearer(svc.tokens["nc-upload"])).status_code == 429
    clock.t += 30
    r = svc.client.post("/login", data={"token": svc.tokens["nc-upload"]}, follow_redirects=False)
    assert r.status_code == 303 and "vr_session" in r.headers["set-cookie"]
    # a session cookie is not a credential attempt: it keeps working while the address is blocked
    for _ in range(3):
        svc.client.get("/api/me", headers=bearer("vr_0123456789ab_" + "D" * 43))
    assert svc.client.get("/api/me", headers=bearer(svc.tokens["nc-upload"])).status_code == 429
    assert svc.client.get("/states/NC").status_code == 200


def test_failure_limiter_is_exact_under_threads_and_bounded_in_memory() -> None:
    clock = FakeClock()
    lim = FailureLimiter(50, 60, max_clients=100, clock=clock)
    admitted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def attacker() -> None:
        barrier.wait()
        for _ in range(100):
            if lim.begin("203.0.113.1") == 0.0:
                with lock:
                    admitted.append(1)
                lim.end("203.0.113.1", failed=True)

    threads = [threading.Thread(target=attacker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 50  # 1,600 attempts from 16 threads: exactly the allowance got through
    assert lim.refused == 1550
    # successes are forgotten at once; failures from many addresses stay within max_clients
    assert lim.begin("198.51.100.1") == 0.0
    lim.end("198.51.100.1", failed=False)
    assert lim.tracked() == 1
    for i in range(10_000):
        a = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        assert lim.begin(a) == 0.0
        lim.end(a, failed=True)
    assert lim.tracked() <= 100
    # failures expire with the window
    clock.t += 61
    assert lim.begin("203.0.113.1") == 0.0
    lim.end("203.0.113.1", failed=False)


@pytest.fixture
def limited_server(tmp_path: Path):
    """A real uvicorn server on 127.0.0.1 with a small limit: 10 failures per 4 s."""
    ws = tmp_path / "ws"
    store = AccountStore(ws / "service" / "accounts.json")
    token = store.create("nc-upload", "state", "NC")[1]
    port = _free_port()
    code = ("import sys, uvicorn\n"
            "from voterolls.service.accounts import FailureLimiter\n"
            "from voterolls.service.app import create_app\n"
            "app = create_app(sys.argv[1], auth_limiter=FailureLimiter(10, 4.0))\n"
            "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')\n")
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([os.sys.executable, "-c", code, str(ws), str(port)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    _wait_until_serving(proc, base, tmp_path / "serve.log")
    yield base, token, tmp_path / "serve.log"
    _stop(proc, log)


def test_wrong_token_flood_from_loopback_is_bounded_in_count_and_time(limited_server) -> None:
    """200 wrong tokens from 127.0.0.1 (8 threads) against a real server allowing 10 failures per 4 s."""
    base, token, log_path = limited_server
    wrong = bearer("vr_0123456789ab_" + "E" * 43)
    answers: list[tuple[int, str | None, str]] = []
    lock = threading.Lock()
    normal: list[int] = []
    stop = threading.Event()

    def flood(n: int) -> None:
        with _client_from(ATTACKER, base) as c:
            for _ in range(n):
                r = c.get("/api/me", headers=wrong)
                with lock:
                    answers.append((r.status_code, r.headers.get("retry-after"), r.text))

    def normal_client() -> None:  # the right token from another address, all through the flood
        with _client_from(NORMAL, base) as c:
            while not stop.is_set():
                normal.append(c.get("/api/me", headers=bearer(token)).status_code)
                time.sleep(0.05)

    t0 = time.monotonic()
    prober = threading.Thread(target=normal_client)
    prober.start()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(flood, [25] * 8))
    elapsed = time.monotonic() - t0
    stop.set()
    prober.join(30)
    statuses = [a[0] for a in answers]
    assert len(statuses) == 200 and set(statuses) <= {401, 429}, sorted(set(statuses))
    n401 = statuses.count(401)
    bound = 10 * (1 + int(elapsed // 4.0))
    assert 10 <= n401 <= bound, f"{n401} wrong tokens were checked in {elapsed:.1f} s (allowed {bound})"
    for code, retry, text in answers:
        if code == 429:
            assert retry is not None and 1 <= int(retry) <= 4, retry
            assert "Too many failed sign-in attempts" in text and "E" * 43 not in text
    assert elapsed < 60, f"the flood took {elapsed:.1f} s"
    assert normal and set(normal) == {200}, "the normal client was refused during the flood"
    # once the window has passed, the right token works from the flooding address too
    time.sleep(4.2)
    with _client_from(ATTACKER, base) as c:
        assert c.get("/api/me", headers=bearer(token)).status_code == 200
    assert "Traceback" not in log_path.read_text()
    print(f"limited flood: 200 wrong tokens in {elapsed:.1f} s: {n401} x 401, {statuses.count(429)} x 429; "
          f"normal client {len(normal)} x 200")
