"""The building blocks of the native writers (``voterolls.synth.native.write_native``).

Values are built with DuckDB SQL over the Arrow tables (vectorised) and
written in batches; the output is deterministic (same input -> same bytes).

Only the columns the state's layout has *and* its disclosure policy allows are
written: a full DOB only where ``dob_disclosure = full`` (birth year where
``year``; neither where ``none``), phone / email only where public, party only
where ``party_on_file``, vote history only where ``vote_history_public``.
Protected (confidential) voters are omitted, except where the layout masks
them (Florida: ``*`` in personal fields, blank DOB).

Realistic mess, added deterministically to a small share of rows chosen by a
hash of the voter id (see ``FileLayout.mess``):

* ``zip_float``: ~2% of ZIPs written as ``27517.0`` (a county exported through a
  spreadsheet),
* ``zip_plus4``: ~10% of ZIPs written as nine digits,
* ``trailing_spaces``: ~2% of last names carry two trailing spaces.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.formats.spec import (
    CODED_TARGETS,
    MASKED_TARGETS,
    CodeMap,
    Column,
    FileLayout,
    Format,
)
from voterolls.log import get_logger
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA, conform
from voterolls.sql import literal as lit

log = get_logger(__name__)

BATCH_ROWS = 100_000


def _bucket_sql(id_expr: str) -> str:
    """A stable 0..999 bucket from the voter id (md5, not DuckDB's version-specific hash)."""
    return f"(CAST(('0x' || substr(md5(coalesce(CAST({id_expr} AS VARCHAR), '')), 1, 6)) AS INTEGER) % 1000)"


def _bucket(id_expr: str) -> str:
    # registrations carry the bucket precomputed (column __b, see _prepare)
    return id_expr.rsplit(".", 1)[0] + ".__b"


class PolicyView:
    """The four policy answers the writer needs, read from a StatePolicy-like object."""

    def __init__(self, policy: Any) -> None:
        self.dob = str(getattr(policy, "dob_disclosure", "none") or "none")
        self.phone = bool(getattr(policy, "phone_public", False))
        self.email = bool(getattr(policy, "email_public", False))
        self.party = bool(getattr(policy, "party_on_file", False))
        self.history = bool(getattr(policy, "vote_history_public", False))


def policy_view(state: str, policy: Any | None) -> PolicyView:
    if policy is None:
        from voterolls.policy import get_policy

        policy = get_policy(state)
    return PolicyView(policy)


# ---------------------------------------------------------------------------
# Per-column value expressions
# ---------------------------------------------------------------------------


def _s(expr: str) -> str:
    return f"coalesce(CAST({expr} AS VARCHAR), '')"


def map_expr(cm: CodeMap | None, value: str, code: str | None) -> str:
    """Native code for a national value: the original code when the map knows it, else the reverse map."""
    if cm is None:
        return _s(value)
    cases = []
    for national in sorted(set(cm.map.values()) | set(cm.write)):
        native = cm.native_for(national)
        if native is not None:
            cases.append(f"WHEN {value} = {lit(national)} THEN {lit(native)}")
    reverse = f"(CASE {' '.join(cases)} ELSE '' END)" if cases else "''"
    if code is None:
        return reverse
    keys = ", ".join(lit(k) for k in cm.map)
    return f"(CASE WHEN {code} IN ({keys}) THEN {code} ELSE {reverse} END)"


def code_expr(layout: FileLayout, col: Column, value: str, code: str | None) -> str:
    return map_expr(layout.code_map(col), value, code)


def registration_value(layout: FileLayout, col: Column, pol: PolicyView, r: str = "r") -> str:
    """SQL producing the native text of one registration column from national table ``r``."""
    t = col.target
    if t is None:
        return lit(col.fill)
    mask = layout.protected.mode == "mask"
    if t == "dob":
        if col.date_format == "%Y":
            ok = pol.dob in ("full", "year")
        else:
            ok = pol.dob == "full"
        v = f"coalesce(strftime({r}.dob, {lit(col.date_format or '%Y-%m-%d')}), '')" if ok else "''"
        return f"(CASE WHEN {r}.protected THEN '' ELSE {v} END)" if mask else v
    if t == "birth_year":
        v = (
            f"coalesce(CAST(coalesce({r}.birth_year, year({r}.dob)) AS VARCHAR), '')"
            if pol.dob in ("full", "year")
            else "''"
        )
        return f"(CASE WHEN {r}.protected THEN '' ELSE {v} END)" if mask else v
    if t == "registration_date":
        return (
            f"coalesce(strftime({r}.registration_date, {lit(col.date_format or '%Y-%m-%d')}), '')"
        )
    if t == "protected_flag":
        cm = layout.code_map(col)
        yes = cm.native_for("true") if cm else "Y"
        no = cm.native_for("false") if cm else "N"
        return f"(CASE WHEN {r}.protected THEN {lit(yes or 'Y')} ELSE {lit(no or 'N')} END)"
    if t == "party" and not pol.party:
        return "''"
    if t == "phone" and not pol.phone:
        return "''"
    if t == "email" and not pol.email:
        return "''"
    if t in CODED_TARGETS:
        code = f"{r}.{t}_code" if f"{t}_code" in REGISTRATION_SCHEMA.names else None
        v = code_expr(layout, col, f"{r}.{t}", code)
    elif t == "residence_address" and col.part == "number":
        v = f"(CASE WHEN regexp_matches({r}.residence_address, '^[0-9]+[A-Z]? ') THEN split_part({r}.residence_address, ' ', 1) ELSE '' END)"
    elif t == "residence_address" and col.part == "street":
        first_street = min(
            (c for c in layout.by_target(t) if c.part == "street"), key=_part_key(layout)
        )
        if col.name != first_street.name:
            return lit(col.fill)
        v = f"(CASE WHEN regexp_matches({r}.residence_address, '^[0-9]+[A-Z]? ') THEN substr({r}.residence_address, strpos({r}.residence_address, ' ') + 1) ELSE {_s(r + '.residence_address')} END)"
    elif t == "phone" and col.part == "area":
        v = f"substr(regexp_replace({_s(r + '.phone')}, '[^0-9]', '', 'g'), 1, 3)"
    elif t == "phone" and col.part == "local":
        # one local column gets the 7 digits; split ones (AR: exchange, last four) 3 + 4
        local = sorted((c for c in layout.by_target(t) if c.part == "local"), key=_part_key(layout))
        span = "4" if len(local) == 1 else ("4, 3" if col.name == local[0].name else "7")
        v = f"substr(regexp_replace({_s(r + '.phone')}, '[^0-9]', '', 'g'), {span})"
    elif t == "residence_zip5":
        v = _s(f"{r}.residence_zip5")
        if "zip_float" in layout.mess:
            v = f"(CASE WHEN {_bucket(r + '.state_voter_id')} < 20 AND {v} <> '' THEN {v} || '.0' ELSE {v} END)"
        if "zip_plus4" in layout.mess:
            v = f"(CASE WHEN {_bucket(r + '.state_voter_id')} BETWEEN 100 AND 199 AND {v} <> '' THEN {v} || lpad(CAST({_bucket(r + '.state_voter_id')} * 7 % 10000 AS VARCHAR), 4, '0') ELSE {v} END)"
    elif t == "last_name" and "trailing_spaces" in layout.mess:
        v = f"(CASE WHEN {_bucket(r + '.state_voter_id')} BETWEEN 40 AND 59 AND {_s(r + '.last_name')} <> '' THEN {_s(r + '.last_name')} || '  ' ELSE {_s(r + '.last_name')} END)"
    else:
        v = _s(f"{r}.{t}")
    if mask and t in MASKED_TARGETS:
        v = f"(CASE WHEN {r}.protected THEN {lit(layout.protected.mask)} ELSE {v} END)"
    return v


def _part_key(layout: FileLayout) -> Callable[[Column], tuple[int, int]]:
    pos = {c.name: i for i, c in enumerate(layout.columns)}
    return lambda c: (c.order if c.order is not None else 10_000, pos[c.name])


def history_value(layout: FileLayout, col: Column, h: str = "h") -> str:
    t = col.target
    if t is None:
        return lit(col.fill)
    if t == "election_date":
        return f"coalesce(strftime({h}.election_date, {lit(col.date_format or '%Y-%m-%d')}), '')"
    if t == "election_desc":
        return f"coalesce({h}.election_desc, strftime({h}.election_date, '%m/%d/%Y') || ' ' || upper(coalesce({h}.election_type, 'other')))"
    if t == "vote_method":
        return code_expr(layout, col, f"{h}.vote_method", f"{h}.vote_method_code")
    if t == "election_type":
        return code_expr(layout, col, f"{h}.election_type", None)
    return _s(f"{h}.{t}")


# ---------------------------------------------------------------------------
# Lines
# ---------------------------------------------------------------------------


def field_expr(layout: FileLayout, col: Column, value: str) -> str:
    """Quote / pad one native value as it appears in the line."""
    if layout.kind == "fixed":
        return f"rpad(substr({value}, 1, {col.width}), {col.width}, ' ')"
    if layout.pad and col.width:
        value = f"rpad({value}, {col.width}, ' ')"
    d = layout.delimiter
    if layout.quoting == "all":
        return f"('\"' || replace({value}, '\"', '\"\"') || '\"')"
    if layout.quoting == "minimal":
        return (
            f"(CASE WHEN contains({value}, {lit(d)}) OR contains({value}, '\"') OR contains({value}, chr(10)) OR contains({value}, chr(13)) "
            f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END)"
        )
    # unquoted: a value can never hold the delimiter or a line break
    pattern = lit("[" + re.escape(d) + "\\r\\n]")
    return f"regexp_replace({value}, {pattern}, ' ', 'g')"


