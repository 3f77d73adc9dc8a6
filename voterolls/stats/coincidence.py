"""The birthday problem with real names and real birthdays.

Two *different* people who share a first name, a last name and a date of
birth look exactly like one person registered twice.  This module computes how
many such coincidences to expect, so that a count of name+DOB matches (the
Interstate Crosscheck rule) can be read net of them.

Two ingredients:

* **the date-of-birth model** (:class:`DobModel`): for each birth year ``y``
  the distribution ``p(d | y)`` over the days of that year, built from the
  vendored US daily births (weekday and holiday effects included) where the
  year is covered, from the average seasonal profile elsewhere, and mixed with
  the record artefacts seen in voter files (an excess of first-of-month dates,
  an excess of 1 January, placeholder dates such as 1900-01-01) whose size is
  estimated from the data.  From it ``q(y) = sum_d p(d | y)^2``, the chance
  that two different people born in year ``y`` share the exact date.
* **observed name counts**: for the full-DOB rule the expected number of
  coincidences is ``sum over (first, last, year) of N(first, last, year) *
  q(year)``, where ``N`` is the number of record pairs agreeing on name and
  birth year (the conditioning used by McDonald and Levitt 2008 and Goel et al.
  2020).  Conditioning on the observed name x year counts makes the model
  exact about name popularity and age structure; only the day within the year
  is modelled.  For the year-only rule (states publishing birth year only) the
  conditioning is on name alone and the year distribution comes from the
  first name's own year distribution, estimated from the *other* states (a
  leave-pair-out estimate, so a duplicate cannot make itself look likely).

True duplicates inflate ``N``: a person registered in two states contributes
one pair that agrees on name, year and date.  The expected number of
coincidences among *different* people is therefore ``(N - D) * q`` with ``D``
the unknown number of same-person pairs; :mod:`voterolls.stats.estimators`
solves ``M = D + (N - D) q`` for ``D``.  The tables here report ``E0 = N q``
(every pair treated as different people) and ``qbar = E0 / N`` so the
estimator can do that.

All counting is group-by SQL in DuckDB over the ``registrations`` view; no
Python loop touches a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa

from voterolls import data

#: Years whose 1 January is a known placeholder for "unknown DOB" when it
#: carries an implausible share of the year's records.
PLACEHOLDER_SHARE = 0.3

#: Pseudo-count that shrinks a first name's birth-year distribution towards
#: the overall one (year-only rule).
YEAR_SHRINKAGE = 20.0

#: Two dates of birth in the same year further apart than this (and not a
#: day/month swap) are taken to belong to different people.
FAR_DAYS = 45

#: Hash blocks (of surnames, and of first names) for the two-way cluster-robust
#: jackknife uncertainty of the year-model calibration: pairs of one surname
#: stay in one surname block, pairs of one first name in one first-name block.
NAME_BLOCKS = 100


# ---------------------------------------------------------------------------
# Day-of-year model
# ---------------------------------------------------------------------------


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_in_year(y: int) -> int:
    return 366 if _is_leap(y) else 365


@dataclass
class DobModel:
    """``p(d | y)`` for every birth year, and ``q(y) = sum_d p(d | y)^2``.

    ``profiles[y]`` is a float array of length 365 / 366 (day-of-year order).
    ``year_share[y]`` is the share of full-DOB records born in ``y`` (used
    only for name-level summaries and the textbook check).
    """

    profiles: dict[int, np.ndarray]
    year_share: dict[int, float] = field(default_factory=dict)
    jan1_excess: float = 0.0
    first_of_month_excess: float = 0.0
    placeholder_years: dict[int, float] = field(default_factory=dict)
    source: str = "daily_births"

    def q(self, year: int) -> float:
        p = self.profiles.get(int(year))
        if p is None:
            p = _seasonal_profile(int(year))
        return float(np.dot(p, p))

    def q_table(self, years: list[int] | np.ndarray | None = None) -> pa.Table:
        ys = sorted(self.profiles) if years is None else sorted({int(y) for y in years})
        return pa.table(
            {"year": pa.array(ys, pa.int32()), "q": pa.array([self.q(y) for y in ys], pa.float64())}
        )

    def p_far(self, k: int) -> float:
        """P(|d1 - d2| > k days | two different people born in the same year), pooled over years."""
        tot = 0.0
        wsum = 0.0
        for y, w in (self.year_share or {y: 1.0 for y in self.profiles}).items():
            p = self.profiles.get(int(y))
            if p is None:
                p = _seasonal_profile(int(y))
            c = np.r_[0.0, np.cumsum(p)]
            i = np.arange(len(p))
            hi = c[np.minimum(i + k + 1, len(p))]
            lo = c[np.maximum(i - k, 0)]
            tot += w * (1.0 - float(np.dot(p, hi - lo)))
            wsum += w
        return tot / wsum if wsum else 0.0

    def far_sql(self, a: str, b: str) -> str:
        """SQL: dates ``a`` and ``b`` (same year) cannot be one person's slip (see :data:`FAR_DAYS`)."""
        return (
            f"abs({a} - {b}) > {FAR_DAYS} AND NOT (month({a}) = day({b}) AND day({a}) = month({b}))"
        )

    def p_same_dob(self) -> float:
        """P(two random different people share the full DOB) = sum_y P(y)^2 q(y)."""
        return float(sum(s * s * self.q(y) for y, s in self.year_share.items()))

    @classmethod
    def uniform(cls, years: range | list[int], days: int | None = None) -> DobModel:
        """Textbook model: every day of the year equally likely (``days`` fixes it, e.g. 365)."""
        years = list(years)
        prof = {}
        for y in years:
            n = days or _days_in_year(y)
            prof[y] = np.full(n, 1.0 / n)
        share = {y: 1.0 / len(years) for y in years}
        return cls(profiles=prof, year_share=share, source="uniform")


