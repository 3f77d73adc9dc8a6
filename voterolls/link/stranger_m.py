"""m of the name and DOB comparisons with the expected strangers counted out, not guessed by EM.

Why.  EM learns m from blocks (pairs agreeing on some fields) by splitting
the pairs into a match and a non-match class.  At national birthday density
the blocks fill with strangers: at 1M registrations folded into one birth
year, the pairs sharing (DOB, middle name) were 5,500 true pairs and 888,000
strangers, and first names are correlated with middle names (both follow
gender), so strangers agree on the first name about twice as often as the
random-sample u says.  EM took the excess for matches "with a changed
surname": m(surname differs) 0.33 against 0.015 true, m(DOB differs) 0.105
against 0.00005 (bench/link_ceiling.py, docs/LINKAGE.md).

How.  For a target comparison ``k`` take the block of pairs agreeing on the
other identifying fields ``K`` (e.g. for the surname: full DOB, canonical
first name, middle name).  Its pairs are matches and strangers; the number
of strangers is *counted*, not estimated by EM: strangers agree on the
coincidence field ``c`` of ``K`` (the DOB, or the surname for the DOB
target) only by chance, so

    S = sum over strata of  pairs sharing (K - c) x P(c agrees by chance)

with P(exact DOB) = q(y), the within-birth-year birthday probability of the
data (sum of squared date shares per year, the birthday model of
:mod:`voterolls.stats.coincidence`), and P(same surname) the sum of squared
surname shares.  Pairs sharing (K - c) are almost all strangers (millions
against thousands of matches).  The strangers' levels of ``k`` follow u (the
random sample), so per level

    m_k(level) = (count(level) - S u_k(level)) / (pairs - S)

clipped at 0 and renormalised.  Assumes the coincidence field is independent
of the others among strangers (a date of birth is independent of the name
within a birth year; a surname of the first and middle name).  Applied only
where the block holds enough matches after the strangers are counted out
(:data:`MIN_MATCHES`, :data:`MAX_STRANGER_SHARE`); otherwise EM's m stays.
Nothing here reads or logs a value, only counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from voterolls.log import get_logger

log = get_logger(__name__)

#: A block must keep at least this many expected matches after the strangers are
#: counted out, or EM's m is kept (too few to estimate a distribution).
MIN_MATCHES = 50.0
#: ... and strangers may be at most this share of its pairs (beyond it the
#: subtraction is dominated by the count of strangers and its error).
MAX_STRANGER_SHARE = 0.8


@dataclass(frozen=True)
class StrangerBlock:
    """One target comparison: the block that estimates it and its coincidence field."""

    comparison: str
    block: tuple[str, ...]
    coincidence: str  # one of ``block``: agreement among strangers by chance only
    strata: tuple[str, ...] = ()  # chance agreement computed within these (birth year for DOB)
    needs: tuple[str, ...] = ()  # further fields the comparison reads (must be present)
    #: a field that, carried by both records, sends the pair to another comparison: such
    #: pairs are not the target's, so their strangers are not counted (``dob`` for the token)
    elsewhere_if_both: str | None = None


#: The comparisons EM gets most wrong at density (their "differs" levels).
TARGETS: tuple[StrangerBlock, ...] = (
    StrangerBlock("last_name", ("dob", "first_name_canonical", "middle_name"), "dob", ("birth_year",), ("last_name",)),
    StrangerBlock("first_name", ("dob", "last_name", "middle_name"), "dob", ("birth_year",), ("first_name",)),
    StrangerBlock("middle_name", ("dob", "first_name_canonical", "last_name"), "dob", ("birth_year",)),
    StrangerBlock("dob", ("first_name_canonical", "last_name", "middle_name"), "last_name", (), ("dob",)),
    # the sealed DOB token is compared where a side publishes no full date (a year-only or
    # no-DOB state that sealed its dates): EM on name blocks takes strangers for matches with a
    # different date there as it did for the public date (m of "different" 0.16 against 2e-5 true
    # at 1M, docs/LINKAGE.md)
    StrangerBlock(
        "dob_token", ("first_name_canonical", "last_name", "middle_name"), "last_name", (), ("dob_token",), "dob"
    ),
)


@dataclass(frozen=True)
class StrangerM:
    comparison: str
    block: tuple[str, ...]
    pairs: int
    strangers_expected: float
    m: list[float]  # per non-null level, in the model's order (first level = gamma n-1)
    applied: bool

    def as_dict(self) -> dict:
        return {
            "comparison": self.comparison,
            "block": list(self.block),
            "pairs": self.pairs,
            "strangers_expected": round(self.strangers_expected, 1),
            "matches_expected": round(self.pairs - self.strangers_expected, 1),
            "m": [round(v, 6) for v in self.m],
            "applied": self.applied,
        }


def _q(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _strangers_sql(table: str, t: StrangerBlock, where: str) -> str:
    """Expected stranger pairs among the records of ``table`` matching ``where`` (see below)."""
    rest = ", ".join(_q(c) for c in t.block if c != t.coincidence)
    stratum = " || '|' || ".join(f"CAST({_q(c)} AS VARCHAR)" for c in t.strata) or "''"
    cols = ", ".join(_q(c) for c in t.block)
    return f"""
    WITH pop AS (SELECT {cols}, {stratum} AS _s FROM {table} WHERE {where}),
    co AS (SELECT _s, count(*) AS c FROM pop GROUP BY _s, {_q(t.coincidence)}),
    ch AS (SELECT _s, (sum(c * c) - sum(c)) / nullif(sum(c) * (sum(c) - 1), 0) AS p FROM co GROUP BY _s),
    rc AS (SELECT _s, count(*) AS c FROM pop GROUP BY _s, {rest}),
    rp AS (SELECT _s, sum(c * (c - 1) / 2.0) AS pairs FROM rc GROUP BY _s)
    SELECT coalesce(sum(rp.pairs * coalesce(ch.p, 0)), 0) FROM rp JOIN ch ON rp._s = ch._s
    """


def expected_strangers_sql(table: str, t: StrangerBlock) -> str:
    """One row: expected stranger pairs in the block of ``t`` (pairs sharing the rest x chance agreement).

    Chance agreement of the coincidence field within a stratum is
    ``(sum c^2 - n) / (n (n - 1))`` over the stratum's records (the
    probability that two different records agree on it).  With
    ``elsewhere_if_both`` the pairs of two records that both carry that field
    are scored on another comparison: their expected strangers (the same sum
    over those records alone) are taken off.
    """
    pop = " AND ".join(f"{_q(c)} IS NOT NULL" for c in (*t.block, *t.strata, *t.needs))
    if t.elsewhere_if_both is None:
        return _strangers_sql(table, t, pop)
    sub = f"{pop} AND {_q(t.elsewhere_if_both)} IS NOT NULL"
    return (
        f"SELECT ({_strangers_sql(table, t, pop)}) - ({_strangers_sql(table, t, sub)})"
    )


def block_level_counts_sql(table: str, t: StrangerBlock, gamma_case: str, columns: list[str]) -> str:
    """Counts of the target's comparison levels over the pairs of the block (gamma -1 excluded)."""
    on = " AND ".join(f"l.{_q(c)} = r.{_q(c)}" for c in t.block)
    cols = ", ".join(f"l.{_q(c)} AS {_q(c + '_l')}, r.{_q(c)} AS {_q(c + '_r')}" for c in columns)
    return f"""
    SELECT g, count(*) FROM (
        SELECT {gamma_case} AS g FROM (
            SELECT {cols} FROM {table} l JOIN {table} r ON {on} AND l.unique_id < r.unique_id) x
    ) y WHERE g >= 0 GROUP BY g
    """


