"""Estimators, vote-record error, coverage and the ``estimate`` entry points."""

from __future__ import annotations

import datetime
import json
from io import StringIO

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from rich.console import Console

from bench.toy_population import make_population
from voterolls.stats import coverage as cov
from voterolls.stats import estimators as es
from voterolls.stats.api import estimate_connection
from voterolls.stats.commands import render

STATES = {"NC": "year", "OH": "full", "FL": "full", "NY": "full", "GA": "year"}


def _con(pop) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("registrations", pop.registrations)
    con.register("vote_history", pop.vote_history)
    con.register("truth", pop.truth_pairs)
    return con


def _exact_truth(con) -> tuple[int, int]:
    """Same-person cross-state pairs that the rule can see, and those both recorded as voting."""
    return con.execute(
        """
        WITH v AS (SELECT DISTINCT state, state_voter_id FROM vote_history)
        SELECT count(*), count(*) FILTER (WHERE va.state IS NOT NULL AND vb.state IS NOT NULL)
        FROM truth t
        JOIN registrations a ON a.state = t.state_l AND a.state_voter_id = t.state_voter_id_l
        JOIN registrations b ON b.state = t.state_r AND b.state_voter_id = t.state_voter_id_r
        LEFT JOIN v va ON va.state = a.state AND va.state_voter_id = a.state_voter_id
        LEFT JOIN v vb ON vb.state = b.state AND vb.state_voter_id = b.state_voter_id
        WHERE a.first_name = b.first_name AND a.last_name = b.last_name AND a.birth_year = b.birth_year
          AND (a.dob = b.dob OR a.dob IS NULL OR b.dob IS NULL)
        """
    ).fetchall()[0]


@pytest.fixture(scope="module")
def pop():
    return make_population(
        40_000,
        seed=4,
        states=STATES,
        top_first=600,
        top_last=2000,
        dup_rate=0.03,
        double_vote_rate=0.03,
    )


def test_rule_net_recovers_the_exact_duplicates(pop):
    con = _con(pop)
    res = es.estimate_tables(con, error_rate=0.0)
    d = res["duplicate_registrations"]["cross_state"]["rule_net_of_coincidences"]
    truth, truth_dv = _exact_truth(con)
    lo, hi = d["ci95"]
    assert lo <= truth <= hi
    # raw rule count overstates: coincidences are real and counted
    assert d["raw_rule_count"] > truth
    assert d["expected_coincidences"] > 0
    dv = res["double_votes"]["headline"]
    assert dv["ci95"][0] <= truth_dv <= dv["ci95"][1]


def test_vote_error_correction_inverts_the_observation_model():
    t2, t1, t0 = 40.0, 2000.0, 1500.0
    miss, fm = es.error_probabilities(0.01, votes=650, registrations=1000)
    assert miss == 0.01 and fm == pytest.approx(0.01 * 650 / 350)
    a, b = 1 - miss, fm
    o2 = a * a * t2 + a * b * t1 + b * b * t0
    o1 = 2 * a * (1 - a) * t2 + (a * (1 - b) + (1 - a) * b) * t1 + 2 * b * (1 - b) * t0
    o0 = (1 - a) ** 2 * t2 + (1 - a) * (1 - b) * t1 + (1 - b) ** 2 * t0
    got = es.correct_vote_error(es.Count(o2, 1.0), es.Count(o1, 1.0), es.Count(o0, 1.0), miss, fm)
    assert got.estimate == pytest.approx(t2)
    # with no error the observed count is returned unchanged
    same = es.correct_vote_error(
        es.Count(5.0, 2.0), es.Count(1.0, 1.0), es.Count(1.0, 1.0), 0.0, 0.0
    )
    assert (same.estimate, same.variance) == (5.0, 2.0)