@dataclass(frozen=True)
class _Births:
    by_year: dict[int, np.ndarray]
    seasonal_365: np.ndarray
    seasonal_366: np.ndarray


_BIRTHS: _Births | None = None


def _births() -> _Births:
    """Daily births per year, normalised; plus the average seasonal profile."""
    global _BIRTHS
    if _BIRTHS is None:
        t = data.daily_births()
        dates = t.column("date").to_numpy().astype("datetime64[D]")
        births = t.column("births").to_numpy().astype(float)
        years = dates.astype("datetime64[Y]").astype(int) + 1970
        doy = (dates - dates.astype("datetime64[Y]")).astype(int)  # 0-based
        by_year: dict[int, np.ndarray] = {}
        for y in np.unique(years):
            m = years == y
            arr = np.zeros(_days_in_year(int(y)))
            arr[doy[m]] = births[m]
            if (arr > 0).sum() < len(arr) - 1:  # incomplete year: do not use as a profile
                continue
            by_year[int(y)] = arr / arr.sum()
        # seasonal profile on a 366-slot (month, day) grid so leap and common years align
        grid = np.zeros(366)
        cnt = np.zeros(366)
        for arr in by_year.values():
            slots = (
                np.arange(len(arr)) if len(arr) == 366 else np.r_[np.arange(59), np.arange(60, 366)]
            )
            grid[slots] += arr * len(arr)
            cnt[slots] += 1
        avg = grid / np.maximum(cnt, 1)
        s366 = avg / avg.sum()
        s365 = np.r_[avg[:59], avg[60:]]
        s365 = s365 / s365.sum()
        _BIRTHS = _Births(by_year, s365, s366)
    return _BIRTHS


def _seasonal_profile(year: int) -> np.ndarray:
    """Births profile for ``year``: the actual daily series if vendored, else the average season.

    The weekday effect (fewer births at weekends, strong since the 1970s) is
    only in the actual series; for other years it averages out, which slightly
    understates ``q`` for recent uncovered years (documented in METHODS.md).
    """
    b = _births()
    if year in b.by_year:
        return b.by_year[year]
    return b.seasonal_366.copy() if _is_leap(year) else b.seasonal_365.copy()


def _first_of_month_slots(year: int) -> np.ndarray:
    """0-based day-of-year index of the 1st of each month."""
    return np.array([(date(year, m, 1) - date(year, 1, 1)).days for m in range(1, 13)])


