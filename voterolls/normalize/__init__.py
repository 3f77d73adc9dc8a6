"""Normalisation: every state's values brought to one comparable form, in SQL.

Two steps, both lazy DuckDB projections (no Python per row):

* :func:`clean_dates` runs *before* the disclosure policy: it removes DOB
  placeholders (``1900-01-01`` ...) so that the policy generalises a real
  birthday, never a placeholder, into a birth year;
* :func:`normalize_registrations` runs *after* the policy: names (case,
  accents, punctuation, suffixes, nicknames), address, city, ZIP, phone and
  e-mail (see :mod:`.names`, :mod:`.address`, :mod:`.dates`).

Each step appends tags ``<field>:repaired`` / ``<field>:nulled`` /
``name_suffix:split`` to the row's ``_issues`` list; ingest counts them for the
uniformity report and then drops the list.  Tags name fields, never values.
"""

from __future__ import annotations

import itertools

import duckdb

from voterolls.normalize import address, dates, names
from voterolls.normalize.names import canonical_first_names
from voterolls.sql import identifier

__all__ = ["clean_dates", "normalize_registrations", "canonical_first_names", "ISSUES_COLUMN"]

ISSUES_COLUMN = "_issues"

_view_ids = itertools.count()


def _view(rel: duckdb.DuckDBPyRelation) -> str:
    """Register ``rel`` as a uniquely named temporary view (lazy) and return its name."""
    name = f"_vr_norm_{next(_view_ids)}"
    rel.create_view(name, replace=True)
    return name


def _issues_expr(cols: set[str]) -> str:
    return f"coalesce({ISSUES_COLUMN}, []::VARCHAR[])" if ISSUES_COLUMN in cols else "[]::VARCHAR[]"


def _append_tags(cols: set[str], tags: list[str]) -> str:
    lst = "[" + ", ".join(tags) + "]::VARCHAR[]"
    return f"list_concat({_issues_expr(cols)}, list_filter({lst}, lambda t: t IS NOT NULL)) AS {ISSUES_COLUMN}"


def _replace(cols: list[str], repl: dict[str, str]) -> str:
    """``SELECT`` list: every column, with those in ``repl`` replaced (same order)."""
    out = []
    for c in cols:
        q = identifier(c)
        out.append(f"{repl[c]} AS {q}" if c in repl else q)
    return ", ".join(out)


