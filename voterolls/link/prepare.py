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
``full_name``            first and last name (NULL if either is), for the
                         joint full-name level (term frequency of the pair).
``last_name_a/_b``       first and last part of a hyphenated / double surname
                         (``_b`` NULL for a one-part surname).
``dob_token``, ``ssn4_token``, ``residence_address``
                         as 63-bit hashes (:func:`compact_id_sql`): only
                         compared for equality, and Splink carries both sides
                         of every compared column through its pipeline.
``bk_*``                 capped blocking keys (see :mod:`voterolls.link.blocking`),
                         built from ``first_initial``, ``middle_initial`` and
                         ``last_sx`` (Soundex), which are then dropped.

Nothing here prints or logs a value; only counts leave this module.
"""

from __future__ import annotations

import duckdb

from voterolls.errors import UserError
from voterolls.normalize.phonetic import soundex_sql

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


def compact_id_sql(col: str) -> str:
    """A value used only for equality as a 63-bit integer (NULL stays NULL).

    Sealed tokens are 64-character hex strings and addresses run to 40; both
    are only ever compared for equality, and Splink copies each compared
    column of both sides through its pipeline.  A 64-bit hash keeps equality
    (two different values collide with probability ~2^-63 per pair compared,
    i.e. never in practice) at 8 bytes a side.
    """
    return f"CASE WHEN {col} IS NOT NULL THEN CAST(hash({col}) >> 1 AS BIGINT) END"


def last_name_parts_sql(base: str) -> str:
    """One row per distinct last name with its Soundex code and first / last part.

    Computed over distinct names (a tenth of the rows at 1M registrations)
    because Soundex is eight regular-expression passes.
    """
    tokens = (
        "list_filter(string_split(regexp_replace(last_name, '[^A-Z]+', ' ', 'g'), ' '), "
        "lambda t: t <> '')"
    )
    return f"""
    SELECT last_name,
           _last_tokens[1]                                          AS last_name_a,
           CASE WHEN len(_last_tokens) > 1 THEN _last_tokens[-1] END AS last_name_b,
           {soundex_sql("_last_letters", letters_only=True)}       AS last_sx
    FROM (
        SELECT last_name, regexp_replace(last_name, '[^A-Z]', '', 'g') AS _last_letters,
               {tokens} AS _last_tokens
        FROM (SELECT DISTINCT last_name FROM {base} WHERE last_name IS NOT NULL)
    )
    """


def derived_select_sql(base: str, last_parts: str | None = None) -> str:
    """SELECT over the cleaned relation adding comparison and blocking helper columns.

    ``last_parts``: a relation from :func:`last_name_parts_sql` (computed
    inline when None).
    """
    parts = last_parts or f"({last_name_parts_sql(base)})"
    return f"""
    SELECT
        b.unique_id, b."state", b."state_voter_id", b.dob_granularity,
        b.first_name, b.first_name_canonical, b.last_name, b.middle_name, b.name_suffix,
        b.first_name || ' ' || b.last_name                      AS full_name,
        b.dob,
        CAST(coalesce(year(b.dob), b.birth_year_published) AS INTEGER) AS birth_year,
        CASE WHEN day(b.dob) <= 12 AND day(b.dob) <> month(b.dob)
             THEN make_date(year(b.dob), day(b.dob), month(b.dob)) END AS dob_swapped,
        b.gender,
        {compact_id_sql("b.residence_address")}                 AS residence_address,
        b.residence_zip5,
        {compact_id_sql("b.ssn4_token")}                        AS ssn4_token,
        {compact_id_sql("b.dob_token")}                         AS dob_token,
        p.last_name_a, p.last_name_b,
        substr(b.first_name, 1, 1)                              AS first_initial,
        substr(b.middle_name, 1, 1)                             AS middle_initial,
        p.last_sx
    FROM {base} b LEFT JOIN {parts} p ON p.last_name = b.last_name
    """


#: Columns only used to build the capped blocking keys; not carried into Splink.
KEY_ONLY_COLUMNS = ("first_initial", "middle_initial", "last_sx")


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
    capped_dropped: dict[str, int] | None = None,
) -> int:
    """Create table ``target`` (linkage input with capped blocking keys) from ``source``.

    Returns the number of registrations; ``capped_dropped``, if given, is
    filled with the registrations that lost each capped key to the cap.  Duplicate ``(state, state_voter_id)``
    are a workspace fault, reported as a :class:`UserError` with the count.
    """
    from voterolls.link.blocking import DEFAULT_BLOCK_CAP, create_capped_keys

    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    check_columns(present)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _link_base AS {base_select_sql(source, present)}"
    ).fetchall()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _link_last AS {last_name_parts_sql('_link_base')}"
    ).fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _link_derived AS "
        + derived_select_sql("_link_base", "_link_last")
    ).fetchall()
    con.execute("DROP TABLE IF EXISTS _link_base").fetchall()
    con.execute("DROP TABLE IF EXISTS _link_last").fetchall()
    # No ORDER BY: Splink samples by a hash of unique_id, so row order changes nothing.
    dropped = create_capped_keys(
        con, "_link_derived", target, block_cap or DEFAULT_BLOCK_CAP, drop=KEY_ONLY_COLUMNS
    )
    if capped_dropped is not None:
        capped_dropped.update(dropped)
    con.execute("DROP TABLE IF EXISTS _link_derived").fetchall()
    return one_row_per_registration(con, target)


def one_row_per_registration(con, target: str) -> int:
    """The rows of the prepared input ``target``; a UserError when two share a registration's id."""
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
