"""The masked recalibration (voterolls.link.calibration): masking arithmetic, the monotone map, and
which pairs it moves - on hand-made pairs with known weights."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest

from voterolls.link import calibration as cal
from voterolls.link.engines.duckdb import ConnectionQueries

BF = {"dob": {4: 10.0, 0: -8.0}, "birth_year": {1: 2.0, 0: -5.0}}


def _tables(con):
    # six registrations; a (1,2) same-name pair with the same date, (3,4) same name, dates differ,
    # (5,6) share no name key (must not be used)
    con.execute(
        """CREATE TABLE inp AS SELECT * FROM (VALUES
           ('1', 1970, 'K1', NULL, NULL), ('2', 1970, 'K1', NULL, NULL),
           ('3', 1970, 'K2', NULL, NULL), ('4', 1971, 'K2', NULL, NULL),
           ('5', 1970, 'K5', NULL, NULL), ('6', 1970, 'K6', NULL, NULL))
           t(unique_id, birth_year, bk_name, bk_sx_year_init, bk_last_year_sex)"""
    )
    con.execute(
        """CREATE TABLE pairs AS SELECT * FROM (VALUES
           ('1', '2', 'full', 'full', 4, -1, 14.0),
           ('3', '4', 'full', 'full', 0, -1, -6.0),
           ('5', '6', 'full', 'full', 4, -1, 30.0))
           t(unique_id_l, unique_id_r, dob_granularity_l, dob_granularity_r, gamma_dob, gamma_dob_token,
             match_weight)"""
    )


def _p(w):
    return 1 / (1 + 2**-w)


def test_masking_swaps_the_date_evidence_for_the_year_evidence(monkeypatch):
    monkeypatch.setattr(cal, "MASK_MIN_PAIRS", 1)  # one bin per pair
    con = duckdb.connect()
    _tables(con)
    mp = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "year")
    # pair (3,4): -6 - (-8) + (-5) = -3 bits; pair (1,2): 14 - 10 + 2 = 6 bits; (5,6) shares no key
    assert [(b["from_bits"], b["pairs"]) for b in mp["bins"]] == [(-3.0, 1), (6.0, 1)]
    assert [b["mean_p_masked"] for b in mp["bins"]] == pytest.approx([_p(-3), _p(6)], abs=1e-5)
    assert [b["mean_p_full_date"] for b in mp["bins"]] == pytest.approx([_p(-6), _p(14)], abs=1e-5)
    assert [b["log2_odds"] for b in mp["bins"]] == pytest.approx([-6.0, 14.0], abs=1e-3)
    none = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "none")
    # no year evidence put back: (3,4) -> 2 bits, (1,2) -> 4 bits
    assert [b["mean_p_masked"] for b in none["bins"]] == pytest.approx([_p(2), _p(4)], abs=1e-5)


def test_thin_bins_are_pooled():
    con = duckdb.connect()
    _tables(con)
    (only,) = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "year")["bins"]
    assert only["pairs"] == 2
    assert only["mean_p_full_date"] == pytest.approx((_p(-6) + _p(14)) / 2, abs=1e-5)


def test_isotonic_pools_violators_weighted():
    y = np.array([0.1, 0.5, 0.3, 0.9])
    n = np.array([1, 1, 3, 1])
    fit = cal._isotonic(y, n)
    assert fit.tolist() == pytest.approx([0.1, 0.35, 0.35, 0.9])
    assert (np.diff(fit) >= 0).all()


def test_map_moves_year_and_none_pairs_only_and_never_token_pairs():
    maps = {
        "year": {"fitted": True, "bins": [{"from_bits": -10.0, "log2_odds": -12.0},
                                          {"from_bits": 0.0, "log2_odds": -1.0},
                                          {"from_bits": 4.0, "log2_odds": 5.0}]},
        "none": {"fitted": False, "bins": []},
    }
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE p AS SELECT * FROM (VALUES
           ('full', 'year', -1, 2.0), ('full', 'year', -1, 7.0), ('year', 'year', -1, -20.0),
           ('full', 'year', 1, 2.0), ('full', 'full', -1, 2.0), ('none', 'full', -1, 2.0))
           t(dob_granularity_l, dob_granularity_r, gamma_dob_token, match_weight)"""
    )
    got = [r[0] for r in con.execute(f"SELECT {cal.masked_map_sql(maps, 'match_weight')} FROM p").fetchall()]
    assert got == [-1.0, 5.0, -12.0, 2.0, 2.0, 2.0]


