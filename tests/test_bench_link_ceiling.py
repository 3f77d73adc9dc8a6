"""bench/link_ceiling.py: the birth-year fold keeps recording errors, the oracle rescoring is exact."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import link_ceiling  # noqa: E402


def test_fold_keeps_each_registrations_error_and_packs_years():
    from voterolls.synth.nation import generate_nation

    nation = generate_nation(2000, 3)
    con = duckdb.connect()
    con.register("r0", nation.registrations.select(["state", "state_voter_id", "dob"]))
    con.register("i0", nation.identifiers.select(["state", "state_voter_id", "dob"]))
    before = con.sql(
        "SELECT r.state, r.state_voter_id, year(r.dob) - year(i.dob) AS dy, month(r.dob) AS m, day(r.dob) AS d "
        "FROM r0 r JOIN i0 i USING (state, state_voter_id) WHERE r.dob > DATE '1900-01-01' "
        "AND NOT (month(i.dob) = 2 AND day(i.dob) = 29) AND NOT (month(r.dob) = 2 AND day(r.dob) = 29)"
    ).to_arrow_table()
    link_ceiling.fold_birth_years(nation, 2)
    con.register("r1", nation.registrations.select(["state", "state_voter_id", "dob"]))
    con.register("i1", nation.identifiers.select(["state", "state_voter_id", "dob"]))
    con.register("b", before)
    years = {r[0] for r in con.sql("SELECT DISTINCT year(dob) FROM i1").fetchall()}
    assert years <= {1972, 1973}
    changed = con.sql(
        "SELECT count(*) FROM b JOIN r1 r USING (state, state_voter_id) JOIN i1 i USING (state, state_voter_id) "
        "WHERE year(r.dob) - year(i.dob) <> b.dy OR month(r.dob) <> b.m OR day(r.dob) <> b.d"
    ).fetchall()[0][0]
    assert changed == 0
    assert before.num_rows > 1500


def test_oracle_rescoring_adds_the_m_ratio_and_the_prior_shift(tmp_path):
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE registrations AS SELECT * FROM (VALUES ('A', '1'), ('B', '1'), ('A', '2'), ('B', '2'), "
        "('A', '3'), ('B', '3'), ('A', '4'), ('B', '4'), ('A', '5'), ('B', '5')) t(state, state_voter_id)"
    )
    rows = [("1", 1, True), ("2", 1, True), ("3", 1, True), ("4", 0, True), ("5", 0, False)]
    pairs = pa.table(
        {
            "state_l": ["A"] * 5,
            "state_voter_id_l": [r[0] for r in rows],
            "state_r": ["B"] * 5,
            "state_voter_id_r": [r[0] if r[2] else "1" for r in rows],
            "gamma_x": pa.array([r[1] for r in rows], pa.int32()),
            "match_weight": [3.0] * 5,
            "match_probability": [1 / (1 + 2**-3.0)] * 5,
        }
    )
    pq.write_table(pairs, tmp_path / "pairs.parquet")
    truth = pa.table(
        {
            "state_l": ["A"] * 4,
            "state_voter_id_l": ["1", "2", "3", "4"],
            "state_r": ["B"] * 4,
            "state_voter_id_r": ["1", "2", "3", "4"],
        }
    )
    pq.write_table(truth, tmp_path / "truth.parquet")
    link_ceiling._truth_view(con, tmp_path / "truth.parquet")
    model = {
        "comparisons": [
            {
                "output_column_name": "x",
                "comparison_levels": [
                    {"is_null_level": True},
                    {"m_probability": 0.5},
                    {"m_probability": 0.5},
                ],
            }
        ]
    }
    prior_vr = 0.01
    out = link_ceiling.oracle_pairs(con, tmp_path / "pairs.parquet", model, prior_vr, 10, tmp_path)
    assert out["true_pairs"] == 4
    assert math.isclose(out["prior_true"], 4 / 45)
    m1, m0 = 3.5 / 5, 1.5 / 5  # add-half smoothing over the two levels
    lo = lambda p: math.log2(p / (1 - p))  # noqa: E731
    shift = lo(4 / 45) - lo(prior_vr)
    got = pq.read_table(out["files"]["oracle"]).to_pydict()
    for gamma, w in zip(got["gamma_x"], got["match_weight"], strict=True):
        m = m1 if gamma == 1 else m0
        assert math.isclose(w, 3.0 + math.log2(m / 0.5) + shift, rel_tol=1e-9)
    prior_only = pq.read_table(out["files"]["oracle_prior"]).to_pydict()["match_weight"]
    assert all(math.isclose(w, 3.0 + shift) for w in prior_only)


def test_projection_reads_the_log_density_line_at_the_nation(tmp_path, monkeypatch):
    """Two measured densities: the line through them, read at density 1 (200M registrations)."""
    a, b = link_ceiling._fit_log_density([(0.01, 0.9), (0.1, 0.8)])
    assert math.isclose(a, 0.7) and math.isclose(b, -0.1)
    assert link_ceiling._fit_log_density([(0.1, 0.8)]) is None

    def run(density, f1):
        per_class = {c: {"f1": f1} for c in (*link_ceiling.GRANULARITY_CLASSES, "all")}
        score = {"f1_at_0.5": per_class}
        return {"variant": "public", "density_vs_nation": density, "registrations": int(density * 1e7),
                "scores": {"voterolls": score, "oracle": score}}

    results = tmp_path / "r.json"
    results.write_text(json.dumps({"runs": [run(0.01, 0.9), run(0.1, 0.8)]}))
    monkeypatch.setattr(link_ceiling, "RESULTS", results)
    text = link_ceiling.projection()
    rows = [r for r in text.splitlines() if r.startswith("| public | full |")]
    assert rows and all(r.endswith("| -0.100 | 0.700 |") for r in rows)
    assert "`public` rests on 2 measured sizes (100,000 at density 0.010, 1,000,000 at density 0.100)" in text


def test_peak_rss_sees_memory_held_during_the_block_only():
    """The link phase's own peak: what the process held before the block is its start, not its growth."""
    from bench.common import PeakRSS

    ballast = bytearray(64 * 2**20)  # held before: part of start_mib, not of added_mib
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    with PeakRSS(interval=0.02) as m:
        block = bytearray(256 * 2**20)
        block[:: 4096] = b"\x01" * len(block[:: 4096])  # touch every page: resident
        time.sleep(0.2)
        del block
    assert m.start_mib >= 64
    assert 240 <= m.added_mib <= 400
    assert m.peak_mib == pytest.approx(m.start_mib + m.added_mib, abs=0.2)
    assert m.as_dict() == {"start_mib": m.start_mib, "peak_mib": m.peak_mib, "added_mib": m.added_mib}
    del ballast


