"""``scan``: read native files into lazy national-schema relations (the ingest contract).

See docs/ARCHITECTURE.md "Readers -> ingest" and ``engine`` for how lines are read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.errors import UserError
from voterolls.formats import engine, fast, ny, oh, sniff
from voterolls.formats import pa as pa_fve
from voterolls.formats.detect import classify, resolve_format
from voterolls.formats.engine import (
    QUARANTINE_SCHEMA,
    FilePlan,
    ScannedFile,
    ScanReport,
    history_projection,
    registration_projection,
    required_for,
    rows_sql,
)
from voterolls.formats.spec import Format
from voterolls.log import get_logger
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA
from voterolls.scratch import ScratchFile, anonymous_file

log = get_logger(__name__)

T = TypeVar("T")

#: Column of a clean group's parallel read: the record's file (index in the group), for numbering.
FILE_INDEX = "__vr_fi"
#: a provisional group's per-record test of its required values (``fast.unverified``)
REQUIRED_OK = "__vr_required_ok"

_REJECT_REASONS = {
    "INVALID ENCODING": "invalid byte sequence for {enc}",
    "TOO MANY COLUMNS": "line contains reserved control bytes (0x1f 0x1e 0x1d)",
    "LINE SIZE OVER MAXIMUM": "line longer than 2 MiB (no voter record is)",
}
#: DuckDB's default ``max_line_size``: longer lines are rejected (up to its 32 MiB read
#: buffer) or skipped without a reject (beyond it); ``_long_lines`` finds the latter.
MAX_LINE_BYTES = 2_097_152


class Scan:
    """The lazy result of :func:`scan`; call :meth:`finish` after consuming the relations."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        fmt: Format,
        plans: list[FilePlan],
        registrations: duckdb.DuckDBPyRelation,
        vote_history: duckdb.DuckDBPyRelation | None,
        files: list[ScannedFile],
        quarantine_tables: list[str | pa.Table],
        temp: Scratch,
        registration_parts: list[tuple[str, str | None, fast.GroupPlan | None]] | None = None,
    ) -> None:
        self.format = fmt.name
        self.format_spec = fmt
        self.registrations = registrations
        self.vote_history = vote_history
        self._con = con
        self._plans = plans
        self._files = files
        self._qtables = quarantine_tables
        self._temp = temp
        self._report: ScanReport | None = None
        self._reg_parts = registration_parts or []
        #: set when a provisional group's read proved it is not one record per line
        #: (``fast.ShapeRefuted``): scan again with ``verify_first=True``
        self.shape_refuted = False

    def registration_batches(
        self,
        batch_rows: int = 131_072,
        prepare: Callable[[duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation], duckdb.DuckDBPyRelation] | None = None,
    ) -> pa.RecordBatchReader:
        """The rows of :attr:`registrations` as Arrow batches, read with every thread.

        Same rows, in the same order, as ``registrations``; the difference is
        how ``source_line`` is made.  For a fast-path group without
        quarantined records (every line one loadable record: the usual clean
        file) the group is read by DuckDB's parallel CSV reader without the
        line-numbering window, and ``source_line`` is filled here from each
        record's position in the stream (numpy, per batch: see
        ``fast.LineNumberer``).  Every other reader streams its exact SQL.

        ``prepare(con, rel)`` (optional) is applied to each part's rows before
        they leave DuckDB.  It must keep rows one for one and in order
        (projections only: no join, no filter), and keep unknown columns.  On
        a clean group it runs in the same parallel query as the CSV read; on
        any other part it runs on a second cursor over the exact rows, so the
        reader's (possibly very large) SQL is bound once.
        Consume the reader once, before :meth:`finish`.
        """
        parts = self._reg_parts or [(self.registrations.sql_query(), None, None)]

        def open_part(exact: str, ordinal: str | None) -> pa.RecordBatchReader:
            if ordinal is not None:
                rel = self._con.sql(ordinal)
                return (prepare(self._con, rel) if prepare else rel).to_arrow_reader(batch_rows)
            rows = self._con.sql(exact)
            if prepare is None:
                return rows.to_arrow_reader(batch_rows)
            cur = self._con.cursor()
            cur.execute("SET enable_progress_bar = false")
            return prepare(cur, cur.from_arrow(rows.to_arrow_reader(batch_rows))).to_arrow_reader(batch_rows)

        first = self._refuted_on_error(
            parts[0][2], lambda: open_part(parts[0][0], parts[0][1] if parts[0][2] is not None else None)
        )
        schema = first.schema
        for helper in (FILE_INDEX, REQUIRED_OK):
            if helper in schema.names:
                schema = schema.remove(schema.get_field_index(helper))

        def batches() -> Iterator[pa.RecordBatch]:
            for k, (exact, ordinal, group) in enumerate(parts):
                numbered = ordinal is not None and group is not None
                reader = first if k == 0 else self._refuted_on_error(
                    group, lambda: open_part(exact, ordinal if numbered else None)  # noqa: B023 - called at once
                )
                if not numbered:
                    for b in reader:
                        yield b if b.schema == schema else b.cast(schema)
                    continue
                yield from self._numbered(reader, group, schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _numbered(
        self, reader: pa.RecordBatchReader, group: fast.GroupPlan, schema: pa.Schema
    ) -> Iterator[pa.RecordBatch]:
        """An ordinal group's batches with ``source_line`` from their stream position.

        A provisional group (``fast.unverified``) is proved here: a batch with a
        record lacking its required value, a parse error or a count that does
        not reconcile raises ``fast.ShapeRefuted``.
        """
        number = group.line_numberer()
        batches = iter(reader)
        while True:
            b = self._refuted_on_error(group, lambda: next(batches, None))  # noqa: B023 - called at once
            if b is None:
                break
            if group.provisional and REQUIRED_OK in b.schema.names and not pc.all(b.column(REQUIRED_OK)).as_py():
                raise self._refuted("a record lacks its required value")
            lines = self._refuted_on_error(group, lambda: number(b.column(FILE_INDEX)))  # noqa: B023
            cols = [lines if name == "source_line" else b.column(name) for name in schema.names]
            yield pa.RecordBatch.from_arrays(cols, schema=schema)
        self._refuted_on_error(group, number.close)

    def _refuted_on_error(self, group: fast.GroupPlan | None, step: Callable[[], T]) -> T:
        """Run ``step``; for a provisional group a parse error or count mismatch refutes its shape."""
        if group is None or not group.provisional:
            return step()
        try:
            return step()
        except (duckdb.Error, OSError, pa.ArrowException, RuntimeError) as exc:
            # DuckDB's parse error arrives as duckdb.Error when the query starts and as
            # Arrow's OSError from a later batch; RuntimeError: the numberer's count checks
            raise self._refuted(f"{type(exc).__name__} while reading") from exc

    def _refuted(self, why: str) -> fast.ShapeRefuted:
        """Record that a provisional group was refuted; the exception for the caller to raise."""
        self.shape_refuted = True
        log.info("files read before verification are not one record per line (%s); verifying them", why)
        return fast.ShapeRefuted(why)

    @property
    def files(self) -> list[ScannedFile]:
        """Per-file counts (known at scan time; the same objects ``finish().files`` returns)."""
        return list(self._files)

    def finish(self) -> ScanReport:
        """Quarantine and per-file counts; closes (and so frees) the scratch copies.  Idempotent."""
        if self._report is not None:
            return self._report
        parts = [
            t
            if isinstance(t, pa.Table)
            else self._con.sql(f"SELECT file, line, field, reason FROM {t}").to_arrow_table()
            for t in self._qtables
        ]
        q = (
            pa.concat_tables([p.cast(QUARANTINE_SCHEMA) for p in parts])
            if parts
            else QUARANTINE_SCHEMA.empty_table()
        )
        for t in self._qtables:
            if isinstance(t, str):
                self._con.execute(f"DROP TABLE IF EXISTS {t}")
        self._temp.close()
        self._report = ScanReport(files=list(self._files), quarantine=q)
        return self._report

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def _plan(path: Path, match, fmt: Format, uid: int, facts: sniff.FileFacts | None = None) -> FilePlan:  # noqa: ANN001
    facts = facts if facts is not None else sniff.facts(path)
    lay = match.layout
    return FilePlan(
        path=path,
        role=match.role,
        layout=lay,
        header_names=match.header_names,
        source=path,
        duck_encoding=lay.encoding,
        facts=facts,
        uid=uid,
        has_header=match.has_header,
    )


class Scratch:
    """The reader's copies of input files: anonymous (``voterolls.scratch``), open until :meth:`close`.

    A copy holds the input as the state sent it, withheld fields included, so
    it never has a name on disk: the kernel frees it when its descriptor
    closes, however the process ends (a SIGKILL included).
    """

    def __init__(self, dir: Path | None = None) -> None:  # noqa: A002
        self.dir = dir
        self._stack = ExitStack()

    def new(self, suffix: str = "") -> ScratchFile:
        return self._stack.enter_context(anonymous_file(self.dir, suffix))

    def close(self) -> None:
        self._stack.close()


#: A fast-path file that fails verification because of a few lines is split instead of
#: being read line by line: at least this many lines ...
SPLIT_MIN_LINES = 50_000
#: ... and at most this share of them bad.
SPLIT_MAX_BAD_SHARE = 0.02


def _split_off_bad_lines(
    con: duckdb.DuckDBPyConnection, plan: FilePlan, state: str, temp: Scratch
) -> tuple[fast.GroupPlan, FilePlan] | None:
    """Split a long file with a few bad lines: (the rest on the fast path, the bad lines for the line engine).

    Real county files carry a handful of malformed lines; reading a million
    good lines through the line engine because of them costs several times
    the fast path.  The bad lines (``fast.bad_lines``) are copied to one temp
    file and read by the line engine, which quarantines them exactly as it
    would have (``FilePlan.line_map`` keeps their original numbers); every
    other line is copied to a second temp file, verified again, and read on
    the fast path with its original line numbers (``GroupPlan.skipped``).
    Both parts carry the original file's sha256, so its counts reconcile as
    one file.  None (read the whole file line by line) when the file is
    short, has too many bad lines, or the copy is not clean.
    """
    if plan.facts.lines < SPLIT_MIN_LINES or plan.facts.utf16:
        return None
    found = fast.bad_lines(con, plan, state)
    if found is None or not found.lines or len(found.lines) > SPLIT_MAX_BAD_SHARE * plan.facts.lines:
        return None
    bad = found.lines
    try:
        kept_file, cut_file = temp.new("_kept"), temp.new("_cut")
        sniff.excise(plan.source, bad, header=plan.has_header, keep=kept_file.fileobj, cut=cut_file.fileobj)
    except OSError as exc:  # no room for the copies, say: the line engine needs none
        log.info("file %s: could not split (%s); reading it line by line", plan.path.name, type(exc).__name__)
        return None
    kept_path, cut_path = kept_file.path, cut_file.path
    kept = dataclasses.replace(
        plan, source=kept_path, uid=next(engine.plan_ids), rejected=[],
        facts=dataclasses.replace(plan.facts, lines=plan.facts.lines - len(bad)),
    )  # fmt: skip
    if found.needs_parse:
        good, counts, qs = fast.verify(con, [kept], state)
        if not good or qs[0].num_rows:
            return None
    else:  # every kept line was one decodable record of the common shape, with its voter id
        counts = [kept.facts.lines - (1 if plan.has_header else 0)]
    cut = dataclasses.replace(
        plan, source=cut_path, uid=next(engine.plan_ids), rejected=[],
        facts=dataclasses.replace(sniff.facts(cut_path), sha256=plan.facts.sha256),
        line_map=([1] if plan.has_header else []) + bad,
    )  # fmt: skip
    log.info("file %s: %d bad line(s) read by the line engine, the rest on the fast path", plan.path.name, len(bad))
    return fast.GroupPlan([kept], counts, ordinal=True, skipped=bad), cut


def _read_rejects(con: duckdb.DuckDBPyConnection, plan: FilePlan, temp: Scratch) -> None:
    """First pass: let DuckDB decode every line; collect rejected line numbers; reconcile counts."""
    for attempt in (0, 1):
        if attempt == 0 and plan.facts.mixed_endings:
            _normalise(plan, temp)
            continue
        rj = f"_vr_rj_{plan.uid}_{attempt}"
        try:
            accepted = con.execute(
                f"SELECT count(line IS NULL) FROM {engine.plan_csv_sql(plan, rejects=rj)}"
            ).fetchall()[0][0]
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise  # the limit, not the file: the ingest says so in one sentence
            if attempt == 0:
                log.info(
                    "file %s: strict line read failed (%s); normalising line endings",
                    plan.path.name,
                    type(exc).__name__,
                )
                _normalise(plan, temp)
                continue
            raise UserError(
                f"cannot be read as lines of text ({type(exc).__name__})", file=plan.path
            ) from None
        exists = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [f"{rj}_e"]
        ).fetchall()[0][0]
        rejected = (
            con.execute(
                f"SELECT line, any_value(error_type) FROM {rj}_e GROUP BY line ORDER BY line"
            ).fetchall()
            if exists
            else []
        )
        con.execute(f"DROP TABLE IF EXISTS {rj}_e; DROP TABLE IF EXISTS {rj}_s")
        if accepted + len(rejected) != plan.facts.lines:
            rejected = _with_long_lines(plan, accepted, rejected)
        if accepted + len(rejected) == plan.facts.lines:
            plan.rejected = [(int(n), str(t)) for n, t in rejected]
            return
        if attempt == 0:
            _normalise(plan, temp)
            continue
        raise UserError(
            f"line count does not reconcile: {plan.facts.lines} lines counted in the bytes, "
            f"{accepted + len(rejected)} read by the parser",
            file=plan.path,
        )


