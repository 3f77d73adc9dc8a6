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
        """CREATE TABLE inp AS SELECT *, make_date(birth_year, 1, 1 + unique_id::INT) AS dob,
                  'full' AS dob_granularity FROM (VALUES
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


def _birthday_label_tables(con, *, sure: int, sure_shared: int, mid: int, mid_shared: int) -> float:
    """730 registrations of one birth year, two born on each day (q = 730 / (730 * 729)), one name
    key; ``sure`` pairs masked to +30 bits (``sure_shared`` of them on the exact date) and ``mid``
    masked to +0.5 bits (``mid_shared``).  Which pairs "share the date" is their gamma_dob."""
    con.execute(
        """CREATE TABLE inp AS SELECT i::VARCHAR AS unique_id, 1970 AS birth_year, 'K' AS bk_name,
                  NULL AS bk_sx_year_init, NULL AS bk_last_year_sex, 'full' AS dob_granularity,
                  DATE '1970-01-01' + (i // 2)::INT AS dob
           FROM range(730) t(i)"""
    )
    rows = []
    for masked, n, shared in ((30.0, sure, sure_shared), (0.5, mid, mid_shared)):
        for k in range(n):
            gamma = 4 if k < shared else 0  # year class: masked = w - bf_dob + bf_year(same) = w - bf + 2
            rows.append((str(2 * k % 730), str((2 * k + 3) % 730), gamma, masked + BF["dob"][gamma] - 2.0))
    con.execute(
        "CREATE TABLE pairs (unique_id_l VARCHAR, unique_id_r VARCHAR, gamma_dob INT, match_weight DOUBLE)"
    )
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?)", rows)
    con.execute(
        "CREATE OR REPLACE TABLE pairs AS SELECT *, 'full' AS dob_granularity_l, 'full' AS dob_granularity_r "
        "FROM pairs"
    )
    return 730 / (730 * 729)


def test_the_birthday_label_counts_date_sharers_less_coincidences():
    """A masked bin's label is its pairs sharing the exact date, less the strangers of the same
    birth year expected to (q each), over how often a person's two records agree on the date -
    measured on the sure pairs, not taken from the model."""
    con = duckdb.connect()
    q = _birthday_label_tables(con, sure=400, sure_shared=360, mid=1000, mid_shared=300)
    mp = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "year", dob_exact_m=0.5)
    m_exact = (360 - 400 * q) / 400  # 90% of persons keep one date
    assert mp["label"] == "birthday model"
    assert mp["m_exact_date"] == pytest.approx(m_exact, abs=1e-5)
    mid, sure = mp["bins"]
    assert (mid["from_bits"], mid["pairs"], sure["from_bits"], sure["pairs"]) == (0.0, 1000, 30.0, 400)
    expected = (300 - 1000 * q) / (1000 * m_exact - 1000 * q)
    assert mid["label"] == pytest.approx(expected, abs=1e-5)
    assert mid["log2_odds"] == pytest.approx(math.log2(expected / (1 - expected)), abs=1e-3)
    # the mean full-DOB probability (the former label) is still reported, and differs
    assert mid["mean_p_full_date"] == pytest.approx(0.3 * _p(8.5) + 0.7 * _p(-9.5), abs=1e-5)
    assert abs(mid["mean_p_full_date"] - mid["label"]) > 0.01


def test_without_sure_pairs_the_model_m_sets_the_birthday_label():
    con = duckdb.connect()
    q = _birthday_label_tables(con, sure=100, sure_shared=98, mid=1000, mid_shared=300)
    mp = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "year", dob_exact_m=0.9)
    assert mp["m_exact_date"] == 0.9  # 100 sure pairs are too few to measure it
    assert mp["bins"][0]["label"] == pytest.approx((300 - 1000 * q) / (900 - 1000 * q), abs=1e-5)
    none = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF, "year")
    assert none["label"] == "mean full-DOB probability as scored"  # neither: the scored probabilities
    token = cal.fit_masked_map(ConnectionQueries(con), "pairs", "inp", BF_TOKEN, "token", dob_exact_m=0.9)
    assert token["label"] == "mean full-DOB probability as scored"  # the token fallback keeps its label


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


@pytest.mark.parametrize("source", cal.TOKEN_SOURCES, ids=lambda s: s.name)
@pytest.mark.parametrize("kind", cal.CELL_KINDS, ids=lambda k: k.name)
def test_token_birthday_cells_match_a_brute_force_count(kind, source):
    """Token cells count exactly the cross-state pairs scored on the sealed token (both carry one,
    not both a public full date), split by whether both sides carry a birth year."""
    import itertools
    from collections import Counter

    rng = np.random.default_rng(5)
    n = 220
    rows = []
    for i, s in enumerate(rng.choice(["A", "B", "C"], n)):
        g = rng.choice(["full", "year", "none"])
        token = None if rng.random() < 0.1 else f"T{rng.integers(4)}"
        rows.append((
            f"{s}:{i}", s, f"F{rng.integers(2)}", f"L{rng.integers(3)}",
            None if rng.random() < 0.3 else f"M{rng.integers(2)}", None, "F",
            None if g == "none" else 1970 + int(rng.integers(2)),
            "1970-01-01" if g == "full" else None, token, g,
        ))
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE inp (unique_id VARCHAR, state VARCHAR, first_name VARCHAR, last_name VARCHAR, "
        "middle_name VARCHAR, name_suffix VARCHAR, gender VARCHAR, birth_year INT, dob DATE, dob_token VARCHAR, "
        "dob_granularity VARCHAR)"
    )
    con.executemany("INSERT INTO inp VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [list(r) for r in rows])
    got = con.execute(
        f"SELECT {', '.join(kind.equal)}, y, date_pairs, pairs, q FROM ({cal.birthday_cells_sql('inp', kind, source)})"
    ).fetchall()
    idx = {"first_name": 2, "last_name": 3, "middle_name": 4, "name_suffix": 5, "gender": 6}
    with_year = source is cal.TOKEN_WITH_YEAR
    pop = [r for r in rows if r[9] is not None and (r[7] is not None or not with_year)]
    strata = Counter((r[7] if with_year else 0) for r in pop)
    tokens = Counter(((r[7] if with_year else 0), r[9]) for r in pop)
    cells: dict[tuple, list[int]] = {}
    for a, b in itertools.combinations(rows, 2):
        if a[1] == b[1] or a[9] is None or b[9] is None or (a[8] is not None and b[8] is not None):
            continue  # same state, no token on a side, or compared on the public date
        if with_year != (a[7] is not None and b[7] is not None):
            continue
        if with_year and a[7] != b[7]:
            continue  # cells are within a birth year
        if any(a[idx[f]] != b[idx[f]] for f in kind.equal):
            continue
        s = idx.get(kind.special)
        if kind.relation == "differs" and (a[s] is None or b[s] is None or a[s] == b[s]):
            continue
        if kind.relation == "one_missing" and (a[s] is None) == (b[s] is None):
            continue
        key = (*(a[idx[f]] or "" for f in kind.equal), a[7] if with_year else 0)
        c = cells.setdefault(key, [0, 0])
        c[0] += 1
        c[1] += a[9] == b[9]
    assert cells and any(v[1] for v in cells.values())  # the test data exercises the source
    assert {tuple(r[:-3]): [r[-2], r[-3]] for r in got} == cells
    for r in got:
        y, k = r[-4], strata[r[-4]]
        q = (sum(c * c for (yy, _t), c in tokens.items() if yy == y) - k) / (k * (k - 1))
        assert r[-1] == pytest.approx(q)


def _token_population(con):
    """Year-only registrations that sealed their dates, in two states, and a filler state.

    Cell ANN LEE (1970): 40 + 40 strangers over 4 dates (round robin), no duplicate: 400 of
    the 1,600 cross-state pairs share a token, all by chance.  Cell BO KIM (1971): 30 people
    registered in both states, each with a date no one else has: 30 pairs share a token, all
    the same person.  Filler (state C, 1971): 2,000 LEEs with unique first names and dates
    (they thin the 1971 coincidences and form no cell).  Returns (q 1970, q 1971, f_ann, f_bo):
    the strata's coincidence chances and the cells' term-frequency bits."""
    rows = [(f"{s}:x{i}", s, "ANN", "LEE", 1970, f"D{i % 4}") for s in "AB" for i in range(40)]
    rows += [(f"{s}:y{i}", s, "BO", "KIM", 1971, f"E{i}") for s in "AB" for i in range(30)]
    rows += [(f"C:f{i}", "C", f"G{i}", "LEE", 1971, f"U{i}") for i in range(2000)]
    con.execute(
        "CREATE TABLE inp (unique_id VARCHAR, state VARCHAR, first_name VARCHAR, last_name VARCHAR, "
        "birth_year INT, dob_token VARCHAR, middle_name VARCHAR, name_suffix VARCHAR, gender VARCHAR, "
        "dob DATE, dob_granularity VARCHAR)"
    )
    con.executemany("INSERT INTO inp VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, 'F', NULL, 'year')", [list(r) for r in rows])
    n = len(rows)
    q70 = (4 * 20**2 - 80) / (80 * 79)
    q71 = (30 * 2**2 + 2000 - 2060) / (2060 * 2059)
    f_ann = -math.log2(80 / n) - math.log2(2080 / n)
    f_bo = -2 * math.log2(60 / n)
    return q70, q71, f_ann, f_bo


def test_token_birthday_map_lowers_pairs_that_are_chance_and_raises_sure_ones():
    """The model puts ANN LEE's token-sharing pairs at p = 0.5, but the cells say they are chance
    coincidences (share 0.05 true); BO KIM's at 0.98 where all are the same person: the map moves
    the first down below 0.1 and the second up, and leaves the rest of the pairs alone."""
    con = duckdb.connect()
    q70, q71, f_ann, f_bo = _token_population(con)
    a = -f_ann  # one offset per group; ANN LEE's date pairs then weigh 0 bits (p = 0.5)
    w_bo = a + f_bo
    con.execute(
        f"""CREATE TABLE pairs AS SELECT * FROM (VALUES
           ('A:x0', 'B:x0', 'year', 'year', 1, 4, {a + f_ann}), ('A:y0', 'B:y0', 'year', 'year', 1, 4, {w_bo}),
           ('A:x1', 'B:x2', 'year', 'year', 0, 4, -9.0), ('A:x1', 'C:f1', 'full', 'full', -1, 0, 0.2))
           t(unique_id_l, unique_id_r, dob_granularity_l, dob_granularity_r, gamma_dob_token, gamma_last_name,
             match_weight)"""
    )
    mp = cal.fit_birthday_map(
        ConnectionQueries(con), "pairs", "inp", 1, sources=cal.TOKEN_SOURCES, dob_class=cal.TOKEN_CLASS, min_sigma=2.0
    )
    assert mp["fitted"]
    ann, bo = mp["bins"]
    assert (ann["from_bits"], ann["pairs"], bo["from_bits"], bo["pairs"]) == (0.0, 400, math.floor(w_bo), 30)
    # mu = (E - N q) / (1 - q) per cell, the label mu / E
    assert ann["birthday_share_true"] == pytest.approx((400 - 1600 * q70) / (1 - q70) / 400, abs=1e-5)
    assert bo["birthday_share_true"] == pytest.approx((30 - 900 * q71) / (1 - q71) / 30, abs=1e-5)
    assert ann["mean_p_model"] == pytest.approx(0.5, abs=1e-5)
    assert ann["se"] == pytest.approx(math.sqrt(1600 * q70) / 400, abs=1e-5)
    assert not ann["keep"] and not bo["keep"]
    assert _p(ann["log2_odds"]) < 0.1 and _p(bo["log2_odds"]) > _p(w_bo)
    got = {k: float(v) for k, v in con.execute(
        f"SELECT unique_id_r, {cal.masked_map_sql({cal.TOKEN_CLASS: mp}, 'match_weight')} FROM pairs"
    ).fetchall()}
    assert got["B:x0"] == pytest.approx(ann["log2_odds"]) and got["B:y0"] == pytest.approx(bo["log2_odds"])
    assert got["B:x2"] == pytest.approx(ann["log2_odds"])  # below the first bin: its value
    assert got["C:f1"] == 0.2  # not a token pair: untouched


def test_token_birthday_bins_within_noise_keep_their_weights():
    """With a threshold no label clears, every bin is kept and the map is the identity."""
    con = duckdb.connect()
    _q70, _q71, f_ann, f_bo = _token_population(con)
    con.execute(
        f"""CREATE TABLE pairs AS SELECT * FROM (VALUES
           ('A:x0', 'B:x0', 'year', 'year', 1, 4, 0.0), ('A:y0', 'B:y0', 'year', 'year', 1, 4, {f_bo - f_ann}),
           ('A:x1', 'B:x2', 'year', 'year', 0, 4, -9.0))
           t(unique_id_l, unique_id_r, dob_granularity_l, dob_granularity_r, gamma_dob_token, gamma_last_name,
             match_weight)"""
    )
    mp = cal.fit_birthday_map(
        ConnectionQueries(con), "pairs", "inp", 1, sources=cal.TOKEN_SOURCES, dob_class=cal.TOKEN_CLASS,
        min_sigma=1e6,
    )
    assert mp["fitted"] and all(b["keep"] for b in mp["bins"])
    got = con.execute(
        f"SELECT match_weight, {cal.masked_map_sql({cal.TOKEN_CLASS: mp}, 'match_weight')} FROM pairs"
    ).fetchall()
    assert all(w == pytest.approx(m) for w, m in got)


def test_token_map_moves_only_the_pairs_of_the_cell_kinds():
    """The token map is learnt on exact-name cells and applied to their pairs only: at 1M the
    other token pairs (a nickname, an initial, a similar name) were calibrated already."""
    bf = {"first_name": {g: 0.0 for g in range(6)}, "last_name": {g: 0.0 for g in range(5)},
          "middle_name": {g: 0.0 for g in range(4)}}
    mp = {"fitted": True, "form": "interpolate", "pairs_sql": cal.cell_pairs_sql(bf),
          "bins": [{"from_bits": -1.0, "model_bits": 0.0, "log2_odds": -2.0},
                   {"from_bits": 2.0, "model_bits": 2.0, "log2_odds": 2.0, "keep": True}]}
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE p AS SELECT *, 'year' AS dob_granularity_l, 'full' AS dob_granularity_r, 1 AS gamma_dob_token,
           0.0 AS match_weight FROM (VALUES
           ('names exact', 5, 4, 3), ('no middle names', 5, 4, -1), ('middle on one side', 5, 4, 1),
           ('surname differs', 5, 0, 3), ('surname differs, no middle', 5, 0, -1),
           ('nickname', 4, 4, 3), ('middle initial', 5, 4, 2), ('surname differs, middle on one side', 5, 0, 1),
           ('similar surname', 5, 2, 3)) t(kind, gamma_first_name, gamma_last_name, gamma_middle_name)"""
    )
    got = dict(con.execute(
        f"SELECT kind, {cal.masked_map_sql({cal.TOKEN_CLASS: mp}, 'match_weight')} FROM p"
    ).fetchall())
    moved = {"names exact", "no middle names", "middle on one side", "surname differs", "surname differs, no middle"}
    assert {k for k, v in got.items() if v != 0.0} == moved
    # 0 bits sits on the first point: mapped to -2; between the points the map is linear, and a
    # kept point is on the identity
    assert all(got[k] == pytest.approx(-2.0) for k in moved)
    pts = cal._interpolated_sql(mp["bins"], "w")
    vals = [con.execute(f"SELECT {pts} FROM (SELECT {w}::DOUBLE AS w)").fetchone()[0] for w in (-3.0, 1.0, 2.0, 5.0)]
    assert vals == pytest.approx([-5.0, 0.0, 2.0, 5.0])


def test_birthday_map_is_not_applied_below_its_minimum_of_date_pairs(monkeypatch):
    """The full class's map needs FULL_MIN_DATE_PAIRS date pairs: below, its low bins were noise
    that lifted thousands of pairs into the mid-range (docs/LINKAGE.md)."""
    monkeypatch.setattr(cal, "MASK_MIN_PAIRS", 0.1)
    con = duckdb.connect()
    _birthday_tables(con)  # 3 date pairs
    assert cal.fit_birthday_map(ConnectionQueries(con), "pairs", "inp", 4, min_pairs=3)["fitted"]
    assert not cal.fit_birthday_map(ConnectionQueries(con), "pairs", "inp", 4, min_pairs=4)["fitted"]
    assert cal.FULL_MIN_DATE_PAIRS > 3_717  # the 310,653-registration run that over-corrected