def line_expr(layout: FileLayout, values: list[tuple[Column, str]]) -> str:
    if layout.kind == "fixed":
        parts = []
        pos = 1
        for col, v in sorted(values, key=lambda cv: cv[0].start or 0):
            if (col.start or 1) > pos:
                parts.append(lit(" " * ((col.start or 1) - pos)))
            parts.append(field_expr(layout, col, v))
            pos = (col.start or 1) + (col.width or 0)
        return " || ".join(parts)
    sep = f" || {lit(layout.delimiter)} || "
    return sep.join(field_expr(layout, c, v) for c, v in values)


def header_line(layout: FileLayout, names: list[str]) -> str:
    if layout.quoting == "all":
        return layout.delimiter.join('"' + n.replace('"', '""') + '"' for n in names)
    return layout.delimiter.join(names)


def write_lines(
    path: Path, layout: FileLayout, header: str | None, reader: pa.RecordBatchReader | None
) -> int:
    """Write a header and the ``line`` column of ``reader`` with the layout's terminator and encoding."""
    term = layout.line_terminator
    enc = {"utf-8": "utf-8", "latin-1": "latin-1", "utf-16": "utf-16-le"}[layout.encoding]
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        if layout.bom and layout.encoding == "utf-16":
            fh.write("\ufeff".encode(enc))
        if header is not None:
            fh.write((header + term).encode(enc, errors="replace"))
        if reader is not None:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                lines = batch.column(0).cast(pa.string())
                joined = pc.binary_join(
                    pa.ListArray.from_arrays(pa.array([0, len(lines)], pa.int32()), lines), term
                )
                fh.write((joined[0].as_py() + term).encode(enc, errors="replace"))
                n += batch.num_rows
    return n


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def prepare_tables(
    con: duckdb.DuckDBPyConnection,
    state: str,
    registrations: pa.Table,
    vote_history: pa.Table | None,
) -> None:
    protected = (
        registrations.column("protected").cast(pa.bool_()).fill_null(False)
        if "protected" in registrations.column_names
        else pa.array([False] * registrations.num_rows, pa.bool_())
    )
    regs = conform(registrations, REGISTRATION_SCHEMA)
    regs = regs.append_column("protected", protected).append_column(
        "__i", pa.array(range(regs.num_rows), pa.int64())
    )
    con.register("_regs_arrow", regs)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE r_all AS SELECT *, {_bucket_sql('state_voter_id')} AS __b FROM _regs_arrow"
    )
    vh = (
        conform(vote_history, VOTE_HISTORY_SCHEMA)
        if vote_history is not None
        else VOTE_HISTORY_SCHEMA.empty_table()
    )
    vh = vh.append_column("__j", pa.array(range(vh.num_rows), pa.int64()))
    con.register("_vh_arrow", vh)
    con.execute("CREATE OR REPLACE TEMP TABLE h_all AS SELECT * FROM _vh_arrow")