def test_bayes_factors_follow_the_gamma_order():
    bf = cal.bayes_factors({"x": [(0.9, 0.01), (0.1, 0.99)]})
    assert bf["x"][1] == pytest.approx(math.log2(90)) and bf["x"][0] == pytest.approx(math.log2(0.1 / 0.99))
    assert cal.fit_maps(None, "p", "i", bf) == {}  # no DOB comparison: nothing to mask


BF_TOKEN = BF | {"dob_token": {1: 12.0, 0: -3.0}}


def test_token_masking_swaps_the_date_evidence_for_the_token_evidence(monkeypatch):
    monkeypatch.setattr(cal, "MASK_MIN_PAIRS", 1)
    con = duckdb.connect()
    _tables(con)
    mp = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF_TOKEN, "token")
    # every full-DOB pair is used (token pairs are blocked like date pairs):
    # (3,4) different date: -6 - (-8) + (-3) = -1; (1,2) exact: 14 - 10 + 12 = 16; (5,6): 30 - 10 + 12 = 32
    assert [(b["from_bits"], b["pairs"]) for b in mp["bins"]] == [(-1.0, 1), (16.0, 1), (32.0, 1)]
    assert [b["mean_p_full_date"] for b in mp["bins"]] == pytest.approx([_p(-6), _p(14), _p(30)], abs=1e-5)


def test_token_map_is_fitted_only_for_a_trained_token_comparison():
    assert cal.has_token_weights(BF_TOKEN)
    assert not cal.has_token_weights(BF)
    untrained = cal.bayes_factors({"dob_token": [(None, None), (None, None)]})
    assert not cal.has_token_weights(untrained)


