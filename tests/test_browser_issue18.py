"""Screenshots of the report, the state page, the model page and a pair waterfall (issue 18).

Debian's Chromium through Playwright (never ``playwright install``), at
desktop (1280 px) and phone (390 px) width.  Every request to anything but
the local server or the report file is aborted and recorded; the test asserts
there were none, that Splink's charts drew, and that the state page carries
the freshness banner after a new snapshot.  Screenshots go to the pytest tmp
dir and to ``test-output/issue18/`` (or ``$VOTEROLLS_TEST_OUTPUT/issue18/``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_report_fixtures as rf  # noqa: E402
from test_browser_service import Server  # noqa: E402
from test_report_issue18 import write_linkage  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")

WIDTHS = {"desktop": 1280, "phone": 390}


def test_report_and_state_page_screenshots(tmp_path: Path) -> None:
    from voterolls.report import gather, write_report
    from voterolls.report.model_page import model_page, model_page_path
    from voterolls.service.accounts import AccountStore
    from voterolls.service.app import create_app
    from voterolls.service.data import state_matches
    from voterolls.store import Workspace

    w = rf.make_workspace(tmp_path / "ws")
    write_linkage(w)
    rf.write_estimates(w)
    wsp = Workspace(w, create=False)
    wsp.record_built_from(w / "link")
    wsp.record_built_from(w / "estimates")
    out = tmp_path / "report.html"
    data = gather(w)
    data.model_page = model_page_path(out).name
    write_report(data, out)
    model_page_path(out).write_text(model_page(w / "link" / "model.json"), encoding="utf-8")
    rf.make_workspace(w, rf.registrations(seed=8), states=("NC",), key_suffix="-2")  # linkage now stale
    token = AccountStore(w / "service" / "accounts.json").create("nc-i18", "state", "NC")[1]
    ref = state_matches(w, "NC", limit=1)["rows"][0]["pair_ref"]

    shots = tmp_path / "shots"
    shots.mkdir()
    external: list[str] = []
    errors: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:", "file:")) or urlparse(url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            external.append(url)
            route.abort()

    with Server(create_app(w)) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for label, width in WIDTHS.items():
                ctx = browser.new_context(
                    viewport={"width": width, "height": 900},
                    extra_http_headers={"Authorization": f"Bearer {token}"},
                )
                ctx.set_default_timeout(90_000)
                ctx.route("**/*", guard)
                page = ctx.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

                page.goto(out.as_uri())
                assert "How they relate." in page.inner_text("#headline")
                assert page.evaluate("document.documentElement.scrollWidth") <= width, "report wider than the screen"
                page.screenshot(path=str(shots / f"report-{label}.png"), full_page=True)
                page.goto((out.parent / "report-model.html").as_uri())
                page.wait_for_selector("#chart0 svg, #chart0 canvas")
                page.screenshot(path=str(shots / f"model-{label}.png"), full_page=True)

                page.goto(base + "/states/NC")
                assert "out of date" in page.inner_text("#stale")
                assert page.evaluate("document.documentElement.scrollWidth") <= width, "state page wider than the screen"
                page.screenshot(path=str(shots / f"state-{label}.png"), full_page=True)
                page.goto(f"{base}/states/NC/pairs/{ref}")
                page.wait_for_selector("#chart0 svg, #chart0 canvas")
                page.screenshot(path=str(shots / f"waterfall-{label}.png"), full_page=True)
                ctx.close()
        finally:
            browser.close()

    dest = Path(os.environ.get("VOTEROLLS_TEST_OUTPUT") or Path(__file__).resolve().parents[1] / "test-output")
    dest = dest / "issue18"
    dest.mkdir(parents=True, exist_ok=True)
    for f in shots.iterdir():
        shutil.copy(f, dest / f.name)
    assert external == [], f"pages tried to reach the network: {external}"
    assert errors == [], errors
    for f in shots.iterdir():
        assert f.stat().st_size > 10_000, f.name
