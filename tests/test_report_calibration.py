"""The calibration check without truth, in link_report.json and the HTML report.

Every figure the report's calibration table prints is compared with the JSON
block it summarises (the estimate stage's output, voterolls.stats.calibration).
"""

from __future__ import annotations

import json
import re
from html import unescape

import pyarrow as pa
import pyarrow.parquet as pq

from voterolls.report.charts import fmt_num
from voterolls.report.data import gather_matches
from voterolls.report.model import ReportData
from voterolls.report.render import render
from voterolls.stats.api import add_to_link_report
from voterolls.store import WorkspacePaths


def _cal(pairs: list[int]) -> dict:
    """A calibration block as the estimate stage writes it (made-up figures)."""
    edges = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)
    model = [31.25, 4.5, 3.0, 20.0, 400.0]
    link = [0.42, 3.75, 6.0, 19.5, 512.35]
    bands = [
        {"p_from": edges[i], "p_to": edges[i + 1], "pairs": n, "expected_by_linkage": link[i],
         "expected_by_birthday_model": model[i], "mean_coincidence_share": 0.1}
        for i, n in enumerate(pairs)
    ]
    tm, tl = round(sum(model), 2), round(sum(link), 2)
    return {"stratum": "exact", "method": "m", "bands": bands,
            "total": {"pairs": sum(pairs), "pairs_not_written_by_linkage": 40,
                      "expected_by_linkage": tl, "expected_by_birthday_model": tm,
                      "ratio_model_to_linkage": round(tm / tl, 4)}}


def _workspace(tmp_path, cal: dict):
    link = WorkspacePaths(tmp_path).link
    link.dir.mkdir(parents=True)
    pq.write_table(pa.table({"match_probability": [0.01] * 30 + [0.95] * 30}), link.pairs)
    link.report.write_text(json.dumps({"candidate_pairs": 1000, "engine": "duckdb"}))
    add_to_link_report(link.report, cal)
    return link


def _table_rows(html: str) -> list[list[str]]:
    table = re.search(r'<table class="calibration">(.*?)</table>', html, re.S).group(1)
    body = table.split("<tbody>")[1]
    return [
        [unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_estimate_stage_adds_the_block_and_keeps_the_report(tmp_path):
    cal = _cal([120, 15, 12, 25, 530])
    link = _workspace(tmp_path, cal)
    rep = json.loads(link.report.read_text())
    assert rep["candidate_pairs"] == 1000 and rep["engine"] == "duckdb"
    assert rep["calibration"] == cal
    assert not link.report.with_name(link.report.name + ".partial").exists()


def test_every_printed_figure_is_the_json_figure(tmp_path):
    cal = _cal([120, 15, 12, 25, 530])
    _workspace(tmp_path, cal)
    data = ReportData(workspace_label="t", version="test")
    data.matches = gather_matches(tmp_path)
    rows = _table_rows(render(data))
    assert len(rows) == len(cal["bands"]) + 1
    for row, b in zip(rows, [*cal["bands"], cal["total"]], strict=True):
        m, lk = b["expected_by_birthday_model"], b["expected_by_linkage"]
        assert row[1] == f"{b['pairs']:,}"
        assert row[2] == fmt_num(m) and row[3] == fmt_num(lk)
        assert row[4] == fmt_num(m / lk)
    assert rows[-1][4] == fmt_num(cal["total"]["ratio_model_to_linkage"])
    assert rows[0][0] == "0.0–0.1" and rows[-1][0] == "All"
    ratio = cal["total"]["ratio_model_to_linkage"]
    assert ratio < 0.9 and f"{ratio:.2f} times" in render(data)
    assert "over-confident" in render(data)


def test_a_small_band_is_hidden_with_its_expected_figures(tmp_path):
    cal = _cal([120, 3, 12, 25, 530])  # 3 pairs: a small cell; the total would give it away
    _workspace(tmp_path, cal)
    data = ReportData(workspace_label="t", version="test")
    data.matches = gather_matches(tmp_path)
    rows = _table_rows(render(data))
    assert rows[1][1] == "&lt;10" or rows[1][1] == "<10"
    assert rows[1][2:] == ["hidden with the pair count"]
    # the total's count is withheld (it would give the small band away); its ratio is shown,
    # as one ratio of two totals cannot be solved for the hidden band's figures
    ratio = cal["total"]["ratio_model_to_linkage"]
    assert "withheld" in rows[-1][1]
    assert rows[-1][2:] == ["hidden with the pair count", fmt_num(ratio)]
    assert rows[0][1] == "120" and rows[0][2] == fmt_num(31.25)
    assert f"{ratio:.2f} times" in render(data) and "are withheld" in render(data)


def test_fewer_than_ten_exact_pairs_publish_nothing(tmp_path):
    cal = _cal([2, 0, 0, 1, 3])
    _workspace(tmp_path, cal)
    data = ReportData(workspace_label="t", version="test")
    data.matches = gather_matches(tmp_path)
    html = render(data)
    rows = _table_rows(html)
    assert all(r[2:] == ["hidden with the pair count"] for r in rows if r[1] != "0")
    assert "Too few exact pairs" in html and "times as many" not in html