def fit_dob_model(con: duckdb.DuckDBPyConnection, relation: str = "registrations") -> DobModel:
    """Fit the artefact shares on the full-DOB records of ``relation`` and build ``p(d | y)``.

    ``p(d | y) = (1 - a - b) * births_y(d) + a * [d = 1 Jan] + b * U(1st of Feb..Dec)``
    with ``a`` (excess 1 January) and ``b`` (excess other first-of-month) fitted by
    the method of moments, pooled over ordinary years.  Years where 1 January
    holds more than :data:`PLACEHOLDER_SHARE` of the records (1900, 1800, ...)
    get their own ``a``: such a date is a placeholder, and two different people
    carrying it "share" a birthday almost surely.
    """
    rows = con.execute(
        f"""
        SELECT birth_year::INT AS y,
               count(*) AS n,
               count(*) FILTER (WHERE month(dob) = 1 AND day(dob) = 1) AS n_jan1,
               count(*) FILTER (WHERE month(dob) > 1 AND day(dob) = 1) AS n_fom
        FROM {relation}
        WHERE dob_granularity = 'full' AND dob IS NOT NULL AND birth_year IS NOT NULL
        GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    if not rows:
        return DobModel(profiles={}, year_share={}, source="daily_births (no full-DOB records)")
    total = sum(r[1] for r in rows)
    # expected shares under the births profile, per year
    exp_j = {}
    exp_f = {}
    for y, *_ in rows:
        base = _seasonal_profile(y)
        exp_j[y] = base[0]
        exp_f[y] = base[_first_of_month_slots(y)[1:]].sum()
    placeholder = {y: nj / n for y, n, nj, _ in rows if n >= 5 and nj / n > PLACEHOLDER_SHARE}
    ordinary = [r for r in rows if r[0] not in placeholder]
    n_o = sum(r[1] for r in ordinary)
    if n_o:
        obs_j = sum(r[2] for r in ordinary) / n_o
        obs_f = sum(r[3] for r in ordinary) / n_o
        bj = sum(exp_j[r[0]] * r[1] for r in ordinary) / n_o
        bf = sum(exp_f[r[0]] * r[1] for r in ordinary) / n_o
        # obs_j = (1-a-b) bj + a ; obs_f = (1-a-b) bf + b  -> linear in (a, b)
        A = np.array([[1 - bj, -bj], [-bf, 1 - bf]])
        rhs = np.array([obs_j - bj, obs_f - bf])
        a, b = np.linalg.solve(A, rhs)
        a, b = float(max(a, 0.0)), float(max(b, 0.0))
    else:
        a = b = 0.0
    profiles: dict[int, np.ndarray] = {}
    for y, *_ in rows:
        base = _seasonal_profile(y)
        fom = _first_of_month_slots(y)
        aa = placeholder.get(y, a)
        bb = 0.0 if y in placeholder else b
        p = (1.0 - aa - bb) * base
        p[0] += aa
        p[fom[1:]] += bb / 11.0
        profiles[y] = p
    share = {y: n / total for y, n, *_ in rows}
    return DobModel(
        profiles=profiles,
        year_share=share,
        jan1_excess=a,
        first_of_month_excess=b,
        placeholder_years=placeholder,
        source="daily_births + artefacts fitted on the data",
    )


def empirical_q(con: duckdb.DuckDBPyConnection, relation: str = "registrations") -> pa.Table:
    """Model-free check: unbiased ``q(y)`` from the data, ``(sum_d c_d^2 - n) / (n (n - 1))``.

    Includes duplicates (each same-person pair adds 2 to ``sum c_d^2``); used
    only to size the model uncertainty, not as the model.
    """
    return con.sql(
        f"""
        WITH c AS (
            SELECT birth_year::INT AS y, dob, count(*)::DOUBLE AS c FROM {relation}
            WHERE dob_granularity = 'full' AND dob IS NOT NULL AND birth_year IS NOT NULL
            GROUP BY ALL)
        SELECT y AS year, sum(c) AS n, (sum(c * c) - sum(c)) / nullif(sum(c) * (sum(c) - 1), 0) AS q_emp
        FROM c GROUP BY y ORDER BY y
        """
    ).to_arrow_table()


# ---------------------------------------------------------------------------
# Textbook helpers
# ---------------------------------------------------------------------------


def expected_shared_pairs(n: int, q: float) -> float:
    """Expected pairs sharing a birthday among ``n`` people: ``C(n, 2) * q``."""
    return n * (n - 1) / 2.0 * q


def prob_some_shared_uniform(n: int, days: int = 365) -> float:
    """Exact textbook probability that some two of ``n`` people share a birthday."""
    if n > days:
        return 1.0
    logp = sum(math.log1p(-i / days) for i in range(n))
    return 1.0 - math.exp(logp)


def prob_some_shared(n: int, q: float) -> float:
    """Poisson approximation ``1 - exp(-C(n,2) q)`` for any birthday distribution."""
    return 1.0 - math.exp(-expected_shared_pairs(n, q))


# ---------------------------------------------------------------------------
# Pair counting by key (vectorised)
# ---------------------------------------------------------------------------


def _pairs_sql(cells: str, keys: list[str], extra_where: str = "") -> str:
    """SQL counting record pairs that agree on ``keys``, per (state_l, state_r, cls).

    ``cells`` has columns ``state, cls, <keys>, n``.  Cross-state pairs are
    ``n_a * n_b`` (state_l < state_r); within a state and class they are
    ``n (n - 1) / 2``; within a state across classes ``n_a * n_b``.  ``cls`` is
    a small integer (e.g. 1 = voted, 0 = did not) and the output's
    ``cls_pair`` is the sorted pair, so "one of the two voted" is ``'01'``.
    """
    k = ", ".join(keys)
    on = " AND ".join(f"a.{c} = b.{c}" for c in keys)
    sel = ", ".join(f"a.{c} AS {c}" for c in keys)
    return f"""
        WITH t AS (SELECT state, cls, {k}, sum(n) AS n FROM {cells} {extra_where} GROUP BY ALL)
        SELECT a.state AS state_l, b.state AS state_r,
               least(a.cls, b.cls)::VARCHAR || greatest(a.cls, b.cls)::VARCHAR AS cls_pair,
               {sel},
               sum(CASE WHEN a.state = b.state AND a.cls = b.cls
                        THEN a.n * (a.n - 1) / 2 ELSE a.n * b.n END)::DOUBLE AS npairs
        FROM t a JOIN t b ON {on}
        WHERE a.state < b.state OR (a.state = b.state AND a.cls <= b.cls)
        GROUP BY ALL
    """


def build_cells(
    con: duckdb.DuckDBPyConnection,
    relation: str = "registrations",
    cls_sql: str = "0",
    name: str = "_vr_cells",
) -> str:
    """Aggregate ``relation`` to counts per (state, class, first, last, year, dob, granularity).

    Records without a first name, last name or birth year cannot be matched
    by the rule and are left out (their number is reported by coverage).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT state, ({cls_sql})::INT AS cls, first_name AS f, last_name AS l,
               birth_year::INT AS y,
               CASE WHEN dob_granularity = 'full' AND dob IS NOT NULL THEN dob END AS d,
               CASE WHEN dob_granularity = 'full' AND dob IS NOT NULL THEN 'full' ELSE 'year' END AS g,
               count(*)::DOUBLE AS n
        FROM {relation}
        WHERE first_name IS NOT NULL AND last_name IS NOT NULL AND birth_year IS NOT NULL
              AND dob_granularity IN ('full', 'year')
        GROUP BY ALL
        """
    )
    return name


def _register_q(con: duckdb.DuckDBPyConnection, model: DobModel, cells: str) -> None:
    years = [
        r[0] for r in con.execute(f"SELECT DISTINCT y FROM {cells} WHERE g = 'full'").fetchall()
    ]
    con.register("_vr_q", model.q_table(years))


def _year_shares_sql(cells: str) -> str:
    """Per (state, class, first name, year) counts for the leave-pair-out year distributions."""
    return f"SELECT state, cls, f, y, sum(n) AS c FROM {cells} GROUP BY ALL"


def _year_agreement_sql() -> str:
    """SQL for ``_vr_s``: ``s(A, B, f, class pair)``, the chance that two records of first name f
    (one of each class) share a birth year, from the other states' records.

    Per class, ``p_c(y)`` = the first name's year distribution among the records of
    that class in the states other than A and B, shrunk towards the class's overall
    year distribution ``pi_c`` (weight ``C / (C + YEAR_SHRINKAGE)``); then
    ``s = sum_y p_a(y) p_b(y)``, with ``sum_y p_a(y)^2`` replaced by its unbiased
    estimate from counts (the plug-in sum of squared shares is biased upwards).
    Why per class: when turnout depends on age, two voters of one name are more
    likely to share a birth year than two registrants of that name, and an
    agreement rate taken over all records would undercount the coincidences
    among pairs who both voted (measured: +281 spurious double votes per seed on
    the ``turnout`` process of bench/validate_estimates.py before this split).
    """
    return f"""
        WITH need AS (SELECT DISTINCT state_l, state_r, f FROM _vr_year_nf
                      UNION SELECT DISTINCT state_l, state_r, f FROM _vr_full_fl),
             tot_fy AS (SELECT cls, f, y, sum(c) AS c FROM _vr_sfy GROUP BY ALL),
             tot_y AS (SELECT cls, y, sum(c) AS c FROM _vr_sfy GROUP BY ALL),
             pi AS (SELECT cls, y, c / sum(c) OVER (PARTITION BY cls) AS p FROM tot_y),
             grid AS (
                SELECT need.state_l, need.state_r, need.f, pi.cls, pi.y, pi.p,
                       coalesce(t.c, 0) - coalesce(cl.c, 0)
                         - CASE WHEN need.state_r <> need.state_l THEN coalesce(cr.c, 0) ELSE 0 END AS c
                FROM need CROSS JOIN pi
                LEFT JOIN tot_fy t ON t.f = need.f AND t.y = pi.y AND t.cls = pi.cls
                LEFT JOIN _vr_sfy cl ON cl.state = need.state_l AND cl.f = need.f AND cl.y = pi.y
                                        AND cl.cls = pi.cls
                LEFT JOIN _vr_sfy cr ON cr.state = need.state_r AND cr.f = need.f AND cr.y = pi.y
                                        AND cr.cls = pi.cls),
             agg AS (SELECT state_l, state_r, f, cls, sum(c) AS C FROM grid GROUP BY ALL),
             w AS (SELECT *, C / (C + {YEAR_SHRINKAGE}) AS w FROM agg),
             cross_y AS (
                SELECT a.state_l, a.state_r, a.f, a.cls AS ca, b.cls AS cb,
                       sum(a.c * b.c) AS CC, sum(a.c * b.p) AS CP, sum(a.p * b.c) AS PC,
                       sum(a.p * b.p) AS PP
                FROM grid a JOIN grid b
                  ON a.state_l = b.state_l AND a.state_r = b.state_r AND a.f = b.f AND a.y = b.y
                 AND a.cls <= b.cls
                GROUP BY ALL)
        SELECT x.state_l, x.state_r, x.f,
               x.ca::VARCHAR || x.cb::VARCHAR AS cls_pair,
               CASE WHEN x.ca = x.cb AND wa.C < 2 THEN x.PP
                    ELSE coalesce(wa.w * wb.w * CASE WHEN x.ca = x.cb
                                                     THEN (x.CC - wa.C) / (wa.C * (wa.C - 1))
                                                     ELSE x.CC / nullif(wa.C * wb.C, 0) END, 0)
                         + coalesce(wa.w * (1 - wb.w) * x.CP / nullif(wa.C, 0), 0)
                         + coalesce((1 - wa.w) * wb.w * x.PC / nullif(wb.C, 0), 0)
                         + (1 - wa.w) * (1 - wb.w) * x.PP END AS s
        FROM cross_y x
        JOIN w wa ON wa.state_l = x.state_l AND wa.state_r = x.state_r AND wa.f = x.f AND wa.cls = x.ca
        JOIN w wb ON wb.state_l = x.state_l AND wb.state_r = x.state_r AND wb.f = x.f AND wb.cls = x.cb
    """


def coincidence_table(
    con: duckdb.DuckDBPyConnection,
    model: DobModel,
    cells: str,
) -> pa.Table:
    """Per (state_l, state_r, cls_pair, level): pairs agreeing on the rule, and expected coincidences.

    ``level = 'full'``: both records carry a full DOB; rule = first + last + DOB;
    ``N`` = pairs agreeing on first + last + birth year; ``M`` = pairs agreeing on
    the rule; ``E0 = sum N(f, l, y) q(y)``.

    ``level = 'year'``: at least one record carries the birth year only; rule =
    first + last + birth year; ``N`` = pairs agreeing on first + last;
    ``M`` = pairs agreeing on the rule; ``E0 = sum N(f, l) s(f)`` with
    ``s(f) = sum_y p(y | f)^2`` from the first name's year distribution in the
    states other than the two compared, shrunk towards the overall distribution.

    ``level = 'year_check'``: the year-level model applied to full x full pairs,
    where coincidental name + year agreements can be counted (dates more than
    :data:`FAR_DAYS` apart cannot be one person's DOB slip); ``M`` is that count
    and ``E0`` the model's prediction of it.  The estimator uses the ratio to
    calibrate the year-level model.
    """
    _register_q(con, model, cells)
    full = f"(SELECT * FROM {cells} WHERE g = 'full')"
    # --- full level -----------------------------------------------------------
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_full_m AS {_pairs_sql(full, ['f', 'l', 'd'])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_full_n AS {_pairs_sql(full, ['f', 'l', 'y'])}")
    full_tab = con.sql(
        """
        WITH n AS (
            SELECT state_l, state_r, cls_pair, sum(npairs) AS N, sum(npairs * coalesce(q.q, 0)) AS E0
            FROM _vr_full_n LEFT JOIN _vr_q q ON q.year = _vr_full_n.y GROUP BY ALL),
        m AS (SELECT state_l, state_r, cls_pair, sum(npairs) AS M FROM _vr_full_m GROUP BY ALL)
        SELECT n.state_l, n.state_r, n.cls_pair, 'full' AS level, n.N, coalesce(m.M, 0) AS M, n.E0
        FROM n LEFT JOIN m USING (state_l, state_r, cls_pair)
        """
    ).to_arrow_table()
    # --- year level (at least one side year-only) -----------------------------
    # pairs on (f,l,y) and (f,l) over all records minus the full x full pairs
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_all_fly AS {_pairs_sql(cells, ['f', 'l', 'y'])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_all_fl AS {_pairs_sql(cells, ['f', 'l'])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_full_fl AS {_pairs_sql(full, ['f', 'l'])}")
    # year-level name pairs per (state_l, state_r, cls_pair, f)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE _vr_year_nf AS
        WITH a AS (SELECT state_l, state_r, cls_pair, f, sum(npairs) AS np FROM _vr_all_fl GROUP BY ALL),
             b AS (SELECT state_l, state_r, cls_pair, f, sum(npairs) AS np FROM _vr_full_fl GROUP BY ALL)
        SELECT a.state_l, a.state_r, a.cls_pair, a.f, a.np - coalesce(b.np, 0) AS N
        FROM a LEFT JOIN b USING (state_l, state_r, cls_pair, f)
        WHERE a.np - coalesce(b.np, 0) > 0
        """
    )
    # leave-pair-out year distribution of each first name and class -> s(A, B, f, class pair)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_sfy AS {_year_shares_sql(cells)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _vr_s AS {_year_agreement_sql()}")
    year_tab = con.sql(
        """
        WITH e AS (
            SELECT nf.state_l, nf.state_r, nf.cls_pair, sum(nf.N) AS N, sum(nf.N * s.s) AS E0
            FROM _vr_year_nf nf JOIN _vr_s s USING (state_l, state_r, cls_pair, f) GROUP BY ALL),
        ma AS (SELECT state_l, state_r, cls_pair, sum(npairs) AS M FROM _vr_all_fly GROUP BY ALL),
        mf AS (SELECT state_l, state_r, cls_pair, sum(npairs) AS M FROM _vr_full_n GROUP BY ALL)
        SELECT e.state_l, e.state_r, e.cls_pair, 'year' AS level, e.N,
               coalesce(ma.M, 0) - coalesce(mf.M, 0) AS M, e.E0
        FROM e LEFT JOIN ma USING (state_l, state_r, cls_pair)
               LEFT JOIN mf USING (state_l, state_r, cls_pair)
        """
    ).to_arrow_table()
    # the year-level model checked where the answer is known: full x full pairs.
    # Pairs agreeing on name + year whose dates lie more than FAR_DAYS apart (and
    # are not a day/month swap) are coincidences, not one person with a DOB slip;
    # the model predicts E0_check * P(far | same year).  Rows ``level = 'year_check'``
    # carry M = those far pairs and E0 = the model's prediction for them.
    p_far = model.p_far(FAR_DAYS)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _vr_far AS
        WITH t AS (SELECT state, cls, f, l, y, d, sum(n) AS n FROM {full} GROUP BY ALL)
        SELECT a.state AS state_l, b.state AS state_r,
               least(a.cls, b.cls)::VARCHAR || greatest(a.cls, b.cls)::VARCHAR AS cls_pair,
               hash(a.l) % {NAME_BLOCKS} AS block, hash(a.f) % {NAME_BLOCKS} AS fblock,
               sum(a.n * b.n)::DOUBLE AS M
        FROM t a JOIN t b ON a.f = b.f AND a.l = b.l AND a.y = b.y
        WHERE (a.state < b.state OR (a.state = b.state AND (a.cls < b.cls OR (a.cls = b.cls AND a.d < b.d))))
          AND {model.far_sql("a.d", "b.d")}
        GROUP BY ALL
        """
    )
    check_tab = con.sql(
        f"""
        WITH e AS (
            SELECT ff.state_l, ff.state_r, ff.cls_pair, sum(ff.npairs) AS N, sum(ff.npairs * s.s) AS E0
            FROM _vr_full_fl ff JOIN _vr_s s USING (state_l, state_r, cls_pair, f) GROUP BY ALL)
        SELECT e.state_l, e.state_r, e.cls_pair, 'year_check' AS level, e.N, coalesce(m.M, 0) AS M,
               e.E0 * {p_far} AS E0
        FROM e LEFT JOIN (SELECT state_l, state_r, cls_pair, sum(M) AS M FROM _vr_far GROUP BY ALL) m
             USING (state_l, state_r, cls_pair)
        """
    ).to_arrow_table()
    # the same check per surname block (cross-state / in-state), for the cluster-robust
    # uncertainty of the calibration (see :func:`check_blocks`)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _vr_check_blocks AS
        WITH e AS (
            SELECT ff.state_l <> ff.state_r AS cross_state, hash(ff.l) % {NAME_BLOCKS} AS block,
                   hash(ff.f) % {NAME_BLOCKS} AS fblock, sum(ff.npairs * s.s) * {p_far} AS E0
            FROM _vr_full_fl ff JOIN _vr_s s USING (state_l, state_r, cls_pair, f) GROUP BY ALL),
        m AS (SELECT state_l <> state_r AS cross_state, block, fblock, sum(M) AS M
              FROM _vr_far GROUP BY ALL)
        SELECT cross_state, block, fblock, coalesce(m.M, 0)::DOUBLE AS M, e.E0::DOUBLE AS E0
        FROM e LEFT JOIN m USING (cross_state, block, fblock)
        """
    )
    return pa.concat_tables(
        [full_tab, year_tab.cast(full_tab.schema), check_tab.cast(full_tab.schema)]
    )


