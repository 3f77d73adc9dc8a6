"""The offline HTML report: self-contained, complete, aggregate-only, small cells suppressed."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import test_report_fixtures as rf  # noqa: E402

from voterolls.report import charts  # noqa: E402
from voterolls.report.data import estimates_section, gather, gather_estimates, gather_matches  # noqa: E402
from voterolls.report.model import (  # noqa: E402
    Coverage,
    Estimate,
    Estimates,
    FieldAvailability,
    FieldCell,
    HistogramSeries,
    MatchDistribution,
    ReportData,
    Section,
    StateCoverage,
    Uniformity,
    UniformityRow,
)
from voterolls.report.render import SECTIONS, render, write_report  # noqa: E402
from voterolls.report.suppress import suppress  # noqa: E402
from voterolls.schema import JURISDICTIONS  # noqa: E402
from voterolls.stats.result import EstimatesResult  # noqa: E402

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_EXTERNAL = re.compile(
    r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|<script|<link\b|<iframe|<object|<embed|@import|url\(\s*['"]?(?!#)""",
    re.IGNORECASE,
)


class _Collect(HTMLParser):
    """Collects every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "srcset", "poster", "data", "action", "formaction") and v:
                if not v.startswith("data:"):
                    self.fetching.append(f"{tag}[{k}]={v}")
            if k == "href" and v and tag in ("link", "base", "image", "use"):
                if not v.startswith("#"):
                    self.fetching.append(f"{tag}[href]={v}")


def assert_offline(html: str) -> None:
    assert "http://" not in html and "https://" not in html, "the report names a network address"
    assert not _EXTERNAL.search(html), _EXTERNAL.search(html).group(0)
    p = _Collect()
    p.feed(html)
    assert p.fetching == []
    assert "script" not in p.tags


def hand_model() -> ReportData:
    """A report model built by hand, with one suppressed small cell in every section that has counts."""
    states = [
        StateCoverage(state=st, status="refused" if st in ("AZ", "CA") else "partial")
        for st in JURISDICTIONS
    ]
    states[JURISDICTIONS.index("NC")] = StateCoverage(
        state="NC",
        status="complied",
        registrations_loaded=12000,
        has_data=True,
        registrant_share=0.031,
    )
    states[JURISDICTIONS.index("WY")] = StateCoverage(
        state="WY",
        status="partial",
        registrations_loaded=None,
        has_data=True,
        registrant_share=0.0017,
    )
    cov = Coverage(
        states=states,
        status_source="hand-made",
        registrations_loaded=12004,
        states_with_data=2,
        share_registrants_with_data=0.0327,
    )
    fields = FieldAvailability(
        fields=["Name", "Full date of birth"],
        states=["NC", "WY"],
        cells=[
            FieldCell(state="NC", field="Name", availability="supplied", non_null_share=1.0),
            FieldCell(state="NC", field="Full date of birth", availability="withheld"),
            FieldCell(state="WY", field="Name", availability="supplied", non_null_share=1.0),
            FieldCell(
                state="WY", field="Full date of birth", availability="violation", non_null_share=0.5
            ),
        ],
        policy_source="hand-made",
    )
    uni = Uniformity(
        rows=[
            UniformityRow(
                state="NC",
                field="party",
                rows=12000,
                non_null_share=0.9,
                plausible_share=0.95,
                unmapped=1200,
            ),
            UniformityRow(
                state="WY",
                field="party",
                rows=None,
                non_null_share=None,
                plausible_share=None,
                unmapped=None,
            ),
        ],
        source="hand-made",
        fields=["party"],
        states=["NC", "WY"],
    )
    md = MatchDistribution(
        bin_edges=[i / 10 for i in range(11)],
        series=[
            HistogramSeries(
                label="All scored pairs",
                counts=[9000, 400, 50, None, None, 0, 12, 15, 40, 300],
                total=9821,
            )
        ],
        total_pairs=9821,
        pairs_at_least_half=367,
        pairs_at_least_09=300,
        expected_true_matches=351.2,
    )
    est = Estimates(
        crosscheck_flagged=Estimate(
            key="crosscheck_flagged", label="Crosscheck flags", point=4123, kind="count"
        ),
        coincidences_expected=Estimate(
            key="coincidences_expected", label="Coincidences", point=4026.6, kind="expected"
        ),
        duplicate_registrations=Estimate(
            key="duplicate_registrations", label="Duplicates", point=131.2, low=98.0, high=164.4
        ),
        double_votes=Estimate(
            key="double_votes",
            label="Double votes",
            point=3.2,
            low=0.4,
            high=6.0,
            rests_on_states=["NC", "WY"],
            rests_on_share=0.0327,
        ),
    )
    return ReportData(
        workspace_label="hand",
        version="test",
        coverage=Section[Coverage](data=cov),
        fields=Section[FieldAvailability](data=fields),
        uniformity=Section[Uniformity](data=uni),
        matches=Section[MatchDistribution](data=md),
        estimates=Section[Estimates](data=est),
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny synthetic workspace: registrations + history (connection), pairs, estimates."""
    ws = tmp_path_factory.mktemp("ws")
    reg = rf.registrations()
    rf.write_pairs(ws)
    rf.write_estimates(ws)
    data = gather(ws, con=rf.connection(reg))
    return ws, reg, data, render(data)