def corrected_m(counts: dict[int, int], u: list[float | None], strangers: float) -> tuple[list[float], float]:
    """(m per level in model order, expected matches) from level counts, u and expected strangers.

    ``counts`` by gamma value (the first non-null level is gamma ``len(u) - 1``).
    """
    n = len(u)
    pairs = sum(counts.values())
    matches = pairs - strangers
    raw = [max(counts.get(n - 1 - i, 0) - strangers * (u[i] or 0.0), 0.0) for i in range(n)]
    total = sum(raw)
    if total <= 0 or matches <= 0:
        return [0.0] * n, matches
    return [v / total for v in raw], matches


def estimate(engine, table: str, comparisons: dict, present: set[str]) -> list[StrangerM]:
    """Stranger-corrected m of each :data:`TARGETS` comparison the model and data have.

    ``comparisons``: output column name -> (gamma CASE SQL, input columns it
    reads, u per non-null level); ``present``: columns of ``table`` that carry
    data for training.
    """
    out = []
    for t in TARGETS:
        if t.comparison not in comparisons:
            continue
        if not all(c in present for c in (*t.block, *t.strata, *t.needs)):
            continue
        case, columns, u = comparisons[t.comparison]
        strangers = float(engine.row(expected_strangers_sql(table, t))[0] or 0.0)
        g, k = engine.columns(block_level_counts_sql(table, t, case, columns))
        counts = {int(a): int(b) for a, b in zip(g, k, strict=True)}
        m, matches = corrected_m(counts, u, strangers)
        pairs = sum(counts.values())
        ok = matches >= MIN_MATCHES and strangers <= MAX_STRANGER_SHARE * pairs
        out.append(StrangerM(t.comparison, t.block, pairs, strangers, m, ok))
        log.info(
            "stranger-corrected m: %s pairs=%s strangers=%.1f applied=%s",
            t.comparison, pairs, strangers, ok,
        )
    return out