def native_file_name(
    template: str, *, state: str, county: str | None, date: dt.date, **extra: str
) -> str:
    safe_county = re.sub(r"[^A-Za-z0-9_.-]+", "_", county or "UNKNOWN")
    return template.format(state=state, county=safe_county, date=date.strftime("%Y%m%d"), **extra)


def write_table(
    con: duckdb.DuckDBPyConnection,
    layout: FileLayout,
    values: list[tuple[Column, str]],
    from_sql: str,
    *,
    header_names: list[str] | None,
    out_dir: Path,
    name_for: Callable[[str | None], str],
    county_sql: str | None,
    order_sql: str,
    split: bool | None = None,
) -> list[Path]:
    """Write ``SELECT line FROM from_sql`` as one file, or one per value of ``county_sql``
    when the layout is per county (or ``split`` says so)."""
    line = line_expr(layout, values)
    header = (
        header_line(layout, header_names) if header_names is not None and layout.header else None
    )
    paths: list[Path] = []
    if (layout.per_county if split is None else split) and county_sql:
        # build every line once, then cut the per-county files from the materialised lines
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _wl AS SELECT coalesce(CAST({county_sql} AS VARCHAR), '') AS c, "
            f"row_number() OVER (ORDER BY {order_sql}) AS o, {line} AS line {from_sql}"
        )
        counties = [
            row[0] for row in con.execute("SELECT DISTINCT c FROM _wl ORDER BY c").fetchall()
        ]
        for county in counties:
            path = out_dir / name_for(county or None)
            rdr = con.sql(
                "SELECT line FROM _wl WHERE c = $c ORDER BY o", params={"c": county}
            ).to_arrow_reader(BATCH_ROWS)
            write_lines(path, layout, header, rdr)
            paths.append(path)
        con.execute("DROP TABLE _wl")
        return paths
    path = out_dir / name_for(None)
    rdr = con.sql(f"SELECT {line} AS line {from_sql} ORDER BY {order_sql}").to_arrow_reader(
        BATCH_ROWS
    )
    n = write_lines(path, layout, header, rdr)
    if n == 0 and header is None:  # a header-less file with no records would be an empty file
        path.unlink()
        return []
    return [path]


