"""The line engine: native file(s) -> lazy national-schema DuckDB relations.

Clean delimited files take the fast path (``fast``: DuckDB's own CSV parser,
one read per layout group); this engine reads fixed-width files, files with
mixed line endings and any file that failed a fast-path check, so every
malformed line is quarantined with an exact reason.  The mapping (step 4)
is shared by both paths.

How a file is read (all in DuckDB SQL, streaming, no per-row Python):

1. ``sniff.facts`` hashes the file and counts its line terminators (the
   independent ``rows_read``).
2. DuckDB's CSV reader reads every *physical line* as one VARCHAR (no quote
   character, a separator that cannot occur), in the layout's encoding
   (UTF-8, latin-1 and UTF-16 are decoded by DuckDB itself).  Lines with
   invalid bytes land in a reject table with their line number.  Row order is
   the file order, so ``row_number()`` plus the rejected line numbers give each
   line its physical number.
3. SQL splits each line into native fields (``string_split`` for unquoted
   files, an RE2 tokenizer for quoted ones, ``substr`` for fixed width) and
   checks its shape.  A line that cannot be read as a row (wrong field count,
   stray quote, invalid bytes, blank) goes to quarantine with file, line, field
   and reason; never its content.
4. A projection maps native fields to the national schema: codes through the
   layout's code maps (original kept in ``*_code``), dates via
   ``try_strptime``, ZIPs repaired.  A bad value nulls (or repairs) only that
   field and is named in the row's ``_issues``.

Per file, ``rows_read == loaded + quarantined`` is checked at scan time.
Nothing is written to disk except, for files with mixed line endings, a
normalised copy in an anonymous scratch file (``voterolls.scratch``: no
name on disk, freed when ``finish()`` closes it or the process dies).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from voterolls.formats import sniff
from voterolls.formats.spec import (
    CODED_TARGETS,
    MASKED_TARGETS,
    MULTIPART_TARGETS,
    Column,
    FileLayout,
)
from voterolls.log import get_logger
from voterolls.schema import REGISTRATION_SCHEMA, VOCABULARIES, VOTE_HISTORY_SCHEMA, sql_type
from voterolls.sql import identifier as ident
from voterolls.sql import literal as lit

log = get_logger(__name__)

#: A separator that never occurs in text, so each physical line is one value.
LINE_SEP = "\x1f\x1e\x1d"

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("line", pa.int64()),
        pa.field("field", pa.string()),
        pa.field("reason", pa.string()),
    ]
)

plan_ids = itertools.count(1)


@dataclass
class ScannedFile:
    path: str
    sha256: str
    encoding: str
    rows_read: int  # records (physical lines, header excluded), counted from the bytes
    role: str = "registrations"
    rows_loaded: int = 0
    rows_quarantined: int = 0


@dataclass
class ScanReport:
    files: list[ScannedFile]
    quarantine: pa.Table


@dataclass
class FilePlan:
    """Everything the SQL needs to read one file."""

    path: Path
    role: str
    layout: FileLayout
    header_names: list[str]  # native column names in file order (layout or actual header)
    source: Path  # file DuckDB reads (the original or a normalised temp copy)
    duck_encoding: str
    facts: sniff.FileFacts
    uid: int
    has_header: bool = False
    rejected: list[tuple[int, str]] = field(default_factory=list)
    #: for a file cut out of a larger one: the original line number of each of its lines
    line_map: list[int] | None = None

    @property
    def n_fields(self) -> int:
        return len(self.header_names)

    def idx(self, name: str) -> int:
        return self.header_names.index(name) + 1

    def fld(self, i: int) -> str:
        """SQL for native field ``i`` (1-based) of a row from ``rows_sql``."""
        return f"f[{i}]"

    @property
    def unescape(self) -> bool:
        """Fields still carry doubled quotes (the line tokenizer leaves them)."""
        return self.layout.quoting == "all" and self.layout.kind == "delimited"


# ---------------------------------------------------------------------------
# Lines and fields
# ---------------------------------------------------------------------------


def plan_csv_sql(plan: FilePlan, *, rejects: str | None) -> str:
    opts = [
        "columns={'line': 'VARCHAR'}",
        f"delim={lit(LINE_SEP)}",
        "quote=''",
        "escape=''",
        "header=false",
        "auto_detect=false",
        "strict_mode=true",
        f"encoding={lit(plan.duck_encoding)}",
    ]
    if rejects:
        opts += [
            "store_rejects=true",
            f"rejects_table={lit(rejects + '_e')}",
            f"rejects_scan={lit(rejects + '_s')}",
        ]
    else:
        opts += ["ignore_errors=true"]
    return f"read_csv({lit(str(plan.source))}, {', '.join(opts)})"


#: A line that holds nothing but spaces and tabs is blank, whatever the layout.
_BLANK = "trim(line, ' ' || chr(9)) = ''"
#: Lines never loaded, whatever their shape: blank ones, and ones with NUL bytes
#: (docs/RELIABILITY.md: a NUL is never part of a name or an address; DuckDB's CSV
#: parser would read it as a space, so files with NULs are read by this engine).
READABLE_LINE = f"(NOT {_BLANK} AND NOT contains(line, chr(0)))"
#: ... and their reasons (``WHEN`` branches, the same conditions in the same order).
UNREADABLE_LINE_REASONS = (
    f"WHEN line = '' THEN 'blank line' "
    f"WHEN {_BLANK} THEN 'blank line (only spaces or tabs)' "
    f"WHEN contains(line, chr(0)) THEN 'line contains NUL bytes (0x00)'"
)


def skip_lines_sql(rows: str, k: str, skipped: list[int], cols: str) -> str:
    """``SELECT <k mapped> AS line_no, cols FROM (rows)``: the k-th line that is not in ``skipped``.

    ``skipped`` are sorted line numbers left out of the numbered stream (lines
    DuckDB rejected, lines cut out of a file).  The k-th remaining line is
    line ``k + #{i : skipped_i - i < k}`` (1-based ``i``): an ASOF join on a
    small table, so the stream itself stays a plain scan.
    """
    if not skipped:
        return f"SELECT {k} AS line_no, {cols} FROM ({rows})"
    vals = ", ".join(f"({r - i}, {i})" for i, r in enumerate(skipped, start=1))
    return (
        f"SELECT b.{k} + coalesce(t.cnt, 0) AS line_no, {', '.join('b.' + c.strip() for c in cols.split(','))} FROM ({rows}) b "
        f"ASOF LEFT JOIN (SELECT thr, max(cnt) AS cnt FROM (VALUES {vals}) v(thr, cnt) GROUP BY thr) t ON b.{k} > t.thr"
    )


def lines_sql(plan: FilePlan) -> str:
    """(line_no, line) for every line DuckDB could decode, header excluded, CR stripped.

    For a file cut out of a larger one (``plan.line_map``) ``line_no`` is the
    line's number in the original file.
    """
    base = f"SELECT row_number() OVER () AS k, line FROM {plan_csv_sql(plan, rejects=None)}"
    numbered = skip_lines_sql(base, "k", sorted(n for n, _ in plan.rejected), "line")
    skip = "WHERE line_no > 1" if plan.has_header else ""
    out = f"SELECT line_no, rtrim(coalesce(line, ''), chr(13)) AS line FROM ({numbered}) {skip}"
    if plan.line_map is None:
        return out
    return f"SELECT CAST(({int_list(plan.line_map)})[line_no] AS BIGINT) AS line_no, line FROM ({out})"


def int_list(values: list[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in values) + "]::BIGINT[]"


#: A field in double quotes, doubled quotes inside (RE2): the CSV grammar's quoted field.
QUOTED_FIELD = '"(?:[^"]|"")*"'


def bare_field(delimiter: str) -> str:
    """An unquoted field (RE2): anything but the delimiter and the quote character."""
    return f'[^"{re.escape(delimiter)}]*'


def fields_expr(plan: FilePlan) -> tuple[str, str, str, str]:
    """(token expression over ``line``, fields expression over ``tok``, shape-ok predicate, reason).

    The tokenizer runs once per line (column ``tok``); the fields, the shape
    check and the reason are computed from it.
    """
    lay = plan.layout
    n = plan.n_fields
    if lay.kind == "fixed":
        parts = ", ".join(f"substr(line, {c.start}, {c.width})" for c in lay.columns)
        width = lay.record_width
        targeted = [c.start or 1 for c in lay.columns if c.target]
        last_start = max(targeted) if targeted else 1
        ok = f"(length(line) <= {width} AND length(line) >= {last_start})"
        reason = (
            f"'record is ' || length(line) || ' characters; layout expects {last_start} to {width}'"
        )
        return f"[{parts}]", "tok", ok, reason
    d = lay.delimiter
    if lay.quoting == "none":
        ok = f"len(tok) = {n}"
        reason = f"'expected {n} fields separated by {_show(d)}, found ' || len(tok)"
        return f"string_split(line, {lit(d)})", "tok", ok, reason
    q = "(length(line) - length(replace(line, '\"', '')))"  # quote characters on the line
    if lay.quoting == "all":
        # Fast, exact for well-formed lines: strip the outer quotes and split on quote-delimiter-quote.
        # Escaped quotes ("") stay in the fields; ``raw`` unescapes the fields it maps.
        tok = f"string_split(substr(line, 2, length(line) - 2), {lit(chr(34) + d + chr(34))})"
        framed = "(starts_with(line, '\"') AND ends_with(line, '\"') AND length(line) >= 2)"
        ok = f"({framed} AND len(tok) = {n} AND {q} >= {2 * n} AND ({q} - {2 * n}) % 2 = 0)"
        reason = (
            f"CASE WHEN NOT {framed} THEN 'unbalanced quote or unquoted field (every field must be in double quotes)' "
            f"WHEN {q} % 2 = 1 THEN 'unbalanced quote (odd number of double quotes)' "
            f"WHEN len(tok) <> {n} THEN 'expected {n} fields separated by {_show(d)}, found ' || len(tok) "
            f"ELSE 'unbalanced quote inside a field' END"
        )
        return tok, "tok", ok, reason
    # minimal quoting: a field is quoted only when it must be.  Lines without any quote
    # (nearly all) are split directly; the RE2 tokenizer runs only on lines with quotes.
    pattern = lit(re.escape(d) + f"({QUOTED_FIELD}|{bare_field(d)})")
    regex = f"regexp_extract_all({lit(d)} || line, {pattern}, 1)"
    tok = f"(CASE WHEN contains(line, '\"') THEN {regex} ELSE string_split(line, {lit(d)}) END)"
    f = (
        "(CASE WHEN contains(line, '\"') THEN list_transform(tok, lambda x: CASE WHEN starts_with(x, '\"') "
        "THEN replace(x[2:-2], '\"\"', '\"') ELSE x END) ELSE tok END)"
    )
    ok = f"(len(tok) = {n} AND (NOT contains(line, '\"') OR array_to_string(tok, {lit(d)}) = line))"
    reason = (
        f"CASE WHEN len(tok) = {n} THEN 'unbalanced or stray quote' "
        f"ELSE 'expected {n} fields separated by {_show(d)}, found ' || len(tok) END"
    )
    return tok, f, ok, reason


def _show(d: str) -> str:
    return {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon"}.get(d, repr(d))


def tokens_sql(plan: FilePlan) -> str:
    """(line_no, line, f0): f0 = the line's tokens when its shape is right, else NULL.

    Wrapping the tokens in a one-element list filtered by a lambda keeps DuckDB
    from re-evaluating the tokenizer for every later reference (measured 5x).
    """
    tok, _, ok, _ = fields_expr(plan)
    ok_t = re.sub(r"\btok\b", "t", ok)
    return f"SELECT line_no, line, list_filter([{tok}], lambda t: {ok_t})[1] AS f0 FROM ({lines_sql(plan)})"


def rows_sql(
    plan: FilePlan,
    *,
    valid: bool,
    required: str | None = None,
    required_field: str | None = None,
    required_reason: str = "missing or unreadable required value",
) -> str:
    """Valid rows as (line_no, f) or, with ``valid=False``, the lines that cannot be loaded and why.

    ``required`` (a predicate over ``f``) makes a structurally sound line that
    lacks a value the schema cannot do without (voter id, election date)
    unloadable too; ``required_field`` names the failing field.
    """
    if getattr(plan, "is_group", False):
        return plan.rows_sql(required=required)
    tok, f, _, reason = fields_expr(plan)
    f = re.sub(r"\btok\b", "f0", f)
    req = required or "TRUE"
    if valid:
        # unnest of a 0/1-element list drops bad lines without a filter DuckDB would push
        # back into the tokenizer (which would then run once per reference).
        _, _, ok, _ = fields_expr(plan)
        ok_t = re.sub(r"\btok\b", "t", ok)
        inner = (
            f"SELECT line_no, line, unnest(list_filter([{tok}], lambda t: {READABLE_LINE} AND {ok_t})) AS f0 "
            f"FROM ({lines_sql(plan)})"
        )
        sha = lit(plan.facts.sha256)
        if f == "f0":
            inner = f"SELECT line_no, {sha} AS _sha, f0 AS f FROM ({inner})"
        else:
            inner = f"SELECT line_no, {sha} AS _sha, unnest([{f}]) AS f FROM ({inner})"
        return inner if required is None else f"SELECT line_no, _sha, f FROM ({inner}) WHERE {req}"
    shape = f"CASE {UNREADABLE_LINE_REASONS} WHEN f0 IS NULL THEN list_transform([{tok}], lambda tok: {reason})[1] END"
    return (
        f"SELECT line_no, CASE WHEN shape IS NULL THEN {required_field or 'NULL'} END::VARCHAR AS field, "
        f"coalesce(shape, {lit(required_reason)}) AS reason "
        f"FROM (SELECT line_no, shape, CASE WHEN shape IS NULL THEN {f} END AS f "
        f"FROM (SELECT line_no, line, f0, {shape} AS shape FROM ({tokens_sql(plan)}))) "
        f"WHERE shape IS NOT NULL OR NOT ({req})"
    )


# ---------------------------------------------------------------------------
# Mapping native fields to the national schema
# ---------------------------------------------------------------------------


def raw(plan: FilePlan, col: Column, rel: str = "") -> str:
    """The trimmed native value of ``col`` (NULL when blank), quotes unescaped."""
    v = f"{rel}{plan.fld(plan.idx(col.name))}"
    if plan.unescape:
        v = f"replace({v}, '\"\"', '\"')"
    return f"nullif(trim({v}), '')"


def code_case(plan: FilePlan, col: Column, value: str, national_field: str) -> tuple[str, str]:
    """(national value expression, is-bad predicate) for a coded column."""
    cm = plan.layout.code_map(col)
    vocab = VOCABULARIES.get(national_field, ())
    if cm is None:
        # the file writes national values directly (generic layout)
        keys = ", ".join(lit(v) for v in vocab)
        expr = f"(CASE WHEN {value} IN ({keys}) THEN {value} WHEN upper({value}) IN ({keys}) THEN upper({value}) WHEN lower({value}) IN ({keys}) THEN lower({value}) END)"
        return expr, f"({value} IS NOT NULL AND {expr} IS NULL)"
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in cm.map.items())
    uwhens = " ".join(f"WHEN {lit(k.upper())} THEN {lit(v)}" for k, v in cm.map.items())
    default = lit(cm.default) if cm.default is not None else "NULL"
    blank = lit(cm.blank) if cm.blank is not None else "NULL"
    expr = (
        f"(CASE WHEN {value} IS NULL THEN {blank} ELSE coalesce((CASE {value} {whens} END), "
        f"(CASE upper({value}) {uwhens} END), {default}) END)"
    )
    bad = (
        f"({value} IS NOT NULL AND (CASE {value} {whens} END) IS NULL AND (CASE upper({value}) {uwhens} END) IS NULL)"
        if cm.default is None
        else "FALSE"
    )
    return expr, bad


def placeholder_test(col: Column, value: str) -> str:
    """SQL predicate: ``value`` is one of the column's placeholder words (``REMOVED``), not a value."""
    words = ", ".join(lit(w.upper()) for w in col.placeholders)
    return f"coalesce(upper({value}) IN ({words}), FALSE)"


