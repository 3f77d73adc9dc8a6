"""Property-based tests of every native reader: hostile bytes never crash, counts always reconcile.

For each shipped format a small valid file set is written, then hypothesis
damages it: arbitrary bytes in place of a line, truncated lines and files,
fields added or removed, stray quotes and delimiters, text in a foreign
encoding, control bytes (including the engine's own line separator), split
and blank lines.  Whatever happens, ``scan`` must either refuse the whole
file with a ``UserError`` or read it so that, per file,

* ``rows_read`` equals the physical record lines, counted independently here;
* every record line is either loaded or quarantined, never both, never lost
  (the line numbers of loaded rows and quarantined rows partition them);
* loaded values are sane (state as asked, dates in range, granularity
  consistent) and quarantine reasons / error messages never echo content.

Example counts are bounded (see docs/RELIABILITY.md); ``VOTEROLLS_FUZZ=10``
explores ten times more with random seeds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import (
    FORMAT_STATE,
    check_no_echo,
    check_scan,
    count_lines,
    fuzz_settings,
    native_bytes,
)

from voterolls.errors import UserError
from voterolls.formats import get_format, scan

FORMATS = sorted(FORMAT_STATE)
EXAMPLES_PER_FORMAT = 4

CTRL = [b"\x00", b"\x1f\x1e\x1d", b"\x1a", b"\x0b", b"\x0c", b"\x85", b"\xef\xbb\xbf", b"\xff\xfe"]
FOREIGN = ["utf-8", "latin-1", "cp1252", "utf-16-le", "utf-16"]

line_op = st.one_of(
    st.tuples(st.just("replace"), st.binary(max_size=120)),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("drop_fields"), st.integers(1, 5)),
    st.tuples(st.just("add_fields"), st.integers(1, 5)),
    st.tuples(st.just("quote"), st.floats(0, 1)),
    st.tuples(st.just("delim"), st.floats(0, 1)),
    st.tuples(st.just("text"), st.tuples(st.floats(0, 1), st.text(min_size=1, max_size=12), st.sampled_from(FOREIGN))),
    st.tuples(st.just("newline"), st.tuples(st.floats(0, 1), st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\n"]))),
    st.tuples(st.just("ctrl"), st.tuples(st.floats(0, 1), st.sampled_from(CTRL))),
    st.tuples(st.just("blank"), st.none()),
    st.tuples(st.just("dup"), st.none()),
    st.tuples(st.just("spaces"), st.integers(1, 400)),
)
file_op = st.one_of(
    st.tuples(st.just("cut"), st.floats(0.05, 1)),
    st.tuples(st.just("insert"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=40))),
    st.tuples(st.just("strip_final_newline"), st.none()),
    st.tuples(st.just("append"), st.binary(max_size=60)),
)
damage = st.tuples(
    st.integers(0, 10),  # which file of the format
    st.lists(st.tuples(st.floats(0, 1), line_op), min_size=1, max_size=6),
    st.lists(file_op, max_size=2),
)


def _at(line: bytes, frac: float, unit: int) -> int:
    k = int(len(line) * frac)
    return k - (k % unit)


def _apply(data: bytes, layout, header: int, line_ops, file_ops) -> tuple[bytes, list[bytes]]:
    """Damage ``data`` after its first line; return the new bytes and the injected payloads.

    The first line (the header, or the first record of a header-less file) is
    left intact: it is what identifies the layout, and damaging it is its own
    test (``test_damaged_first_record_of_a_headerless_file``).
    """
    utf16 = layout.encoding == "utf-16"
    unit = 2 if utf16 else 1
    enc = {"utf-16": "utf-16-le", "latin-1": "latin-1"}.get(layout.encoding, "utf-8")
    bom = b"\xff\xfe" if utf16 and data.startswith(b"\xff\xfe") else b""
    body = data[len(bom) :]
    term = layout.line_terminator.encode(enc)
    lines = body.split(term)
    first = 1  # the first line stays intact (see docstring)
    records = max(len(lines) - 1 - first, 1)  # the last piece after a final terminator is ""
    safe = len(bom) + len(lines[0]) + len(term)  # file-level damage starts after line 1
    delim = (layout.delimiter if layout.kind == "delimited" else ",").encode(enc)
    quote = '"'.encode(enc)
    injected: list[bytes] = []

    def txt(s: str | bytes) -> bytes:
        return s.encode(enc, "replace") if isinstance(s, str) else s

    for pos, (kind, arg) in line_ops:
        i = min(first + int(pos * records), len(lines) - 1)
        ln = lines[i]
        if kind == "replace":
            ln = arg
            injected.append(arg)
        elif kind == "truncate":
            ln = ln[: _at(ln, arg, unit)]
        elif kind == "drop_fields":
            parts = ln.split(delim)
            ln = delim.join(parts[: max(len(parts) - arg, 0)])
        elif kind == "add_fields":
            ln = ln + (delim + txt("x")) * arg
        elif kind in ("quote", "delim"):
            k = _at(ln, arg, unit)
            ln = ln[:k] + (quote if kind == "quote" else delim) + ln[k:]
        elif kind == "text":
            frac, s, foreign = arg
            k = _at(ln, frac, unit)
            payload = s.encode(foreign, "replace")
            ln = ln[:k] + payload + ln[k:]
            injected.append(payload)
        elif kind in ("newline", "ctrl"):
            frac, b = arg
            k = _at(ln, frac, unit)
            b = b.decode("latin-1").encode(enc) if utf16 else b
            ln = ln[:k] + b + ln[k:]
        elif kind == "blank":
            ln = b""
        elif kind == "dup":
            ln = ln + term + ln
        elif kind == "spaces":
            ln = ln + txt(" " * arg)
        lines[i] = ln
    out = bom + term.join(lines)
    for kind, arg in file_ops:
        if kind == "cut":
            out = out[: max(int(len(out) * arg), safe)]
        elif kind == "insert":
            frac, b = arg
            k = max(int(len(out) * frac), safe)
            out = out[:k] + b + out[k:]
            injected.append(b)
        elif kind == "strip_final_newline":
            out = out.removesuffix(term)
        elif kind == "append":
            out = out + arg
            injected.append(arg)
    return out, injected


OUTCOMES: dict[str, dict[str, int]] = {}


def _roles(fmt: str) -> dict[str, tuple[str, int]]:
    """File name -> (role, header lines) of ``fmt``'s intact sample files."""
    spec = get_format(fmt)
    con = duckdb.connect()
    roles = {}
    with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
        paths = []
        for name, data in native_bytes(fmt):
            p = Path(d) / name
            p.write_bytes(data)
            paths.append(p)
        s = scan(con, paths, state=FORMAT_STATE[fmt], format=fmt)
        for f in s.finish().files:
            data = Path(f.path).read_bytes()
            header = count_lines(data, spec.layouts()[f.role].encoding == "utf-16") - f.rows_read
            roles[Path(f.path).name] = (f.role, header)
    con.close()
    return roles


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_native_files_never_crash_and_reconcile(fmt: str) -> None:
    originals = native_bytes(fmt)
    spec = get_format(fmt)
    state = FORMAT_STATE[fmt]
    roles = _roles(fmt)

    @fuzz_settings(EXAMPLES_PER_FORMAT)
    @given(damage)
    def run(dmg) -> None:
        which, line_ops, file_ops = dmg
        name, data = originals[which % len(originals)]
        role, header = roles[name]
        bad, injected = _apply(data, spec.layouts()[role], header, line_ops, file_ops)
        # the damaged file plus, if it is not one, the first registrations file (a scan needs one)
        keep = {name}
        if role != "registrations":
            keep.add(next(n for n, _ in originals if roles[n][0] == "registrations"))
        with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
            paths = []
            for n, b in originals:
                if n in keep:
                    p = Path(d) / n
                    p.write_bytes(bad if n == name else b)
                    paths.append(p)
            outcome = check_scan(paths, state, fmt, injected, may_refuse=spec.layouts()[role].encoding == "utf-16")
        stats = OUTCOMES.setdefault(fmt, {"read": 0, "refused": 0})
        stats[outcome] += 1

    run()
    print(f"{fmt}: {OUTCOMES.get(fmt)}")


