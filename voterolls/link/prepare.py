"""Turn workspace registrations into the linkage input table.

Splink compares columns; this module derives, once and in DuckDB SQL, every
column the comparisons and blocking rules need, so that the comparisons
themselves stay plain equalities / similarities that run unchanged on DuckDB
and on Spark (Spark never sees this SQL: it reads the Parquet this writes).

Derived columns and why:

``unique_id``            ``state:state_voter_id``; Splink needs one id column.
``dob``                  the public full date, NULL for placeholders
                         (1900-01-01 and earlier, or in the future): a
                         placeholder shared by thousands of legacy records is
                         not evidence and would make a giant block.
``birth_year``           from ``dob`` or the published year (same cleaning).
``dob_swapped``          the date with day and month exchanged (only where the
                         day is <= 12 and differs from the month), for the
                         "transposed" level.
``last_name_a/_b``       first and last part of a hyphenated / double surname
                         (``_b`` NULL for a one-part surname).
``first_initial``, ``middle_initial``, ``last_sx`` (a Soundex code) for blocking.
``bk_*``                 capped blocking keys (see :mod:`voterolls.link.blocking`).

Nothing here prints or logs a value; only counts leave this module.
"""

from __future__ import annotations

import duckdb

from voterolls.errors import UserError

#: Columns of REGISTRATION_SCHEMA the linkage reads.  Others are ignored.
REQUIRED_COLUMNS = ("state", "state_voter_id", "dob_granularity")
OPTIONAL_COLUMNS = (
    "last_name",
    "first_name",
    "middle_name",
    "name_suffix",
    "first_name_canonical",
    "dob",
    "birth_year",
    "gender",
    "residence_address",
    "residence_zip5",
    "ssn4_token",
    "dob_token",
)

#: Earliest plausible birth date; anything on or before is a placeholder.
PLACEHOLDER_DOB = "1900-01-01"


def soundex_sql(col: str, *, letters_only: bool = False) -> str:
    """American Soundex of ``col`` as a DuckDB expression (DuckDB has no built-in).

    Letters map to digit classes, H and W vanish without separating, vowels
    separate; runs of one digit collapse; the first letter is kept and the
    code is padded to four characters.  Only used to build blocking keys, so
    edge cases (a name starting with H or W) only shift a block boundary.
    ``letters_only``: ``col`` already holds only the letters A-Z (saves a regex).
    """
    letters = col if letters_only else f"regexp_replace(upper({col}), '[^A-Z]', '', 'g')"
    coded = f"translate({letters}, 'AEIOUYBFPVCGJKQSXZDTLMNRHW', '000000111122222222334556')"
    # collapse runs of one digit with a single regex pass per digit class
    collapsed = coded
    for d in "0123456":
        collapsed = f"regexp_replace({collapsed}, '{d}{d}+', '{d}', 'g')"
    tail = f"replace(substr({collapsed}, 2), '0', '')"
    return (
        f"CASE WHEN {letters} = '' THEN NULL ELSE "
        f"substr({letters}, 1, 1) || rpad(substr({tail}, 1, 3), 3, '0') END"
    )


def _col(present: set[str], name: str, cast: str = "VARCHAR") -> str:
    return f'"{name}"' if name in present else f"NULL::{cast}"