def zip5_expr(value: str) -> tuple[str, str]:
    """(repaired zip5, repaired-or-nulled predicate)."""
    expr = (
        f"(CASE WHEN regexp_matches({value}, '^[0-9]{{5}}(-?[0-9]{{4}})?$') THEN left({value}, 5) "
        f"WHEN regexp_matches({value}, '^[0-9]{{5}}\\.0+$') THEN left({value}, 5) "
        f"WHEN regexp_matches({value}, '^[0-9]{{3,4}}(\\.0+)?$') THEN lpad(split_part({value}, '.', 1), 5, '0') "
        f"WHEN regexp_matches({value}, '^[0-9]{{9}}$') THEN left({value}, 5) END)"
    )
    issue = f"({value} IS NOT NULL AND NOT regexp_matches({value}, '^[0-9]{{5}}(-?[0-9]{{4}})?$|^[0-9]{{9}}$'))"
    return expr, issue


def date_expr(value: str, fmt: str) -> tuple[str, str]:
    expr = f"CAST(try_strptime({value}, {lit(fmt)}) AS DATE)"
    plausible = f"({expr} BETWEEN DATE '1850-01-01' AND DATE '2100-12-31')"
    good = f"(CASE WHEN {plausible} THEN {expr} END)"
    return good, f"({value} IS NOT NULL AND {good} IS NULL)"