def write_plain(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    state: str,
    pol: PolicyView,
    out_dir: Path,
    extract_date: dt.date,
) -> list[Path]:
    """Registration file(s) plus, where the format has one, a separate history file."""
    reg = fmt.registrations
    values = [(c, registration_value(reg, c, pol)) for c in reg.columns]
    paths = write_table(
        con, reg, values, "FROM r WHERE TRUE",
        header_names=reg.names, out_dir=out_dir,
        name_for=lambda c: native_file_name(reg.filename, state=state, county=c, date=extract_date),
        county_sql="r.county", order_sql="r.__i",
    )  # fmt: skip
    if fmt.history is not None and pol.history:
        paths += write_history(con, fmt.history, state, out_dir, extract_date)
    return paths


def write_history(
    con: duckdb.DuckDBPyConnection, hl: FileLayout, state: str, out_dir: Path, extract_date: dt.date
) -> list[Path]:
    values = [(c, history_value(hl, c)) for c in hl.columns]
    return write_table(
        con, hl, values,
        "FROM h JOIN r ON h.state_voter_id = r.state_voter_id WHERE TRUE",
        header_names=hl.names, out_dir=out_dir,
        name_for=lambda c: native_file_name(hl.filename, state=state, county=c, date=extract_date),
        county_sql="coalesce(h.county, r.county)", order_sql="r.__i, h.election_date, h.__j",
    )  # fmt: skip


_PLACEHOLDER = re.compile(r"(\{date\}|\{type\})")


def label_sql(
    template: str,
    *,
    date_format: str,
    type_codes: CodeMap | None,
    date: str = "h.election_date",
    election_type: str = "h.election_type",
) -> str:
    """SQL for a native election label such as NY's ``"20241105 GE"`` or OH's ``"GENERAL-11/05/2024"``.

    ``{date}`` in ``template`` becomes ``date`` formatted with ``date_format``;
    ``{type}`` the native code of ``election_type`` (through ``type_codes``).
    The rest of the template is quoted as a literal.
    """
    parts = []
    for piece in _PLACEHOLDER.split(template):
        if piece == "{date}":
            parts.append(f"strftime({date}, {lit(date_format)})")
        elif piece == "{type}":
            parts.append(map_expr(type_codes, election_type, None))
        elif piece:
            parts.append(lit(piece))
    return "(" + (" || ".join(parts) or "''") + ")"
