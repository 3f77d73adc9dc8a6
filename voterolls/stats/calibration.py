"""Is linkage calibrated?  Checked without truth on the exact stratum.

For cross-state pairs that agree exactly on first name, last name and full
DOB, the birthday model (:mod:`voterolls.stats.coincidence`) says how many of
them are different people: in the cell of a name and birth year held by
states A and B, ``N`` pairs agree on name + year, ``M`` also on the DOB, and
``N q(y)`` of the ``M`` are expected to be coincidences.  A scored pair of
that cell is one person with probability ``mu / (N q + mu)``, where ``mu``,
the expected same-person pairs of the cell, is ``delta x`` (people of that
name and year in A and B) and ``delta`` makes all cells add up to the rule-net
estimate of same-person pairs (an empirical-Bayes split of that estimate: a
common name's exact pairs are mostly coincidences, a rare name's mostly one
person).
Summed over the pairs of a band of match probabilities this is the number of
true matches the birthday model expects there; the linkage model expects
``sum p``.  The two should agree when the probabilities are calibrated.

The stratum is every exact pair, whether or not linkage wrote it (a pair it did
not write counts with ``p = 0`` in the lowest band): the birthday model's split
covers every exact pair of a cell, so only over all of them are the totals
comparable.  The total over all bands is the birthday model's estimate for the
exact pairs; per band the split is approximate: the birthday model cannot tell which
pairs of a cell are the coincidences, so where linkage separates them by other
fields (middle name, address) the low bands show more expected matches than
``sum p`` and the high bands fewer, although linkage is right.  Read a band
as "over-confident" only where the model expects fewer matches than ``sum p``
in the bands *below* 0.9 as well.  Counts only, never a name or an id.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from voterolls.stats.coincidence import DobModel

#: Bands of match probability (lower bound inclusive).
BANDS = (0.0, 0.1, 0.5, 0.9, 0.99, 1.0)


def exact_stratum_calibration(
    con: duckdb.DuckDBPyConnection, model: DobModel, same_person_pairs: float
) -> dict | None:
    """Expected vs model-expected true matches per probability band (``_vr_pairs_in``, ``_vr_regs``).

    ``same_person_pairs``: the rule-net estimate of same-person pairs at the full-DOB
    level (``rule_net(...)["full"]``), which the cells' duplicate rates are scaled to.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cal_d AS
        SELECT state, first_name AS f, last_name AS l, birth_year AS y, dob AS d, count(*) AS n
        FROM _vr_regs
        WHERE dob_granularity = 'full' AND dob IS NOT NULL AND first_name IS NOT NULL
          AND last_name IS NOT NULL AND birth_year IS NOT NULL
        GROUP BY ALL
        """
    )
    # every cross-state pair of live registrations the exact rule joins, with its match
    # probability where linkage wrote the pair (0 where it did not: linkage said "different
    # people" by scoring it below the written threshold, or never compared it).  Taking all
    # of them, not only the scored ones, makes the totals comparable: the birthday model's
    # split covers every exact pair of a cell.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cal_scored AS
        SELECT CASE WHEN state_l < state_r THEN state_l ELSE state_r END AS sa,
               CASE WHEN state_l < state_r THEN state_voter_id_l ELSE state_voter_id_r END AS ida,
               CASE WHEN state_l < state_r THEN state_r ELSE state_l END AS sb,
               CASE WHEN state_l < state_r THEN state_voter_id_r ELSE state_voter_id_l END AS idb,
               max(match_probability)::DOUBLE AS p
        FROM _vr_pairs_in WHERE state_l <> state_r GROUP BY ALL
        """
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _cal_pairs AS
        SELECT coalesce(s.p, 0.0) AS p, s.p IS NOT NULL AS scored, a.state AS sa, b.state AS sb,
               a.first_name AS f, a.last_name AS l, a.birth_year AS y
        FROM _vr_regs a
        JOIN _vr_regs b ON a.first_name = b.first_name AND a.last_name = b.last_name
             AND a.dob = b.dob AND a.state < b.state
        LEFT JOIN _cal_scored s ON s.sa = a.state AND s.ida = a.state_voter_id
             AND s.sb = b.state AND s.idb = b.state_voter_id
        WHERE a.dob_granularity = 'full' AND b.dob_granularity = 'full'
          AND a.birth_year IS NOT NULL
        """
    )
    years = [r[0] for r in con.execute("SELECT DISTINCT y FROM _cal_pairs").fetchall()]
    if not years:
        return None
    con.register("_cal_q", model.q_table(years))
    # duplicates per cell ~ delta x (people of the name + year in the two states), delta
    # scaled so that all cells shared by two states hold the estimated same-person pairs
    people = con.execute(
        """
        WITH yc AS (SELECT state, f, l, y, sum(n) AS n FROM _cal_d GROUP BY ALL)
        SELECT sum(a.n + b.n) FROM yc a JOIN yc b
          ON a.f = b.f AND a.l = b.l AND a.y = b.y AND a.state < b.state
        """
    ).fetchall()[0][0]
    delta = max(same_person_pairs, 0.0) / people if people else 0.0
    band = (
        "CASE "
        + " ".join(f"WHEN p < {b!r} THEN {i}" for i, b in enumerate(BANDS[1:-1], start=1))
        + f" ELSE {len(BANDS) - 1} END"
    )
    rows = con.execute(
        f"""
        WITH cells AS (SELECT DISTINCT sa, sb, f, l, y FROM _cal_pairs),
        yc AS (SELECT state, f, l, y, sum(n) AS n FROM _cal_d GROUP BY ALL),
        bn AS (
            SELECT c.sa, c.sb, c.f, c.l, c.y, a.n * b.n AS big_n, a.n + b.n AS people FROM cells c
            JOIN yc a ON a.state = c.sa AND a.f = c.f AND a.l = c.l AND a.y = c.y
            JOIN yc b ON b.state = c.sb AND b.f = c.f AND b.l = c.l AND b.y = c.y),
        mm AS (
            SELECT c.sa, c.sb, c.f, c.l, c.y, sum(a.n * b.n) AS m FROM cells c
            JOIN _cal_d a ON a.state = c.sa AND a.f = c.f AND a.l = c.l AND a.y = c.y
            JOIN _cal_d b ON b.state = c.sb AND b.f = c.f AND b.l = c.l AND b.y = c.y AND b.d = a.d
            GROUP BY ALL),
        scored AS (
            SELECT p.p, bn.big_n * q.q / (bn.big_n * q.q + {delta!r} * bn.people) AS coinc
            FROM _cal_pairs p JOIN bn USING (sa, sb, f, l, y) JOIN mm USING (sa, sb, f, l, y)
            JOIN _cal_q q ON q.year = p.y)
        SELECT {band} AS band, count(*), sum(p), sum(1 - coinc), avg(coinc)
        FROM scored GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    out = []
    for band, n, sp, model_true, coinc in rows:
        lo, hi = BANDS[band - 1], BANDS[band]
        out.append(
            {
                "p_from": lo,
                "p_to": hi,
                "pairs": int(n),
                "expected_by_linkage": round(float(sp), 2),
                "expected_by_birthday_model": round(float(model_true), 2),
                "mean_coincidence_share": round(float(coinc), 4),
            }
        )
    sql = "SELECT count(*) FILTER (WHERE NOT scored) FROM _cal_pairs"
    unscored = con.execute(sql).fetchone()[0]
    tot_p = sum(r["expected_by_linkage"] for r in out)
    tot_m = sum(r["expected_by_birthday_model"] for r in out)
    return {
        "stratum": "cross-state pairs of live registrations agreeing exactly on first name, last "
        "name and full DOB (a pair linkage did not write counts with p = 0)",
        "method": "per band of match probability: sum of match probabilities (linkage) vs the true "
        "matches the birthday model expects (mu / (N q + mu) per pair's name + birth-year cell); "
        "exact for the total, approximate per band (see voterolls.stats.calibration)",
        "bands": out,
        "total": {
            "pairs": sum(r["pairs"] for r in out),
            "pairs_not_written_by_linkage": int(unscored),
            "expected_by_linkage": round(tot_p, 2),
            "expected_by_birthday_model": round(tot_m, 2),
            "ratio_model_to_linkage": round(tot_m / tot_p, 4) if tot_p > 0 else None,
        },
    }


def as_table(cal: dict | None) -> pa.Table | None:
    """The bands as an Arrow table (for the report)."""
    return None if not cal else pa.Table.from_pylist(cal["bands"])
