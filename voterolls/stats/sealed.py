"""The coincidence model on a sealed-only workspace: token frequencies instead of values.

A sealed-only workspace (``voterolls ingest-sealed``) holds no name and no
date: its ``first_name``, ``last_name``, ``dob`` and ``birth_year`` are NULL
and the state's keyed tokens and name encodings sit beside them.  The
birthday accounting of :mod:`voterolls.stats.coincidence` compares names,
dates and years only for *equality*, except in two places, so it runs on
value-free surrogates:

* ``first_name`` / ``last_name`` <- the field's Bloom filter (keyed per field
  by the consortium; one name, one filter, so a filter's frequency is its
  name's frequency; two names share a filter only when their padded bigram
  sets are equal, e.g. ANNA / ANNNA, a slight over-merge);
* ``birth_year`` <- a 31-bit integer hash of the birth-year token (1:1 with
  the year; no order, no arithmetic);
* ``dob`` <- the text ``date:year-month:swapped:month-day`` of the first 16 hex
  digits of each DOB token (equal exactly when the dates are equal), where the
  date is public (``dob_granularity = 'full'``; a date the policy withholds
  and the state sealed stays out of the rule, as in plaintext).

The two places that need values are replaced by :class:`TokenDobModel`:

* ``q(y)``, the chance two different people born in year ``y`` share the date,
  comes from the token counts themselves: pairs of records of year ``y``
  with *different* names that share the date token, over all pairs of year
  ``y`` with different names (leaving same-name pairs out leaves the
  duplicates out), shrunk towards the pooled month-day rate (month-day
  tokens do not depend on the year) with :data:`PRIOR_COINCIDENCES` pseudo
  coincidences.  Placeholder dates (a year whose records all carry 1 January)
  show up as a large ``q`` of their own, as in the plaintext model; the
  weekday and holiday effects the daily-births profile supplies in plaintext
  are in the data here.
* "far" pairs of the year-model check (same name and year, dates that cannot
  be one person's slip) are pairs whose year-month tokens differ and whose
  dates are not each other's day/month swap; ``p_far`` is the share of
  different-name same-year pairs that are far, counted the same way.

The compiler learns nothing from this it did not already hold: the token
frequencies are in the workspace (see docs/PRIVACY.md, frequency attacks).
The middle-initial refinement of the year level needs an initial, which a
sealed-only delivery does not carry, so it is skipped (wider year-level
intervals).  A workspace mixing sealed-only and plaintext states is refused:
a plaintext name and a filter never compare equal, so cross pairs would be
silently missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from voterolls.errors import UserError

#: Weight of the pooled month-day rate in each year's ``q``, in expected coincidences.
PRIOR_COINCIDENCES = 20.0

#: Columns whose presence (non-null) marks a registration as sealed-only.
SEALED_MARKERS = ("first_name_bf", "last_name_bf")

_HEX16 = "left({c}, 16)"


def _h(c: str) -> str:
    return _HEX16.format(c=c)


#: Surrogate of the full date: date, year-month, swapped date, month-day token prefixes.
SURROGATE_DOB = (
    f"CASE WHEN dob_granularity = 'full' AND dob_token IS NOT NULL THEN {_h('dob_token')} || ':' || "
    f"coalesce({_h('dob_ym_token')}, '') || ':' || coalesce({_h('dob_swapped_token')}, '') || ':' || "
    f"coalesce({_h('dob_md_token')}, '') END"
)
SURROGATE_YEAR = "CAST(hash(birth_year_token) % 2147483647 AS INTEGER)"

#: Far predicate on two surrogate dates ``{a}`` / ``{b}``: another month, not a day/month swap.
FAR_SQL = (
    "split_part({a}, ':', 2) <> split_part({b}, ':', 2) "
    "AND split_part({a}, ':', 3) <> split_part({b}, ':', 1)"
)


def _pairs(c: str) -> str:
    return f"sum({c} * ({c} - 1) / 2)"


@dataclass
class TokenDobModel:
    """``q`` per birth-year surrogate and ``p_far`` from token counts (interface of
    :class:`voterolls.stats.coincidence.DobModel` as the estimators use it)."""

    q_by_year: dict[int, float]
    q_pooled: float
    p_far_pairs: float
    year_share: dict[int, float] = field(default_factory=dict)
    jan1_excess: float = 0.0
    first_of_month_excess: float = 0.0
    placeholder_years: dict[int, float] = field(default_factory=dict)
    source: str = (
        "token frequencies (sealed-only): per birth-year token, different-name pairs sharing the "
        "date token, shrunk towards the pooled month-day rate"
    )

    def q(self, year: int) -> float:
        return self.q_by_year.get(int(year), self.q_pooled)

    def q_table(self, years: list[int] | None = None) -> pa.Table:
        ys = sorted(self.q_by_year) if years is None else sorted({int(y) for y in years})
        return pa.table(
            {"year": pa.array(ys, pa.int32()), "q": pa.array([self.q(y) for y in ys], pa.float64())}
        )

    def p_far(self, k: int) -> float:  # noqa: ARG002 - tokens know months, not days
        """P(far | two different people of one birth year); "far" is :data:`FAR_SQL`."""
        return self.p_far_pairs

    def far_sql(self, a: str, b: str) -> str:
        return FAR_SQL.format(a=a, b=b)

    def p_same_dob(self) -> float:
        return float(sum(s * s * self.q(y) for y, s in self.year_share.items()))


def sealed_states(
    con: duckdb.DuckDBPyConnection, relation: str = "registrations"
) -> tuple[list[str], list[str]]:
    """(sealed-only states, plaintext states) of ``relation``; ([], all) without encodings."""
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    if not set(SEALED_MARKERS) <= cols:
        states = [
            r[0]
            for r in con.execute(f"SELECT DISTINCT state FROM {relation} ORDER BY 1").fetchall()
        ]
        return [], states
    marked = " OR ".join(f"{c} IS NOT NULL" for c in SEALED_MARKERS)
    rows = con.execute(
        f"SELECT state, bool_or({marked}) FROM {relation} GROUP BY state ORDER BY state"
    ).fetchall()
    return [s for s, m in rows if m], [s for s, m in rows if not m]


def _persistent(name: str, con: duckdb.DuckDBPyConnection) -> str:
    """Qualified name of the non-temporary view or table ``name`` (the temp view shadows it)."""
    row = con.execute(
        "SELECT database_name, schema_name FROM duckdb_views() WHERE view_name = ? AND NOT temporary "
        "UNION ALL SELECT database_name, schema_name FROM duckdb_tables() "
        "WHERE table_name = ? AND NOT temporary LIMIT 1",
        [name, name],
    ).fetchall()
    if not row:
        raise UserError(f"no {name} in the workspace connection")
    db, schema = row[0]
    return f'"{db}"."{schema}"."{name}"'


def install_sealed_view(con: duckdb.DuckDBPyConnection) -> TokenDobModel | None:
    """On a sealed-only workspace, shadow ``registrations`` with the surrogate view (temp) and
    return the token model; on a plaintext one, change nothing and return None."""
    sealed, plain = sealed_states(con)
    if not sealed:
        return None
    if plain:
        raise UserError(
            f"the workspace mixes sealed-only states ({', '.join(sealed)}) with plaintext ones "
            f"({', '.join(plain)}): their names and dates cannot be compared, so estimates would "
            "miss every pair across the two; estimate them in separate workspaces"
        )
    source = _persistent("registrations", con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW registrations AS
        SELECT * REPLACE (first_name_bf AS first_name, last_name_bf AS last_name,
                          NULL::VARCHAR AS middle_name,
                          {SURROGATE_DOB} AS dob, {SURROGATE_YEAR} AS birth_year)
        FROM {source}
        """
    )
    return fit_token_dob_model(con, "registrations")