def test_token_pairs_take_the_token_map_in_any_class():
    maps = {
        "token": {"fitted": True, "bins": [{"from_bits": -10.0, "log2_odds": -9.0},
                                           {"from_bits": 0.0, "log2_odds": 1.5}]},
        "year": {"fitted": True, "bins": [{"from_bits": -10.0, "log2_odds": -12.0}]},
    }
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE p AS SELECT * FROM (VALUES
           ('full', 'year', 1, 2.0), ('full', 'year', 0, -4.0), ('none', 'full', 1, 3.0),
           ('full', 'year', -1, 2.0), ('full', 'full', -1, 2.0))
           t(dob_granularity_l, dob_granularity_r, gamma_dob_token, match_weight)"""
    )
    got = [r[0] for r in con.execute(f"SELECT {cal.masked_map_sql(maps, 'match_weight')} FROM p").fetchall()]
    assert got == [1.5, -9.0, 1.5, -12.0, 2.0]


def _birthday_tables(con):
    # cell ANN LEE (F, 1970): state A dates d1, d1, d2; state B d1, d3 -> 6 cross-state pairs, 2 share d1.
    # cell BO KIM (M, 1970): A d4; B d4, d5 -> 2 cross pairs, 1 shares d4.  Plus 1970 filler dates.
    # An in-state pair (A's two d1) never counts; a year-only record is not in any cell.
    rows = [
        ("A:1", "A", "ANN", "LEE", "F", "1970-01-01"), ("A:2", "A", "ANN", "LEE", "F", "1970-01-01"),
        ("A:3", "A", "ANN", "LEE", "F", "1970-01-02"), ("B:1", "B", "ANN", "LEE", "F", "1970-01-01"),
        ("B:2", "B", "ANN", "LEE", "F", "1970-01-03"),
        ("A:4", "A", "BO", "KIM", "M", "1970-01-04"), ("B:3", "B", "BO", "KIM", "M", "1970-01-04"),
        ("B:4", "B", "BO", "KIM", "M", "1970-01-05"),
        *[(f"C:{i}", "C", f"X{i}", "Y", "F", f"1970-02-{1 + i % 5:02d}") for i in range(12)],
    ]
    con.execute(
        "CREATE TABLE inp (unique_id VARCHAR, state VARCHAR, first_name VARCHAR, last_name VARCHAR, "
        "gender VARCHAR, dob DATE, middle_name VARCHAR, name_suffix VARCHAR, birth_year INT, "
        "dob_granularity VARCHAR)"
    )
    con.executemany(
        "INSERT INTO inp VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 1970, 'full')", [list(r) for r in rows]
    )
    con.execute("INSERT INTO inp VALUES ('D:1', 'D', 'ANN', 'LEE', 'F', NULL, NULL, NULL, 1970, 'year')")
    # a date pair's weight: one offset (-5 bits) minus log2 of the first and last names'
    # frequencies among the 21 registrations (ANN 6, LEE 6, BO 3, KIM 3)
    w_ann, w_bo = -5 - 2 * math.log2(6 / 21), -5 - 2 * math.log2(3 / 21)
    con.execute(
        f"""CREATE TABLE pairs AS SELECT *, 4 AS gamma_last_name FROM (VALUES
           ('A:1', 'B:1', 'full', 'full', 4, -1, {w_ann}), ('A:2', 'B:1', 'full', 'full', 4, -1, {w_ann}),
           ('A:4', 'B:3', 'full', 'full', 4, -1, {w_bo}), ('A:4', 'B:4', 'full', 'full', 0, -1, -2.0),
           ('A:1', 'A:2', 'full', 'full', 4, -1, 20.0), ('A:3', 'B:2', 'full', 'full', 0, -1, -9.0))
           t(unique_id_l, unique_id_r, dob_granularity_l, dob_granularity_r, gamma_dob, gamma_dob_token,
             match_weight)"""
    )
    dates = [r[5] for r in rows]
    k = len(dates)
    q = (sum(dates.count(d) ** 2 for d in set(dates)) - k) / (k * (k - 1))
    return q, w_ann, w_bo


def test_birthday_map_counts_cell_pairs_and_expected_coincidences(monkeypatch):
    monkeypatch.setattr(cal, "MASK_MIN_PAIRS", 1)
    con = duckdb.connect()
    q, w_ann, w_bo = _birthday_tables(con)
    mp = cal.fit_birthday_map(ConnectionQueries(con), "pairs", "inp", 4)
    # direct: ANN LEE N = 3 x 2 = 6, E = 2; BO KIM N = 1 x 2 = 2, E = 1; mu = (E - N q) / (1 - q)
    mu_ann, mu_bo = (2 - 6 * q) / (1 - q), (1 - 2 * q) / (1 - q)
    assert [(b["from_bits"], b["pairs"]) for b in mp["bins"]] == [(math.floor(w_ann), 2), (math.floor(w_bo), 1)]
    lab = [mu_ann / 2, mu_bo / 1]
    assert [b["birthday_share_true"] for b in mp["bins"]] == pytest.approx(lab, abs=1e-5)
    # each cell's weight is the offset measured on the scored pairs plus its names' rarity
    assert [b["mean_p_model"] for b in mp["bins"]] == pytest.approx([_p(w_ann), _p(w_bo)], abs=1e-5)
    assert [b["log2_odds"] for b in mp["bins"]] == pytest.approx([math.log2(v / (1 - v)) for v in lab], abs=1e-3)


@pytest.mark.parametrize("kind", cal.CELL_KINDS, ids=lambda k: k.name)
def test_birthday_cells_match_a_brute_force_count(kind):
    """Cell pairs, date pairs and q of every cell kind against enumerating the cross-state pairs."""
    import itertools
    from collections import Counter

    rng = np.random.default_rng(11)
    n = 160
    rows = [
        (f"{s}:{i}", s, f"F{rng.integers(2)}", f"L{rng.integers(3)}",
         None if rng.random() < 0.3 else f"M{rng.integers(2)}", None, "F", 1970,
         f"1970-01-{1 + rng.integers(4):02d}")
        for i, s in enumerate(rng.choice(["A", "B", "C"], n))
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE inp (unique_id VARCHAR, state VARCHAR, first_name VARCHAR, last_name VARCHAR, "
        "middle_name VARCHAR, name_suffix VARCHAR, gender VARCHAR, birth_year INT, dob DATE, "
        "dob_granularity VARCHAR DEFAULT 'full')"
    )
    con.executemany("INSERT INTO inp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'full')", [list(r) for r in rows])
    got = con.execute(
        f"SELECT {', '.join(kind.equal)}, date_pairs, pairs, q FROM ({cal.birthday_cells_sql('inp', kind)})"
    ).fetchall()
    idx = {"first_name": 2, "last_name": 3, "middle_name": 4, "name_suffix": 5, "gender": 6}
    dates = Counter(r[8] for r in rows)
    q = (sum(c * c for c in dates.values()) - n) / (n * (n - 1))
    cells: dict[tuple, list[int]] = {}
    for a, b in itertools.combinations(rows, 2):
        if a[1] == b[1] or any(a[idx[f]] != b[idx[f]] for f in kind.equal):
            continue
        if kind.relation == "differs":
            s = idx[kind.special]
            if a[s] is None or b[s] is None or a[s] == b[s]:
                continue
        if kind.relation == "one_missing":
            s = idx[kind.special]
            if (a[s] is None) == (b[s] is None):
                continue
        key = tuple(a[idx[f]] or "" for f in kind.equal)
        c = cells.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += a[8] == b[8]
    want = {k: v for k, v in cells.items() if v[0] > 0}  # every cell, with a date pair or not
    assert want  # the test data exercises the kind
    assert {tuple(r[:-3]): [r[-2], r[-3]] for r in got} == want
    assert all(r[-1] == pytest.approx(q) for r in got)
