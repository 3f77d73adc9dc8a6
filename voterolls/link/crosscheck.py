"""The Interstate Crosscheck rule, as a baseline: exact first + last name + full DOB, across states.

Crosscheck (2005-2019) flagged two registrations in different states as a
"potential duplicate" when first name, last name and full date of birth were
identical.  Published evaluation (Goel et al., APSR 2020) found most such
pairs are different people who share a common name and a birthday.  We
reproduce the rule exactly so that ``evaluate``, ``estimate`` and the bench
can put its precision and recall beside the probabilistic model's.

Names are compared as the workspace stores them (upper case, accents folded,
suffix split off); registrations without a full public DOB cannot be flagged
(the rule needs one), which is part of why it misses duplicates in states
that publish only a birth year or nothing.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

CROSSCHECK_COLUMNS = ("state_l", "state_voter_id_l", "state_r", "state_voter_id_r")


def crosscheck_sql(source: str = "registrations") -> str:
    """SQL for the Crosscheck pairs of ``source`` (one row per pair, left state < right state)."""
    return f"""
    WITH r AS (
        SELECT state, state_voter_id,
               nullif(trim(upper(first_name)), '') AS f,
               nullif(trim(upper(last_name)), '') AS l,
               TRY_CAST(dob AS DATE) AS d
        FROM {source}
        WHERE dob IS NOT NULL AND first_name IS NOT NULL AND last_name IS NOT NULL
    )
    SELECT a.state AS state_l, a.state_voter_id AS state_voter_id_l,
           b.state AS state_r, b.state_voter_id AS state_voter_id_r
    FROM r a JOIN r b ON a.f = b.f AND a.l = b.l AND a.d = b.d AND a.state < b.state
    """


def crosscheck_pairs(con: duckdb.DuckDBPyConnection, source: str = "registrations") -> pa.Table:
    """The Crosscheck rule's pairs as an Arrow table (columns :data:`CROSSCHECK_COLUMNS`)."""
    return con.sql(crosscheck_sql(source) + " ORDER BY 1, 2, 3, 4").to_arrow_table()


def crosscheck_count(con: duckdb.DuckDBPyConnection, source: str = "registrations") -> int:
    """Number of pairs the Crosscheck rule would flag."""
    return int(con.execute(f"SELECT count(*) FROM ({crosscheck_sql(source)})").fetchall()[0][0])
