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

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import (
    FORMAT_STATE,
    SAMPLE_NAMES,
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


def _apply(data: bytes, layout, first: int, line_ops, file_ops) -> tuple[bytes, list[bytes]]:
    """Damage ``data``; return the new bytes and the injected payloads (to look for in messages)."""
    utf16 = layout.encoding == "utf-16"
    unit = 2 if utf16 else 1
    enc = {"utf-16": "utf-16-le", "latin-1": "latin-1"}.get(layout.encoding, "utf-8")
    bom = b"\xff\xfe" if utf16 and data.startswith(b"\xff\xfe") else b""
    body = data[len(bom) :]
    term = layout.line_terminator.encode(enc)
    lines = body.split(term)
    records = max(len(lines) - 1 - first, 1)  # the last piece after a final terminator is ""
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
            out = out[: max(int(len(out) * arg), len(bom) + 1)]
        elif kind == "insert":
            frac, b = arg
            k = max(int(len(out) * frac), len(bom))
            out = out[:k] + b + out[k:]
            injected.append(b)
        elif kind == "strip_final_newline":
            out = out.removesuffix(term)
        elif kind == "append":
            out = out + arg
            injected.append(arg)
    return out, injected


def _check_no_echo(message: str, injected: list[bytes]) -> None:
    for name in SAMPLE_NAMES:
        assert name not in message, f"message echoes a value: {message!r}"
    for b in injected:
        s = b.decode("latin-1")
        for piece in s.split():
            if len(piece) >= 6 and piece.isprintable():
                assert piece not in message, f"message echoes injected content {piece!r}: {message!r}"


def check_scan(paths: list[Path], state: str, fmt: str, injected: list[bytes]) -> str:
    """Scan and check every invariant; return "refused" or "read" (for the statistics)."""
    spec = get_format(fmt)
    con = duckdb.connect()
    try:
        try:
            s = scan(con, paths, state=state, format=fmt)
            regs = s.registrations.to_arrow_table()
            vh = s.vote_history.to_arrow_table() if s.vote_history is not None else None
            rep = s.finish()
        except UserError as exc:
            _check_no_echo(str(exc), injected)
            return "refused"
    finally:
        con.close()
    by_sha_lines: dict[str, list[int]] = {}
    for sha, line in zip(regs["source_file"].to_pylist(), regs["source_line"].to_pylist(), strict=True):
        by_sha_lines.setdefault(("registrations", sha), []).append(line)
    if vh is not None:
        for sha, line in zip(vh["source_file"].to_pylist(), vh["source_line"].to_pylist(), strict=True):
            by_sha_lines.setdefault(("history", sha), []).append(line)
    q = rep.quarantine.to_pylist()
    for r in q:
        _check_no_echo(r["reason"] or "", injected)
        assert r["reason"], r
    assert {f.path for f in rep.files} == {str(p) for p in paths}
    for f in rep.files:
        data = Path(f.path).read_bytes()
        layout = spec.layouts()[f.role]
        physical = count_lines(data, layout.encoding == "utf-16")
        header = physical - f.rows_read
        assert header in (0, 1), (f, physical)
        if layout.header is True:
            assert header == (1 if physical else 0), (f, physical)
        elif layout.header is False:
            assert header == 0, (f, physical)
        record_lines = set(range(header + 1, physical + 1))
        qlines = [r["line"] for r in q if r["file"] == f.path]
        assert len(qlines) == len(set(qlines)), f"a line quarantined twice in {f.path}"
        assert set(qlines) <= record_lines, (sorted(set(qlines) - record_lines), f)
        assert f.rows_quarantined == len(qlines)
        assert f.rows_read == f.rows_loaded + f.rows_quarantined
        if f.role == "election_map":
            continue
        loaded = by_sha_lines.get((f.role, f.sha256), [])
        if f.role == "registrations":
            assert len(loaded) == len(set(loaded)), "one physical line loaded as two registrations"
            assert len(loaded) == f.rows_loaded, (len(loaded), f)
        else:
            assert len(set(loaded)) == f.rows_loaded, (len(set(loaded)), f)
        assert not set(loaded) & set(qlines), "a line both loaded and quarantined"
        assert set(loaded) | set(qlines) == record_lines, (
            f"lines neither loaded nor quarantined: {sorted(record_lines - set(loaded) - set(qlines))[:10]}"
        )
    # loaded values are sane, whatever the bytes were
    for row in regs.to_pylist():
        assert row["state"] == state and row["state_voter_id"]
        if row["dob"] is not None:
            assert dt.date(1850, 1, 1) <= row["dob"] <= dt.date(2100, 12, 31)
        if row["birth_year"] is not None:
            assert 1850 <= row["birth_year"] <= 2100
        assert row["dob_granularity"] == ("full" if row["dob"] else "year" if row["birth_year"] else "none")
        assert isinstance(row["_issues"], list)
        if row["residence_zip5"] is not None:
            assert len(row["residence_zip5"]) == 5 and row["residence_zip5"].isdigit()
    if vh is not None:
        for row in vh.to_pylist():
            assert row["state_voter_id"] and row["election_date"] is not None
    return "read"


OUTCOMES: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_native_files_never_crash_and_reconcile(fmt: str) -> None:
    originals = native_bytes(fmt)
    spec = get_format(fmt)
    state = FORMAT_STATE[fmt]
    # which role each original file plays (by name: the writer's file-name templates)
    con = duckdb.connect()
    with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
        paths = []
        for name, data in originals:
            p = Path(d) / name
            p.write_bytes(data)
            paths.append(p)
        s = scan(con, paths, state=state, format=fmt)
        roles = {}
        for f in s.finish().files:
            data = Path(f.path).read_bytes()
            header = count_lines(data, spec.layouts()[f.role].encoding == "utf-16") - f.rows_read
            roles[Path(f.path).name] = (f.role, header)
    con.close()

    @fuzz_settings(EXAMPLES_PER_FORMAT)
    @given(damage)
    def run(dmg) -> None:
        which, line_ops, file_ops = dmg
        name, data = originals[which % len(originals)]
        role, header = roles[name]
        bad, injected = _apply(data, spec.layouts()[role], header, line_ops, file_ops)
        with tempfile.TemporaryDirectory(prefix="vr_rel_") as d:
            paths = []
            for n, b in originals:
                p = Path(d) / n
                p.write_bytes(bad if n == name else b)
                paths.append(p)
            outcome = check_scan(paths, state, fmt, injected)
        stats = OUTCOMES.setdefault(fmt, {"read": 0, "refused": 0})
        stats[outcome] += 1

    run()
    assert sum(OUTCOMES[fmt].values()) >= 1


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
            _check_no_echo(str(exc), [blob])
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


def test_outcome_statistics_are_recorded() -> None:
    """Runs last in this file: both outcomes (read and refused) occur across formats."""
    if not OUTCOMES:
        pytest.skip("property tests did not run in this process (xdist or -k)")
    read = sum(v["read"] for v in OUTCOMES.values())
    assert read > 0, OUTCOMES