# --------------------------------------------------------------------------
# the hand-made model
# --------------------------------------------------------------------------


def test_hand_model_renders_every_section_offline():
    html = render(hand_model())
    assert_offline(html)
    for anchor, heading in SECTIONS:
        assert f'id="{anchor}"' in html
        assert heading in html
    assert "Not available" not in html
    # each headline number is shown with its interval
    assert "131" in html and "98 to 164" in html
    assert "3.2" in html and "0.4 to 6.0" in html


def test_hand_model_shows_suppressed_cells_as_under_ten():
    html = render(hand_model())
    # WY's registrations (a small cell) read "<10", escaped, in the coverage table
    row = re.search(r"<tr><td>WY</td>.*?</tr>", html, re.S)
    assert row and "&lt;10" in row.group(0)
    # suppressed histogram bins are drawn hatched with a "fewer than 10" tooltip
    assert html.count("fewer than 10 pairs (suppressed)") == 2
    # the uniformity cell of a suppressed state is hatched, not coloured
    assert "(suppressed: fewer than 10 rows)" in html


def test_violation_is_called_out():
    html = render(hand_model())
    assert "Check needed" in html and "WY · Full date of birth" in html


def test_missing_sections_say_why(tmp_path):
    data = ReportData(workspace_label="empty", version="test")
    data.matches = gather_matches(tmp_path)
    html = render(data)
    assert_offline(html)
    assert "linkage has not been run" in html
    for _, heading in SECTIONS:
        assert heading in html
    assert html.count("Not available:") >= 4


# --------------------------------------------------------------------------
# gathered from a tiny workspace
# --------------------------------------------------------------------------


def test_tiny_workspace_report_has_no_personal_values(tiny):
    _, reg, _, html = tiny
    assert_offline(html)
    text = html.upper()
    leaked = sorted(v for v in rf.personal_values(reg) if v.upper() in text)
    assert leaked == []
    for sid in reg.column("state_voter_id").to_pylist()[:50]:
        assert sid not in html


def test_tiny_workspace_sections(tiny):
    _, _, data, html = tiny
    for _, heading in SECTIONS:
        assert heading in html
    assert data.coverage.data.states_with_data == 4
    wy = next(s for s in data.coverage.data.states if s.state == "WY")
    assert wy.has_data and wy.registrations_loaded is None  # 5 rows: suppressed
    nc = next(s for s in data.coverage.data.states if s.state == "NC")
    assert nc.registrations_loaded == 400
    # WY's 5 reads "<10"; the national total (955) would give it away, so the total is
    # withheld (and says so) while every other state keeps its true count
    assert data.coverage.data.registrations_loaded == "withheld"
    assert "withheld to protect a small cell" in html
    fl = next(s for s in data.coverage.data.states if s.state == "FL")
    assert fl.has_data and isinstance(fl.registrations_loaded, int) and fl.registrations_loaded >= 10
    # uniformity: unmapped party codes found, frequent ones named, WY shares suppressed
    u = data.uniformity.data
    nc_party = next(r for r in u.rows if r.state == "NC" and r.field == "party")
    assert nc_party.unmapped and nc_party.unmapped > 10
    assert [c.code for c in nc_party.unmapped_codes] == ["XQ"]
    zip_nc = next(r for r in u.rows if r.state == "NC" and r.field == "residence_zip5")
    assert zip_nc.plausible_share == pytest.approx(0.98)
    assert all(r.non_null_share is None for r in u.rows if r.state == "WY")
    # field availability: NC has birth year only; its law withholds full DOB
    cells = {(c.state, c.field): c.availability for c in data.fields.data.cells}
    assert cells[("NC", "Birth year")] == "supplied"
    assert cells[("NC", "Full date of birth")] in ("withheld", "unknown_law")
    assert cells[("NC", "Vote history")] == "supplied"
    assert cells[("CA", "Name")] == "allowed_no_data"
    # matches: the three pairs at 0.50-0.55 are merged into a wider bar, never "<10"
    md = data.matches.data
    assert md.total_pairs == 5000
    assert md.candidate_pairs == 81234 and md.min_probability == 0.001
    assert md.registrations_in_multi_clusters is None  # 7: a small cell
    assert "81,234 candidate pairs" in html and "add up to 12." in html
    assert 0.5 in md.bin_edges and None not in md.series[0].counts
    assert md.expected_true_matches == pytest.approx(
        float(rf.write_pairs(Path(tiny[0])).column("match_probability").to_numpy().sum())
    )
    # estimates: stats shape parsed, in-state rule count (7) suppressed
    est = data.estimates.data
    assert est.duplicate_registrations.point == pytest.approx(131.2)
    assert (est.duplicate_registrations.low, est.duplicate_registrations.high) == (98.0, 164.4)
    assert est.crosscheck_flagged.point == 4123
    assert est.purge is not None and est.purge.ratio == pytest.approx(304.3)
    in_state_cc = next(e for e in est.other if e.key == "crosscheck_flagged_in_state")
    assert in_state_cc.point is None
    assert "304 legitimate votes blocked" in html