def fit_token_dob_model(con: duckdb.DuckDBPyConnection, relation: str) -> TokenDobModel:
    """Fit :class:`TokenDobModel` on the full-DOB records of a surrogate ``relation``."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _vr_tok AS
        SELECT first_name AS f, last_name AS l, birth_year AS y,
               split_part(dob, ':', 1) AS d, split_part(dob, ':', 2) AS ym,
               nullif(split_part(dob, ':', 3), '') AS sw, split_part(dob, ':', 4) AS md
        FROM {relation}
        WHERE dob_granularity = 'full' AND dob IS NOT NULL AND birth_year IS NOT NULL
          AND first_name IS NOT NULL AND last_name IS NOT NULL
        """
    )
    per_year = con.execute(
        f"""
        WITH y AS (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y),
             yn AS (SELECT y, {_pairs("c")} AS p FROM
                      (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y, f, l) GROUP BY y),
             yd AS (SELECT y, {_pairs("c")} AS p FROM
                      (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y, d) GROUP BY y),
             ydn AS (SELECT y, {_pairs("c")} AS p FROM
                      (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y, d, f, l) GROUP BY y),
             ym AS (SELECT y, {_pairs("c")} AS p FROM
                      (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y, ym) GROUP BY y),
             ymn AS (SELECT y, {_pairs("c")} AS p FROM
                      (SELECT y, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY y, ym, f, l) GROUP BY y),
             sw AS (SELECT a.y, sum(a.c * b.c) / 2 AS p
                    FROM (SELECT y, sw, count(*)::DOUBLE AS c FROM _vr_tok WHERE sw IS NOT NULL GROUP BY ALL) a
                    JOIN (SELECT y, d, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY ALL) b
                      ON a.y = b.y AND a.sw = b.d GROUP BY a.y),
             swn AS (SELECT a.y, sum(a.c * b.c) / 2 AS p
                    FROM (SELECT y, f, l, sw, count(*)::DOUBLE AS c FROM _vr_tok WHERE sw IS NOT NULL GROUP BY ALL) a
                    JOIN (SELECT y, f, l, d, count(*)::DOUBLE AS c FROM _vr_tok GROUP BY ALL) b
                      ON a.y = b.y AND a.f = b.f AND a.l = b.l AND a.sw = b.d GROUP BY a.y)
        SELECT y.y, y.c,
               y.c * (y.c - 1) / 2 - yn.p AS pairs,
               yd.p - ydn.p AS same_date,
               ym.p - ymn.p AS same_month,
               coalesce(sw.p, 0) - coalesce(swn.p, 0) AS swapped
        FROM y JOIN yn USING (y) JOIN yd USING (y) JOIN ydn USING (y) JOIN ym USING (y)
             JOIN ymn USING (y) LEFT JOIN sw USING (y) LEFT JOIN swn USING (y)
        ORDER BY y.y
        """
    ).fetchall()
    n_all, p_names, p_md, p_mdn = con.execute(
        f"""
        SELECT (SELECT count(*)::DOUBLE FROM _vr_tok),
               (SELECT {_pairs("c")} FROM (SELECT count(*)::DOUBLE AS c FROM _vr_tok GROUP BY f, l)),
               (SELECT {_pairs("c")} FROM (SELECT count(*)::DOUBLE AS c FROM _vr_tok GROUP BY md)),
               (SELECT {_pairs("c")} FROM (SELECT count(*)::DOUBLE AS c FROM _vr_tok GROUP BY md, f, l))
        """
    ).fetchall()[0]
    con.execute("DROP TABLE IF EXISTS _vr_tok")
    if not per_year:
        return TokenDobModel(q_by_year={}, q_pooled=1 / 365.25, p_far_pairs=1.0,
                             source="token frequencies (sealed-only; no full-DOB records)")  # fmt: skip
    all_pairs = n_all * (n_all - 1) / 2 - (p_names or 0.0)
    q_pool = ((p_md or 0.0) - (p_mdn or 0.0)) / all_pairs if all_pairs > 0 else 1 / 365.25
    q_pool = q_pool if q_pool > 0 else 1 / 365.25
    prior = PRIOR_COINCIDENCES / q_pool  # pseudo pairs
    q_by_year = {
        int(y): (same + PRIOR_COINCIDENCES) / (pairs + prior)
        for y, _c, pairs, same, _m, _s in per_year
    }
    pairs_total = sum(r[2] for r in per_year)
    near = sum(r[4] + r[5] for r in per_year)
    p_far = 1.0 - near / pairs_total if pairs_total > 0 else 1.0 - 1 / 12
    total = sum(r[1] for r in per_year)
    return TokenDobModel(
        q_by_year=q_by_year,
        q_pooled=q_pool,
        p_far_pairs=p_far,
        year_share={int(r[0]): r[1] / total for r in per_year},
    )


__all__ = [
    "FAR_SQL",
    "TokenDobModel",
    "fit_token_dob_model",
    "install_sealed_view",
    "sealed_states",
]
