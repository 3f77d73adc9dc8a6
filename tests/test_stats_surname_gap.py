"""The changed-surname gap of the combined duplicate estimate and the linkage-scaled
double-vote headline, each figure checked against a direct count of the data."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from bench.toy_population import make_population
from voterolls.stats import estimators as es
from voterolls.stats import surname_gap as sg

STATES = {"NC": "year", "OH": "full", "FL": "full", "NY": "full", "GA": "year"}


def _pairs_con(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A ``_vr_pairs`` table as :func:`estimators.load_pairs` makes it, written by hand."""
    con = duckdb.connect()
    cols = ("state_l", "state_r", "p", "level", "exact", "votes", "last_differs")
    con.register("_in", pa.table({c: [r[i] for r in rows] for i, c in enumerate(cols)}))
    con.execute("CREATE TEMP TABLE _vr_pairs AS SELECT * FROM _in")
    return con


HAND = [
    # state_l, state_r, p, level, exact, votes, last_differs
    ("OH", "FL", 0.95, "full", False, 0, True),
    ("OH", "FL", 0.99, "full", False, 1, True),
    ("OH", "FL", 0.40, "full", False, 0, True),
    ("OH", "FL", 0.98, "full", False, 0, False),  # surname agrees: not in the gap
    ("OH", "FL", 0.97, "full", True, 0, True),  # exact pairs never count as non-exact mass
    ("NC", "FL", 0.30, "year", False, 0, True),
    ("NC", "OH", 0.92, "year", False, 2, True),
    ("NC", "NC", 0.99, "year", False, 0, True),  # in-state
]


def test_counted_mass_is_the_combined_treatment_of_the_linkage_mass():
    con = _pairs_con(HAND)
    low = es.LowBandCalibration(0.5, 0.01, 0.0, True)
    full = sg.counted_mass(con, low, 0.9, cross=True, level="full", last_differs=True)
    # at / above 0.9 at face value, below it times the factor
    assert full.estimate == pytest.approx(0.95 + 0.99 + 0.5 * 0.40)
    assert full.variance == pytest.approx(0.95 * 0.05 + 0.99 * 0.01 + 0.5 * 0.40 * 0.60)
    year = sg.year_scored(con, low, 0.9, cross=True)
    assert year.estimate == pytest.approx(0.92 + 0.5 * 0.30)
    only_oh_nc = sg.year_scored(con, low, 0.9, cross=True, states=["NC", "OH"])
    assert only_oh_nc.estimate == pytest.approx(0.92)
    assert sg.year_scored(con, low, 0.9, cross=False).estimate == pytest.approx(0.99)


def test_gap_share_and_count_against_hand_arithmetic():
    # 40 full-DOB pairs with a changed surname (p = 1) per 200 exact ones: share 0.2
    rows = [("OH", "FL", 1.0, "full", False, 0, True)] * 40 + [
        ("NC", "FL", 0.5, "year", False, 0, True)
    ] * 4
    con = _pairs_con(rows)
    low = es.LowBandCalibration(1.0, 0.0, 0.0, True)
    full = es.Count(200.0, 100.0)
    gap = sg.measure(con, full, low, 0.9, 0.25)
    assert gap.measured and gap.share == pytest.approx(0.2)
    assert gap.full_mass == pytest.approx(40.0)
    assert gap.rel_var == pytest.approx(1 / 40 + 0.25**2 + 100 / 200**2)
    year = es.Count(300.0, 400.0)
    scored = sg.year_scored(con, low, 0.9)
    assert scored.estimate == pytest.approx(2.0)
    added = gap.count(year, scored, 0.25)
    # 0.2 x 300 = 60 changed-surname pairs at the year level, in place of the 2 scored
    assert added.estimate == pytest.approx(58.0)
    term = 60.0
    assert added.variance == pytest.approx(
        gap.rel_var * term**2
        + term
        + (2 * 0.2 + 0.2**2) * 400.0
        + 2 * 0.25**2 * term * 40.0
        + scored.variance
    )
    # too little full-DOB evidence: nothing is added
    thin = sg.measure(con, es.Count(10.0, 10.0), low, 0.9, 0.25)
    assert not thin.measured and thin.count(year, scored, 0.25).estimate == 0.0


@dataclass(frozen=True)
class _Pop:
    registrations: pa.Table
    vote_history: pa.Table
    truth_pairs: pa.Table
    truth_cross_pairs: int
    truth_double_votes: int


@pytest.fixture(scope="module")
def pop():
    """The toy population with 15% of second registrations under another surname
    (drawn from the population's surnames, as a marriage would)."""
    people = 40_000
    toy = make_population(
        people,
        seed=6,
        states=STATES,
        top_first=600,
        top_last=2000,
        dup_rate=0.03,
        double_vote_rate=0.03,
    )
    regs = toy.registrations
    n = regs.num_rows
    rng = np.random.default_rng(6)
    last = np.array(regs.column("last_name").to_pylist(), dtype=object)
    changed = (np.arange(n) >= people) & (rng.random(n) < 0.15)
    last[changed] = last[rng.integers(0, people, int(changed.sum()))]
    regs = regs.set_column(
        regs.schema.get_field_index("last_name"), "last_name", pa.array(last, pa.string())
    )
    return _Pop(
        regs, toy.vote_history, toy.truth_pairs, toy.truth_cross_pairs, toy.truth_double_votes
    )


def _con(pop) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("registrations", pop.registrations)
    con.register("vote_history", pop.vote_history)
    con.register("truth", pop.truth_pairs)
    return con