@pytest.mark.parametrize("fmt", ["fl_extract", "ny_statewide", "mi_qvf_lst", "pa_fve"])
def test_damaged_first_record_of_a_headerless_file(tmp_path: Path, fmt: str) -> None:
    roles = _roles(fmt)
    name, data = next((n, b) for n, b in native_bytes(fmt) if roles[n][0] == "registrations")
    term = get_format(fmt).registrations.line_terminator.encode()
    lines = data.split(term)
    lines[0] = lines[0][: len(lines[0]) // 2]  # a truncated first record
    p = tmp_path / name
    p.write_bytes(term.join(lines))
    con = duckdb.connect()
    s = scan(con, [p], state=FORMAT_STATE[fmt], format=fmt)
    regs = s.registrations.to_arrow_table()
    rep = s.finish()
    assert [r["line"] for r in rep.quarantine.to_pylist()] == [1]
    assert regs.num_rows == rep.files[0].rows_read - 1


@pytest.mark.parametrize("fmt", ["fl_extract", "ny_statewide", "mi_qvf_lst", "pa_fve"])
def test_damaged_first_record_is_still_detected(tmp_path: Path, fmt: str) -> None:
    """Format detection judges several records, so one damaged first record does not hide the layout."""
    from voterolls.formats import detect_format

    roles = _roles(fmt)
    paths = []
    for name, data in native_bytes(fmt):
        term = get_format(fmt).layouts()[roles[name][0]].line_terminator.encode()
        lines = data.split(term)
        if roles[name][0] == "registrations":
            lines[0] = lines[0][: len(lines[0]) // 2]
        p = tmp_path / name
        p.write_bytes(term.join(lines))
        paths.append(p)
    assert detect_format(paths) == fmt


@pytest.mark.parametrize("fmt", ["fl_extract", "ny_statewide", "mi_qvf_lst", "pa_fve"])
def test_a_mostly_damaged_headerless_file_is_still_refused(tmp_path: Path, fmt: str) -> None:
    """When most of the first records do not fit, the file is another layout: refused, naming line 1."""
    roles = _roles(fmt)
    name, data = next((n, b) for n, b in native_bytes(fmt) if roles[n][0] == "registrations")
    term = get_format(fmt).registrations.line_terminator.encode()
    lines = data.split(term)
    records = [i for i, ln in enumerate(lines) if ln.strip()]
    assert len(records) >= 3
    for i in records[:-1]:  # every record but the last cut in half: fewer than half fit
        lines[i] = lines[i][: len(lines[i]) // 2]
    p = tmp_path / name
    p.write_bytes(term.join(lines))
    with pytest.raises(UserError, match=r"line 1: does not match format .*of the first \d+ non-blank lines fit"):
        scan(duckdb.connect(), [p], state=FORMAT_STATE[fmt], format=fmt)


@pytest.mark.parametrize(
    ("fmt", "other"), [("fl_extract", "ny_statewide"), ("ny_statewide", "fl_extract"), ("pa_fve", "fl_extract"),
                       ("mi_qvf_lst", "fl_extract"), ("fl_extract", "mi_qvf_lst"), ("fl_extract", "nc_ncvoter_2022")],
)  # fmt: skip
def test_another_formats_file_is_refused_not_misread(tmp_path: Path, fmt: str, other: str) -> None:
    """A wrong guess stays an error: every file of ``other`` given as ``fmt`` is refused with a UserError."""
    for name, data in native_bytes(other):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(UserError, match="does not match format") as exc:
            scan(duckdb.connect(), [p], state=FORMAT_STATE[fmt], format=fmt)
        check_no_echo(str(exc.value), [])


@pytest.mark.parametrize("fmt", ["nc_ncvoter_2022", "fl_extract", "ny_statewide", "mi_qvf_lst", "nc_vr_snapshot", "generic"])
@fuzz_settings(3)
@given(blob=st.binary(min_size=1, max_size=3000))
def test_arbitrary_bytes_as_a_whole_file(fmt: str, blob: bytes) -> None:
    """A file of pure noise, read as each family: refused with a UserError or read and reconciled."""
    state = FORMAT_STATE[fmt]
    name = native_bytes(fmt)[-1][0] if fmt != "nc_ncvoter_2022" else "ncvoter_Statewide.txt"
    with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
        p = Path(d) / name
        p.write_bytes(blob)
        check_scan([p], state, fmt, [blob])


@fuzz_settings(12)
@given(blob=st.binary(min_size=1, max_size=2000))
def test_detect_format_on_noise_is_a_user_error_or_a_name(blob: bytes) -> None:
    from voterolls.formats import FORMATS as SHIPPED
    from voterolls.formats import detect_format

    with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
        p = Path(d) / "upload.txt"
        p.write_bytes(blob)
        try:
            name = detect_format([p])
        except UserError as exc:
            check_no_echo(str(exc), [blob])
            return
        assert name in SHIPPED


def test_engine_line_separator_inside_a_record_is_quarantined(tmp_path: Path) -> None:
    """The reader splits lines on 0x1f 0x1e 0x1d; a record containing it must be quarantined, not split."""
    name, data = native_bytes("generic")[-1]
    lines = data.split(b"\n")
    lines[2] = lines[2][:10] + b"\x1f\x1e\x1d" + lines[2][10:]
    p = tmp_path / name
    p.write_bytes(b"\n".join(lines))
    check_scan([p], "VT", "generic", [])
    con = duckdb.connect()
    s = scan(con, [p], state="VT", format="generic")
    regs = s.registrations.to_arrow_table()
    rep = s.finish()
    assert 3 not in regs["source_line"].to_pylist()
    assert [r["line"] for r in rep.quarantine.to_pylist()] == [3]
