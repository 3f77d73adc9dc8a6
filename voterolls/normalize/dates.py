"""Date-of-birth plausibility as DuckDB SQL expressions.

A voter file's DOB is often a placeholder (``1900-01-01`` for "not known",
``1800-01-01``, the SQL Server minimum ``1753-01-01``).  Left in, placeholders
make thousands of unrelated people share a birthday and so look like
duplicates; they are therefore set to NULL at ingest (with the birth year they
imply) and counted as ``dob:nulled`` in the uniformity report.  Dates that are
possible but unlikely for a voter (older than 1900, younger than 17: some
states pre-register 16-year-olds) are kept and only reported as implausible.
"""

from __future__ import annotations

import datetime as dt

#: DOB values that stand for "unknown" rather than a birthday.
PLACEHOLDER_DOBS = (
    "1753-01-01", "1800-01-01", "1850-01-01", "1888-08-08", "1899-12-31",
    "1900-01-01", "1901-01-01", "1111-11-11",
)  # fmt: skip

#: Earliest plausible birth date / year of a living voter.
EARLIEST = dt.date(1900, 1, 1)
#: Minimum plausible age in years (pre-registration starts at 16 in some states).
MIN_AGE_YEARS = 17


def placeholder_sql(dob: str) -> str:
    """True when ``dob`` is a known placeholder or lies in the future (not a real birthday)."""
    # OR of equalities, not IN (...): DuckDB turns a long IN list into a join.
    eqs = " OR ".join(f"{dob} = DATE '{d}'" for d in PLACEHOLDER_DOBS)
    return f"({eqs} OR {dob} > current_date)"


def dob_plausible_sql(dob: str) -> str:
    """True when a full DOB is 1900-01-01 .. today minus 17 years and not a placeholder."""
    return (
        f"({dob} BETWEEN DATE '{EARLIEST.isoformat()}' "
        f"AND CAST(current_date - INTERVAL {MIN_AGE_YEARS} YEAR AS DATE) "
        f"AND NOT {placeholder_sql(dob)})"
    )


def birth_year_plausible_sql(year: str) -> str:
    """True when a birth year is 1901 .. this year minus 17 (1900 is the usual placeholder year)."""
    return f"({year} BETWEEN {EARLIEST.year + 1} AND year(current_date) - {MIN_AGE_YEARS})"


def birth_year_invalid_sql(year: str) -> str:
    """True for a birth year no living voter can have (before 1850 or in the future)."""
    return f"({year} < 1850 OR {year} > year(current_date))"


def registration_date_plausible_sql(d: str) -> str:
    return f"({d} BETWEEN DATE '1900-01-01' AND current_date)"