def check_blocks(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The year-model check (``level = 'year_check'``) per surname block x first-name block.

    Columns ``cross_state, block, fblock, M, E0``: :data:`NAME_BLOCKS` surname
    hash blocks crossed with as many first-name hash blocks, written by
    :func:`coincidence_table` (call that first).  Pair counts are not
    independent: pairs that share a record or a common surname move together,
    and so do all pairs of one first name, whose birth-year distribution the
    model estimates once for every surname.  Both dimensions are clusters, for
    a two-way cluster-robust (jackknife) variance of the calibration ratio.
    """
    return con.sql(
        "SELECT * FROM _vr_check_blocks ORDER BY cross_state, block, fblock"
    ).to_arrow_table()


def relaxed_table(
    con: duckdb.DuckDBPyConnection, model: DobModel, cells: str
) -> dict[str, dict[str, float]]:
    """Cross-state, full-DOB pairs agreeing on one name + DOB: ``{'last_dob': {N, M, E0}, 'first_dob': ...}``.

    The same birthday-problem accounting as the rule, with one name dropped:
    ``M`` = pairs agreeing on last name + DOB (or first name + DOB), ``N`` = pairs
    agreeing on that name + birth year, ``E0 = sum N q(y)``.  Net of
    coincidences, minus the rule's own estimate, this counts same-person
    pairs whose *other* name differs (nicknames, typos, married names): an
    estimate that does not depend on the linkage model, used to check the
    Splink probabilities on the pairs the exact rule cannot see.
    """
    _register_q(con, model, cells)
    full = f"(SELECT * FROM {cells} WHERE g = 'full')"
    out: dict[str, dict[str, float]] = {}
    for name, key in (("last_dob", "l"), ("first_dob", "f")):
        m = con.execute(
            f"SELECT coalesce(sum(npairs), 0) FROM ({_pairs_sql(full, [key, 'd'])}) WHERE state_l <> state_r"
        ).fetchall()[0][0]
        n, e0 = con.execute(
            f"""
            SELECT coalesce(sum(p.npairs), 0), coalesce(sum(p.npairs * coalesce(q.q, 0)), 0)
            FROM ({_pairs_sql(full, [key, "y"])}) p LEFT JOIN _vr_q q ON q.year = p.y
            WHERE p.state_l <> p.state_r
            """
        ).fetchall()[0]
        out[name] = {"N": float(n), "M": float(m), "E0": float(e0)}
    return out
