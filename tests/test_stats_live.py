"""Live registrations only, and the vote-record error learnt from the data.

The county-file test runs the installed ``voterolls`` script on a synthetic NC
county file written in the state's own layout with cancelled and denied
records kept (as NC keeps them), through ``ingest`` and ``estimate``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest

from voterolls.schema import LIVE_STATUSES, live_status_sql
from voterolls.stats import estimators as es
from voterolls.synth import SynthConfig, generate_nation

ROOT = Path(__file__).resolve().parents[1]
KEPT = SynthConfig(
    cancelled_kept_rate=0.5,
    denied_kept_rate=0.6,
    in_state_duplicate_rate=0.08,
    late_registration_rate=0.05,
    vote_record_error_rate=0.03,
)


def _voterolls(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("voterolls") or str(Path(sys.executable).with_name("voterolls"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=600)


def test_live_status_predicate_is_the_one_definition():
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT s, {live_status_sql('s')} FROM (VALUES ('active'), ('inactive'), ('cancelled'), "
        "('denied'), ('pending'), ('unknown'), (NULL)) t(s)"
    ).fetchall()
    assert {s for s, live in rows if live} == {"active", "inactive", "unknown", None}
    assert set(LIVE_STATUSES) == {"active", "inactive", "unknown"}


@pytest.mark.slow
def test_county_file_with_cancelled_and_denied_records_through_ingest(tmp_path):
    from voterolls.synth.native import write_native

    nation = generate_nation(40_000, 11, KEPT).restrict(["NC"])
    regs = nation.registrations
    counts = pc.value_counts(regs["county"])
    county = counts.field("values")[
        pc.index(counts.field("counts"), pc.max(counts.field("counts"))).as_py()
    ]
    regs = regs.filter(pc.equal(regs["county"], county))
    ids = regs["state_voter_id"]
    vh = nation.vote_history.filter(pc.is_in(nation.vote_history["state_voter_id"], value_set=ids))
    files = write_native("NC", regs, vh, tmp_path / "county")
    ws = tmp_path / "w"
    r = _voterolls("ingest", "NC", *map(str, files), "--workspace", str(ws))
    assert r.returncode == 0, r.stdout + r.stderr
    r = _voterolls("estimate", "--workspace", str(ws))
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((ws / "estimates" / "estimates.json").read_text())

    # what the file holds, counted from the generated records (protected voters are not published)
    con = duckdb.connect()
    con.register("g", regs.filter(pc.invert(regs["protected"])))
    by_status = dict(con.execute("SELECT status, count(*) FROM g GROUP BY 1").fetchall())
    assert by_status["cancelled"] > 0 and by_status["denied"] > 0
    st = res["registration_status"]
    got = {k: v["records"] for k, v in st["records_by_status"].items()}
    assert got["cancelled"] == by_status["cancelled"]
    # NC's D is "denied" (stored as "pending" by layouts that predate the denied status)
    assert got.get("denied", 0) + got.get("pending", 0) == by_status["denied"]
    assert not st["records_by_status"]["cancelled"]["live"]
    assert st["records_not_live"] == by_status["cancelled"] + by_status["denied"]

    # in-state duplicates rest on live registrations only: the rule's raw count is the
    # number of rule pairs between two live records; pairs touching a cancelled or denied
    # record are reported apart
    live = live_status_sql("status")
    rule = """a.first_name = b.first_name AND a.last_name = b.last_name AND a.birth_year = b.birth_year
              AND a.state_voter_id < b.state_voter_id"""
    con.execute(f"CREATE TABLE n AS SELECT *, {live} AS live FROM g")
    live_pairs, mixed = con.execute(
        f"""SELECT count(*) FILTER (WHERE a.live AND b.live),
                   count(*) FILTER (WHERE a.live <> b.live)
            FROM n a JOIN n b ON {rule}"""
    ).fetchall()[0]
    ins = res["duplicate_registrations"]["in_state"]["rule_net_of_coincidences"]
    assert ins["raw_rule_count"] == live_pairs
    reported = sum(
        m["rule_pairs_with_a_live_record"] for m in st["rule_matches_not_live_with_live"]
    )
    assert reported == mixed > 0
    # the truth: the estimate counts live duplicate pairs, not list maintenance
    tp = nation.truth["duplicate_pairs"]
    assert pc.sum(pc.invert(tp["live"])).as_py() > 0

    # the printed figures are the JSON's
    out = " ".join(r.stdout.split())
    kinds = ", ".join(
        f"{k} {v['records']:,}" for k, v in st["records_by_status"].items() if not v["live"]
    )
    assert f"Not counted as registrations: {st['records_not_live']:,} records ({kinds}); " in out
    assert f"{reported:,} name+DOB rule matches join one of them to a live registration" in out
    ve = res["vote_record_error"]
    printed = f"Vote-record error {ve['error_rate']:.2%} (se {ve['error_rate_se']:.2%}): "
    assert printed + f"{ve['source']}." in out
    # a learnt rate rests on at least 200 records that cannot have voted
    cannot = (ve["evidence"] or {}).get("records_that_cannot_have_voted", {})
    if ve["source"].startswith("learnt"):
        assert sum(v["records"] for v in cannot.values()) >= 200
    dv = res["double_votes"].get("rule_net_of_coincidences_error_corrected") or {}
    if dv.get("noise_floor"):
        floor = f"all strata: floor {dv['noise_floor']['sd']:,.1f}, reported se {dv['se']:,.1f}"
        assert floor in out
    assert "fraud" not in out.lower()


def _ingested(nation) -> duckdb.DuckDBPyConnection:
    from bench.synthetic_registrations import load_nation_registrations

    con = duckdb.connect()
    load_nation_registrations(con, nation, target="registrations")
    con.register("_v", nation.vote_history)
    con.execute("CREATE TABLE vote_history AS SELECT * FROM _v")
    return con


def test_vote_record_error_is_learnt_and_an_override_is_reported_as_such():
    nation = generate_nation(40_000, 5, KEPT)
    con = _ingested(nation)
    res = es.estimate_tables(con)
    ve = res["vote_record_error"]
    assert res["error_rate_source"] == "learnt" and ve["error_rate_se"] > 0
    assert "learnt" in ve["source"]
    # the generator's false-mark rate: errors over records that did not cast a ballot
    cast = pc.sum(nation.truth["records"]["voted"]).as_py()
    b_true = nation.truth["vote_record_errors"].num_rows / (nation.registrations.num_rows - cast)
    b = ve["evidence"]["false_mark_rate"]
    assert abs(b - b_true) < 3 * ve["evidence"]["false_mark_rate_se"]
    assert (
        ve["evidence"]["records_that_cannot_have_voted"]["registered_after_election"]["records"] > 0
    )
    # its uncertainty widens the double-vote interval beyond the same rate assumed exactly
    fixed = es.estimate_tables(_ingested(nation), error_rate=res["error_rate"])
    assert fixed["error_rate_source"] == "override"
    assert "override" in fixed["vote_record_error"]["source"]
    h, hf = res["double_votes"]["headline"], fixed["double_votes"]["headline"]
    assert h["estimate"] == pytest.approx(hf["estimate"], abs=0.05)
    assert h["se"] > hf["se"]


def test_without_records_that_cannot_have_voted_the_default_is_used_and_said():
    con = _ingested(generate_nation(5_000, 2))
    res = es.estimate_tables(con)
    assert res["error_rate_source"] == "default" and res["error_rate"] == es.DEFAULT_ERROR_RATE
    assert "assumed default" in res["vote_record_error"]["source"]


def test_exact_stratum_calibration_finds_overconfident_linkage_without_truth():
    from bench.toy_population import make_population

    states = {"OH": "full", "FL": "full", "NY": "full", "TX": "full"}
    pop = make_population(60_000, seed=3, states=states, top_first=20, top_last=30, dup_rate=0.02)
    con = duckdb.connect()
    con.register("registrations", pop.registrations)
    con.register("truth", pop.truth_pairs)
    es.prepare(con, None)
    # every cross-state pair agreeing on first + last + full DOB, scored 0.999 (over-confident)
    con.execute(
        """CREATE TABLE pairs AS
           SELECT a.state AS state_l, a.state_voter_id AS state_voter_id_l, b.state AS state_r,
                  b.state_voter_id AS state_voter_id_r, 0.999 AS match_probability,
                  EXISTS (SELECT 1 FROM truth t WHERE (t.state_l = a.state
                          AND t.state_voter_id_l = a.state_voter_id AND t.state_r = b.state
                          AND t.state_voter_id_r = b.state_voter_id) OR (t.state_l = b.state
                          AND t.state_voter_id_l = b.state_voter_id AND t.state_r = a.state
                          AND t.state_voter_id_r = a.state_voter_id)) AS same
           FROM _vr_regs a JOIN _vr_regs b ON a.first_name = b.first_name
             AND a.last_name = b.last_name AND a.dob = b.dob AND a.state < b.state"""
    )
    n, true = con.execute("SELECT count(*), count(*) FILTER (WHERE same) FROM pairs").fetchall()[0]
    assert n - true > 50  # a coincidence-heavy exact stratum
    pairs = con.sql("SELECT * EXCLUDE (same) FROM pairs").to_arrow_table()
    res = es.estimate_tables(con, pairs=pairs, error_rate=0.0)
    cal = res["linkage_calibration"]
    tot = cal["total"]
    assert tot["pairs"] == n and tot["expected_by_linkage"] == pytest.approx(0.999 * n, abs=0.01)
    # without truth, the birthday model sees that only about `true` of them are one person
    assert abs(tot["expected_by_birthday_model"] - true) < 4 * (n - true) ** 0.5
    assert tot["ratio_model_to_linkage"] < 0.95
    # an informed linkage (true pairs high, coincidences low): the total still matches the truth
    con.execute(
        "CREATE OR REPLACE TABLE pairs AS SELECT * REPLACE (CASE WHEN same THEN 0.999 ELSE 0.05 END AS match_probability) FROM pairs"
    )
    pairs = con.sql("SELECT * EXCLUDE (same) FROM pairs").to_arrow_table()
    cal2 = es.estimate_tables(con, pairs=pairs, error_rate=0.0)["linkage_calibration"]
    assert cal2["total"]["expected_by_birthday_model"] == pytest.approx(
        tot["expected_by_birthday_model"]
    )
    assert abs(cal2["total"]["expected_by_linkage"] - true) < 0.05 * n
    assert [b["p_from"] for b in cal2["bands"]] == [0.0, 0.99]
    # a linkage that does not write the coincidences at all (scored below its threshold):
    # they count with p = 0, so the totals still compare like with like
    written = con.sql("SELECT * EXCLUDE (same) FROM pairs WHERE same").to_arrow_table()
    cal3 = es.estimate_tables(con, pairs=written, error_rate=0.0)["linkage_calibration"]
    assert cal3["total"]["pairs"] == n and cal3["total"]["pairs_not_written_by_linkage"] == n - true
    assert cal3["total"]["expected_by_linkage"] == pytest.approx(0.999 * true, abs=0.01)
    assert cal3["total"]["expected_by_birthday_model"] == pytest.approx(
        tot["expected_by_birthday_model"]
    )


def test_middle_initial_makes_the_year_level_informative_at_national_density():
    """At a national file's namesake density the year-only level's coincidences swamp it;
    the middle initial as a further rule field narrows the interval and still covers."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from validate_estimates import truth_counts

    nation = generate_nation(30_000, 4, SynthConfig(namesake_density="national"))
    con = _ingested(nation)
    res = es.estimate_tables(con, error_rate=0.01)
    entry = res["duplicate_registrations"]["cross_state"]
    rule, mi = entry["rule_net_of_coincidences"], entry["rule_net_middle_initial"]
    assert entry["headline"] == "rule_net_middle_initial"
    assert mi["se"] < 0.6 * rule["se"]
    assert 0.5 < mi["middle_initial_share"] < 0.9
    truth = truth_counts(con, nation, res["vote_history_states"])["dup_exact"]
    assert abs(mi["estimate"] - truth) < 3 * mi["se"]
    assert mi["by_level"]["full"] == rule["by_level"]["full"]
    # the printed headline row is the middle-initial figure
    from io import StringIO

    from rich.console import Console

    from voterolls.stats.api import estimate_connection
    from voterolls.stats.commands import render

    full_res = estimate_connection(_ingested(nation), error_rate=0.01)
    buf = StringIO()
    render(full_res, Console(file=buf, width=300))
    head = full_res["duplicate_registrations"]["cross_state"]["rule_net_middle_initial"]
    line = next(x for x in buf.getvalue().splitlines() if "cross-state: headline" in x)
    lo, hi = head["ci95"]
    assert f"{head['estimate']:,.0f}" in line and f"{lo:,.0f} - {hi:,.0f}" in line
    # double votes: the same refinement lowers the noise floor of the year level
    dv = res["double_votes"]
    a, b = (
        dv["rule_net_of_coincidences_error_corrected"],
        dv["rule_net_middle_initial_error_corrected"],
    )
    assert b["noise_floor"]["sd"] < 0.6 * a["noise_floor"]["sd"] and b["se"] < a["se"]
    assert b["by_level"]["full"]["estimate"] == a["by_level"]["full"]["estimate"]
