"""Which layout a file has, from its first lines: header, field count, delimiter, quoting, encoding.

A wrong guess must never turn into silently mis-mapped data: when a file's
shape does not match the chosen (or detected) layout, the caller gets a
``UserError`` naming the file, the line and what was expected.  Messages
describe shapes (counts, delimiters, encodings), never a line's content: a
header-less file's first line is a voter's record.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from voterolls.errors import UserError, require_file
from voterolls.formats import sniff
from voterolls.formats.registry import formats, get_format
from voterolls.formats.spec import FileLayout, Format

_DELIM_NAMES = {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon"}


@dataclass
class Match:
    role: str
    layout: FileLayout
    header_names: list[str]
    score: int  # 3 = header matched, 2 = count + quoting matched, 1 = fixed width plausible
    has_header: bool = False


def split_line(line: str, layout: FileLayout) -> list[str]:
    if layout.quoting == "none":
        return line.split(layout.delimiter)
    try:
        return next(csv.reader([line], delimiter=layout.delimiter, quotechar='"', strict=True))
    except (csv.Error, StopIteration):
        return line.split(layout.delimiter)


def describe(layout: FileLayout) -> str:
    if layout.kind == "fixed":
        return f"fixed-width records of up to {layout.record_width} characters ({layout.encoding})"
    d = _DELIM_NAMES.get(layout.delimiter, repr(layout.delimiter))
    q = {"all": ", every field quoted", "minimal": "", "none": ", unquoted"}[layout.quoting]
    h = {True: "with a header", False: "without a header", "optional": "with or without a header"}[
        layout.header
    ]
    n = f"{len(layout.columns)}+" if layout.wide_history else str(len(layout.columns))
    return f"{n} {d}-separated fields{q}, {h}, {layout.encoding}"


def _shape(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIM_NAMES}
    d, c = max(counts.items(), key=lambda kv: kv[1])
    if c == 0:
        return f"a {len(line)}-character line with no tab, comma, pipe or semicolon"
    return f"{c + 1} {_DELIM_NAMES[d]}-separated fields"


#: How many of a header-less file's first non-blank lines are judged (one damaged record must not decide).
SAMPLE_LINES = 10


def _record_fits(line: str, layout: FileLayout, names: list[str]) -> str:
    """Why ``line`` is not a record of header-less ``layout`` (empty when it is one); shapes only."""
    if layout.kind == "fixed":
        targeted = [c for c in layout.columns if c.target]
        last_start = max(c.start or 1 for c in targeted) if targeted else 1
        if last_start <= len(line) <= layout.record_width:
            return ""
        return f"is {len(line)} characters, expected fixed-width records of {last_start}..{layout.record_width}"
    fields = split_line(line, layout)
    if len(fields) != len(names):
        return f"has {len(fields)} fields by this layout's rules; expected {describe(layout)}"
    if layout.quoting == "all" and not (line.startswith('"') and line.rstrip("\r").endswith('"')):
        return "is not fully quoted; expected every field in double quotes"
    return ""


def _judge_records(lines: list[str], layout: FileLayout, names: list[str]) -> str:
    """Empty when the file's records fit header-less ``layout``, else why not.

    Line 1 fitting is enough (a later damaged record is the reader's to
    quarantine).  When line 1 does not fit, the first ``SAMPLE_LINES``
    non-blank lines decide: at least half of them (and at least one besides
    line 1) must fit, so one damaged first record is quarantined by the
    reader, even in a two-record file, while a file of another layout (where
    every line fails, or most do) is still refused.
    """
    first_why = _record_fits(lines[0], layout, names)
    if not first_why:
        return ""
    sample = [ln for ln in lines if ln.strip()][:SAMPLE_LINES]
    fits = sum(1 for ln in sample if not _record_fits(ln, layout, names))
    if fits >= 1 and 2 * fits >= len(sample):
        return ""
    why = f"line 1 {first_why}"
    if len(sample) > 1:
        why += f" (and {fits} of the first {len(sample)} non-blank lines fit)"
    return why


def match_layout(layout: FileLayout, role: str, path: Path) -> tuple[Match | None, str]:
    """Does the file fit ``layout``?  (match, reason when not).

    A header is judged on line 1; a header-less file on its first records
    (see :func:`_judge_records`), so a damaged first record does not refuse
    the whole file.
    """
    raw = sniff.head(path, 4)
    utf16 = sniff.is_utf16(raw)
    if utf16 != (layout.encoding == "utf-16"):
        return (
            None,
            f"file is {'UTF-16' if utf16 else 'not UTF-16'}, layout expects {layout.encoding}",
        )
    _, lines = sniff.first_lines(path, layout.encoding, n=SAMPLE_LINES + 2)
    first = lines[0] if lines else ""
    if first == "" and len(lines) <= 1:
        return None, "file is empty"
    names = layout.names
    if layout.kind == "fixed":
        why = _judge_records(lines, layout, names)
        if not why:
            return Match(role, layout, names, 1), ""
        return None, why
    fields = split_line(first, layout)
    if layout.header is True or (layout.header == "optional" and _is_header(fields, names)):
        got = [f.strip() for f in fields]
        expect = [n.lower() for n in names]
        if layout.wide_history:
            head = [g.lower() for g in got[: len(names)]]
            pat = re.compile(layout.wide_history.pattern)
            rest = got[len(names) :]
            if head == expect and all(pat.match(r) for r in rest):
                return Match(role, layout, got, 3, has_header=True), ""
        elif [g.lower() for g in got] == expect:
            return Match(role, layout, names, 3, has_header=True), ""
        return None, f"line 1 should be the header of {describe(layout)}; found {_shape(first)}"
    # header-less: the records must be of the right shape, and line 1 not a header
    if _is_header(fields, names):
        return None, "line 1 is a header, but this layout has none"
    why = _judge_records(lines, layout, names)
    if why:
        return None, why
    return Match(role, layout, names, 2), ""


def _is_header(fields: list[str], names: list[str]) -> bool:
    return [f.strip().lower() for f in fields] == [n.lower() for n in names]


def classify(fmt: Format, path: Path) -> Match:
    """The role a file plays in ``fmt``; UserError naming file and line 1 when none fits."""
    _require_file(path)
    misses = []
    best: Match | None = None
    for role, layout in fmt.layouts().items():
        m, why = match_layout(layout, role, path)
        if m and (best is None or m.score > best.score):
            best = m
        elif not m:
            misses.append(f"as {role}: {why}")
    if best is None:
        raise UserError(
            f"does not match format {fmt.name!r} ({'; '.join(misses)})", file=path, line=1
        )
    return best


def _require_file(path: Path) -> None:
    require_file(path)
    if path.stat().st_size == 0:
        raise UserError("file is empty", file=path, line=1)


def detect_format(paths: list[str | Path] | str | Path) -> str:
    """The one shipped format all ``paths`` fit; UserError if none or several do."""
    plist = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not plist:
        raise UserError("no files given")
    for p in plist:
        _require_file(p)
    scores: dict[str, int] = {}
    for name, fmt in formats().items():
        if name == "generic_user":
            continue
        total = 0
        has_reg = False
        for p in plist:
            best = None
            for role, layout in fmt.layouts().items():
                m, _ = match_layout(layout, role, p)
                if m and (best is None or m.score > best.score):
                    best = m
            if best is None:
                total = -1
                break
            total += best.score
            has_reg |= best.role == "registrations"
        if total > 0 and has_reg:
            scores[name] = total
    if not scores:
        shapes = []
        for p in plist:
            _, lines = sniff.first_lines(p, n=1)
            shapes.append(f"{p.name}: {_shape(lines[0] if lines else '')}")
        raise UserError(
            "no known layout matches (line 1 has "
            + "; ".join(shapes)
            + "); pass --format or write a mapping file (docs/FORMATS.md)",
            file=plist[0],
            line=1,
        )
    top = max(scores.values())
    best = sorted(n for n, s in scores.items() if s == top)
    if len(best) > 1:
        raise UserError(
            f"ambiguous format: {', '.join(best)} all fit; pass --format", file=plist[0], line=1
        )
    return best[0]


def resolve_format(format: str | Path | None, paths: list[Path]) -> Format:
    """A format by name, a user mapping file (``*.toml``), or detection."""
    if format is None:
        return get_format(detect_format(paths))
    if str(format).endswith(".toml"):
        from voterolls.formats.registry import load_user_format

        return load_user_format(format)
    return get_format(str(format))
