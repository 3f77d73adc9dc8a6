"""A real browser against the real server: sign in as a state, upload, watch the ingest, read the report.

Debian's Chromium driven by Playwright's sync API (never ``playwright
install``).  Every request to anything but the local server is aborted and
recorded, and the test asserts there were none: the pages and the report work
with the network cut off.  Screenshots go to the pytest tmp dir and to
``test-output/service/`` (or ``$VOTEROLLS_TEST_OUTPUT/service/``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (scripts/system-deps.sh)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _state_files(tmp: Path) -> tuple[list[Path], dict, list[str]]:
    """Native NC files from write_native when the pipeline is built; else a marked CSV and the fakes."""
    try:
        import voterolls.ingest.pipeline  # noqa: F401
        from voterolls.formats.sample import national_sample
        from voterolls.synth.native import write_native

        regs, history = national_sample("NC", 120)
        ids = regs.column("state_voter_id").to_pylist()
        return write_native("NC", regs, history, tmp / "nc"), {}, ids
    except ImportError:
        from service_fakes import FakeIngest, fake_detect

        p = tmp / "nc" / "ncvoter.txt"
        p.parent.mkdir(parents=True)
        p.write_text("FORMAT=nc_ncvoter_2022\nid\tname\n" + "".join(f"{i}\tX\n" for i in range(50)))
        return [p], {"ingest": FakeIngest(delay=1.0), "detect": fake_detect}, [str(i) for i in range(50)]


def _write_pairs(w: Path, nc_ids: list[str]) -> None:
    """A small linkage output touching NC's voters, so the pages show matches and a histogram."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    n = 60
    prob = np.concatenate([rng.beta(0.6, 6, n - 12), rng.beta(8, 1.2, 12)])
    (w / "link").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "state_l": ["NC"] * n,
        "state_voter_id_l": [nc_ids[i % len(nc_ids)] for i in range(n)],
        "state_r": [("OH", "FL", "NC", "WA")[i % 4] for i in range(n)],
        "state_voter_id_r": [f"X{i:05d}" if i % 4 != 2 else nc_ids[(i + 7) % len(nc_ids)] for i in range(n)],
        "match_probability": prob,
        "match_weight": np.log2(prob / (1 - prob + 1e-9) + 1e-9),
        "dob_granularity_l": ["year"] * n,
        "dob_granularity_r": [("full", "year")[i % 2] for i in range(n)],
        "gamma_first_name": rng.integers(0, 3, n),
        "gamma_last_name": rng.integers(0, 3, n),
        "gamma_birth_year": rng.integers(0, 2, n),
    }), w / "link" / "pairs.parquet")