def test_write_report_is_atomic_and_utf8(tiny, tmp_path):
    _, _, data, _ = tiny
    out = write_report(data, tmp_path / "sub" / "report.html")
    assert out.exists() and not (tmp_path / "sub" / "report.html.tmp").exists()
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# --------------------------------------------------------------------------
# pieces
# --------------------------------------------------------------------------


def test_suppression_rule():
    assert suppress([0, 1, 9, 10, 250, None]) == [0, None, None, 10, 250, None]
    assert suppress([]) == []


def test_report_and_privacy_module_agree_on_the_threshold():
    """The report applies voterolls.privacy's rule, not a copy: same threshold, same cells."""
    from voterolls import privacy
    from voterolls.report import suppress as report_suppress
    from voterolls.report.model import Protections

    t = privacy.DEFAULT_THRESHOLD
    assert report_suppress.SMALL_CELL == t
    assert Protections.model_fields["suppression_threshold"].default == t
    assert report_suppress.suppression_source() == "voterolls.privacy"
    values = [0, 1, t - 1, t, t + 1, None, 250]
    table = pa.table({"n": pa.array(values, pa.int64())})
    assert suppress(values) == privacy.suppress_small_cells(table, ["n"]).column("n").to_pylist()
    assert suppress(values) == [0, None, None, t, t + 1, None, 250]
    # another threshold goes through the same rule (nothing report-local)
    assert suppress([4, 5], threshold=5) == [None, 5]


def test_estimates_minimal_result_and_rubbish(tmp_path):
    """A small result of the stats type: its figures reach the section; a small count is suppressed;
    a file of another shape is one sentence, not a guess."""
    minimal = EstimatesResult.of(
        {
            "double_votes": {"headline": {"estimate": 12.0, "ci95": [5, 20]}},
            "duplicate_registrations": {
                "cross_state": {"rule_net_of_coincidences": {"estimate": 1.0, "raw_rule_count": 8}}
            },
        }
    )
    sec = estimates_section(minimal)
    assert sec.data.double_votes.point == 12.0 and sec.data.double_votes.high == 20
    assert sec.data.crosscheck_flagged.point is None  # 8 is a small cell
    assert estimates_section(EstimatesResult.of({"something": "else"})).missing
    # the old flat shape (a bare count, a figure in place of its scope) is refused by the loader
    (tmp_path / "estimates").mkdir()
    (tmp_path / "estimates" / "estimates.json").write_text(
        json.dumps({"double_votes": {"headline": 12}, "duplicate_registrations": 8})
    )
    sec = gather_estimates(tmp_path)
    assert sec.missing and "do not have the shape voterolls writes" in sec.missing
    assert "duplicate_registrations" in sec.missing or "double_votes" in sec.missing


def test_tile_grid_covers_every_jurisdiction_once():
    assert set(charts.TILE_GRID) == set(JURISDICTIONS)
    assert len(set(charts.TILE_GRID.values())) == len(JURISDICTIONS)


def test_text_colour_contrast():
    assert charts.text_on("#2166ac") == "#ffffff"
    assert charts.text_on("#d1e5f0") == charts.INK


