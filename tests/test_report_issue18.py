"""Issue 18: every printed figure true, current and explained.

One small real workspace (``voterolls.store``, four states, one of them a
small cell), a linkage output with gamma columns, a trained-looking Splink
model and the stats stage's estimates.  Tests per bullet: the reconciled
headline (2), freshness after a new snapshot (3), what each role receives
(4), the model page and pair waterfall (5); and the summary's figures checked
against the workspace's Parquet and estimates.json.  Suppression (1) has its
property tests in test_privacy_labels.py and its report-level check here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_report_fixtures as rf  # noqa: E402

from voterolls.report import gather, render  # noqa: E402

GAMMAS = ("first_name", "last_name", "birth_year")
SCRIPT = Path(sys.executable).parent / "voterolls"


def small_model() -> dict:
    """A valid Splink model (Splink's own SettingsCreator) over three exact comparisons."""
    import splink.comparison_library as cl
    from splink import SettingsCreator

    comps = [
        cl.ExactMatch(c).configure(m_probabilities=[0.9, 0.1], u_probabilities=[0.01, 0.99])
        for c in GAMMAS
    ]
    s = SettingsCreator(
        link_type="link_and_dedupe", comparisons=comps, probability_two_random_records_match=0.001
    )
    return s.get_settings("duckdb").as_dict()


def write_linkage(w: Path) -> pa.Table:
    """rf's pairs plus gamma columns consistent with their weights, and the model."""
    t = rf.write_pairs(w)
    rng = np.random.default_rng(5)
    n = t.num_rows
    p = t.column("match_probability").to_numpy()
    for i, g in enumerate(GAMMAS):
        agree = (rng.random(n) < p) | (rng.random(n) < 0.1 * (i + 1))
        gam = np.where(agree, 1, 0)
        gam[rng.random(n) < 0.05] = -1
        t = t.append_column(f"gamma_{g}", pa.array(gam, pa.int32()))
    pq.write_table(t, w / "link" / "pairs.parquet")
    (w / "link" / "model.json").write_text(json.dumps(small_model()))
    return t


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    from voterolls.store import Workspace

    w = rf.make_workspace(tmp_path_factory.mktemp("i18") / "ws")
    write_linkage(w)
    rf.write_estimates(w)
    wsp = Workspace(w, create=False)
    wsp.record_built_from(w / "link")
    wsp.record_built_from(w / "estimates")
    return w


@pytest.fixture(scope="module")
def report(ws, tmp_path_factory) -> tuple[object, str, Path]:
    out = tmp_path_factory.mktemp("i18out") / "report.html"
    r = subprocess.run(
        [str(SCRIPT), "report", "--workspace", str(ws), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ}, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    return gather(ws), out.read_text(encoding="utf-8"), out


def _text(html: str) -> str:
    from html import unescape

    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _summary_text(html: str) -> str:
    part = html.split('<section class="summary"', 1)[1].split("</section>", 1)[0]
    return _text(part)


# --------------------------------------------------------------------------
# 1. suppression: no false "<10", withheld figures say so
# --------------------------------------------------------------------------


def test_report_prints_withheld_not_small_for_a_protected_total(report):
    data, html, _ = report
    text = _text(html)
    # WY holds 5 registrations: "<10"; the national total would give it away: withheld, labelled
    assert data.coverage.data.registrations_loaded == "withheld"
    assert "total registrations withheld to protect a small cell" in text
    wy = next(s for s in data.coverage.data.states if s.state == "WY")
    assert wy.registrations_loaded is None
    # every other state prints its true count
    con = duckdb.connect()
    for s in data.coverage.data.states:
        if s.has_data and s.state != "WY":
            assert isinstance(s.registrations_loaded, int) and s.registrations_loaded >= 10
    con.close()


def test_histogram_from_the_issue_prints_no_false_label():
    """The issue's case: 677 pairs at p >= 0.95 in three DOB series plus a series of 3 pairs,
    and one pair between 0.1 and 0.9.  No bar of 10 or more may read "<10"."""
    from voterolls.privacy import WITHHELD
    from voterolls.report import charts
    from voterolls.report.data import publish_histogram
    from voterolls.report.model import MatchDistribution

    bins = 20
    per = {
        "Both full DOB": [0] * 19 + [149],
        "Full DOB vs birth year": [0] * 19 + [46],
        "Both birth year only": [0] * 5 + [1] + [0] * 13 + [268],
        "At least one without DOB": [0] * 19 + [3],
    }
    pub = publish_histogram(per, list(per), bins)
    labels = [s.label for s in pub.series]
    assert "Full DOB vs birth year + At least one without DOB" in labels  # 3 pairs: merged with the smallest
    top = pub.series[0].counts
    truth = [sum(v[b] for v in per.values()) for b in range(bins)]
    for i, c in enumerate(top):
        lo, hi = round(pub.edges[i] * bins), round(pub.edges[i + 1] * bins)
        true = sum(truth[lo:hi])
        assert c == true or (c is None and 1 <= true <= 9) or (c == WITHHELD and true >= 10)
    assert top[-1] == 466  # the 0.95-1.00 bar is printed, not "<10"
    assert pub.half == 466 and pub.p09 == 466  # their bins hold no small cell
    # the lone pair below 0.5 cannot be merged away (0.5 is a published cut): it reads "<10"
    # and the totals that would give it away (its series, all pairs) are withheld, labelled
    assert None in top and pub.total == WITHHELD
    md = MatchDistribution(bin_edges=pub.edges, series=pub.series, total_pairs=pub.total,
                           pairs_at_least_half=pub.half, pairs_at_least_09=pub.p09,
                           expected_true_matches=None)
    svg = charts.histogram(md)
    assert "fewer than 10 pairs (suppressed)" not in svg.split("0.95")[-1]
    # a withheld bar is drawn as a dashed outline saying why, never as a hatched "<10"
    withheld = pub.series[0].model_copy(update={"counts": [WITHHELD] + top[1:]})
    svg = charts.histogram(md.model_copy(update={"series": [withheld]}))
    assert "withheld to protect a small cell" in svg and 'stroke-dasharray="3 3"' in svg


# --------------------------------------------------------------------------
# 2. one reconciled headline
# --------------------------------------------------------------------------


def test_headline_reconciles_estimate_national_and_linkage(ws, report):
    data, html, _ = report
    hb = data.estimates.data.headline_block
    assert hb is not None and hb.review_threshold == 0.5
    e = hb.estimate
    assert (e.point, e.low, e.high) == (131.2, 98.0, 164.4)
    assert e.rests_on_states == ["FL", "NC", "OH", "WY"] and e.rests_on_year_only == ["NC", "WY"]
    assert e.national == 2890.0 and "ratio estimator" in e.national_model
    n_all, n_cov, s_cov = duckdb.sql(
        "SELECT count(*), count(*) FILTER (WHERE state_l IN ('FL','NC','OH','WY') AND state_r IN ('FL','NC','OH','WY')), "
        "sum(match_probability) FILTER (WHERE state_l IN ('FL','NC','OH','WY') AND state_r IN ('FL','NC','OH','WY')) "
        f"FROM read_parquet('{ws}/link/pairs.parquet') WHERE state_l <> state_r AND match_probability >= 0.5"
    ).fetchall()[0]
    assert (hb.pairs_at_review, hb.pairs_at_review_covered) == (n_all, n_cov)
    assert hb.expected_true_covered == pytest.approx(s_cov)
    text = _summary_text(html)
    assert "How they relate." in text and "131" in text and "98 to 164" in text
    assert "2,890" in text and "1,500 to 4,280" in text and "Model: ratio estimator" in text
    assert "full date of birth in 2, birth year only in 2 (NC, WY)" in text
    # every ratio with an interval: the purge card
    assert "legitimate votes blocked per double vote prevented; 95% interval 192 to 724" in text


def test_a_purge_ratio_without_upper_bound_says_so(tmp_path):
    from voterolls.report.data import estimates_section
    from voterolls.report.render import interval_text
    from voterolls.stats.result import EstimatesResult

    body = json.loads(json.dumps(rf.STATS_ESTIMATES))
    body["crosscheck_purge"]["ratio_range_from_ci"] = [120.0, None]
    e = estimates_section(EstimatesResult.of(body)).data.purge_ratio
    assert interval_text(e) == "95% interval 120 to no upper bound"


# --------------------------------------------------------------------------
# 3. freshness
# --------------------------------------------------------------------------


def test_products_on_superseded_snapshots_say_so_everywhere(tmp_path):
    from voterolls.store import Workspace

    w = rf.make_workspace(tmp_path / "ws", states=("NC", "OH", "FL"))
    write_linkage(w)
    rf.write_estimates(w)
    wsp = Workspace(w, create=False)
    wsp.record_built_from(w / "link")
    wsp.record_built_from(w / "estimates")
    fresh = gather(w)
    assert [f.stale for f in fresh.freshness] == [False, False]
    assert 'id="stale"' not in render(fresh)
    old = wsp.current()["NC"]
    rf.make_workspace(w, rf.registrations(seed=8), states=("NC",), key_suffix="-2")  # a new NC snapshot
    new = wsp.current()["NC"]
    assert new != old
    data = gather(w)
    assert {f.product: f.stale for f in data.freshness} == {"linkage": True, "estimates": True}
    assert data.built_from["NC"] == new
    html = render(data)
    banner = _text(html.split('id="stale"', 1)[1].split("</div>", 1)[0])
    assert f"NC ({old}; now {new})" in banner and "Run voterolls link" in banner
    # the CLI warns the same way (installed script, as a user runs it)
    out = tmp_path / "r.html"
    r = subprocess.run([str(SCRIPT), "report", "--workspace", str(w), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "warning: The linkage results are out of date" in r.stderr
    assert "warning: The estimates are out of date" in r.stderr
    assert "Run voterolls link" in r.stderr and f"NC ({old}; now {new})" in r.stderr
    # the service's state and analyst pages carry the banner
    from voterolls.service.data import stale_products

    msgs = stale_products(w)
    assert len(msgs) == 2 and all(new in m for m in msgs)
    # the lists record what they were built from, and that it is stale
    from voterolls.lists import ActionPolicy, build_lists

    build_lists(wsp, "OH", tmp_path / "lists", ActionPolicy())
    summary = json.loads((tmp_path / "lists" / "summary.json").read_text())
    assert summary["built_from_snapshots"]["NC"] == old and "voterolls link" in summary["stale"]


# --------------------------------------------------------------------------
# 4. what each role receives (service matches API, analyst aggregates)
# --------------------------------------------------------------------------


def test_state_matches_carry_exactly_the_documented_columns(ws):
    from voterolls.service.data import aggregates, state_matches

    m = state_matches(ws, "NC", limit=50)
    assert set(m) == {"available", "total", "rows", "gammas", "gamma_max", "stale"}
    assert list(m["rows"][0]) == [
        "pair_ref", "voter_id", "other_voter_id", "other_state", "match_probability", "match_weight",
        "dob_granularity", "other_dob_granularity", *(f"gamma_{g}" for g in sorted(GAMMAS)),
    ]
    for r in m["rows"]:
        # another state's voter id never reaches a state; an in-state pair shows the state's own
        assert (r["other_voter_id"] is None) == (r["other_state"] != "NC")
    oh = state_matches(ws, "OH", limit=5000)["rows"]
    assert all(r["other_voter_id"] is None for r in oh)
    agg = aggregates(ws)
    assert set(agg) == {"states", "categories", "match_histogram", "small_cell"}
    assert set(agg["states"][0]) == {"state", "registrations"}
    assert set(agg["match_histogram"][0]) == {"from", "to", "pairs"}


# --------------------------------------------------------------------------
# 5. inside the model
# --------------------------------------------------------------------------


def _external_urls(html: str) -> set[str]:
    from voterolls.link.explain import XML_NAMESPACES

    return {u for u in re.findall(r"https?://[A-Za-z0-9./:_~%#?=&+-]+", html)} - set(XML_NAMESPACES)


def test_model_page_is_splinks_charts_offline(report):
    data, html, out = report
    assert 'href="report-model.html"' in html
    page = (out.parent / "report-model.html").read_text(encoding="utf-8")
    assert _external_urls(page) == set()
    assert "<script src" not in page and "<link" not in page
    # Splink's chart specs (match weights, m/u) and its bundled vega-embed
    assert page.count("vegaEmbed(") == 2 and "Comparison level match weight" in page
    assert "Exact match on first_name" in page and "+6.49" in page  # log2(0.9/0.01), in the m/u table


def test_a_state_opens_the_waterfall_of_its_own_pairs_only(ws):
    from fastapi.testclient import TestClient

    from voterolls.service.accounts import AccountStore
    from voterolls.service.app import create_app
    from voterolls.service.data import state_matches

    store = AccountStore(ws / "service" / "accounts.json")
    tok = {n: store.create(n, "state", st)[1] for n, st in (("nc18", "NC"), ("fl18", "FL"))}
    client = TestClient(create_app(ws))
    ref = state_matches(ws, "NC", limit=1)["rows"][0]["pair_ref"]
    r = client.get(f"/states/NC/pairs/{ref}", headers={"Authorization": f"Bearer {tok['nc18']}"})
    assert r.status_code == 200 and "vegaEmbed(" in r.text and _external_urls(r.text) == set()
    assert "'unsafe-eval'" in r.headers["content-security-policy"]
    assert "connect-src" not in r.headers["content-security-policy"]  # default-src 'none' covers it
    # no record value on the page: the other side's id never, only NC's own
    assert "OH0" not in r.text
    # FL cannot open NC's pair, not even through its own URL
    r = client.get(f"/states/FL/pairs/{ref}", headers={"Authorization": f"Bearer {tok['fl18']}"})
    assert r.status_code == 404
    r = client.get(f"/states/NC/pairs/{ref}", headers={"Authorization": f"Bearer {tok['fl18']}"})
    assert r.status_code == 403
    page = client.get("/model", headers={"Authorization": f"Bearer {tok['fl18']}"})
    assert page.status_code == 200 and "Match weights per comparison level" in page.text


# --------------------------------------------------------------------------
# the summary's figures against the workspace's Parquet and estimates.json
# --------------------------------------------------------------------------


def test_every_summary_figure_matches_the_workspace(ws, report):
    from voterolls.report.charts import fmt_int, fmt_num, fmt_pct
    from voterolls.store import Workspace

    _, html, _ = report
    text = _summary_text(html)
    est = json.loads((ws / "estimates" / "estimates.json").read_text())
    cross = est["duplicate_registrations"]["cross_state"]
    con = Workspace(ws, create=False).connect()
    per_state = dict(con.execute("SELECT state, count(*) FROM registrations GROUP BY 1").fetchall())
    con.close()
    pairs = f"read_parquet('{ws}/link/pairs.parquet')"
    total, half = duckdb.sql(f"SELECT count(*), count_if(match_probability >= 0.5) FROM {pairs}").fetchall()[0]
    covered = cross["rests_on"]["states"]
    c_sql = ", ".join(f"'{s}'" for s in covered)
    rev_all, rev_cov, rev_sum = duckdb.sql(
        f"SELECT count(*), count(*) FILTER (WHERE state_l IN ({c_sql}) AND state_r IN ({c_sql})), "
        f"sum(match_probability) FILTER (WHERE state_l IN ({c_sql}) AND state_r IN ({c_sql})) "
        f"FROM {pairs} WHERE state_l <> state_r AND match_probability >= 0.5"
    ).fetchall()[0]
    purge = est["crosscheck_purge"]
    dv = est["double_votes"]["headline"]
    year_only = [s for s in est["coverage"]["states_with_birth_year_only"] if s in covered]
    expected = {
        # coverage: states with registrations in the Parquet (WY's 5 make the total "withheld")
        str(len(per_state)), "51",
        # headline: estimate, interval, DOB classes, national with its interval
        fmt_num(cross["combined"]["estimate"]), fmt_num(cross["combined"]["ci95"][0]),
        fmt_num(cross["combined"]["ci95"][1]), str(len(covered)), fmt_pct(cross["rests_on"]["registrant_share"]),
        str(len(covered) - len(year_only)), str(len(year_only)),
        fmt_num(cross["national"]["national"]), fmt_num(cross["national"]["ci95"][0]),
        fmt_num(cross["national"]["ci95"][1]),
        # linkage at the review threshold, from pairs.parquet
        fmt_int(rev_all), fmt_int(rev_cov), fmt_num(rev_sum),
        # cards: Crosscheck flags, coincidences, double votes, purge ratio and its interval
        fmt_int(cross["rule_net_of_coincidences"]["raw_rule_count"]),
        fmt_num(cross["rule_net_of_coincidences"]["expected_coincidences"]),
        fmt_num(dv["estimate"]), fmt_num(dv["ci95"][0]), fmt_num(dv["ci95"][1]),
        fmt_pct(est["double_votes"]["rests_on"]["registrant_share"]),
        fmt_num(purge["legitimate_votes_blocked_per_double_vote_prevented"]),
        fmt_num(purge["ratio_range_from_ci"][0]), fmt_num(purge["ratio_range_from_ci"][1]),
        # scored candidate pairs, from pairs.parquet
        fmt_int(total), fmt_int(half),
    }
    structural = {"0.5", "95%", "95", "10"}  # review threshold, interval level, small-cell threshold
    printed = re.findall(r"(?<![\d.])\d{1,3}(?:,\d{3})*(?:\.\d+)?%?", text)
    unexplained = [p for p in printed if p not in expected | structural]
    assert unexplained == [], f"summary prints figures with no source: {unexplained}"
    missing = {e for e in expected if e not in printed and e != str(len(per_state))}
    assert not missing, f"expected figures not printed: {missing}"
    assert "withheld to protect a small cell" in text and per_state["WY"] < 10