def test_state_uploads_through_the_page_and_reads_the_report_offline(tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    w = tmp_path / "ws"
    store = AccountStore(w / "service" / "accounts.json")
    tokens = {name: store.create(name, role, st)[1] for name, role, st in [
        ("nc-upload", "state", "NC"), ("analyst", "analyst", None), ("auditor", "auditor", None), ("admin", "admin", None)]}
    paths, fakes, nc_ids = _state_files(tmp_path)
    app = create_app(w, **fakes)

    external: list[str] = []
    csp_errors: list[str] = []

    def guard(route) -> None:
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    def shot(page, name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    with Server(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(90_000)  # the test machine is shared; ingest + report can be slow
            ctx.route("**/*", guard)
            page = ctx.new_page()
            page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)

            page.goto(base + "/states/NC")  # not signed in: sent to the login form
            assert urlparse(page.url).path == "/login"
            shot(page, "01-login")
            page.fill("#token", "vr_not_a_real_token")
            page.click("button[type=submit]")
            assert "not valid" in page.inner_text(".alert")
            page.fill("#token", tokens["nc-upload"])
            page.click("button[type=submit]")
            page.wait_for_url("**/states/NC")
            shot(page, "02-state-empty")

            binary = tmp_path / "scan.pdf.txt"
            binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
            page.set_input_files("#files", [str(binary)])
            page.click("#upload-button")
            page.wait_for_selector("#upload-message.error")
            assert "binary file" in page.inner_text("#upload-message")
            shot(page, "02b-state-rejected")

            page.set_input_files("#files", [str(p) for p in paths])
            assert "ncvoter" in page.inner_text("#chosen")
            page.click("#upload-button")
            page.wait_for_selector("[data-job-url], #latest-result")
            if page.query_selector("[data-job-url]"):
                shot(page, "03-ingesting")
            page.wait_for_selector("#latest-result", timeout=180_000)
            shot(page, "04-state-ingested")
            text = page.inner_text("#latest-result")
            assert "Latest ingest" in text and "ingested" in text
            assert "ncvoter" in page.inner_text("table.data")

            _write_pairs(w, nc_ids)  # as if the consortium had run linkage
            page.reload()
            assert "Possible matches involving NC" in page.inner_text("body")
            assert "X00000" not in page.content()  # another state's voter id is never shown
            shot(page, "04b-state-matches")

            page.goto(base + "/report")
            page.wait_for_load_state("load")
            assert page.title()
            shot(page, "05-report")
            body = page.inner_text("body")
            assert "NC" in body

            for name, path in (("analyst", "/analyst"), ("auditor", "/auditor"), ("admin", "/admin")):
                c = browser.new_context(viewport={"width": 1280, "height": 900})
                c.set_default_timeout(90_000)
                c.route("**/*", guard)
                p = c.new_page()
                p.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
                p.goto(base + "/login")
                p.fill("#token", tokens[name])
                p.click("button[type=submit]")
                p.wait_for_url("**" + path)
                shot(p, f"06-{name}")
                if name == "auditor":
                    assert "Chain intact" in p.inner_text(".verify")
                if name == "admin":
                    p.select_option("#role-select", "state")
                    p.select_option("#state-select", "GA")
                    p.fill("input[name=name]", "ga-upload")
                    p.click("text=Create and show token")
                    assert p.input_value("#new-token").startswith("vr_")
                    shot(p, "07-admin-token")
                c.close()
        finally:
            browser.close()

    # also under test-output/ (git-ignored) so a reviewer can look at them after `make test`
    dest = Path(os.environ.get("VOTEROLLS_TEST_OUTPUT") or Path(__file__).resolve().parents[1] / "test-output") / "service"
    dest.mkdir(parents=True, exist_ok=True)
    for f in shots.iterdir():
        shutil.copy(f, dest / f.name)
    assert external == [], f"pages tried to reach the network: {external}"
    assert csp_errors == [], csp_errors
    assert (shots / "05-report.png").stat().st_size > 10_000


def test_county_split_state_uploads_through_the_page(tmp_path: Path) -> None:
    """FL's 67 county extracts + 67 history files chosen at once in the page, then a second
    submission of 20 counties: each replaces only its counties, the rest is kept (issue 16)."""
    pytest.importorskip("voterolls.ingest.pipeline")
    from delivery_files import FL_COUNTIES, fl_county_files

    from voterolls.store import Workspace

    reg, his = fl_county_files(tmp_path / "fl")
    w = tmp_path / "ws"
    token = AccountStore(w / "service" / "accounts.json").create("fl-upload", "state", "FL")[1]
    app = create_app(w)
    shots = Path(os.environ.get("VOTEROLLS_TEST_OUTPUT") or Path(__file__).resolve().parents[1] / "test-output") / "service"
    shots.mkdir(parents=True, exist_ok=True)
    with Server(app) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            ctx.set_default_timeout(120_000)
            page = ctx.new_page()
            page.goto(base + "/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_url("**/states/FL")
            page.set_input_files("#files", [str(p) for p in reg + his])
            assert "134 files" in page.inner_text("#chosen")
            page.click("#upload-button")
            page.wait_for_selector("#latest-result", timeout=240_000)
            text = page.inner_text("#latest-result")
            assert "county:ALA" in text and "county:WAS" in text
            page.screenshot(path=str(shots / "08-county-split-upload.png"), full_page=True)
            con = Workspace(w).connect()
            first = dict(con.sql("SELECT county, count(*) FROM registrations GROUP BY 1").fetchall())
            assert set(first) == set(FL_COUNTIES)

            reg2, his2 = fl_county_files(tmp_path / "fl2", seed=6)  # a newer extract of 20 counties
            page.set_input_files("#files", [str(p) for p in reg2[:20] + his2[:20]])
            page.click("#upload-button")
            # a county's vote history shrinks by more than 10%: refused until the state confirms
            page.wait_for_selector("#last-failure", timeout=240_000)
            assert "allow a smaller roll" in page.inner_text("#last-failure")
            page.set_input_files("#files", [str(p) for p in reg2[:20] + his2[:20]])
            page.check("#allow-shrink")
            page.click("#upload-button")
            page.wait_for_selector("#latest-result >> text=(kept)", timeout=240_000)
            page.screenshot(path=str(shots / "09-county-split-second-submission.png"), full_page=True)
            assert "(kept)" in page.inner_text("#latest-result")
            con = Workspace(w).connect()
            assert dict(con.sql("SELECT county, count(*) FROM registrations GROUP BY 1").fetchall()) == first
        finally:
            browser.close()