def test_cli_report(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from voterolls.cli import app

    ws = tmp_path / "ws"
    ws.mkdir()
    rf.write_pairs(ws)
    out = tmp_path / "r.html"
    res = CliRunner().invoke(
        app,
        ["report", "--out", str(out), "--workspace", str(ws), "--json", str(tmp_path / "r.json")],
    )
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    assert_offline(html)
    assert "Match-probability distribution" in html and "5,000" in html
    assert (tmp_path / "r.json").exists()
    res = CliRunner().invoke(
        app, ["report", "--out", str(out), "--workspace", str(tmp_path / "nope")]
    )
    assert res.exit_code != 0


# --------------------------------------------------------------------------
# a real browser: nothing is fetched, and it draws
# --------------------------------------------------------------------------


@pytest.mark.browser
def test_browser_loads_nothing_from_the_network(tiny, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs /usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    _, _, _, html = tiny
    page_path = tmp_path / "report.html"
    page_path.write_text(html, encoding="utf-8")
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            n_svg = page.locator("svg.chart").count()
            width = page.evaluate(
                "document.querySelector('svg.tilemap').getBoundingClientRect().width"
            )
            page.set_viewport_size({"width": 380, "height": 800})
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert [u for u in requests if not u.startswith("file://")] == []
    assert n_svg >= 5 and width > 300
    assert overflow <= 1, "the page scrolls sideways on a phone-sized screen"
    assert (tmp_path / "report.png").stat().st_size > 20_000


# --------------------------------------------------------------------------
# through the real workspace store (and the ingest stage's uniformity table)
# --------------------------------------------------------------------------


def test_report_from_a_store_workspace(tmp_path):
    pytest.importorskip("voterolls.store")
    reg = rf.registrations()
    try:
        ws = rf.make_workspace(tmp_path / "ws", reg, states=("NC", "WY"))
    except ImportError:  # ingest's uniformity module not present: the report's own checks
        ws = rf.make_workspace(tmp_path / "ws2", reg, uniformity=False, states=("NC", "WY"))
    data = gather(ws)
    html = render(data)
    assert_offline(html)
    assert data.coverage.data.states_with_data == 2
    nc = next(s for s in data.coverage.data.states if s.state == "NC")
    assert nc.snapshot_date == "2026-11-01"
    assert data.protections.quarantined_rows is None  # 2 states x 3 = 6: a small cell
    assert data.protections.protected_excluded == 24
    u = data.uniformity.data
    assert u is not None and {"NC", "WY"} == set(u.states)
    assert all(
        r.rows is None for r in u.rows if r.state == "WY" and r.dataset == "registrations"
    )  # 5 rows
    kept = reg.filter(pa.compute.is_in(reg.column("state"), pa.array(["NC", "WY"])))
    leaked = sorted(v for v in rf.personal_values(kept) if v.upper() in html.upper())
    assert leaked == []
    assert "linkage has not been run" in html
    assert "no estimates in this workspace" in html


def test_a_broken_input_costs_only_its_section(tmp_path):
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "pairs.parquet").write_bytes(b"not parquet")
    rf.write_estimates(tmp_path)
    data = gather(tmp_path, con=rf.connection())
    assert data.matches.missing and "could not be read" in data.matches.missing
    assert data.estimates.available and data.coverage.available
    html = render(data)
    assert "link/pairs.parquet could not be read" in html and "Estimates with intervals" in html


def test_histogram_prints_no_false_small_label(tiny):
    """Every published bar is the Parquet's count over the published (merged) bin;
    "<10" only for 1..9 pairs, "withheld" only for 10 or more."""
    import numpy as np

    from voterolls.privacy import WITHHELD

    md = tiny[2].matches.data
    raw = rf.write_pairs(Path(tiny[0])).column("match_probability").to_numpy()
    edges = md.bin_edges
    fine = np.bincount(np.minimum((raw * 20).astype(int), 19), minlength=20)
    for i, v in enumerate(md.series[0].counts):
        true = int(fine[int(round(edges[i] * 20)) : int(round(edges[i + 1] * 20))].sum())
        if v is None:
            assert 1 <= true <= 9
        elif v == WITHHELD:
            assert true >= 10
        else:
            assert v == true


def test_signed_interval_of_a_negative_estimate_reaches_the_page_text() -> None:
    """stats keeps the signed estimate and interval; the report shows them beside "≈ 0"."""
    from voterolls.report.data import figure_estimate
    from voterolls.report.render import below_zero_text, interval_text
    from voterolls.stats.result import Figure

    e = figure_estimate(
        "double_votes",
        Figure(estimate=-3.2, ci95=(0, 4.1), ci95_signed=(-9.5, 4.1), truncated_at_zero=True),
    )
    assert e is not None and (e.low_signed, e.high_signed, e.truncated_at_zero) == (-9.5, 4.1, True)
    assert "-9.5" in below_zero_text(e) and "-3.2" in below_zero_text(e)
    clipped = figure_estimate(
        "double_votes",
        Figure(estimate=2.0, ci95=(0, 6.0), ci95_signed=(-1.5, 6.0), truncated_at_zero=True),
    )
    assert "clipped at 0" in interval_text(clipped)
