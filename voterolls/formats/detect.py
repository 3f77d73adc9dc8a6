"""Which layout a file has: scored on its header and a sample of its records, never guessed.

Every shipped layout is tried against each file (:func:`fit`):

* **dialect from the bytes**: encoding (BOM, valid UTF-8, else latin-1;
  ``sniff.encoding_of``), delimiter (the one that splits the header and the
  sample records into the same, largest number of fields) and quoting
  (every field quoted, minimal, none) are read from the file, not taken
  from the layout;
* **header layouts**: the header is mapped by name (``headers.map_header``);
  a missing required column makes the layout unfit and is named with the
  closest header found.  Score: how well the names agree, how plausible the
  sample's values are for the mapped columns, how many sample records have
  the header's field count;
* **header-less layouts** (FL, NY, PA, VA, fixed width): read by position.
  A line 1 that looks like a header (several known column names) makes them
  unfit - a header is never loaded as a registration.  Score: the share of
  sample records of the right shape and the plausibility of their values.

Plausibility (:func:`content_score`) checks each mapped column of the
sample: voter ids are one token with a digit, dates parse in the layout's
format, birth years are years, codes are in the layout's code map, ZIPs are
ZIPs.  :func:`detect` accepts only a clear winner (score at least
``MIN_SCORE`` and ``MARGIN`` ahead of the next layout); otherwise it refuses,
listing the top candidates with their scores.  When no state layout reaches
``MIN_SCORE`` and the header carries a recognisable voter id and names, the
``generic`` mapping reads the file.  Messages describe shapes, names and
scores - never a record's content.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from voterolls.errors import UserError, require_file
from voterolls.formats import sniff
from voterolls.formats.headers import (
    GENERIC_REQUIRED,
    HeaderMapping,
    looks_like_header,
    map_header,
)
from voterolls.formats.registry import GENERIC, formats, get_format
from voterolls.formats.spec import CODED_TARGETS, FileLayout, Format

_DELIM_NAMES = {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon"}

#: Lowest score a layout needs to be accepted.
MIN_SCORE = 0.65
#: How far ahead of the next layout the winner must be.
MARGIN = 0.015
#: Records judged per file (the first ones after any header).
SAMPLE_RECORDS = 50
#: Why a format that fits every file is still unfit: none of them is its registrations file.
NO_REGISTRATIONS = "no registration file among the inputs"
#: How many of a header-less file's first non-blank lines are judged for shape.
SAMPLE_LINES = 10


@dataclass(frozen=True)
class Dialect:
    encoding: str
    delimiter: str
    quoting: str  # all | minimal | none

    def describe(self) -> str:
        q = {"all": "every field quoted", "minimal": "quoted where needed", "none": "unquoted"}[self.quoting]
        return f"{_DELIM_NAMES.get(self.delimiter, repr(self.delimiter))}-separated, {q}, {self.encoding}"


@dataclass
class Match:
    """How one file fits one layout of a format (the reader's plan comes from this)."""

    role: str
    layout: FileLayout  #: the effective layout (header-driven: the file's columns in file order)
    header_names: list[str]
    score: float
    has_header: bool = False
    mapping: HeaderMapping | None = None
    dialect: Dialect | None = None
    checks: dict[str, float] = field(default_factory=dict)  #: target -> plausible share of the sample
    #: header-less layouts: the content score of line 1's record alone (None where line 1 does not fit)
    first_record_score: float | None = None


@dataclass(frozen=True)
class Candidate:
    format: str
    state: str | None
    score: float
    reason: str = ""  #: why it is unfit (empty when it fits)


@dataclass(frozen=True)
class Detection:
    """What detection decided, and on what evidence (aggregates only)."""

    format: str
    state: str | None  #: the state whose layout won (None: generic)
    score: float
    candidates: tuple[Candidate, ...]  #: every layout tried, best first
    matches: tuple[Match, ...]  #: per file, the winning layout's fit

    @property
    def confidence(self) -> str:
        runner = next((c.score for c in self.candidates[1:] if not c.reason), 0.0)
        return f"score {self.score:.2f}, next best {runner:.2f}"


# ---------------------------------------------------------------------------
# reading the head of a file
# ---------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _sample_lines(path_s: str, encoding: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    raw = sniff.head(Path(path_s), 1 << 18)
    bom = sniff.bom_encoding(raw)
    if bom == "utf-8":
        raw = raw[3:]
    elif bom in ("utf-16", "utf-16-be"):
        raw = raw[2:]
    py = {"utf-16": "utf-16-le", "utf-16-be": "utf-16-be"}.get(encoding, encoding)
    text = raw.decode(py, errors="replace")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(raw) == (1 << 18) and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return tuple(lines[: SAMPLE_RECORDS + 2])


def sample_lines(path: Path, encoding: str) -> list[str]:
    """The file's first lines decoded (header included), for detection and ``inspect``."""
    st = path.stat()
    return list(_sample_lines(str(path), encoding, st.st_size, st.st_mtime_ns))


_FULLY_QUOTED = {d: re.compile(f'^"(?:[^"]|"")*"(?:{re.escape(d)}"(?:[^"]|"")*")*$') for d in _DELIM_NAMES}


def split_fields(line: str, delimiter: str, quoting: str) -> list[str]:
    if quoting == "none":
        return line.split(delimiter)
    try:
        return next(csv.reader([line], delimiter=delimiter, quotechar='"', strict=True))
    except (csv.Error, StopIteration):
        return line.split(delimiter)


def split_line(line: str, layout: FileLayout) -> list[str]:
    return split_fields(line, layout.delimiter, layout.quoting)


def sniff_dialect(lines: list[str], declared: FileLayout, encoding: str) -> Dialect:
    """Delimiter and quoting of ``lines`` (header + records); the layout's only to break ties."""
    body = [ln for ln in lines if ln.strip()][: SAMPLE_RECORDS + 1]
    if not body:
        return Dialect(encoding, declared.delimiter, declared.quoting)
    best = None
    for d in sorted(_DELIM_NAMES, key=lambda x: x != declared.delimiter):
        counts = [len(split_fields(ln, d, "minimal")) for ln in body]
        n = counts[0]
        agree = sum(1 for c in counts if c == n) / len(counts)
        key = (n > 1 and agree >= 0.8, agree >= 0.8 and n, agree)
        if best is None or key > best[0]:
            best = (key, d)
    d = best[1] if best and best[0][0] else declared.delimiter
    q = quoting_of(body, d, declared.quoting)
    return Dialect(encoding, d, q or (declared.quoting if declared.quoting != "all" else "minimal"))


def quoting_of(lines: list[str], delimiter: str, declared: str) -> str | None:
    """``all`` when every field of (nearly) every line is quoted; ``minimal`` when fields are quoted
    (in a layout published unquoted: only when the header's are, as a re-save quotes it too);
    None when the lines say nothing (no quoted field).  A stray quote inside an unquoted
    layout's field is data, not quoting."""
    full = [bool(_FULLY_QUOTED[delimiter].match(ln)) for ln in lines]
    if full and full[0] and sum(full) >= 0.8 * len(full):  # a damaged line or two are the reader's to quarantine
        return "all"

    def quoted(ln: str) -> bool:
        return any(len(f) >= 2 and f[0] == '"' and f[-1] == '"' for f in ln.split(delimiter))

    if declared == "none":
        return "minimal" if lines and quoted(lines[0]) else None
    return "minimal" if any(quoted(ln) for ln in lines) else None


# ---------------------------------------------------------------------------
# plausibility of values
# ---------------------------------------------------------------------------

_ID = re.compile(r"^[A-Za-z0-9-]*[0-9][A-Za-z0-9-]*$")
_ZIP = re.compile(r"^\d{5}(-?\d{4})?(\.0+)?$|^\d{9}$|^\d{3,4}$")


def _date_ok(v: str, fmt: str) -> bool:
    if fmt == "%Y":
        return v.isdigit() and 1850 <= int(v) <= 2100
    try:
        d = dt.datetime.strptime(v, fmt)
    except ValueError:
        return False
    return 1850 <= d.year <= 2100


def _value_ok(layout: FileLayout, col, v: str) -> bool:  # noqa: ANN001 - spec.Column
    t = col.target
    if t == "state_voter_id":
        return bool(_ID.match(v))
    if t in ("dob", "registration_date", "election_date"):
        return _date_ok(v, col.date_format or "%Y-%m-%d")
    if t == "birth_year":
        return v.isdigit() and 1850 <= int(v) <= 2100
    if t == "residence_zip5":
        return bool(_ZIP.match(v))
    cm = layout.code_map(col)
    if t in CODED_TARGETS and cm is not None:
        keys = {k.upper() for k in cm.map}
        return v.upper() in keys
    return True


#: Targets whose plausibility is checked on the sample.
CHECKED = ("state_voter_id", "dob", "birth_year", "registration_date", "residence_zip5", "election_date", *CODED_TARGETS)


def content_checks(layout: FileLayout, names: list[str], records: list[list[str]]) -> dict[str, float]:
    """Per checked target: the share of the sample's non-blank values that are plausible."""
    out: dict[str, float] = {}
    pos = {n: i for i, n in enumerate(names)}
    for col in layout.columns:
        if col.target not in CHECKED or col.target in out or col.name not in pos:
            continue
        i = pos[col.name]
        vals = [r[i].strip() for r in records if i < len(r) and r[i].strip()]
        vals = [v for v in vals if v != layout.protected.mask or layout.protected.mode != "mask"]
        if col.target == "state_voter_id" and len(vals) < len(records):
            vals += ["" for _ in range(len(records) - len(vals))]  # blank ids count against
        if not vals:
            continue
        out[col.target] = sum(1 for v in vals if _value_ok(layout, col, v)) / len(vals)
    return out


def content_score(checks: dict[str, float]) -> float:
    if not checks:
        return 0.5
    # the voter id counts double: it is what every layout has and what a wrong layout gets wrong
    w = {t: (2.0 if t == "state_voter_id" else 1.0) for t in checks}
    return sum(checks[t] * w[t] for t in checks) / sum(w.values())


# ---------------------------------------------------------------------------
# one layout against one file
# ---------------------------------------------------------------------------


def describe(layout: FileLayout) -> str:
    if layout.kind == "fixed":
        return f"fixed-width records of up to {layout.record_width} characters ({layout.encoding})"
    d = _DELIM_NAMES.get(layout.delimiter, repr(layout.delimiter))
    q = {"all": ", every field quoted", "minimal": "", "none": ", unquoted"}[layout.quoting]
    h = {True: "with a header", False: "without a header", "optional": "with or without a header"}[layout.header]
    n = f"{len(layout.columns)}+" if layout.wide_history else str(len(layout.columns))
    return f"{n} {d}-separated fields{q}, {h}, {layout.encoding}"


def _shape(line: str) -> str:
    counts = {d: line.count(d) for d in _DELIM_NAMES}
    d, c = max(counts.items(), key=lambda kv: kv[1])
    if c == 0:
        return f"a {len(line)}-character line with no tab, comma, pipe or semicolon"
    return f"{c + 1} {_DELIM_NAMES[d]}-separated fields"


def _record_fits(line: str, layout: FileLayout) -> str:
    """Why ``line`` is not a record of header-less ``layout`` (empty when it is one); shapes only."""
    if layout.kind == "fixed":
        targeted = [c for c in layout.columns if c.target]
        last_start = max(c.start or 1 for c in targeted) if targeted else 1
        if last_start <= len(line) <= layout.record_width:
            return ""
        return f"is {len(line)} characters, expected fixed-width records of {last_start}..{layout.record_width}"
    fields = split_line(line, layout)
    if len(fields) != len(layout.columns):
        return f"has {len(fields)} fields by this layout's rules; expected {describe(layout)}"
    if layout.quoting == "all" and not (line.startswith('"') and line.rstrip("\r").endswith('"')):
        return "is not fully quoted; expected every field in double quotes"
    return ""


def _positional_records(lines: list[str], layout: FileLayout) -> list[list[str]]:
    if layout.kind == "fixed":
        return [[ln[(c.start or 1) - 1 : (c.start or 1) - 1 + (c.width or 0)] for c in layout.columns] for ln in lines]
    return [split_line(ln, layout) for ln in lines]


def _fit_positional(layout: FileLayout, role: str, lines: list[str], encoding: str) -> tuple[Match | None, str]:
    first = lines[0]
    # whatever its delimiter: a header is never loaded as a record
    if any(looks_like_header(split_fields(first, d, "minimal")) for d in _DELIM_NAMES) or looks_like_header(first.split()):
        return None, f"line 1 is a header, but this layout ({describe(layout)}) has none"
    sample = [ln for ln in lines if ln.strip()][:SAMPLE_LINES]
    fits = [ln for ln in sample if not _record_fits(ln, layout)]
    first_why = _record_fits(first, layout)
    if first_why and not (len(fits) >= 1 and 2 * len(fits) >= len(sample)):
        why = f"line 1 {first_why}"
        if len(sample) > 1:
            why += f" (and {len(fits)} of the first {len(sample)} non-blank lines fit)"
        return None, why
    eff = layout if encoding == layout.encoding else layout.model_copy(update={"encoding": encoding})
    good = [ln for ln in lines if ln.strip() and not _record_fits(ln, layout)][:SAMPLE_RECORDS]
    checks = content_checks(layout, layout.names, _positional_records(good, layout))
    shape = len(fits) / max(1, len(sample))
    score = 0.4 * shape + 0.6 * content_score(checks)
    first_score = None if first_why else content_score(content_checks(layout, layout.names, _positional_records([first], layout)))
    dialect = Dialect(encoding, layout.delimiter, layout.quoting) if layout.kind == "delimited" else None
    return Match(role, eff, layout.names, score, False, None, dialect, checks, first_score), ""


#: Date spellings the generic mapping recognises (US order only: a day-first date is refused, not guessed).
GENERIC_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%m-%d-%Y", "%Y/%m/%d", "%m/%d/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S")


def _generic_dates(eff: FileLayout, names: list[str], records: list[list[str]]) -> FileLayout:
    """The generic mapping's date columns get the one format every sampled value parses in."""
    pos = {n: i for i, n in enumerate(names)}
    cols = []
    for c in eff.columns:
        if c.target in ("dob", "registration_date") and c.name in pos:
            i = pos[c.name]
            vals = [r[i].strip() for r in records if i < len(r) and r[i].strip()]
            fits = [f for f in GENERIC_DATE_FORMATS if vals and all(_date_ok(v, f) for v in vals)]
            if fits:
                c = c.model_copy(update={"date_format": fits[0]})
        cols.append(c)
    return eff.model_copy(update={"columns": cols})


def _fit_header(
    layout: FileLayout, role: str, lines: list[str], encoding: str, *, generic: bool = False
) -> tuple[Match | None, str]:
    dialect = sniff_dialect(lines, layout, encoding)
    header = split_fields(lines[0], dialect.delimiter, dialect.quoting)
    mapping = map_header(layout, header, generic=generic)
    if not mapping.ok:
        return None, mapping.refusal()
    eff = mapping.layout.model_copy(
        update={"encoding": encoding, "delimiter": dialect.delimiter, "quoting": dialect.quoting}
    )
    body = [ln for ln in lines[1:] if ln.strip()][:SAMPLE_RECORDS]
    records = [split_fields(ln, dialect.delimiter, dialect.quoting) for ln in body]
    names = list(mapping.header)
    if generic:
        eff = _generic_dates(eff, names, records)
    shape = sum(1 for r in records if len(r) == len(names)) / len(records) if records else 1.0
    checks = content_checks(eff, names, [r for r in records if len(r) == len(names)])
    # the published delimiter and quoting are weak evidence (a re-save changes them)
    said = quoting_of([ln for ln in lines if ln.strip()][: SAMPLE_RECORDS + 1], dialect.delimiter, layout.quoting)
    bonus = 0.02 * (dialect.delimiter == layout.delimiter) + 0.01 * (said == layout.quoting)
    name = mapping.name_score()
    score = name * (0.7 + 0.2 * content_score(checks) + 0.1 * shape) + bonus
    return Match(role, eff, names, score, True, mapping, dialect, checks), ""


def match_layout(layout: FileLayout, role: str, path: Path, *, generic: bool = False) -> tuple[Match | None, str]:
    """Does the file fit ``layout``?  (match with its score, reason when not)."""
    # the encoding is the bytes' (a BOM, valid UTF-8, else latin-1), never the layout's: a
    # header-less extract re-saved as "Unicode text" (UTF-16 with a BOM) is still the extract
    encoding = sniff.encoding_of(path, layout.encoding)
    lines = sample_lines(path, encoding)
    if not lines or (len(lines) == 1 and not lines[0].strip()):
        return None, "file is empty"
    if layout.kind == "fixed" or layout.header is False:
        return _fit_positional(layout, role, lines, encoding)
    if layout.header == "optional":
        m, why = _fit_header(layout, role, lines, encoding, generic=generic)
        if m is not None and m.mapping is not None and m.mapping.name_score() >= 0.5:
            return m, ""
        return _fit_positional(layout, role, lines, encoding)
    return _fit_header(layout, role, lines, encoding, generic=generic)


def classify(fmt: Format, path: Path, *, strict: bool = False) -> Match:
    """The role a file plays in ``fmt`` (header-driven where it has a header); UserError when none fits.

    ``strict`` (a shipped state layout named by the user): a file that fits
    only poorly (score below ``MIN_SCORE``: a few columns in common, values
    implausible) is refused too, so another state's file is never loaded
    through a layout that happens to share a voter id and name columns.
    """
    _require_file(path)
    misses = []
    best: Match | None = None
    generic = fmt.name == GENERIC
    for role, layout in fmt.layouts().items():
        m, why = match_layout(layout, role, path, generic=generic)
        if m and (best is None or m.score > best.score):
            best = m
        elif not m:
            misses.append(f"as {role}: {why}")
    if best is None:
        raise UserError(f"does not match format {fmt.name!r} ({'; '.join(misses)})", file=path, line=1)
    if strict and best.score < MIN_SCORE and not _records_fit_named_layout(best):
        raise UserError(f"does not match format {fmt.name!r}: {explain_fit(best)}", file=path, line=1)
    return best


def _records_fit_named_layout(m: Match) -> bool:
    """A header-less file named by the user is judged on the records that fit its shape.

    Its score also counts the lines that do not fit (damaged lines, which the
    reader quarantines); in a small file a few of them sink the score although
    the records that fit, or its first record, are plainly this layout's.
    Another state's file fails both: its first record's id, dates and codes
    do not read as this layout's.  A file with a header is
    judged on its header as well, so it keeps the whole score.
    """
    if m.mapping is not None or m.has_header:
        return False
    # the records that fit are plainly this layout's, or the first record is (the rest damaged)
    return content_score(m.checks) >= MIN_SCORE or (m.first_record_score or 0.0) >= MIN_SCORE


def explain_fit(m: Match) -> str:
    """Why a fit is poor, in names and shares only (never a value)."""
    parts = [f"score {m.score:.2f} (needs {MIN_SCORE})"]
    if m.mapping is not None:
        mp = m.mapping
        parts.append(
            f"{mp.matched - mp.weak} of the file's {len(mp.header)} columns carry this layout's names, "
            f"{len(mp.missing)} of its columns are missing"
        )
    bad = [f"{t} {share:.0%} plausible" for t, share in m.checks.items() if share < 0.9]
    if bad:
        parts.append("sample values: " + ", ".join(bad))
    return "; ".join(parts)


def _require_file(path: Path) -> None:
    require_file(path)
    if path.stat().st_size == 0:
        raise UserError("file is empty", file=path, line=1)


def _fit_format(fmt: Format, plist: list[Path], *, generic: bool = False) -> tuple[float, list[Match], str]:
    """(mean score, per-file best match, reason when unfit) of one format over all files."""
    matches = []
    for p in plist:
        best, whys = None, []
        for role, layout in fmt.layouts().items():
            m, why = match_layout(layout, role, p, generic=generic)
            if m and (best is None or m.score > best.score):
                best = m
            elif not m:
                whys.append(why)
        if best is None:
            return 0.0, [], f"{p.name}: {whys[0] if whys else 'no layout'}"
        matches.append(best)
    regs = [m.score for m in matches if m.role == "registrations"]
    if not regs:
        return 0.0, [], NO_REGISTRATIONS
    # the registration files decide (history layouts of one state's vintages are often alike)
    return sum(regs) / len(regs), matches, ""


def detect(paths: list[str | Path] | str | Path) -> Detection:
    """Score every shipped layout on ``paths``; the clear winner, or a UserError listing the candidates."""
    plist = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not plist:
        raise UserError("no files given")
    for p in plist:
        _require_file(p)
    cands: list[Candidate] = []
    fits: dict[str, list[Match]] = {}
    for name, fmt in formats().items():
        if name == GENERIC:
            continue
        score, matches, why = _fit_format(fmt, plist)
        cands.append(Candidate(name, fmt.state, round(score, 3), why))
        if not why:
            fits[name] = matches
    cands.sort(key=lambda c: (bool(c.reason), -c.score, c.format))
    fitting = [c for c in cands if not c.reason]
    if fitting and fitting[0].score >= MIN_SCORE:
        top = fitting[0]
        runner = fitting[1] if len(fitting) > 1 else None
        if runner is None or top.score - runner.score >= MARGIN:
            return Detection(top.format, top.state, top.score, tuple(cands), tuple(fits[top.format]))
        close = [c for c in fitting if top.score - c.score < MARGIN]
        raise UserError(
            "ambiguous layout: "
            + ", ".join(f"{c.format} (score {c.score:.2f})" for c in close[:4])
            + " fit about equally well; pass --format",
            file=plist[0],
            line=1,
        )
    # no state layout fits well: the generic header-driven mapping, when the header allows it
    gscore, gmatches, gwhy = _fit_format(get_format(GENERIC), plist, generic=True)
    if not gwhy:
        gen = Candidate(GENERIC, None, round(gscore, 3))
        return Detection(GENERIC, None, gen.score, (gen, *cands), tuple(gmatches))
    history_only = [c.format for c in cands if c.reason == NO_REGISTRATIONS]
    if history_only:
        raise UserError(
            f"only vote-history files given (they fit the history file of {', '.join(history_only[:4])}); "
            "give the registration file with them, or pass --format",
            file=plist[0],
            line=1,
        )
    shapes = []
    for p in plist:
        lines = sample_lines(p, sniff.encoding_of(p))
        shapes.append(f"{p.name}: line 1 has {_shape(lines[0] if lines else '')}")
    best = ", ".join(f"{c.format} (score {c.score:.2f})" for c in fitting[:3])
    raise UserError(
        "no known layout matches ("
        + "; ".join(shapes)
        + (f"; best but below {MIN_SCORE}: {best}" if best else "")
        + f"; generic mapping needs {', '.join(GENERIC_REQUIRED)} columns: {gwhy}"
        + "); pass --format or write a mapping file (docs/FORMATS.md)",
        file=plist[0],
        line=1,
    )


def detect_format(paths: list[str | Path] | str | Path) -> str:
    """The one shipped format all ``paths`` fit (see :func:`detect`); UserError if none or several do."""
    return detect(paths).format


def resolve_format(format: str | Path | None, paths: list[Path]) -> Format:  # noqa: A002
    """A format by name, a user mapping file (``*.toml``), or detection."""
    if format is None:
        return get_format(detect_format(paths))
    if str(format).endswith(".toml"):
        from voterolls.formats.registry import load_user_format

        return load_user_format(format)
    return get_format(str(format))
