"""What the readers make of a delivery, before anything is ingested (``voterolls inspect``).

For one state's files: the layout detection chose (or the one named) and
how sure it is, per file the dialect found in the bytes, the native ->
national column mapping, the file's columns the layout does not know and
the layout's columns the file lacks, and per national field the share of a
sample of records that is non-null and the share of written values that
parsed.  Aggregates and names only: never a value of a record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from voterolls.errors import UserError
from voterolls.formats.detect import Candidate, Match, classify, detect
from voterolls.formats.registry import GENERIC, formats, get_format
from voterolls.formats.spec import REGISTRATION_TARGETS

#: Records the field shares are computed on (the first ones of the delivery).
SAMPLE_ROWS = 10_000

#: National fields whose shares are reported: what a reader can fill (tokens and derived names come later).
_FIELDS = [t for t in REGISTRATION_TARGETS if t != "protected_flag"]


@dataclass
class FileReport:
    path: str
    role: str
    header: bool
    encoding: str
    delimiter: str | None
    quoting: str | None
    score: float
    columns_in_file: int
    mapping: list[tuple[str, str]]  #: (native column, national field), file order
    not_read: list[str]  #: layout columns present in the file that no national field takes
    unmapped: list[str]  #: file columns the layout does not know (ignored)
    missing: list[str]  #: layout columns the file lacks (their fields read as NULL)
    election_columns: int = 0
    index_column: bool = False
    plausible: dict[str, float] = field(default_factory=dict)  #: detection's value checks on the head


@dataclass
class FieldShare:
    field: str
    non_null: float  #: share of sampled records with a value
    parsed: float | None  #: of the values written, the share read without being nulled (None: none written)


@dataclass
class InspectReport:
    format: str
    state: str | None
    detected: bool  #: False when the format was named
    score: float
    confidence: str
    candidates: list[Candidate]
    files: list[FileReport]
    sample_rows: int = 0
    rows_read: int = 0
    rows_quarantined: int = 0
    fields: list[FieldShare] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _file_report(path: Path, m: Match) -> FileReport:
    lay = m.layout
    mp = m.mapping
    mapping = [(c.name, c.target) for c in lay.columns if c.target]
    d = m.dialect
    return FileReport(
        path=str(path),
        role=m.role,
        header=m.has_header,
        encoding=d.encoding if d else lay.encoding,
        delimiter=d.delimiter if d else None,
        quoting=d.quoting if d else None,
        score=round(m.score, 3),
        columns_in_file=len(m.header_names),
        mapping=mapping,
        not_read=[n for n, _, t in (mp.mapped if mp else []) if t is None],
        unmapped=list(mp.unmapped) if mp else [],
        missing=list(mp.missing) if mp else [],
        election_columns=len(mp.election_columns) if mp else 0,
        index_column=bool(mp and mp.index_column),
        plausible={k: round(v, 3) for k, v in m.checks.items()},
    )


def _field_shares(con: duckdb.DuckDBPyConnection, rel: duckdb.DuckDBPyRelation, n: int) -> tuple[int, list[FieldShare]]:
    aggs = ", ".join(
        f"count({f}) AS nn_{i}, count(*) FILTER (WHERE list_contains(_issues, '{f}')) AS bad_{i}" for i, f in enumerate(_FIELDS)
    )
    row = con.execute(f"SELECT count(*), {aggs} FROM ({rel.sql_query()} LIMIT {int(n)})").fetchall()[0]
    total = int(row[0])
    out = []
    for i, f in enumerate(_FIELDS):
        nn, bad = int(row[1 + 2 * i]), int(row[2 + 2 * i])
        written = nn + bad
        out.append(
            FieldShare(f, round(nn / total, 4) if total else 0.0, round(nn / written, 4) if written else None)
        )
    return total, out


def inspect(paths: list[Path], *, state: str | None = None, format: str | None = None) -> InspectReport:  # noqa: A002
    """Detect (or take) the layout of ``paths`` and describe how they would be read.

    Raises ``UserError`` when detection refuses, or when ``state`` is named and
    the layout found belongs to another state (the same sentence ingest uses:
    :func:`wrong_state_message`).
    """
    from voterolls.formats.scan import scan

    if format is None:
        det = detect(paths)
        fmt = get_format(det.format)
        matches = list(det.matches)
        score, confidence, cands, detected = det.score, det.confidence, list(det.candidates), True
    else:
        fmt = get_format(format) if not str(format).endswith(".toml") else None
        if fmt is None:
            from voterolls.formats.registry import load_user_format

            fmt = load_user_format(format)
        matches = [classify(fmt, p, strict=fmt.state is not None and fmt.name in formats()) for p in paths]
        regs = [m.score for m in matches if m.role == "registrations"] or [0.0]
        score = sum(regs) / len(regs)
        confidence, cands, detected = f"named with --format (score {score:.2f})", [], False
    if state and fmt.state and fmt.state != state.upper():
        raise UserError(wrong_state_message(fmt.name, fmt.state, state), file=paths[0])
    report = InspectReport(
        format=fmt.name, state=fmt.state, detected=detected, score=round(score, 3), confidence=confidence,
        candidates=cands[:5], files=[_file_report(p, m) for p, m in zip(paths, matches, strict=True)],
    )  # fmt: skip
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    s = scan(con, paths, state=(state or fmt.state or "XX"), format=fmt.name if fmt.name in formats() else format)
    try:
        report.sample_rows, report.fields = _field_shares(con, s.registrations, SAMPLE_ROWS)
    finally:
        rep = s.finish()
    report.rows_read = sum(f.rows_read for f in rep.files)
    report.rows_quarantined = sum(f.rows_quarantined for f in rep.files)
    return report


def wrong_state_message(fmt: str, fmt_state: str, state: str, *, remedy: str | None = None) -> str:
    """The one explanation for a file whose layout belongs to another state than the one named.

    Ingest, ``inspect`` and the service's upload check all refuse with this
    sentence, so a user sees the same reason wherever the file was sent; only
    the remedy differs (``--format`` forces a layout on the command line, a
    service account uploads for its own state only).
    """
    why = f"the layout is {fmt_state.upper()}'s ({fmt}), not {state.upper()}'s"
    if remedy is None:
        remedy = (
            f"name {fmt_state.upper()} as the state, or pass --format {fmt} to read it as {state.upper()}'s file anyway"
        )
    return f"{why}; {remedy}"


_DELIMS = {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon", None: "fixed width"}


def render(report: InspectReport) -> list[str]:
    """The report as lines of text (names, counts and shares only)."""
    head = f"layout {report.format}" + (f" ({report.state})" if report.state else " (any state: generic mapping)")
    how = "detected" if report.detected else "named"
    lines = [f"{head}, {how}; {report.confidence}"]
    others = [c for c in report.candidates if c.format != report.format][:3]
    if others:
        lines.append(
            "  other candidates: "
            + ", ".join(f"{c.format} {c.score:.2f}" if not c.reason else f"{c.format} (unfit)" for c in others)
        )
    for f in report.files:
        lines.append(f"file {Path(f.path).name} ({f.role})")
        dialect = f"{_DELIMS.get(f.delimiter, repr(f.delimiter))}-separated, quoting {f.quoting}" if f.delimiter else "fixed width"
        lines.append(f"  bytes: {f.encoding}, {dialect}, {'header' if f.header else 'no header'}; score {f.score:.2f}")
        lines.append(
            f"  columns: {f.columns_in_file} in file, {len(f.mapping)} mapped, {len(f.not_read)} known but not read, "
            f"{len(f.unmapped)} unknown, {len(f.missing)} of the layout missing"
            + (f", {f.election_columns} election columns" if f.election_columns else "")
            + (", a leading index column (ignored)" if f.index_column else "")
        )
        for native, national in f.mapping:
            lines.append(f"    {native} -> {national}")
        if f.unmapped:
            lines.append("  unknown (ignored): " + ", ".join(f.unmapped))
        if f.missing:
            lines.append("  missing (read as NULL): " + ", ".join(f.missing))
    lines.append(
        f"records: {report.rows_read} read, {report.rows_quarantined} quarantined; field shares on the first {report.sample_rows}"
    )
    lines.append(f"  {'field':<20} {'non-null':>9} {'parsed':>9}")
    for s in report.fields:
        parsed = f"{s.parsed:.1%}" if s.parsed is not None else "-"
        lines.append(f"  {s.field:<20} {s.non_null:>9.1%} {parsed:>9}")
    return lines


__all__ = ["GENERIC", "InspectReport", "inspect", "render", "wrong_state_message"]