def _blind_truth(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """True cross-state pairs with a flag: a year-level pair whose surnames differ."""
    return con.sql(
        """
        SELECT t.*, (a.dob IS NULL OR b.dob IS NULL) AND a.last_name <> b.last_name AS blind,
               a.dob IS NOT NULL AND b.dob IS NOT NULL AND a.last_name <> b.last_name AS full_ld
        FROM truth t
        JOIN registrations a ON a.state = t.state_l AND a.state_voter_id = t.state_voter_id_l
        JOIN registrations b ON b.state = t.state_r AND b.state_voter_id = t.state_voter_id_r
        """
    )


def test_combined_estimate_counts_the_pairs_blocking_cannot_see(pop):
    """Linkage scores every true pair (p = 0.97) except the year-level ones with a
    different surname, as the blocking rules do; the gap term brings them back."""
    con = _con(pop)
    con.register("bt", _blind_truth(con).to_arrow_table())
    n_blind, n_full_ld = con.execute(
        "SELECT count(*) FILTER (WHERE blind), count(*) FILTER (WHERE full_ld) FROM bt"
    ).fetchall()[0]
    assert n_blind > 30 and n_full_ld > 30  # the case exists in the data
    seen = con.sql(
        "SELECT state_l, state_voter_id_l, state_r, state_voter_id_r, 0.97::DOUBLE AS match_probability "
        "FROM bt WHERE NOT blind"
    ).to_arrow_table()
    res = es.estimate_tables(con, pairs=seen, error_rate=0.0)
    comb = res["duplicate_registrations"]["cross_state"]["combined"]
    gap = comb["surname_change_gap"]
    truth = pop.truth_cross_pairs
    # nothing of the blind stratum was scored, so nothing is replaced
    assert gap["year_level_linkage_mass_replaced"] == 0.0
    # the share is the full-DOB changed-surname mass per exact full-DOB pair: 0.97 x count
    full_exact = res["duplicate_registrations"]["cross_state"]["rule_net_of_coincidences"][
        "by_level"
    ]["full"]["estimate"]
    assert gap["share_at_full_dob_level"] == pytest.approx(0.97 * n_full_ld / full_exact, abs=2e-4)
    # the term lands on the blind pairs' direct count within its own interval
    assert abs(gap["counted"] - n_blind) < 1.96 * gap["se"]
    # and the combined estimate on the truth, where without the term it is short by them
    assert comb["ci95"][0] <= truth <= comb["ci95"][1]
    assert abs(comb["estimate"] - truth) < abs(comb["estimate"] - gap["counted"] - truth)


def test_double_vote_headline_is_the_exact_stratum_times_the_pair_ratio(pop):
    """Namesakes both recorded voting, scored as matches, do not move the headline:
    it rests on the exact stratum's vote marks, scaled by how many pairs linkage adds."""
    con = _con(pop)
    truth_pairs = con.sql(
        "SELECT state_l, state_voter_id_l, state_r, state_voter_id_r, 0.97::DOUBLE AS match_probability "
        "FROM truth"
    ).to_arrow_table()
    # 400 pairs of different people, both recorded voting, at p = 0.95 (false matches)
    voters = con.execute(
        "SELECT DISTINCT state, state_voter_id FROM vote_history ORDER BY ALL"
    ).fetchall()
    rng = np.random.default_rng(1)
    picks = rng.choice(len(voters), size=(3000, 2), replace=False)
    fake = [(voters[i], voters[j]) for i, j in picks if voters[i][0] != voters[j][0]][:400]
    false_pairs = pa.table(
        {
            "state_l": [a[0] for a, _ in fake],
            "state_voter_id_l": [a[1] for a, _ in fake],
            "state_r": [b[0] for _, b in fake],
            "state_voter_id_r": [b[1] for _, b in fake],
            "match_probability": [0.95] * len(fake),
        }
    )
    pairs = pa.concat_tables([truth_pairs, false_pairs])
    res = es.estimate_tables(con, pairs=pairs, error_rate=0.0)
    dv = res["double_votes"]
    head = dv["headline"]
    scale = head["linkage_scale"]
    # every printed figure of the headline follows from its parts
    assert head["estimate"] == pytest.approx(
        head["exact_stratum"]["estimate"] * scale["ratio"], abs=0.02
    )
    assert scale["ratio"] == pytest.approx(
        (scale["exact_stratum_pairs"] + scale["non_exact_pairs"]) / scale["exact_stratum_pairs"],
        abs=1e-3,
    )
    exact_pairs = sum(v["estimate"] for v in dv["same_person_pairs_by_votes"].values())
    assert scale["exact_stratum_pairs"] == pytest.approx(exact_pairs, abs=0.05)
    # the false pairs (400 x 0.95 = 380 apparent double votes if split by vote marks)
    # leave the headline near the truth
    truth = pop.truth_double_votes
    assert head["ci95"][0] <= truth <= head["ci95"][1]
    assert abs(head["estimate"] - truth) < 0.25 * truth + 2 * head["se"]
    assert head["estimate"] < truth + 380 / 2
    # the rule matches and coincidences printed beside it are the exact stratum's
    assert head["raw_rule_count"] == head["exact_stratum"]["raw_rule_count"]
    assert head["expected_coincidences"] == head["exact_stratum"]["expected_coincidences"]
    # noise floor scaled like the estimate
    assert head["noise_floor"]["sd"] > 0