def test_double_votes_with_record_errors_are_corrected(pop):
    noisy = make_population(
        40_000,
        seed=5,
        states=STATES,
        top_first=600,
        top_last=2000,
        dup_rate=0.03,
        double_vote_rate=0.02,
        vote_error=0.02,
        name_noise=0.0,
        dob_noise=0.0,
    )
    con = _con(noisy)
    res = es.estimate_tables(con, error_rate=0.02)
    dv = res["double_votes"]
    raw_net = dv["rule_net_of_coincidences_no_error_correction"]["estimate"]
    head = dv["headline"]
    assert (
        head["estimate"] < raw_net
    )  # errors add apparent double votes; the correction removes them
    assert head["ci95"][0] <= noisy.truth_double_votes <= head["ci95"][1]
    rates = [s["error_rate"] for s in dv["error_rate_sensitivity"]]
    assert rates == sorted(rates) and {0.0, 0.005, 0.01, 0.02} <= set(rates)
    ests = [s["estimate"] for s in dv["error_rate_sensitivity"]]
    assert ests == sorted(ests, reverse=True)


def _pairs_from_truth(pop, rng, p_true=0.97, n_false=3000, p_false=0.02) -> pa.Table:
    """A calibrated linkage stand-in: true pairs at p_true, random false pairs at p_false."""
    t = pop.truth_pairs
    regs = pop.registrations
    idx = rng.integers(0, regs.num_rows, size=(n_false, 2))
    st = np.array(regs.column("state").to_pylist(), dtype=object)
    ids = np.array(regs.column("state_voter_id").to_pylist(), dtype=object)
    keep = st[idx[:, 0]] != st[idx[:, 1]]
    idx = idx[keep]
    return pa.table(
        {
            "state_l": pa.array(list(t.column("state_l").to_pylist()) + list(st[idx[:, 0]])),
            "state_voter_id_l": pa.array(
                list(t.column("state_voter_id_l").to_pylist()) + list(ids[idx[:, 0]])
            ),
            "state_r": pa.array(list(t.column("state_r").to_pylist()) + list(st[idx[:, 1]])),
            "state_voter_id_r": pa.array(
                list(t.column("state_voter_id_r").to_pylist()) + list(ids[idx[:, 1]])
            ),
            "match_probability": pa.array([p_true] * t.num_rows + [p_false] * int(keep.sum())),
        }
    )


def test_splink_sum_and_combined_estimators(pop):
    rng = np.random.default_rng(0)
    pairs = _pairs_from_truth(pop, rng)
    con = _con(pop)
    res = es.estimate_tables(con, pairs=pairs, error_rate=0.0)
    d = res["duplicate_registrations"]["cross_state"]
    assert d["headline"] == "combined"
    truth = pop.truth_cross_pairs
    sp = d["splink_sum_of_probabilities"]
    assert sp["estimate"] == pytest.approx(
        pairs.column("match_probability").to_numpy().sum(), rel=1e-9
    )
    comb = d["combined"]
    # combined counts duplicates the rule misses (typos, DOB slips) and lands near the truth
    assert comb["estimate"] > d["rule_net_of_coincidences"]["estimate"]
    assert abs(comb["estimate"] - truth) < 0.05 * truth
    # the one-name + DOB check (birthday model / Splink sum) is consistent with the
    # planted probabilities (0.97 on every true pair: expected ratio 1/0.97)
    chk = comb["non_exact_check"]
    assert chk is not None and chk["ratio_se"] > 0
    assert abs(chk["ratio"] - 1 / 0.97) < 3 * chk["ratio_se"]
    # a noisy check is shrunk towards the 25% prior instead of swamping the interval
    k = comb["non_exact_relative_uncertainty"]
    assert k == pytest.approx(es.non_exact_uncertainty(chk), abs=1e-4)
    assert k <= max(abs(1 - chk["ratio"]), es.K_NON_EXACT_DEFAULT) + 1e-9
    assert (
        comb["ci95"][0] <= truth <= comb["ci95"][1]
        or abs(comb["estimate"] - truth) < 3 * comb["se"]
    )
    # the low band (the false pairs at p = 0.02) is counted at the rate the exact full-DOB
    # stratum shows, and the parts add up to the estimate
    low = comb["low_band_calibration"]
    gap = comb["surname_change_gap"]
    assert comb["estimate"] == pytest.approx(
        comb["exact_stratum"]["estimate"]
        + comb["splink_non_exact"]
        + low["counted"]
        + gap["counted"],
        abs=0.05,
    )
    assert low["counted"] == pytest.approx(
        low["factor"] * comb["splink_non_exact_below_threshold"], abs=0.05
    )
    # the double-vote headline says which year-level rule it used and carries its noise floor
    dvh = res["double_votes"].get("headline")
    if dvh and dvh.get("estimate") is not None:
        assert dvh["noise_floor"]["sd"] >= 0 and "year_level_rule" in dvh