def required_for(plan: FilePlan, state: str) -> dict[str, str]:
    """Keyword arguments for ``rows_sql``: what a loadable line of this role must carry."""
    if plan.role == "registrations":
        ids = plan.layout.by_target("state_voter_id")
        if ids:
            return {
                "required": f"({raw(plan, ids[0])} IS NOT NULL)",
                "required_field": "'state_voter_id'",
                "required_reason": "missing voter id",
            }
    elif plan.role == "history":
        _, required, failing = history_projection(plan, state)
        return {
            "required": required,
            "required_field": failing,
            "required_reason": "missing voter id or unreadable election date",
        }
    return {}


def registration_projection(
    plan: FilePlan, state: str, extra_issues: list[tuple[str, str]] | None = None
) -> str:
    """SELECT list mapping ``f`` to REGISTRATION_SCHEMA + ``_issues`` + ``_protected``."""
    lay = plan.layout
    exprs: dict[str, str] = {}
    issues: list[tuple[str, str]] = list(extra_issues or [])
    mask_value = lay.protected.mask if lay.protected.mode == "mask" else None

    flag_cols = lay.by_target("protected_flag")
    prot_terms = []
    for c in flag_cols:
        cm = lay.code_map(c)
        yes = [k for k, v in cm.map.items() if v == "true"] if cm else ["Y"]
        prot_terms.append(f"coalesce({raw(plan, c)} IN ({', '.join(lit(y) for y in yes)}), FALSE)")
    ln = lay.by_target("last_name")
    if mask_value and ln:
        prot_terms.append(f"coalesce({raw(plan, ln[0])} = {lit(mask_value)}, FALSE)")
    protected = "(" + " OR ".join(prot_terms) + ")" if prot_terms else "FALSE"

    def val(c: Column) -> str:
        v = raw(plan, c)
        if mask_value and c.target in MASKED_TARGETS:
            v = f"nullif({v}, {lit(mask_value)})"
        if c.placeholders:
            v = f"(CASE WHEN {placeholder_test(c, v)} THEN NULL ELSE {v} END)"
        return v

    for c in lay.columns:
        if c.placeholders and c.target:
            issues.append((c.target, placeholder_test(c, raw(plan, c))))

    for target in (
        "state_voter_id",
        "county",
        "last_name",
        "first_name",
        "middle_name",
        "name_suffix",
        "status_reason",
        "residence_city",
        "email",
    ):
        cols = lay.by_target(target)
        if cols:
            exprs[target] = val(cols[0])
    # multi-part targets
    for target, joiner in MULTIPART_TARGETS.items():
        cols = lay.by_target(target)
        if not cols:
            continue
        pos = {c.name: i for i, c in enumerate(lay.columns)}
        cols = sorted(cols, key=lambda c: (c.order if c.order is not None else 10_000, pos[c.name]))
        if target == "phone":
            joined = " || ".join(f"coalesce({val(c)}, '')" for c in cols)
            exprs[target] = f"nullif(regexp_replace({joined}, '[^0-9]', '', 'g'), '')"
        else:
            exprs[target] = (
                f"nullif(concat_ws({lit(joiner)}, {', '.join(val(c) for c in cols)}), '')"
            )
    # ZIP
    zc = lay.by_target("residence_zip5")
    if zc:
        z, bad = zip5_expr(val(zc[0]))
        exprs["residence_zip5"] = z
        issues.append(("residence_zip5", bad))
    # dates of birth
    dob_cols = lay.by_target("dob")
    by_cols = lay.by_target("birth_year")
    dob_full = None
    year_expr = None
    for c in dob_cols:
        if c.date_format == "%Y":
            y = f"try_cast({val(c)} AS SMALLINT)"
            year_expr = f"(CASE WHEN {y} BETWEEN 1850 AND 2100 THEN {y} END)"
            issues.append(("birth_year", f"({val(c)} IS NOT NULL AND {year_expr} IS NULL)"))
        else:
            dob_full, bad = date_expr(val(c), c.date_format or "%Y-%m-%d")
            issues.append(("dob", bad))
    for c in by_cols:
        y = f"try_cast({val(c)} AS SMALLINT)"
        year_expr = f"(CASE WHEN {y} BETWEEN 1850 AND 2100 THEN {y} END)"
        issues.append(("birth_year", f"({val(c)} IS NOT NULL AND {year_expr} IS NULL)"))
    if dob_full:
        exprs["dob"] = dob_full
        exprs["birth_year"] = f"coalesce(CAST(year({dob_full}) AS SMALLINT), {year_expr or 'NULL'})"
    elif year_expr:
        exprs["birth_year"] = year_expr
    dob_e = exprs.get("dob", "NULL")
    by_e = exprs.get("birth_year", "NULL")
    exprs["dob_granularity"] = (
        f"(CASE WHEN {dob_e} IS NOT NULL THEN 'full' WHEN {by_e} IS NOT NULL THEN 'year' ELSE 'none' END)"
    )
    rd = lay.by_target("registration_date")
    if rd:
        e, bad = date_expr(val(rd[0]), rd[0].date_format or "%Y-%m-%d")
        exprs["registration_date"] = e
        issues.append(("registration_date", bad))
    for target, vocab in CODED_TARGETS.items():
        cols = lay.by_target(target)
        if not cols or vocab not in REGISTRATION_SCHEMA.names:
            continue
        c = cols[0]
        v = raw(plan, c)
        e, bad = code_case(plan, c, v, vocab)
        exprs[target] = e
        exprs[f"{target}_code"] = v
        issues.append((target, bad))
    for k, v in lay.constants.items():
        exprs.setdefault(k, lit(v))

    exprs["state"] = lit(state)
    exprs["source_file"] = "_sha"
    exprs["source_line"] = "CAST(line_no AS BIGINT)"
    select = []
    for fld in REGISTRATION_SCHEMA:
        e = exprs.get(fld.name, "NULL")
        select.append(f"CAST({e} AS {sql_type(fld.type)}) AS {ident(fld.name)}")
    issue_items = ", ".join(f"CASE WHEN {cond} THEN {lit(name)} END" for name, cond in issues)
    select.append(
        f"list_filter([{issue_items}]::VARCHAR[], lambda x: x IS NOT NULL) AS _issues"
        if issues
        else "[]::VARCHAR[] AS _issues"
    )
    select.append(f"{protected} AS _protected")
    return ", ".join(select)