def base_select_sql(source: str, present: set[str]) -> str:
    """SELECT that cleans ``source`` (a relation with registration columns)."""
    c = lambda n, t="VARCHAR": _col(present, n, t)  # noqa: E731
    clean = lambda e: f"nullif(trim(upper({e})), '')"  # noqa: E731
    dob = (
        f"CASE WHEN TRY_CAST({c('dob', 'DATE')} AS DATE) > DATE '{PLACEHOLDER_DOB}' "
        f"AND TRY_CAST({c('dob', 'DATE')} AS DATE) <= current_date "
        f"THEN TRY_CAST({c('dob', 'DATE')} AS DATE) END"
    )
    by_raw = f"TRY_CAST({c('birth_year', 'INTEGER')} AS INTEGER)"
    first = clean(c("first_name"))
    canon = f"coalesce({clean(c('first_name_canonical'))}, {first})"
    last = clean(c("last_name"))
    middle = clean(c("middle_name"))
    return f"""
    SELECT
        "state" || ':' || "state_voter_id"            AS unique_id,
        "state", "state_voter_id", "dob_granularity",
        {first}                                        AS first_name,
        {canon}                                        AS first_name_canonical,
        {last}                                         AS last_name,
        {middle}                                       AS middle_name,
        {clean(c("name_suffix"))}                      AS name_suffix,
        {dob}                                          AS dob,
        CASE WHEN {by_raw} > 1900 AND {by_raw} <= year(current_date)
             THEN {by_raw} END                         AS birth_year_published,
        CASE WHEN upper({c("gender")}) IN ('M', 'F') THEN upper({c("gender")}) END AS gender,
        {clean(c("residence_address"))}                AS residence_address,
        nullif(trim({c("residence_zip5")}), '')        AS residence_zip5,
        nullif(trim({c("ssn4_token")}), '')            AS ssn4_token,
        nullif(trim({c("dob_token")}), '')             AS dob_token
    FROM {source}
    """


def derived_select_sql(base: str) -> str:
    """SELECT over the cleaned relation adding comparison and blocking helper columns."""
    tokens = (
        "list_filter(string_split(regexp_replace(last_name, '[^A-Z]+', ' ', 'g'), ' '), "
        "lambda t: t <> '')"
    )
    return f"""
    SELECT
        unique_id, "state", "state_voter_id", dob_granularity,
        first_name, first_name_canonical, last_name, middle_name, name_suffix,
        dob,
        CAST(coalesce(year(dob), birth_year_published) AS INTEGER) AS birth_year,
        CASE WHEN day(dob) <= 12 AND day(dob) <> month(dob)
             THEN make_date(year(dob), day(dob), month(dob)) END AS dob_swapped,
        gender, residence_address, residence_zip5, ssn4_token, dob_token,
        _last_tokens[1]                                          AS last_name_a,
        CASE WHEN len(_last_tokens) > 1 THEN _last_tokens[-1] END AS last_name_b,
        substr(first_name, 1, 1)                                AS first_initial,
        substr(middle_name, 1, 1)                               AS middle_initial,
        {soundex_sql("_last_letters", letters_only=True)}       AS last_sx
    FROM (
        SELECT *, regexp_replace(last_name, '[^A-Z]', '', 'g') AS _last_letters,
               {tokens} AS _last_tokens
        FROM {base}
    )
    """


def check_columns(present: set[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise UserError(
            "the registrations relation lacks required column(s) " + ", ".join(missing),
            field=missing[0],
        )


def prepare_input(
    con: duckdb.DuckDBPyConnection,
    source: str = "registrations",
    target: str = "link_input",
    *,
    block_cap: int | None = None,
) -> int:
    """Create table ``target`` (linkage input with capped blocking keys) from ``source``.

    Returns the number of registrations.  Duplicate ``(state, state_voter_id)``
    are a workspace fault, reported as a :class:`UserError` with the count.
    """
    from voterolls.link.blocking import DEFAULT_BLOCK_CAP, blocking_keys_sql

    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    check_columns(present)
    con.execute(f"CREATE OR REPLACE TEMP VIEW _link_base AS {base_select_sql(source, present)}")
    # Materialise the derived columns once (regexes), then count blocks over the table.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _link_derived AS {derived_select_sql('_link_base')}"
    ).fetchall()
    keys = blocking_keys_sql("_link_derived", block_cap or DEFAULT_BLOCK_CAP)
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {keys} ORDER BY unique_id").fetchall()
    con.execute("DROP TABLE IF EXISTS _link_derived").fetchall()
    n, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT unique_id) FROM {target}"
    ).fetchall()[0]
    if n != distinct:
        raise UserError(
            f"{n - distinct} registrations share a (state, state_voter_id) with another; "
            "the workspace must hold one row per registration",
            field="state_voter_id",
        )
    return int(n)