def test_purge_counts_legitimate_votes_blocked(pop):
    con = _con(pop)
    res = es.estimate_tables(con, error_rate=0.0)
    p = res["crosscheck_purge"]
    assert p["registrations_removed"] > 0
    assert p["removed_registrations_used_to_vote"] <= p["registrations_removed"]
    assert p["legitimate_votes_blocked_per_double_vote_prevented"] > 1


def test_purge_nets_out_false_vote_marks():
    """Removed registrations recorded as voting only through vote-record errors block no vote."""
    con = duckdb.connect()
    # 5 states x 400 people with unique names; everyone has a stale second registration in the
    # next state (registered earlier: the one a purge removes) that never really votes
    rng = np.random.default_rng(3)
    states = ["NC", "OH", "FL", "NY", "GA"]
    n = 400
    rows = []
    for i, s in enumerate(states):
        for j in range(n):
            dob = np.datetime64("1960-01-01") + int(rng.integers(0, 15000))
            for k, st in ((0, s), (1, states[(i + 1) % 5])):
                rows.append(
                    {
                        "state": st,
                        "state_voter_id": f"{s}{j}{k}",
                        "first_name": f"F{i}_{j}",
                        "last_name": "L",
                        "dob": dob.astype(object),
                        "birth_year": int(str(dob)[:4]),
                        "dob_granularity": "full",
                        "registration_date": np.datetime64(
                            "2000-01-01" if k else "2010-01-01"
                        ).astype(object),
                        "voted": k == 0 and rng.random() < 0.6,
                    }
                )
    # 2% of stale registrations carry a false vote mark
    for r in rows:
        if r["state_voter_id"].endswith("1") and rng.random() < 0.02:
            r["voted"] = True
    regs = pa.Table.from_pylist(rows)
    con.register("registrations", regs.drop_columns(["voted"]))
    vh = regs.filter(pa.compute.field("voted")).select(["state", "state_voter_id"])
    vh = vh.append_column(
        "election_date", pa.array([datetime.date(2024, 11, 5)] * vh.num_rows, pa.date32())
    )
    vh = vh.append_column("election_type", pa.array(["general"] * vh.num_rows))
    vh = vh.append_column("vote_method", pa.array(["in_person"] * vh.num_rows))
    con.register("vote_history", vh)
    voters = vh.num_rows
    # choose e so that the estimator's false-mark rate e V / (R - V) is the planted 2%
    e = 0.02 * (len(rows) - voters) / voters
    p = es.estimate_tables(con, error_rate=e)["crosscheck_purge"]
    assert p["registrations_removed"] == 5 * n
    marked = p["removed_registrations_used_to_vote"]
    assert marked > 10  # false marks only
    # net of the expected false marks, about zero legitimate votes are blocked
    lo, hi = p["legitimate_votes_blocked_ci95"]
    assert lo <= 0.0 <= hi + 1e-9
    assert p["legitimate_votes_blocked_estimate"] < marked / 2


def test_negative_estimates_stay_signed_in_json_and_are_explained_on_screen():
    c = es.Count(-3.0, 4.0, raw=2.0, expected_coincidences=5.0)
    d = c.as_dict()
    assert d["estimate"] == -3.0 and d["truncated_at_zero"] is True
    assert d["ci95"][0] == 0.0 and d["ci95_signed"][0] == pytest.approx(-3.0 - es.Z95 * 2, abs=0.01)
    assert d["ci95_signed"][1] == d["ci95"][1]
    pos = es.Count(30.0, 4.0).as_dict()
    assert pos["truncated_at_zero"] is False and pos["ci95"] == pos["ci95_signed"]