ELECTION_KEYWORDS = (
    ("RUNOFF", "runoff"),
    ("SECOND PRIMARY", "runoff"),
    ("PRIMARY", "primary"),
    ("GENERAL", "general"),
    ("SPECIAL", "special"),
    ("MUNICIPAL", "municipal"),
)


def election_type_from_desc(desc: str) -> str:
    whens = " ".join(
        f"WHEN contains(upper({desc}), {lit(k)}) THEN {lit(v)}" for k, v in ELECTION_KEYWORDS
    )
    return f"(CASE {whens} ELSE 'other' END)"


def history_projection(plan: FilePlan, state: str) -> tuple[str, str, str]:
    """(SELECT list to VOTE_HISTORY_SCHEMA, row-required predicate, failing field expression)."""
    lay = plan.layout
    exprs: dict[str, str] = {}
    for target in ("state_voter_id", "county", "election_desc", "party_ballot"):
        cols = lay.by_target(target)
        if cols:
            exprs[target] = raw(plan, cols[0])
    dc = lay.by_target("election_date")
    date_ok = "TRUE"
    if dc:
        e, _ = date_expr(raw(plan, dc[0]), dc[0].date_format or "%Y-%m-%d")
        exprs["election_date"] = e
        date_ok = f"({e} IS NOT NULL)"
    tc = lay.by_target("election_type")
    if tc:
        e, _ = code_case(plan, tc[0], raw(plan, tc[0]), "election_type")
        exprs["election_type"] = f"coalesce({e}, 'other')"
    elif "election_desc" in exprs:
        exprs["election_type"] = election_type_from_desc(exprs["election_desc"])
    mc = lay.by_target("vote_method")
    if mc:
        e, _ = code_case(plan, mc[0], raw(plan, mc[0]), "vote_method")
        exprs["vote_method"] = f"coalesce({e}, 'unknown')"
        exprs["vote_method_code"] = raw(plan, mc[0])
    for k, v in lay.constants.items():
        exprs.setdefault(k, lit(v))
    exprs["state"] = lit(state)
    exprs["source_file"] = "_sha"
    exprs["source_line"] = "CAST(line_no AS BIGINT)"
    select = [
        f"CAST({exprs.get(fld.name, 'NULL')} AS {sql_type(fld.type)}) AS {ident(fld.name)}"
        for fld in VOTE_HISTORY_SCHEMA
    ]
    id_ok = f"({exprs.get('state_voter_id', 'NULL')} IS NOT NULL)"
    required = f"({id_ok} AND {date_ok})"
    failing = f"CASE WHEN NOT {id_ok} THEN 'state_voter_id' ELSE 'election_date' END"
    return ", ".join(select), required, failing


def empty_relation(
    con: duckdb.DuckDBPyConnection, schema: pa.Schema, extra: str = ""
) -> duckdb.DuckDBPyRelation:
    cols = ", ".join(f"CAST(NULL AS {sql_type(f.type)}) AS {ident(f.name)}" for f in schema)
    return con.sql(f"SELECT {cols}{extra} WHERE FALSE")


__all__ = [
    "QUARANTINE_SCHEMA",
    "FilePlan",
    "ScanReport",
    "ScannedFile",
    "history_projection",
    "registration_projection",
    "required_for",
    "rows_sql",
]
