"""m with the expected strangers counted out (voterolls.link.stranger_m): the arithmetic, the
stranger count against a hand count, and a dense block where the plain block share is far off."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from voterolls.link.engines.duckdb import ConnectionQueries
from voterolls.link.stranger_m import (
    TARGETS,
    StrangerBlock,
    block_level_counts_sql,
    corrected_m,
    estimate,
    expected_strangers_sql,
)


def test_corrected_m_subtracts_the_strangers_per_level():
    # 1,000 pairs of which 900 strangers: strangers spread as u, matches (100) as m
    u = [0.01, 0.09, 0.90]  # exact, fuzzy, differs
    m_true = [0.80, 0.15, 0.05]
    counts = {2: 900 * 0.01 + 100 * 0.80, 1: 900 * 0.09 + 100 * 0.15, 0: 900 * 0.90 + 100 * 0.05}
    m, matches = corrected_m({k: round(v) for k, v in counts.items()}, u, 900.0)
    assert matches == pytest.approx(100.0)
    assert m == pytest.approx(m_true, abs=0.01)
    # the plain share of the block says "differs" for 81.5% of the pairs
    assert counts[0] / 1000 > 0.8


def test_corrected_m_with_no_matches_left_is_all_zero():
    m, matches = corrected_m({1: 10, 0: 90}, [0.1, 0.9], 100.0)
    assert matches == 0 and m == [0.0, 0.0]


def test_expected_strangers_is_pairs_sharing_the_rest_times_chance_agreement():
    con = duckdb.connect()
    # year 1970: 4 records named A (dates d1,d1,d2,d3), 2 named B (d1,d2); year 1971: 2 named A.
    con.execute(
        """CREATE TABLE t AS SELECT * FROM (VALUES
           (1,'A',1970,'d1'),(2,'A',1970,'d1'),(3,'A',1970,'d2'),(4,'A',1970,'d3'),
           (5,'B',1970,'d1'),(6,'B',1970,'d2'),(7,'A',1971,'e1'),(8,'A',1971,'e2'),
           (9,'A',1971,NULL)) v(unique_id, nm, birth_year, dob)"""
    )
    t = StrangerBlock("x", ("dob", "nm"), "dob", ("birth_year",))
    got = ConnectionQueries(con).row(expected_strangers_sql("t", t))[0]
    # 1970: dates d1 x3, d2 x2, d3 x1 over 6 records -> (9+4+1-6)/(6*5) = 8/30;
    # pairs sharing the name: C(4,2) + C(2,2) = 7.  1971: dates e1, e2 -> 0.  (NULL date left out.)
    assert got == pytest.approx(7 * 8 / 30)


def _dense_table(con, seed=3):
    """People in one birth year, few names; 2,000 of them registered twice, 10% of those with a
    changed surname.  Dense enough that strangers share date, first and middle name often."""
    rng = np.random.default_rng(seed)
    n = 6000
    first = rng.integers(0, 30, n)
    middle = first * 3 + rng.integers(0, 3, n)  # middle follows first (as both follow gender)
    last = rng.integers(0, 400, n)
    day = rng.integers(0, 365, n)
    dup = rng.choice(n, 2000, replace=False)
    changed = dup[:200]
    rows = [(i, int(first[i]), int(middle[i]), int(last[i]), int(day[i])) for i in range(n)]
    for j, i in enumerate(dup):
        new_last = int(last[i]) if i not in set(changed) else 1000 + j
        rows.append((n + j, int(first[i]), int(middle[i]), new_last, int(day[i])))
    con.execute("CREATE TABLE t (unique_id INT, f INT, mi INT, l INT, d INT)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    con.execute(
        """CREATE TABLE inp AS SELECT unique_id::VARCHAR AS unique_id, 'F' || f AS first_name_canonical,
           'M' || mi AS middle_name, 'L' || l AS last_name, DATE '1970-01-01' + d AS dob,
           1970 AS birth_year FROM t"""
    )


def test_dense_block_recovers_the_surname_change_rate():
    con = duckdb.connect()
    _dense_table(con)
    case = 'CASE WHEN "last_name_l" IS NULL OR "last_name_r" IS NULL THEN -1 WHEN "last_name_l" = "last_name_r" THEN 1 ELSE 0 END'
    # strangers of this table agree on a surname with probability ~1/400
    u = [1 / 400, 1 - 1 / 400]
    comps = {"last_name": (case, ["last_name"], u)}
    present = {"dob", "first_name_canonical", "middle_name", "birth_year", "last_name"}
    (res,) = estimate(ConnectionQueries(con), "inp", comps, present)
    g, k = ConnectionQueries(con).columns(
        block_level_counts_sql("inp", StrangerBlock("last_name", res.block, "dob"), case, ["last_name"])
    )
    counts = dict(zip(g.tolist(), k.tolist(), strict=True))
    plain_share_differs = counts[0] / sum(counts.values())
    # the block is mostly strangers: its plain share of "surname differs" is far above 10%
    assert plain_share_differs > 0.3
    assert res.applied
    assert res.m[1] == pytest.approx(0.10, abs=0.03)  # 200 of 2,000 duplicates changed surname
    assert res.pairs - res.strangers_expected == pytest.approx(2000, rel=0.1)
    assert res.as_dict()["matches_expected"] == pytest.approx(res.pairs - res.strangers_expected, abs=0.1)


def test_target_without_its_fields_is_skipped():
    con = duckdb.connect()
    _dense_table(con)
    comps = {"last_name": ("CASE WHEN 1=1 THEN 1 END", ["last_name"], [0.5, 0.5])}
    assert estimate(ConnectionQueries(con), "inp", comps, {"dob", "last_name"}) == []


def test_token_strangers_leave_out_pairs_scored_on_public_dates():
    """The DOB-token block counts only pairs where a side has no public full date (the token's pairs)."""
    con = duckdb.connect()
    n = 400
    con.execute(
        "CREATE TABLE t AS SELECT i::VARCHAR AS unique_id, 'F' || (i % 3) AS first_name_canonical, "
        "'M' || (i % 2) AS middle_name, 'L' || (hash(i) % 7) AS last_name, "
        "CASE WHEN i % 4 = 0 THEN NULL ELSE DATE '1970-01-01' + (i % 11)::INT END AS dob, "
        "(i % 13) AS dob_token FROM range(?) r(i)",
        [n],
    )
    t = next(x for x in TARGETS if x.comparison == "dob_token")
    got = ConnectionQueries(con).row(expected_strangers_sql("t", t))[0]
    # direct: over the pairs sharing first and middle where not both carry a public date, the
    # surname's chance agreement computed per population as the SQL does
    rows = con.execute("SELECT first_name_canonical, middle_name, last_name, dob FROM t").fetchall()

    def chance(recs):
        from collections import Counter

        c = Counter(r[2] for r in recs)
        k = len(recs)
        return (sum(v * v for v in c.values()) - k) / (k * (k - 1))

    def pairs(recs):
        from collections import Counter

        c = Counter((r[0], r[1]) for r in recs)
        return sum(v * (v - 1) / 2 for v in c.values())

    both = [r for r in rows if r[3] is not None]
    want = pairs(rows) * chance(rows) - pairs(both) * chance(both)
    assert got == pytest.approx(want)
    assert 0 < got < pairs(rows) * chance(rows)
