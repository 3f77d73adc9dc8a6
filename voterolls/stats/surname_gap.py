"""Same-person pairs with a changed surname where a record has the birth year only.

Linkage only scores the pairs a blocking rule generates
(``voterolls.link.blocking``).  Where both records carry a full DOB, a changed
surname (marriage, divorce) is still compared: the rule on full DOB + first
name pairs them.  Where a record has the birth year only, every rule that
works without the date needs the surname (or its Soundex) to agree, so such
pairs are almost never scored (2 of 89 in a 50,000-person nation of the
``movers`` process) and no estimator resting on the scored pairs can count
them.  A blocking rule on first name + birth year would not help: at a national
file's density those blocks are all namesakes, the cap drops them, and a pair
agreeing on first name and year alone carries too little evidence for a
probability worth summing.

So that gap is counted by extrapolation from the full-DOB level, where it is
measured: ``share`` = same-person pairs whose surnames differ (linkage mass,
the low band counted at its calibration, as the combined estimate counts it) per
same-person pair agreeing on first + last + DOB (the rule net).  The year level's
pairs with a different surname are then ``share * D_year`` (``D_year`` the
year-level rule-net count, the pairs agreeing on first + last + birth year);
the little linkage mass those pairs did get is taken out of the combined
estimate in exchange, so nothing is counted twice.  Assumes a surname changes
as often between a full-DOB state and a year-only one as between two full-DOB
states (the state publishing the DOB has nothing to do with who marries).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from voterolls.stats.estimators import Count, LowBandCalibration, splink_sums

#: Below this many same-person pairs at the full-DOB level the share is not measured.
MIN_FULL_PAIRS = 30.0


@dataclass(frozen=True)
class SurnameGap:
    """Share of same-person pairs with a different surname, measured at the full-DOB level."""

    share: float
    #: relative variance of ``share``
    rel_var: float
    #: linkage mass (low band at its calibration) of full-DOB pairs with differing surnames
    full_mass: float
    measured: bool

    def count(self, year: Count, year_scored: Count, k_transfer: float) -> Count:
        """Pairs to add to a combined estimate whose year-level rule-net part is ``year``.

        ``share * year`` replaces ``year_scored`` (the linkage mass already counted for
        year-level pairs with a different surname).  Variance: the share's (relative
        variance times the term squared), the realised number of such pairs (Poisson),
        the covariance through ``year`` (also in the combined estimate, with
        coefficient 1: ``(2 share + share^2) Var(year)``) and through the full-DOB
        linkage mass (``2 k^2 full_mass * term``: a miscalibration of the non-exact
        mass moves both), and ``year_scored``'s own.
        """
        if not self.measured:
            return Count(0.0, 0.0)
        term = self.share * max(year.estimate, 0.0)
        var = (
            self.rel_var * term**2
            + term
            + (2 * self.share + self.share**2) * year.variance
            + 2 * k_transfer**2 * term * self.full_mass
            + year_scored.variance
        )
        return Count(term - year_scored.estimate, max(var, 0.0))


def counted_mass(
    con: duckdb.DuckDBPyConnection,
    lowcal: LowBandCalibration,
    link_threshold: float,
    **where: object,
) -> Count:
    """Linkage mass of non-exact pairs as the combined estimate counts it.

    Pairs at or above ``link_threshold`` with their probabilities, the band below
    times the low-band calibration factor; ``where``: :func:`splink_sums` filters.
    """
    hi = splink_sums(con, exact=False, min_p=link_threshold, **where).values()
    lo = splink_sums(con, exact=False, min_p=link_threshold, below=True, **where).values()
    est = sum(v[0] for v in hi) + lowcal.factor * sum(v[0] for v in lo)
    var = sum(v[1] for v in hi) + lowcal.factor * sum(v[1] for v in lo)
    return Count(est, var)


def measure(
    con: duckdb.DuckDBPyConnection,
    full: Count,
    lowcal: LowBandCalibration,
    link_threshold: float,
    k_transfer: float,
    *,
    cross: bool = True,
) -> SurnameGap:
    """:class:`SurnameGap` from the scored pairs (``_vr_pairs``) and the full-DOB rule net ``full``.

    Relative variance of the share: the full-DOB mass as a realised count of
    pairs (Poisson) plus its calibration (``k_transfer``, as for the combined
    estimate's non-exact part), and the rule net's.  Not measured (nothing added)
    with fewer than :data:`MIN_FULL_PAIRS` same-person pairs at the full-DOB level.
    """
    if full.estimate < MIN_FULL_PAIRS:
        return SurnameGap(0.0, 0.0, 0.0, False)
    mass = counted_mass(con, lowcal, link_threshold, cross=cross, level="full", last_differs=True)
    b = max(mass.estimate, 0.0)
    share = b / full.estimate
    rel_var = (1.0 / b + k_transfer**2 if b > 0 else 0.0) + full.variance / full.estimate**2
    return SurnameGap(share, rel_var, b, True)


def year_scored(
    con: duckdb.DuckDBPyConnection,
    lowcal: LowBandCalibration,
    link_threshold: float,
    *,
    cross: bool = True,
    states: list[str] | None = None,
) -> Count:
    """Linkage mass already counted for year-level pairs with a different surname."""
    return counted_mass(
        con, lowcal, link_threshold, cross=cross, level="year", last_differs=True, states=states
    )


def describe(gap: SurnameGap, added: Count, scored: Count) -> dict:
    """JSON form for the output (``combined.surname_change_gap``)."""
    return {
        "method": "year-level same-person pairs with a different surname (no blocking rule "
        "pairs them), extrapolated from the full-DOB level: share of such pairs per "
        "first + last + DOB pair there, times the year-level rule-net count, in place of "
        "the linkage mass they got",
        "measured": gap.measured,
        "share_at_full_dob_level": round(gap.share, 4),
        "share_relative_se": round(gap.rel_var**0.5, 4),
        "year_level_linkage_mass_replaced": round(scored.estimate, 2),
        "counted": round(added.estimate, 2),
        "se": round(added.se, 3),
    }