def clean_dates(rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """Null placeholder DOBs (and the birth year they imply) and impossible birth years."""
    cols = list(rel.columns)
    colset = set(cols)
    if "dob" not in colset and "birth_year" not in colset:
        return rel
    types = {c: str(t).upper() for c, t in zip(rel.columns, rel.types, strict=True)}

    def typed(col: str, sql_type: str) -> str:
        if col not in colset:
            return f"NULL::{sql_type}"
        return f'"{col}"' if types[col] == sql_type else f'TRY_CAST("{col}" AS {sql_type})'

    dob = typed("dob", "DATE")
    by = typed("birth_year", "SMALLINT")
    # stage A: the two flags, computed once; stage B: apply them
    flags = (
        f"coalesce({dates.placeholder_sql(dob)}, false) AS __ph, "
        f"coalesce({dates.birth_year_invalid_sql(by)}, false) AS __bad_by"
    )
    rel = rel.project(f"*, {flags}")
    new_dob = f"(CASE WHEN __ph THEN NULL ELSE {dob} END)"
    new_by = f"(CASE WHEN __ph OR __bad_by THEN NULL ELSE coalesce({by}, CAST(year({dob}) AS SMALLINT)) END)"
    repl: dict[str, str] = {}
    if "dob" in colset:
        repl["dob"] = new_dob
    if "birth_year" in colset:
        repl["birth_year"] = new_by
    if "dob_granularity" in colset:
        repl["dob_granularity"] = (
            f"(CASE WHEN {new_dob} IS NOT NULL THEN 'full' "
            f"WHEN {new_by} IS NOT NULL THEN 'year' ELSE 'none' END)"
        )
    tags = [
        "CASE WHEN __ph AND " + ("dob IS NOT NULL" if "dob" in colset else "false") + " THEN 'dob:nulled' END",
        "CASE WHEN __bad_by THEN 'birth_year:nulled' END",
    ]
    select = _replace([c for c in cols if c != ISSUES_COLUMN], repl)
    return rel.project(f"{select}, {_append_tags(colset, tags)}")


def normalize_registrations(
    con: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation, *, nicknames: bool = True
) -> duckdb.DuckDBPyRelation:
    """Return ``rel`` with the national-schema text fields normalised (same columns).

    Adds ``first_name_canonical`` and ``name_suffix`` if missing, and the
    ``_issues`` list.  Columns the relation does not have are left alone.

    ``nicknames=False`` leaves ``first_name_canonical`` as the cleaned first
    name, for a caller that maps nicknames batch by batch with
    :func:`canonical_first_names`: the nickname join may reorder rows, and a
    row-for-row, order-keeping projection is what lets ingest read a clean
    file in parallel and number its lines afterwards.
    """
    cols = list(rel.columns)
    colset = set(cols)
    for extra in ("name_suffix", "first_name_canonical"):
        if extra not in colset:
            rel = rel.project(f"*, NULL::VARCHAR AS {extra}")
            cols.append(extra)
            colset.add(extra)
    base = [c for c in cols if c != ISSUES_COLUMN]

    # Stage 1: clean each field on its own; keep raw text where an issue tag needs it.
    s1: dict[str, str] = {}
    helpers = [_issues_expr(colset) + f" AS {ISSUES_COLUMN}"]
    # DuckDB expands nullif(x, '') into a CASE that evaluates x twice: the text
    # cleaners return '' for "nothing left" here and stage 2 nulls the column.
    s2: dict[str, str] = {}
    for f in ("last_name", "first_name", "middle_name"):
        if f in colset:
            s1[f] = names.clean_name_text_sql(f'CAST("{f}" AS VARCHAR)')
            s2[f] = f"nullif(\"{f}\", '')"
    s1["name_suffix"] = names.clean_suffix_sql('CAST("name_suffix" AS VARCHAR)')
    if "residence_address" in colset:
        s1["residence_address"] = address.clean_address_text_sql('CAST("residence_address" AS VARCHAR)')
        s2["residence_address"] = "nullif(\"residence_address\", '')"
    if "residence_city" in colset:
        s1["residence_city"] = address.clean_city_text_sql('CAST("residence_city" AS VARCHAR)')
        s2["residence_city"] = "nullif(\"residence_city\", '')"
    for f in ("county", "state_voter_id", "gender_code", "party_code", "status_code", "race_code", "status_reason"):
        if f in colset:
            s1[f] = f"""nullif(trim(CAST("{f}" AS VARCHAR)), '')"""
    if "residence_zip5" in colset:
        s1["residence_zip5"] = address.zip_stage_sql('"residence_zip5"')
        helpers.append("""nullif(trim(CAST("residence_zip5" AS VARCHAR)), '') AS __zip_raw""")
    if "phone" in colset:
        s1["phone"] = address.phone_digits_sql('"phone"')
        s2["phone"] = address.phone_finish_sql('"phone"')
        helpers.append("""nullif(trim(CAST("phone" AS VARCHAR)), '') AS __phone_raw""")
    if "email" in colset:
        s1["email"] = address.email_text_sql('"email"')
        s2["email"] = address.email_finish_sql('"email"')
        helpers.append("""nullif(trim(CAST("email" AS VARCHAR)), '') AS __email_raw""")
    rel = rel.project(f"{_replace(base, s1)}, {', '.join(helpers)}")

    # Stage 2: things that need the stage-1 text, each computed once.
    add2: list[str] = []
    sfx_cols: list[str] = []
    for f, allow_v in (("last_name", True), ("first_name", False), ("middle_name", False)):
        if f in colset:
            add2.append(f"{names.trailing_suffix_sql(f, allow_v=allow_v)} AS __sfx_{f}")
            sfx_cols.append(f)
    if "residence_zip5" in colset:
        s2["residence_zip5"] = address.zip5_sql("residence_zip5")
    sel2 = _replace(base, s2) + ", " + ", ".join([f"{ISSUES_COLUMN}", *[h.split(" AS ")[-1] for h in helpers[1:]], *add2])
    rel = rel.project(sel2)

    # Stage 3: strip the split suffixes, tags; then the nickname join.
    s3: dict[str, str] = {}
    tags: list[str] = []
    for f in sfx_cols:
        sfx = f"__sfx_{f}"
        s3[f] = f"(CASE WHEN {sfx} IS NULL THEN {f} ELSE nullif(left({f}, length({f}) - length({sfx}) - 1), '') END)"
    if sfx_cols:
        split = f"coalesce({', '.join(f'__sfx_{f}' for f in sfx_cols)})"
        s3["name_suffix"] = f"coalesce(name_suffix, {split})"
        tags.append(f"CASE WHEN name_suffix IS NULL AND {split} IS NOT NULL THEN 'name_suffix:split' END")
    s3["first_name_canonical"] = s3.get("first_name", "first_name") if "first_name" in colset else "NULL::VARCHAR"
    if "residence_zip5" in colset:
        tags.append(
            "CASE WHEN __zip_raw IS NOT NULL AND residence_zip5 IS NULL THEN 'residence_zip5:nulled' "
            "WHEN residence_zip5 <> __zip_raw THEN 'residence_zip5:repaired' END"
        )
    if "phone" in colset:
        tags.append("CASE WHEN __phone_raw IS NOT NULL AND phone IS NULL THEN 'phone:nulled' END")
    if "email" in colset:
        tags.append("CASE WHEN __email_raw IS NOT NULL AND email IS NULL THEN 'email:nulled' END")
    issues = f"list_concat({ISSUES_COLUMN}, list_filter([{', '.join(tags) or 'NULL'}]::VARCHAR[], lambda t: t IS NOT NULL)) AS {ISSUES_COLUMN}"
    rel = rel.project(f"{_replace(base, s3)}, {issues}")
    if not nicknames:
        return rel
    nick = names.register_nicknames(con)
    canonical = "coalesce(nk.canonical, r.first_name_canonical) AS first_name_canonical"
    return con.sql(f"SELECT r.* REPLACE ({canonical}) FROM {_view(rel)} r LEFT JOIN {nick} nk ON nk.nickname = r.first_name_canonical")