def _with_long_lines(plan: FilePlan, accepted: int, rejected: list) -> list:
    """``rejected`` plus the over-long lines DuckDB skipped silently, when that makes the count whole.

    A line of 32 MiB or more does not fit DuckDB's read buffer and is left
    out without a reject.  Counting such lines ourselves lets the rest of the
    file load, the long line quarantined with its number, instead of refusing
    the whole file.  Only for UTF-8/latin-1 bytes (a normalised copy is UTF-8).
    """
    if plan.facts.utf16 and plan.source == plan.path:
        return rejected
    known = {int(n) for n, _ in rejected}
    extra = [n for n in sniff.long_lines(plan.source, MAX_LINE_BYTES) if n not in known]
    if not extra or accepted + len(rejected) + len(extra) != plan.facts.lines:
        return rejected
    log.info("file %s: %d line(s) over %d bytes quarantined", plan.path.name, len(extra), MAX_LINE_BYTES)
    return sorted([*rejected, *((n, "LINE SIZE OVER MAXIMUM") for n in extra)], key=lambda r: int(r[0]))


def _normalise(plan: FilePlan, temp: Scratch) -> None:
    if plan.source != plan.path:
        return
    copy = temp.new("_norm")
    sniff.normalise_endings(plan.path, plan.layout.encoding, copy.fileobj)
    plan.source = copy.path
    plan.duck_encoding = "utf-8"


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _quarantine_table(
    con: duckdb.DuckDBPyConnection, plan: FilePlan, state: str
) -> tuple[str, int]:
    """Materialise this file's quarantine (line numbers and reasons only); return (table, count)."""
    t = f"_vr_q_{plan.uid}"
    req = required_for(plan, state)
    parts = [f"SELECT line_no, field, reason FROM ({rows_sql(plan, valid=False, **req)})"]
    if plan.rejected:
        enc = plan.layout.encoding
        vals = ", ".join(
            f"({plan.line_map[n - 1] if plan.line_map else n}, {engine.lit(_REJECT_REASONS.get(tp, tp.lower()).format(enc=enc))})"
            for n, tp in plan.rejected
        )
        parts.append(
            f"SELECT n AS line_no, NULL::VARCHAR AS field, r AS reason FROM (VALUES {vals}) v(n, r)"
        )
    union = " UNION ALL ".join(parts)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {t} AS SELECT {engine.lit(str(plan.path))} AS file, CAST(line_no AS BIGINT) AS line, "
        f"field, reason FROM ({union}) ORDER BY line"
    )
    n = con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
    return t, int(n)