def test_coverage_extrapolation_rules():
    c = cov
    # weights are keyed by real state codes (others are ignored)
    w = {"NC": 100, "OH": 200, "FL": 300, "NY": 400}
    per = {("FL", "OH"): 6.0, ("NC", "OH"): 2.0, ("FL", "NC"): 3.0}
    covered = ["FL", "NC", "OH"]
    out = c.extrapolate_cross(11.0, 4.0, per, covered, w)
    pm_all = ((1000**2) - (100**2 + 200**2 + 300**2 + 400**2)) / 2
    pm_cov = ((600**2) - (100**2 + 200**2 + 300**2)) / 2
    assert out["label"] == "national, extrapolated"
    assert out["national"] == pytest.approx(11.0 / (pm_cov / pm_all), rel=1e-4)
    assert out["ci95"][0] <= out["national"] <= out["ci95"][1]
    few = c.extrapolate_cross(11.0, 4.0, {("FL", "OH"): 6.0}, ["FL", "OH"], w)
    assert few["national"] is None and few["label"] == "covered states only"
    none = c.extrapolate_cross(11.0, 4.0, per, covered, {})
    assert none["national"] is None


def test_estimate_connection_output_is_honest_and_private(pop):
    con = _con(pop)
    res = estimate_connection(con, error_rate=0.01)
    text = json.dumps(res, default=str)
    assert "fraud" not in text.lower()
    # no personal values: none of the top names or any voter id appears
    for name in pop.registrations.column("last_name").to_pylist()[:50]:
        assert f'"{name}"' not in text
    assert pop.registrations.column("state_voter_id")[0].as_py() not in text
    assert res["coverage"]["states_covered"] == sorted(STATES)
    assert set(res["coverage"]["states_with_birth_year_only"]) == {"GA", "NC"}
    for scope in ("cross_state", "in_state"):
        e = res["duplicate_registrations"][scope]
        assert "rests_on" in e and "national" in e
        head = e[e["headline"]]
        assert {"estimate", "ci95", "expected_coincidences"} <= set(head)
    assert res["double_votes"]["rests_on"]["states"] == sorted(STATES)
    buf = StringIO()
    render(res, Console(file=buf, width=200))
    out = buf.getvalue()
    assert "fraud" not in out.lower() and "expected coincidences" in out
    # double votes by rule level (full DOB = the historical Crosscheck rule)
    lv = res["double_votes"]["rule_net_of_coincidences_error_corrected"]["by_level"]
    assert set(lv) == {"full", "year"} and all("ci95_signed" in v for v in lv.values())
    # a negative estimate: shown as 0*, with the signed value and interval in the footnote
    neg = json.loads(json.dumps(res))
    h = neg["double_votes"]["headline"]
    h.update(estimate=-4.5, ci95=[0.0, 6.1], ci95_signed=[-15.1, 6.1], truncated_at_zero=True)
    buf = StringIO()
    render(neg, Console(file=buf, width=400))
    out = " ".join(buf.getvalue().split())  # the footnote wraps
    assert "0*" in out and "-4.5" in out and "-15.1 to 6.1" in out and "ci95_signed" in out