def test_run_size_records_the_link_memory_and_the_full_link(tmp_path, monkeypatch):
    """A small nation through run_size with --full-link: both links see the same candidate pairs,
    the full one writes only those above the default minimum probability, and the memory figures
    are the sampled ones (peak at least the start)."""
    from bench import common
    from voterolls.link.settings import DEFAULT_MIN_PROBABILITY

    monkeypatch.setenv("VOTEROLLS_BENCH_TMP", str(tmp_path))
    # this process only: the tree would also count children other tests left in this worker
    # (a Spark session's JVM), which the process's own ru_maxrss below never sees
    monkeypatch.setattr(common, "_tree_rss", lambda proc: proc.memory_info().rss)
    row = link_ceiling.run_size(3000, 5, None, "public", scorers=("voterolls",), extra_thresholds=(),
                                full_link=True)  # fmt: skip
    m = row["link_rss_mib"]
    assert 0 < m["start_mib"] <= m["peak_mib"] and m["added_mib"] == pytest.approx(m["peak_mib"] - m["start_mib"])
    assert row["process_peak_rss_mib"] >= m["peak_mib"] - 1
    full = row["full_link"]
    assert full["candidate_pairs"] == row["candidate_pairs"] > 0
    assert 0 < full["pairs_written"] < full["candidate_pairs"]
    assert "recalibrate" in full["stages"] and "blocking_analysis" in full["stages"]
    assert full["rss_mib"]["peak_mib"] >= full["rss_mib"]["start_mib"] > 0
    assert DEFAULT_MIN_PROBABILITY > 0
    note = link_ceiling._memory_note(row)
    assert f"{full['seconds']} s wall" in note and "link peak RSS" in note
