"""The vote-record error rate, learnt from records that cannot have voted.

A "voted" mark on a record that cannot have cast the ballot is a clerical
error: a registration made after the election, or an application the state
denied.  The share of such records carrying a mark estimates ``b``, the chance
that a non-voting record receives a false mark, with a binomial standard
error; ``b`` is what creates apparent double votes (a stale registration of a
person who voted once, falsely marked).  The per-vote error rate follows as
``e = b (R - V) / V`` (``V`` votes, ``R`` live registrations), the
parametrisation of :func:`voterolls.stats.estimators.error_probabilities`.

Assumption (docs/METHODS.md §2.2): false marks land on these records at the
rate they land on live non-voting registrations.  Cancelled records are not
used: a record cancelled after the election may carry its holder's real vote
(the schema holds no cancellation date).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from voterolls.sql import literal

#: Fewer records that cannot have voted than this: no evidence, fall back.
MIN_EVIDENCE = 200


@dataclass(frozen=True)
class ErrorRate:
    """The vote-record error rate used, its standard error and where it came from."""

    rate: float
    se: float
    source: str  # "learnt" | "override" | "default"
    evidence: dict | None = None

    def as_dict(self) -> dict:
        return {
            "error_rate": self.rate,
            "error_rate_se": round(self.se, 6),
            "source": {
                "learnt": "learnt from the data (vote marks on records that cannot have voted)",
                "override": "override (--error-rate): assumed, not learnt",
                "default": "assumed default: too few records that cannot have voted to learn it",
            }[self.source],
            "evidence": self.evidence,
        }


def learn(
    con: duckdb.DuckDBPyConnection,
    vote_states: list[str],
    election: str,
    voters: int,
    registrations: int,
    fallback: float,
) -> ErrorRate:
    """Estimate the error rate from ``_vr_all`` (all records, with ``live`` and ``voted``)."""
    lst = ", ".join(literal(s) for s in vote_states) or "''"
    rows = con.execute(
        f"""
        SELECT reason, count(*), count(*) FILTER (WHERE voted) FROM (
            SELECT voted, CASE WHEN registration_date > DATE {literal(election)}
                               THEN 'registered_after_election' ELSE 'denied' END AS reason
            FROM _vr_all
            WHERE state IN ({lst})
              AND (registration_date > DATE {literal(election)} OR status = 'denied'))
        GROUP BY 1 ORDER BY 1
        """
    ).fetchall()
    by = {r: {"records": int(n), "recorded_voting": int(k)} for r, n, k in rows}
    n = sum(v["records"] for v in by.values())
    k = sum(v["recorded_voting"] for v in by.values())
    if n < MIN_EVIDENCE or voters <= 0 or registrations <= voters:
        return ErrorRate(fallback, 0.0, "default", {"records_that_cannot_have_voted": by})
    b = k / n
    se_b = math.sqrt(max(k, 1) * (1 - b)) / n  # binomial; one mark's worth when none seen
    scale = (registrations - voters) / voters
    return ErrorRate(
        b * scale,
        se_b * scale,
        "learnt",
        {
            "records_that_cannot_have_voted": by,
            "false_mark_rate": round(b, 6),
            "false_mark_rate_se": round(se_b, 6),
        },
    )