def test_estimate_on_a_workspace_writes_json(tmp_path, pop):
    store = pytest.importorskip("voterolls.store")
    import pyarrow.parquet as pq

    ws = store.Workspace(tmp_path / "w")
    regs = pop.registrations.drop_columns(["person_id"])
    for state in sorted(STATES):
        st = ws.stage(state)
        mask = pa.compute.equal(regs["state"], state)
        pq.write_table(regs.filter(mask), st.dir / "registrations.parquet")
        vh = pop.vote_history
        pq.write_table(
            vh.filter(pa.compute.equal(vh["state"], state)), st.dir / "vote_history.parquet"
        )
        rec = {c: None for c in store.SNAPSHOT_COLUMNS}
        rec.update(created_at="2026-01-01 00:00:00", rows_read=0, loaded=0, quarantined=0)
        ws.commit(st, rec, [])
    from voterolls.stats import estimate

    res = estimate(tmp_path / "w", error_rate=0.005)
    out = tmp_path / "w" / "estimates" / "estimates.json"
    assert out.exists()
    saved = json.loads(out.read_text())
    assert saved["error_rate"] == 0.005
    assert saved["duplicate_registrations"]["cross_state"]["rule_net_of_coincidences"][
        "estimate"
    ] == pytest.approx(res.duplicate_registrations.cross_state.rule_net_of_coincidences.estimate)
    assert res.linkage_used is False
    # the one writer and the one loader round-trip every key, typed or kept
    from voterolls.stats.result import load_estimates

    assert load_estimates(out) == res
    assert load_estimates(out).as_json() == saved
    from typer.testing import CliRunner

    from voterolls.cli import app

    r = CliRunner().invoke(
        app,
        ["estimate", "--workspace", str(tmp_path / "w"), "--error-rate", "0.02"],
        env={"COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert "coincidences" in r.output and "fraud" not in r.output.lower()
    saved = json.loads(out.read_text())
    assert saved["error_rate"] == 0.02 and saved["error_rate_source"] == "override"
    printed = " ".join(r.output.split())
    assert (
        "Vote-record error 2.00% (se 0.00%): override (--error-rate): assumed, not learnt."
        in printed
    )
    rn = saved["double_votes"]["rule_net_of_coincidences_error_corrected"]
    floor = rn["noise_floor"]
    assert floor["sd"] > 0 and floor["reported_se_over_floor"] >= 1.0
    assert f"all strata: floor {floor['sd']:,.1f}, reported se {rn['se']:,.1f}" in printed
    full = rn["by_level"]["full"]
    assert f"full: floor {full['noise_floor']['sd']:,.1f}, reported se {full['se']:,.1f}" in printed


def test_cli_estimate_reports_a_missing_workspace(tmp_path):
    from typer.testing import CliRunner

    from voterolls.cli import app

    r = CliRunner().invoke(app, ["estimate", "--workspace", str(tmp_path / "nope")])
    assert r.exit_code != 0
    assert "workspace not found" in str(r.exception or r.output)


def test_field_coverage_counts(pop):
    con = _con(pop)
    fc = cov.field_coverage(con)
    assert fc["NC"]["share_with_full_dob"] == 0.0 and fc["NC"]["share_with_birth_year"] == 1.0
    assert fc["OH"]["share_with_full_dob"] == 1.0


def test_rule_count_agrees_with_the_linkage_stage_crosscheck(pop):
    crosscheck = pytest.importorskip("voterolls.link.crosscheck")
    con = _con(pop)
    res = es.estimate_tables(con, error_rate=0.0)
    ours = res["crosscheck_vs_estimate"]["crosscheck"]["flagged_pairs"]
    assert ours == crosscheck.crosscheck_count(con)


def _check_rows(m: float, e0: float) -> list[dict]:
    """A coincidence table with one cross-state year_check row (no full-DOB duplicates)."""
    return [
        {"state_l": "AA", "state_r": "BB", "cls_pair": "00", "level": "year_check",
         "N": 1e6, "M": m, "E0": e0},
        {"state_l": "AA", "state_r": "BB", "cls_pair": "00", "level": "full",
         "N": 1e6, "M": 0.0, "E0": 0.0},
    ]  # fmt: skip


def test_year_calibration_uncertainty_is_measured_on_surname_blocks():
    """Jackknife over blocks: Poisson-like blocks give about 1/sqrt(M) and no overdispersion;
    clustered blocks (same total, lumpier counts) give a wider kappa and overdispersion > 1."""
    rng = np.random.default_rng(0)
    g, e_b = 100, 10.0
    poisson = rng.poisson(e_b, g).astype(float)
    # clustered: coincidences arrive in lumps of 4 (pairs sharing records / common names)
    lumpy = 4.0 * rng.poisson(e_b / 4, g)
    for counts, wide in ((poisson, False), (lumpy, True)):
        blocks = [
            {"cross_state": True, "block": i, "M": c, "E0": e_b} for i, c in enumerate(counts)
        ]
        kappa, rel_se, phi = es.year_calibration(_check_rows(counts.sum(), g * e_b), blocks=blocks)
        assert kappa == pytest.approx(counts.sum() / (g * e_b))
        poisson_rel = 1 / counts.sum() ** 0.5
        if wide:
            assert phi > 2.5 and rel_se > 1.5 * poisson_rel
        else:
            assert phi < 1.5 and rel_se < 1.3 * poisson_rel
    # without blocks: the old rule (Poisson, floored at RHO_YEAR_MIN); thin evidence: 25%
    k, r, p = es.year_calibration(_check_rows(1000, 1000))
    assert (k, p) == (1.0, 1.0) and r == pytest.approx(es.RHO_YEAR_MIN)
    assert es.year_calibration(_check_rows(10, 20)) == (1.0, 0.25, 1.0)


def test_overdispersion_widens_only_the_year_level_variance():
    tab = [
        {"state_l": "AA", "state_r": "BB", "cls_pair": "00", "level": lvl,
         "N": 1e5, "M": 600.0, "E0": 400.0}
        for lvl in ("full", "year")
    ]  # fmt: skip
    base = es.rule_net(tab, kappa=(1.0, 0.05))
    wide = es.rule_net(tab, kappa=(1.0, 0.05, 3.0))
    assert wide["full"].variance == base["full"].variance
    assert wide["year"].estimate == base["year"].estimate
    c = base["year"].expected_coincidences
    q = 400 / 1e5
    assert wide["year"].variance - base["year"].variance == pytest.approx(2 * c / (1 - q) ** 2)


def test_low_band_calibration_is_measured_on_the_exact_full_dob_stratum():
    """Linkage mass below the threshold counts at the rate the exact full-DOB stratum shows."""
    con = duckdb.connect()
    rows = [("full", True, 0.99)] * 100 + [("full", True, 0.3)] * 200
    rows += [("year", True, 0.3)] * 50 + [("full", False, 0.3)] * 40  # other strata: not used
    con.execute(
        "CREATE TABLE _vr_pairs (state_l TEXT, state_r TEXT, level TEXT, exact BOOL, p DOUBLE, votes INT)"
    )
    con.executemany("INSERT INTO _vr_pairs VALUES ('NC', 'OH', ?, ?, ?, 0)", rows)
    # the birthday model says 129 of the exact full-DOB pairs are one person: 99 of them are
    # the confident band's, so the low band's 60 units of probability hold 30 true pairs
    full = es.Count(129.0, 25.0)
    cal = es.low_band_calibration(con, full, 0.9)
    assert cal.measured and cal.factor == pytest.approx(0.5)
    assert cal.variance == pytest.approx(25.0 / 60**2)
    low = cal.count(40.0, 0.0, 0.25, full)
    assert low.estimate == pytest.approx(20.0)
    # factor variance, transfer uncertainty, covariance with the full-DOB count
    assert low.variance == pytest.approx(40**2 * 25 / 3600 + (0.25 * 20) ** 2 + 2 * 40 * 25 / 60)
    # linkage more confident than the birthday model: the low band holds nothing
    assert es.low_band_calibration(con, es.Count(80.0, 25.0), 0.9).factor == 0.0
    # too little low-band mass to measure: a wide fallback, said so
    con.execute("DELETE FROM _vr_pairs WHERE p < 0.9 AND level = 'full' AND exact")
    fb = es.low_band_calibration(con, full, 0.9)
    assert not fb.measured and fb.factor == es.LOW_BAND_FALLBACK
    assert fb.variance == pytest.approx(es.LOW_BAND_FALLBACK**2)
