"""The fast path for delimited files: DuckDB's own CSV parser, one read for many files.

The line engine (``engine``) reads every physical line as one value and
tokenises it in SQL, so any malformed line can be quarantined with an exact
reason.  That costs a tokenizer pass per read, and one SQL branch per file.
Most files are clean, so this path reads a *group* of files that share a
layout (a state's county files) with ONE ``read_csv`` call - explicit VARCHAR
columns, the layout's delimiter / quote / encoding, ``strict_mode`` and
``store_rejects`` - and checks, in one verification pass, that DuckDB's
records are exactly the file's physical lines:

* one line pass (``_shape_sql``) decodes every physical line (invalid bytes
  land in a reject table) and classifies it with RE2: a line of the common
  shape (n fields, quoted without inner quotes or not quoted at all, or - for
  every-field-quoted layouts - the CSV grammar with doubled quotes that also
  passes the line engine's own shape rule) is exactly one record, and the
  same match checks that the voter id field is not blank;
* when every line of a file is such a line and no line was rejected, the
  line pass has counted the records (records per file == physical lines
  counted from the bytes by ``sniff``, minus the header), so record ``k`` of
  a file is its line ``k`` (+1 with a header) and no parse pass is needed;
* otherwise (a line needs DuckDB's parser to be cut, lacks its voter id, or
  a history file's required values need parsing) a parse pass counts
  records per file with ``strict_mode`` and ``store_rejects``, as before.

A file that fails any check is read by the line engine instead, which
produces exactly the quarantine rows it always did; a long file with only
a few bad lines is split first (:func:`bad_lines`, ``scan._split_off_bad_lines``):
its bad lines go to the line engine, the rest stays here.  On the fast path the
only unloadable rows are records missing a required value (voter id,
election date); their line numbers come from the verification pass.

Line numbers are ``row_number() OVER ()`` over the group's read (a streaming
window in file order, nothing held or spilled) minus the record counts of
the earlier files in the group.  Only the fields the caller's projection
uses pass through the window (``used_fields``), so DuckDB's parser builds
strings for those alone.

The window makes the read single-threaded.  A group without quarantined
records (``GroupPlan.ordinal``: every line one loadable record) can do
without it: ``ordinal_sql`` is the plain, parallel read (DuckDB keeps
insertion order), and ``LineNumberer`` numbers each Arrow batch from the
records' stream positions, checking file order and the verified counts as
it goes (``scan.Scan.registration_batches``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from voterolls.formats.engine import (
    LINE_SEP,
    QUARANTINE_SCHEMA,
    QUOTED_FIELD,
    FilePlan,
    bare_field,
    fields_expr,
    lit,
    required_for,
    skip_lines_sql,
)
from voterolls.formats.spec import FileLayout
from voterolls.log import get_logger

log = get_logger(__name__)

_uid = itertools.count(1)


@dataclass
class GroupPlan:
    """Files of one layout read together; duck-types ``FilePlan`` for the projections."""

    plans: list[FilePlan]
    counts: list[int] = field(default_factory=list)  # records per file, verified
    #: True when no record of the group is quarantined: record ``k`` of a file is then
    #: its line ``k`` (+ header) and :meth:`ordinal_sql` may replace the numbering window
    ordinal: bool = False
    #: a one-file group read from a copy without some of the original's lines
    #: (:func:`bad_lines`, ``sniff.excise``): those original line numbers, sorted
    skipped: list[int] = field(default_factory=list)
    #: the counts are the files' physical lines, not yet proved to be their records: the
    #: read itself checks that every line is one loadable record (:func:`unverified`)
    provisional: bool = False

    is_group = True
    unescape = False  # DuckDB's parser already turned "" into "

    @property
    def layout(self) -> FileLayout:
        return self.plans[0].layout

    @property
    def role(self) -> str:
        return self.plans[0].role

    @property
    def header_names(self) -> list[str]:
        return self.plans[0].header_names

    @property
    def has_header(self) -> bool:
        return self.plans[0].has_header

    @property
    def n_fields(self) -> int:
        return len(self.header_names)

    def idx(self, name: str) -> int:
        return self.header_names.index(name) + 1

    def fld(self, i: int) -> str:
        return f"c{i}"

    def read_sql(self, *, rejects: str | None = None, lenient: bool = False) -> str:
        return read_csv_sql(self.plans, self.n_fields, rejects=rejects, lenient=lenient)

    def rows_sql(self, *, required: str | None = None, used: set[int] | None = None, **_: object) -> str:
        """(line_no, _sha, c1..cN) of the loadable records, in file order.

        ``used``: the native field numbers the caller's projection reads.  Only
        those pass through the line-numbering window, so DuckDB's parser builds
        strings for them alone (the window blocks projection pushdown).
        """
        offs, acc = [], 0
        for n in self.counts:
            offs.append(acc)
            acc += n
        hdr = 1 if self.has_header else 0
        if len(self.plans) == 1:
            sha = lit(self.plans[0].facts.sha256)
            line = f"k + {hdr}"
        else:
            sha = f"[{', '.join(lit(p.facts.sha256) for p in self.plans)}][_fi + 1]"
            line = f"k - [{', '.join(map(str, offs))}][_fi + 1] + {hdr}"
        keep = [i for i in range(1, self.n_fields + 1) if used is None or i in used]
        cols = ", ".join(self.fld(i) for i in keep) or "NULL AS _none"
        numbered = f"SELECT row_number() OVER () AS k, CAST(file_index AS BIGINT) AS _fi, {cols} FROM {self.read_sql()}"
        if self.skipped:  # a copy without some lines: the k-th line of the copy -> its original number
            numbered = skip_lines_sql(f"SELECT k + {hdr} AS k, _fi, {cols} FROM ({numbered})", "k", self.skipped, f"_fi, {cols}")
            numbered = f"SELECT line_no - {hdr} AS k, _fi, {cols} FROM ({numbered})"
        inner = f"SELECT CAST({line} AS BIGINT) AS line_no, {sha} AS _sha, {cols} FROM ({numbered})"
        return (
            inner
            if required is None
            else f"SELECT * FROM ({inner}) WHERE coalesce({required}, FALSE)"
        )


    def ordinal_sql(self, *, used: set[int] | None = None) -> str:
        """(line_no NULL, _sha, _fi, c1..cN) of every record, without the numbering window.

        Only for an :attr:`ordinal` group: every record is loadable and record
        ``k`` of a file is its physical line ``k`` (+1 with a header), so the
        caller numbers the lines from the record's position in the stream
        (:func:`number_lines`).  Without the window DuckDB's CSV reader runs on
        every thread; insertion order (DuckDB's default) keeps the records in
        file order.
        """
        if not self.ordinal:
            raise ValueError("ordinal_sql needs a group without quarantined records")
        if len(self.plans) == 1:
            sha = lit(self.plans[0].facts.sha256)
        else:
            sha = f"[{', '.join(lit(p.facts.sha256) for p in self.plans)}][CAST(file_index AS BIGINT) + 1]"
        keep = [i for i in range(1, self.n_fields + 1) if used is None or i in used]
        cols = ", ".join(self.fld(i) for i in keep) or "NULL AS _none"
        return (
            f"SELECT NULL::BIGINT AS line_no, {sha} AS _sha, CAST(file_index AS BIGINT) AS _fi, {cols} "
            f"FROM {self.read_sql()}"
        )

    def line_numberer(self) -> LineNumberer:
        """A stateful numberer for the records of :meth:`ordinal_sql`, in stream order."""
        return LineNumberer(self.counts, 1 if self.has_header else 0, self.skipped)


class ShapeRefuted(Exception):
    """A provisional group's read found that its records are not its lines (see :func:`unverified`).

    Not an error in the input: the caller reads the files again with the
    verification pass first (:func:`verify`), which quarantines what it must.
    """


def trusted(plans: list[FilePlan]) -> bool:
    """May these files (one fast-path group) be read before their shape is verified?

    Yes for registration files whose bytes the sniffing pass has cleared of
    what only the verification pass's own line decoding would catch: invalid
    UTF-8 (DuckDB's parser validates only the columns a query reads) and the
    control bytes the line reader reserves.  Everything else the read checks
    itself (:func:`unverified`).
    """
    return all(
        p.role == "registrations"
        and not p.facts.reserved_controls
        and (p.duck_encoding == "latin-1" or (p.duck_encoding == "utf-8" and p.facts.utf8))
        for p in plans
    )


def unverified(plans: list[FilePlan]) -> GroupPlan:
    """An ordinal group whose record counts are its line counts, to be proved by the read.

    The verification pass (:func:`verify`) reads every line once more than
    the load does (1.7 of 11 CPU s for a clean 1M-row NC file).  A provisional
    group skips it and lets the load prove the same facts: DuckDB's parser in
    ``strict_mode`` fails on a line that is not one record of the layout's
    fields; a record spanning lines makes a file yield fewer records than its
    lines, which ``LineNumberer`` catches (by position, and in total at the
    end); the projection carries each record's required-value test, checked
    per batch.  Any failure raises :class:`ShapeRefuted` and the caller
    starts over with :func:`verify`, so a clean file is read once and a
    damaged one is read as before.
    """
    hdr = 1 if plans[0].has_header else 0
    counts = [p.facts.lines - (hdr if p.facts.lines > 0 else 0) for p in plans]
    return GroupPlan(list(plans), counts, ordinal=True, provisional=True)


class LineNumberer:
    """Physical line numbers of an ordinal group's records from their stream position (numpy).

    Record ``k`` (1-based, over the whole group) of file ``i`` is line
    ``k - (records of files before i) + header``.  Each call checks what it
    can cheaply: file indexes never go back, no file yields more records than
    verified; :meth:`close` checks the total.  A failed check is a bug (the
    stream was not in file order) and raises ``RuntimeError``.
    """

    def __init__(self, counts: list[int], header: int, skipped: list[int] | None = None) -> None:
        self._counts = np.asarray(counts, dtype=np.int64)
        self._offs = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.int64)
        self._header = header
        if skipped and len(counts) != 1:
            raise ValueError("skipped lines are for a one-file group")
        # line l of the copy is original line l + #{i : skipped_i - i < l} (as engine.skip_lines_sql)
        sk = np.asarray(sorted(skipped or []), dtype=np.int64)
        self._thresholds = sk - np.arange(1, len(sk) + 1, dtype=np.int64)
        self._seen = 0
        self._last_fi = 0

    def __call__(self, file_index: pa.Array | pa.ChunkedArray) -> pa.Array:
        fi = np.asarray(file_index.to_numpy(zero_copy_only=False), dtype=np.int64)
        n = len(fi)
        k = np.arange(self._seen + 1, self._seen + n + 1, dtype=np.int64)
        self._seen += n
        if n:
            if fi[0] < self._last_fi or (n > 1 and bool((fi[1:] < fi[:-1]).any())):
                raise RuntimeError("records did not arrive in file order")
            self._last_fi = int(fi[-1])
            rel = k - self._offs[fi]
            if bool((rel < 1).any() or (rel > self._counts[fi]).any()):
                raise RuntimeError("a record's position lies outside its file's verified count")
            line = rel + self._header
            if len(self._thresholds):
                line = line + np.searchsorted(self._thresholds, line, side="left")
            return pa.array(line, pa.int64())
        return pa.array([], pa.int64())

    def close(self) -> None:
        if self._seen != int(self._counts.sum()):
            raise RuntimeError(f"{self._seen} records streamed, {int(self._counts.sum())} verified")


def used_fields(*sql: str) -> set[int]:
    """Native field numbers (``c<i>``) that SQL text refers to (a superset is harmless)."""
    return {int(m) for text in sql for m in re.findall(r"\bc(\d+)\b", text)}


def eligible(plan: FilePlan) -> bool:
    return (
        plan.layout.kind == "delimited"
        and not plan.facts.mixed_endings
        and not plan.facts.nul  # DuckDB's parser reads a NUL as a space: the line engine quarantines it
        and plan.source == plan.path
    )


def group_key(plan: FilePlan) -> tuple:
    return (
        plan.role,
        id(plan.layout),
        tuple(plan.header_names),
        plan.has_header,
        plan.duck_encoding,
    )


def read_csv_sql(
    plans: list[FilePlan], n: int, *, rejects: str | None = None, lenient: bool = False
) -> str:
    lay = plans[0].layout
    files = "[" + ", ".join(lit(str(p.source)) for p in plans) + "]"
    cols = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(1, n + 1))
    quoted = lay.quoting != "none"
    opts = [
        f"columns={{{cols}}}",
        f"delim={lit(lay.delimiter)}",
        "quote='\"'" if quoted else "quote=''",
        "escape='\"'" if quoted else "escape=''",
        f"header={'true' if plans[0].has_header else 'false'}",
        "auto_detect=false",
        "strict_mode=true",
        "null_padding=false",
        f"encoding={lit(plans[0].duck_encoding)}",
    ]
    if rejects:
        opts += [
            "store_rejects=true",
            f"rejects_table={lit(rejects + '_e')}",
            f"rejects_scan={lit(rejects + '_s')}",
        ]
    elif lenient:
        opts.append("ignore_errors=true")  # lines DuckDB rejects are counted by the caller
    return f"read_csv({files}, {', '.join(opts)})"


def _shape_sql(plans: list[FilePlan], rejects: str, required_idx: int | None = None) -> str:
    """Line counts per (file index, kind) in one pass over the physical lines (see :func:`_kinds_sql`)."""
    return (
        f"SELECT _fi, kind, count(*) AS n FROM ({_kinds_sql(plans, rejects, required_idx)}) GROUP BY _fi, kind"
    )


def _kinds_sql(plans: list[FilePlan], rejects: str, required_idx: int | None = None, *, numbered: bool = False) -> str:
    """(_fi, kind) for every physical line the reader decodes; with ``numbered`` also ``k``,
    the line's position among the decoded lines of the group (a streaming window).

    kind 0: a line DuckDB's parser reads as exactly one record, with field
    ``required_idx`` (1-based; None: no requirement) not blank; 1: a line the
    line engine would quarantine for its shape; 2: a valid line whose record
    only DuckDB's parser can cut; 3: a one-record line whose required field is
    blank.  The check is a regular expression per line (RE2, one match for
    nearly every line), so a clean file needs no parse pass to be counted.

    This pass also decodes every whole line, so invalid bytes anywhere land in
    ``rejects`` (DuckDB's parser only validates the columns a query uses).
    """
    lay = plans[0].layout
    n = len(plans[0].header_names)
    d = lay.delimiter
    files = "[" + ", ".join(lit(str(p.source)) for p in plans) + "]"
    read = (
        f"read_csv({files}, columns={{'line': 'VARCHAR'}}, delim={lit(LINE_SEP)}, quote='', escape='', "
        f"header={'true' if plans[0].has_header else 'false'}, auto_detect=false, strict_mode=true, "
        f"encoding={lit(plans[0].duck_encoding)}, store_rejects=true, "
        f"rejects_table={lit(rejects + '_e')}, rejects_scan={lit(rejects + '_s')})"
    )
    def fields(field: str, required: str, tail: str) -> str:
        """n fields joined by the delimiter; the required one must hold a non-blank character."""
        return e.join(required if i == required_idx else field for i in range(1, n + 1)) + tail

    e = re.escape(d)
    escaped = None
    if lay.quoting == "all":
        # nearly every line: n quoted fields without inner quotes (one RE2 match); then the
        # fields with doubled quotes inside (the engine's quoted-field atom)
        common = fields('"[^"]*"', '"[^"]*[^"\\s][^"]*"', "\r?")
        shape = fields('"[^"]*"', '"[^"]*"', "\r?")
        escaped = (
            fields(QUOTED_FIELD, '"(?:[^"]|"")*[^"\\s](?:[^"]|"")*"', "\r?"),
            fields(QUOTED_FIELD, QUOTED_FIELD, "\r?"),
        )
    elif lay.quoting == "none":
        common = fields(f"[^{e}]*", f"[^{e}]*[^{e}\\s][^{e}]*", "")
        shape = fields(f"[^{e}]*", f"[^{e}]*", "")
    else:
        common = fields(bare_field(d), f'[^"{e}]*[^"{e}\\s][^"{e}]*', "\r?")
        shape = fields(bare_field(d), bare_field(d), "\r?")
    # The RE2 patterns above only accept, quickly, lines of the common shapes; whether any
    # other line is one record is decided by the line engine's own rule (engine.fields_expr),
    # the one definition of a record's shape, evaluated only on those rare lines.
    tok, _, ok_tok, _ = fields_expr(plans[0])
    exact = f"list_transform([{tok}], lambda tok: {ok_tok})[1]"
    line = "rtrim(coalesce(raw_line, ''), chr(13))"
    exact = re.sub(r"\bline\b", line, exact)
    more = (
        f"WHEN regexp_full_match(raw_line, {lit(escaped[0])}) THEN 0 "
        f"WHEN regexp_full_match(raw_line, {lit(escaped[1])}) THEN 3 "
        if escaped
        else ""
    )
    # one small code per line, counted per (file, code): the CASE stops at the first match
    kind = (
        f"CASE WHEN regexp_full_match(raw_line, {lit(common)}) THEN 0 "
        f"WHEN regexp_full_match(raw_line, {lit(shape)}) THEN 3 "
        f"WHEN {line} = '' OR NOT coalesce({exact}, FALSE) THEN 1 {more}ELSE 2 END"
    )
    k = "row_number() OVER () AS k, " if numbered else ""
    return f"SELECT {k}file_index AS _fi, {kind} AS kind FROM (SELECT file_index, line AS raw_line FROM {read})"


@dataclass
class BadLines:
    """What :func:`bad_lines` found in one file."""

    lines: list[int]  # original line numbers, sorted
    #: the rest needs a parse pass to be counted: some records only DuckDB's parser can cut,
    #: or a required value the line pass cannot check
    needs_parse: bool


def bad_lines(con: duckdb.DuckDBPyConnection, plan: FilePlan, state: str) -> BadLines | None:
    """Original line numbers of the lines that keep ``plan``'s file off the fast path.

    Those are the lines the line engine would quarantine for their shape
    (kind 1 of :func:`_kinds_sql`), registrations without a voter id (kind
    3) and lines DuckDB cannot decode.  A file with only a few of them can
    be split (``sniff.excise``): the rest is read on the fast path and these
    lines by the line engine, each with its original number.  Lines whose
    record DuckDB's parser must cut (kind 2) are not bad.  One numbered pass
    (a streaming window, one thread).  None when the numbers do not
    reconcile with the bytes or the read fails.
    """

    g = GroupPlan([plan])
    required = required_for(g, state)
    ids = plan.layout.by_target("state_voter_id") if plan.role == "registrations" else []
    required_idx = g.idx(ids[0].name) if ids and required.get("required") else None
    rj = f"_vr_cut_{next(_uid)}"
    hdr = 1 if plan.has_header and plan.facts.lines > 0 else 0
    try:
        bad_k, decoded, parse = con.execute(
            f"SELECT list(k) FILTER (WHERE kind IN (1, 3)), count(*), count(*) FILTER (WHERE kind = 2) "
            f"FROM ({_kinds_sql([plan], rj, required_idx, numbered=True)})"
        ).fetchall()[0]
        rejected = (
            [int(r[0]) for r in con.execute(f"SELECT DISTINCT line FROM {rj}_e ORDER BY line").fetchall()]
            if _table_exists(con, f"{rj}_e")
            else []
        )
    except duckdb.Error:
        return None
    finally:
        con.execute(f"DROP TABLE IF EXISTS {rj}_e; DROP TABLE IF EXISTS {rj}_s")
    if decoded + len(rejected) + hdr != plan.facts.lines:
        return None
    # k-th decoded data line -> physical line (rejected lines are missing from the stream)
    k = np.asarray(bad_k or [], dtype=np.int64) + hdr
    rj_arr = np.asarray(rejected, dtype=np.int64)
    k = k + np.searchsorted(rj_arr - np.arange(1, len(rj_arr) + 1), k, side="left")
    # the kept lines can be counted without a parse pass only when every line is one record
    # and the regex also checked the required value (a history file's election date needs parsing)
    checked = required_idx is not None or not required.get("required")
    return BadLines(sorted(set(k.tolist()) | set(rejected)), bool(parse) or not checked)


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchall()[0][0]
    )


def _rejected(con: duckdb.DuckDBPyConnection, t: str) -> bool:
    """Did the read with reject tables ``t`` reject any line?"""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"{t}_e"]
    ).fetchall()[0][0]
    return bool(exists) and bool(con.execute(f"SELECT count(*) FROM {t}_e").fetchall()[0][0])


def verify(
    con: duckdb.DuckDBPyConnection, plans: list[FilePlan], state: str
) -> tuple[list[int], list[int], list[pa.Table]]:
    """Check ``plans`` (one layout) on the fast path.

    Returns (indexes of files that passed, their record counts, their
    quarantine tables in the same order).  Any error sends every file to
    the line engine.
    """

    g = GroupPlan(plans)
    required = required_for(g, state)
    rj = f"_vr_fast_{next(_uid)}"
    req = required.get("required") or "TRUE"
    fail = required.get("required_field") or "NULL"
    reason = required.get("required_reason", "missing or unreadable required value")
    # the line pass can check the registrations' voter id itself (a non-blank field); any other
    # requirement (a history file's election date) needs the parse pass
    ids = plans[0].layout.by_target("state_voter_id") if g.role == "registrations" else []
    required_idx = g.idx(ids[0].name) if ids and required.get("required") else None
    can_skip = required_idx is not None or not required.get("required")
    try:
        kinds: dict[int, list[int]] = {i: [0, 0, 0, 0] for i in range(len(plans))}
        for fi, kind, n in con.execute(_shape_sql(plans, rj + "l", required_idx)).fetchall():
            kinds[int(fi)][int(kind)] += int(n)
        shape_bad = {i: k[1] for i, k in kinds.items()}
        hdr = 1 if plans[0].has_header else 0
        common = can_skip and not _rejected(con, rj + "l") and all(
            sum(kinds[i]) == p.facts.lines - (hdr if p.facts.lines > 0 else 0) and kinds[i][1:] == [0, 0, 0]
            for i, p in enumerate(plans)
        )
        if common:
            # every line is one record carrying its required values: the line pass has
            # counted the records, so no parse pass is needed
            rows = [(i, kinds[i][0], None) for i in range(len(plans))]
            counted = []
        elif all(k[1] for k in kinds.values()):
            # every file has a line of the wrong shape: none can pass, a parse pass would tell nothing
            rows, counted = [], []
        else:
            # counts first, without line numbers: no window, so DuckDB reads in parallel
            counted = con.execute(
                f"SELECT CAST(file_index AS BIGINT) AS _fi, count(*) AS n, "
                f"count(*) FILTER (WHERE NOT coalesce({req}, FALSE)) AS nbad "
                f"FROM {g.read_sql(rejects=rj)} GROUP BY _fi"
            ).fetchall()
            rows = [(int(i), int(n), None) for i, n, _ in counted]
        if any(nbad for _, _, nbad in counted):
            # records missing a required value: number them (a streaming window, in file order)
            rows = con.execute(
                # no ORDER BY in the aggregate (it would buffer every row); sorted below
                f"SELECT _fi, count(*) AS n, list(struct_pack(k := k, f := fail)) FILTER (WHERE NOT ok) AS bad "
                f"FROM (SELECT row_number() OVER () AS k, file_index AS _fi, coalesce({req}, FALSE) AS ok, "
                f"CAST({fail} AS VARCHAR) AS fail FROM {g.read_sql(lenient=True)}) GROUP BY _fi"
            ).fetchall()
        rejected_files: set[str] = set()
        for t in (rj, rj + "l"):
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"{t}_e"]
            ).fetchall()[0][0]
            if exists:
                rejected_files |= {
                    str(r[0])
                    for r in con.execute(
                        f"SELECT DISTINCT s.file_path FROM {t}_e e JOIN {t}_s s ON e.scan_id = s.scan_id AND e.file_id = s.file_id"
                    ).fetchall()
                }
    except duckdb.Error as exc:
        log.info(
            "fast read of %d file(s) failed (%s); using the line reader",
            len(plans),
            type(exc).__name__,
        )
        return [], [], []
    finally:
        for t in (rj, rj + "l"):
            con.execute(f"DROP TABLE IF EXISTS {t}_e; DROP TABLE IF EXISTS {t}_s")
    by_fi = {int(r[0]): r for r in rows}
    counts = [int(by_fi[i][1]) if i in by_fi else 0 for i in range(len(plans))]
    known = {str(p.source) for p in plans}
    if rejected_files - known:
        return [], [], []  # a reject we cannot attribute: read everything line by line
    hdr = 1 if plans[0].has_header else 0
    good, good_counts, qs = [], [], []
    before = 0
    for i, p in enumerate(plans):
        expected = p.facts.lines - (hdr if p.facts.lines > 0 else 0)
        ok = (
            str(p.source) not in rejected_files
            and counts[i] == expected
            and shape_bad.get(i, 0) == 0
        )
        if ok:
            bad = sorted(
                ((int(b["k"]), b["f"]) for b in (by_fi[i][2] if i in by_fi else None) or []),
                key=lambda b: b[0],
            )
            lines = [k - before + hdr for k, _ in bad]
            bad_f = [f for _, f in bad]
            qs.append(
                pa.table(
                    {
                        "file": pa.array([str(p.path)] * len(lines), pa.string()),
                        "line": pa.array(lines, pa.int64()),
                        "field": pa.array(bad_f, pa.string()),
                        "reason": pa.array([reason] * len(lines), pa.string()),
                    },
                    schema=QUARANTINE_SCHEMA,
                )
            )
            good.append(i)
            good_counts.append(counts[i])
        before += counts[i]
    return good, good_counts, qs