def scan(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[str | Path] | str | Path,
    *,
    state: str,
    format: str | Path | None = None,
    facts: dict[str, sniff.FileFacts] | None = None,
    temp_dir: Path | None = None,
    verify_first: bool = True,
) -> Scan:
    """Read ``paths`` (one state's files) into lazy national-schema relations.

    ``format``: a shipped format name, a user mapping file (``.toml``), or
    None to detect.  Raises ``UserError`` for missing/empty files and for files
    whose shape does not match the format (naming file, line and expectation).
    ``facts``: ``sniff.facts`` already gathered by the caller (keyed by
    ``str(path)``), so a file is hashed and its lines counted once per ingest.
    ``temp_dir``: where temporary copies of input files go (files with mixed
    line endings, files split around bad lines) are created (and at once
    unlinked: ``voterolls.scratch``); ingest passes its staged snapshot's
    scratch directory.  Default: the system temp dir.  ``finish()`` closes
    them, which frees them.
    ``verify_first=False``: groups of registration files that ``fast.trusted``
    clears skip the verification pass and are proved while
    :meth:`Scan.registration_batches` streams them (``fast.unverified``); if
    that fails it raises ``fast.ShapeRefuted`` and sets ``shape_refuted``,
    and the caller discards what it wrote and scans again with the default.
    Only for a caller that streams the registrations before using the counts.
    """
    plist = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not plist:
        raise UserError("no files given")
    state = state.upper()
    fmt = resolve_format(format, plist)
    # a shipped state layout the user named must fit well; generic and mapping files map what they can
    strict = format is not None and fmt.state is not None and not str(format).endswith(".toml")
    if fmt.state and fmt.state != state:
        # forced with --format: say so; detected: the caller decides (ingest refuses it, exit 2)
        (log.warning if format is not None else log.info)("format %s is %s's; scanning it as %s", fmt.name, fmt.state, state)
    plans: list[FilePlan] = []
    temp = Scratch(temp_dir)
    qtables: list[str] = []
    try:
        shared: dict[str, object] = {}
        for p in plist:
            m = classify(fmt, p, strict=strict)
            # files with the same header and dialect share one effective layout (one fast-path group)
            m.layout = shared.setdefault(f"{m.role}|{m.layout.model_dump_json()}", m.layout)
            plans.append(_plan(p, m, fmt, next(engine.plan_ids), (facts or {}).get(str(p))))
            if plans[-1].layout.encoding == "utf-16-be":  # DuckDB reads UTF-16LE only: a UTF-8 copy
                _normalise(plans[-1], temp)
        # fast path: files of one layout read together by DuckDB's CSV parser (``fast``)
        groups: dict[tuple, list[int]] = {}
        for i, pl in enumerate(plans):
            if fast.eligible(pl):
                groups.setdefault(fast.group_key(pl), []).append(i)
        qparts: dict[int, list[pa.Table | str]] = {}
        readers: list[tuple[int, FilePlan | fast.GroupPlan]] = []  # (first file index, plan)
        line_plans: list[tuple[int, FilePlan]] = []  # files (or parts of files) for the line engine
        for members in groups.values():
            gplans = [plans[i] for i in members]
            if not verify_first and fast.trusted(gplans):
                readers.append((members[0], fast.unverified(gplans)))
                qparts.update({i: [] for i in members})
                continue
            good, counts, qs = fast.verify(con, gplans, state)
            if good:
                # no quarantined record: record k of a file is its line k (+ header)
                gp = fast.GroupPlan([gplans[j] for j in good], counts, ordinal=all(q.num_rows == 0 for q in qs))
                readers.append((members[good[0]], gp))
                for j, q in zip(good, qs, strict=True):
                    qparts[members[j]] = [q]
            for j, pl in enumerate(gplans):
                split = None if j in good else _split_off_bad_lines(con, pl, state, temp)
                if split is not None:
                    # a long file with a few bad lines: the rest stays on the fast path
                    readers.append((members[j], split[0]))
                    line_plans.append((members[j], split[1]))
                    qparts[members[j]] = []
        # the line engine: everything else (fixed width, mixed line endings, files that failed a check)
        line_plans += [(i, pl) for i, pl in enumerate(plans) if i not in qparts]
        for i, pl in line_plans:
            _read_rejects(con, pl, temp)
            t, _ = _quarantine_table(con, pl, state)
            qtables.append(t)
            qparts.setdefault(i, []).append(t)
            readers.append((i, pl))
        readers.sort(key=lambda r: r[0])
        files: list[ScannedFile] = []
        for i, (p, plan) in enumerate(zip(plist, plans, strict=True)):
            nq = sum(q.num_rows if isinstance(q, pa.Table) else _count(con, q) for q in qparts[i])
            header = 1 if plan.has_header and plan.facts.lines > 0 else 0
            rows_read = plan.facts.lines - header
            sf = ScannedFile(
                path=str(p), sha256=plan.facts.sha256, encoding=plan.layout.encoding, rows_read=rows_read,
                role=plan.role, rows_loaded=rows_read - nq, rows_quarantined=nq,
            )  # fmt: skip
            # cannot happen: every quarantined line is a distinct physical line
            if sf.rows_loaded < 0:
                raise UserError("internal count mismatch", file=p)
            files.append(sf)
        rplans = [r for _, r in readers]
        regs = [pl for pl in rplans if pl.role == "registrations"]
        if not regs and not any(pl.role == "history" for pl in rplans):
            raise UserError(
                f"no registration file among the inputs for format {fmt.name!r}", file=plist[0]
            )
        reg_sql = []
        reg_parts: list[tuple[str, str | None, fast.GroupPlan | None]] = []
        if not regs:  # a history-only delivery (its registrations came, or will come, apart)
            none = engine.empty_relation(
                con, REGISTRATION_SCHEMA, ", CAST(NULL AS VARCHAR[]) AS _issues, false AS _protected"
            )
            reg_sql.append(none.sql_query())
            reg_parts.append((reg_sql[-1], None, None))
        for pl in regs:
            extra = [ny.unreadable_history_issue(pl)] if pl.layout.embedded_history else None
            proj = registration_projection(pl, state, extra)
            req = required_for(pl, state)
            ordinal = None
            if isinstance(pl, fast.GroupPlan):
                used = fast.used_fields(proj, req.get("required") or "")
                rows = pl.rows_sql(required=req.get("required"), used=used)
                if pl.ordinal:
                    ok = (
                        f", coalesce({req['required']}, FALSE) AS {REQUIRED_OK}"
                        if pl.provisional and req.get("required")
                        else ""
                    )
                    ordinal = f"SELECT {proj}, _fi AS {FILE_INDEX}{ok} FROM ({pl.ordinal_sql(used=used)})"
            else:
                rows = rows_sql(pl, valid=True, **req)
            reg_sql.append(f"SELECT {proj} FROM ({rows})")
            reg_parts.append((reg_sql[-1], ordinal, pl if ordinal else None))
        registrations = con.sql(" UNION ALL ".join(reg_sql))
        vh_sql = []
        maps = [pl for pl in rplans if pl.role == "election_map"]
        for pl in rplans:
            if pl.role == "history":
                sel, _, _ = history_projection(pl, state)
                vh_sql.append(
                    f"SELECT {sel} FROM ({rows_sql(pl, valid=True, **required_for(pl, state))})"
                )
            elif pl.role == "registrations" and pl.layout.wide_history:
                s = oh.history_sql(pl, state)
                if s:
                    vh_sql.append(s)
            elif pl.role == "registrations" and pl.layout.embedded_history:
                vh_sql.append(ny.history_sql(pl, state))
            elif pl.role == "registrations" and pl.layout.slot_history:
                s = pa_fve.history_sql(pl, maps, state)
                if s:
                    vh_sql.append(s)
        vote_history = None
        if vh_sql:
            cols = ", ".join(engine.ident(f.name) for f in VOTE_HISTORY_SCHEMA)
            casts = ", ".join(
                f"CAST({engine.ident(f.name)} AS {engine.sql_type(f.type)}) AS {engine.ident(f.name)}"
                for f in VOTE_HISTORY_SCHEMA
            )
            vote_history = con.sql(
                " UNION ALL ".join(f"SELECT {casts} FROM ({s})" for s in vh_sql)
            ).select(cols)
    except BaseException:
        for t in qtables:
            con.execute(f"DROP TABLE IF EXISTS {t}")
        temp.close()
        raise
    log.info("scan %s: %d file(s), format %s", state, len(files), fmt.name)
    qlist = [q for i in range(len(plans)) for q in qparts[i]]
    return Scan(con, fmt, plans, registrations, vote_history, files, qlist, temp, reg_parts)
