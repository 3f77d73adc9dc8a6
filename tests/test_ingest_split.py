"""A long file with a few bad lines is split: bad lines to the line engine, the rest on the fast path.

The split must change nothing but speed: the same rows, line numbers,
quarantine reasons and counts as reading the whole file line by line.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voterolls.formats.sample import national_sample
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.synth.native import write_native


def _damaged(tmp: Path, state: str, *, blank_line: bool) -> Path:
    regs, _ = national_sample(state, 400)
    files = [p for p in write_native(state, regs, None, tmp / "in") if "vhis" not in p.name and "_H_" not in p.name]
    reg = max(files, key=lambda p: p.stat().st_size)  # FL writes one file per county
    data = reg.read_bytes()
    eol = b"\r\n" if b"\r\n" in data else b"\n"  # FL writes CRLF: keep one kind of line ending
    lines = data.split(eol)
    assert lines[-1] == b""
    body = lines[:-1]
    first = 1 if state == "NC" else 0  # NC has a header line
    delim = b"\t"
    n = len(body)
    assert n > 60
    body[first] = b"short" + delim + b"line"  # the first record
    body[first + n // 10] = body[first + n // 10][:30] + b"\xff\xfe" + body[first + n // 10][30:]  # invalid UTF-8
    body[first + n // 10 + 1] = body[first + n // 10 + 1] + delim + b"extra"  # one field too many, right after
    body[first + n // 2] = body[first + n // 2].replace(b"\t", b"\t\t", 1)  # a field too many
    body[-1] = body[-1][: len(body[-1]) // 2]  # the last line cut short
    if state == "NC":
        body[first + n // 4] = body[first + n // 4].replace(b'"', b"", 1)  # an unquoted first field
        ncid = body[first + n // 3].split(b"\t")
        ncid[3] = b'""'  # a blank voter id
        body[first + n // 3] = b"\t".join(ncid)
    if blank_line:
        body.insert(first + 2 * n // 3, b"")
    out = tmp / reg.name
    out.write_bytes(eol.join(body) + eol)
    return out


def _stored(ws: Path, state: str, name: str) -> pa.Table:
    t = pq.read_table(next(ws.glob(f"states/{state}/*/{name}.parquet")))
    if name == "quarantine":
        return t.sort_by([("file", "ascending"), ("line", "ascending")])
    # a history line may carry several votes: the vote's own fields break the tie
    return t.sort_by([(c, "ascending") for c in ("source_file", "source_line", "election_date") if c in t.column_names])


def _assert_same(split_ws: Path, lines_ws: Path, state: str, names: tuple[str, ...]) -> None:
    """Every stored column of ``names`` equal between the split run and the line-engine run."""
    for name in names:
        ta, tb = _stored(split_ws, state, name), _stored(lines_ws, state, name)
        assert ta.num_rows == tb.num_rows, name
        for col in ta.column_names:
            assert ta.column(col).to_pylist() == tb.column(col).to_pylist(), (name, col)


def _record(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[object]:
    """Wrap ``owner.name`` so that each call's result is recorded (returned list)."""
    real = getattr(owner, name)
    seen: list[object] = []

    def wrapper(*a: object, **kw: object) -> object:
        out = real(*a, **kw)
        seen.append(out)
        return out

    monkeypatch.setattr(owner, name, wrapper)
    return seen


@pytest.mark.parametrize("state", ["NC", "FL"])
@pytest.mark.parametrize("blank_line", [False, True])
def test_split_reads_like_the_line_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str, blank_line: bool) -> None:
    import importlib

    scan_mod = importlib.import_module("voterolls.formats.scan")

    src = _damaged(tmp_path, state, blank_line=blank_line)
    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)
    monkeypatch.setattr(scan_mod, "SPLIT_MAX_BAD_SHARE", 0.5)
    splits = _record(monkeypatch, scan_mod, "_split_off_bad_lines")
    a = ingest(IngestRequest.of(tmp_path / "split", state, [src]))
    monkeypatch.setattr(scan_mod, "_split_off_bad_lines", lambda *a, **kw: None)
    b = ingest(IngestRequest.of(tmp_path / "lines", state, [src]))

    assert splits and (splits[0] is not None or blank_line), "a file without blank lines must be split"
    assert (a.rows_read, a.loaded, a.quarantined) == (b.rows_read, b.loaded, b.quarantined)
    assert a.quarantined >= (6 if state == "NC" else 4)
    _assert_same(tmp_path / "split", tmp_path / "lines", state, ("registrations", "quarantine"))


def test_split_scan_exact_sql_matches_the_parallel_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Scan.registrations`` (numbering window + ASOF over the cut lines) and the parallel
    batches (numpy mapping) give every record the same original line."""
    import importlib

    import duckdb

    scan_mod = importlib.import_module("voterolls.formats.scan")

    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)
    monkeypatch.setattr(scan_mod, "SPLIT_MAX_BAD_SHARE", 0.5)
    src = _damaged(tmp_path, "NC", blank_line=False)
    s = scan_mod.scan(duckdb.connect(), [src], state="NC")
    try:
        assert any(getattr(pl, "skipped", None) for _, _, pl in s._reg_parts)
        exact = s.registrations.to_arrow_table().sort_by([("source_line", "ascending")])
        fast = pa.Table.from_batches(list(s.registration_batches(64))).sort_by([("source_line", "ascending")])
    finally:
        s.finish()
    assert exact.column("source_line").to_pylist() == fast.column("source_line").to_pylist()
    assert exact.column("state_voter_id").to_pylist() == fast.column("state_voter_id").to_pylist()


def test_line_numberer_maps_a_copy_back_to_the_original_lines() -> None:
    from voterolls.formats.fast import LineNumberer

    # original lines 1 (header) .. 8; lines 3, 4 and 7 were cut: the copy holds 2, 5, 6, 8
    num = LineNumberer([4], header=1, skipped=[3, 4, 7])
    assert num(pa.array([0, 0, 0, 0], pa.int64())).to_pylist() == [2, 5, 6, 8]
    num.close()


@pytest.mark.parametrize("seed", range(3))
def test_excise_copies_every_line_to_exactly_one_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """Small blocks so that lines and cut runs straddle block boundaries."""
    import random

    from voterolls.formats import sniff
    from voterolls.scratch import anonymous_file

    monkeypatch.setattr(sniff, "CHUNK", 16)
    rng = random.Random(seed)
    for trial in range(100):
        phys = [bytes(rng.choice(b'ab\t"') for _ in range(rng.randint(0, 20))) + b"\n" for _ in range(rng.randint(1, 40))]
        if rng.random() < 0.5:
            phys[-1] = phys[-1][:-1]  # the last line without a terminator
        src = tmp_path / f"f{trial}.txt"
        src.write_bytes(b"".join(phys))
        header = rng.random() < 0.5
        first = 2 if header else 1
        cut = sorted(rng.sample(range(first, len(phys) + 1), rng.randint(0, len(phys) + 1 - first)))
        with anonymous_file(tmp_path) as kept, anonymous_file(tmp_path) as out:
            sniff.excise(src, cut, header=header, keep=kept.fileobj, cut=out.fileobj)
            assert kept.path.read_bytes() == b"".join(x for i, x in enumerate(phys, 1) if i not in cut)
            assert out.path.read_bytes() == (phys[0] if header else b"") + b"".join(phys[i - 1] for i in cut)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"f{i}.txt" for i in range(trial + 1))


def test_split_of_a_csv_with_quoted_delimiters_and_a_clean_neighbour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CO's CSV quotes a field only when it must: a line with a quoted comma is valid but
    needs DuckDB's parser (the kept part is verified again).  A clean file of the same
    layout beside it stays on the fast path on its own."""
    import importlib

    scan_mod = importlib.import_module("voterolls.formats.scan")
    regs, _ = national_sample("CO", 600)
    files = write_native("CO", regs, None, tmp_path / "in")
    reg = next(p for p in files if p.name.startswith("CE-"))
    lines = reg.read_bytes().split(b"\n")
    header = lines[0].split(b",")
    street = header.index(b"STREET_NAME")
    for i in (5, 50, 120):  # valid lines only DuckDB's parser can cut
        f = lines[i].split(b",")
        f[street] = b'"ELM ST, REAR"'
        lines[i] = b",".join(f)
    lines[30] = b"CO9,short"  # wrong field count
    lines[80] = lines[80] + b',"unbalanced'  # stray quote
    damaged = tmp_path / "CE-VR011_20250106.txt"
    damaged.write_bytes(b"\n".join(lines))
    clean = tmp_path / "CE-VR012_20250106.txt"
    clean.write_bytes(reg.read_bytes().replace(b"CO00", b"CO77"))  # distinct ids, same layout
    inputs = [damaged, clean]

    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)
    monkeypatch.setattr(scan_mod, "SPLIT_MAX_BAD_SHARE", 0.5)
    splits = _record(monkeypatch, scan_mod, "_split_off_bad_lines")
    found = _record(monkeypatch, scan_mod.fast, "bad_lines")
    a = ingest(IngestRequest.of(tmp_path / "split", "CO", inputs))
    assert len(found) == 1 and found[0].needs_parse and found[0].lines == [31, 81]
    monkeypatch.setattr(scan_mod, "_split_off_bad_lines", lambda *a, **kw: None)
    b = ingest(IngestRequest.of(tmp_path / "lines", "CO", inputs))

    assert [s is not None for s in splits] == [True], "only the damaged file is split"
    assert (a.rows_read, a.loaded, a.quarantined) == (b.rows_read, b.loaded, b.quarantined)
    assert a.quarantined == 2
    _assert_same(tmp_path / "split", tmp_path / "lines", "CO", ("registrations", "quarantine"))
    streets = set(_stored(tmp_path / "split", "CO", "registrations").column("residence_address").to_pylist())
    assert any(s and "REAR" in s for s in streets)


def test_split_copies_have_no_name_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies hold raw native lines: they are anonymous files (``voterolls.scratch``), made
    in the stage's scratch directory and unlinked at once, so not even a killed ingest leaves one."""
    import importlib
    import os

    from voterolls.formats import sniff

    scan_mod = importlib.import_module("voterolls.formats.scan")
    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)
    seen: list[list[str]] = []
    real = sniff.excise

    def spy(path: Path, lines: list[int], **kw) -> None:  # noqa: ANN003
        real(path, lines, **kw)
        fds = [kw["keep"].fileno(), kw["cut"].fileno()]
        seen.append([os.readlink(f"/proc/self/fd/{fd}") for fd in fds])
        seen.append([str(p) for p in (tmp_path / "ws").rglob("*") if p.is_file() and "voterolls_" in p.name])

    monkeypatch.setattr(sniff, "excise", spy)
    src = _damaged(tmp_path, "NC", blank_line=False)
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [src]))
    assert r.quarantined >= 6 and len(seen) == 2
    links, named = seen
    assert all(str(tmp_path / "ws") in link and link.endswith("(deleted)") for link in links), links
    assert named == []


@pytest.mark.parametrize("bad_date", [False, True])
def test_split_of_a_history_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_date: bool) -> None:
    """ncvhis: its required election date needs parsing, so the kept part is verified again;
    a kept line with an unreadable date sends the whole file to the line engine.  Either way
    the stored history and quarantine equal the line engine's."""
    import importlib

    scan_mod = importlib.import_module("voterolls.formats.scan")
    regs, vh = national_sample("NC", 300)
    files = write_native("NC", regs, vh, tmp_path / "in")
    hist = next(p for p in files if "vhis" in p.name)
    lines = hist.read_bytes().split(b"\n")
    lines[10] = b'"x"\t"y"'  # wrong shape
    lines[400] = lines[400][:25] + b"\xff" + lines[400][25:]  # invalid byte
    if bad_date:
        f = lines[200].split(b"\t")
        f[3] = b'"13/45/2022"'  # election_lbl: no such date
        lines[200] = b"\t".join(f)
    hist.write_bytes(b"\n".join(lines))
    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)
    splits = _record(monkeypatch, scan_mod, "_split_off_bad_lines")
    a = ingest(IngestRequest.of(tmp_path / "split", "NC", files))
    monkeypatch.setattr(scan_mod, "_split_off_bad_lines", lambda *a, **kw: None)
    b = ingest(IngestRequest.of(tmp_path / "lines", "NC", files))
    assert [s is not None for s in splits] == [not bad_date]
    assert [(f.file_name, f.rows_read, f.loaded, f.quarantined, f.vote_history_loaded) for f in a.files] == [
        (f.file_name, f.rows_read, f.loaded, f.quarantined, f.vote_history_loaded) for f in b.files
    ]
    assert _stored(tmp_path / "split", "NC", "vote_history").num_rows > 0
    _assert_same(tmp_path / "split", tmp_path / "lines", "NC", ("vote_history", "quarantine"))


def test_a_split_that_cannot_be_written_falls_back_to_the_line_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import importlib

    from voterolls.formats import sniff

    scan_mod = importlib.import_module("voterolls.formats.scan")
    monkeypatch.setattr(scan_mod, "SPLIT_MIN_LINES", 1)

    def full(path: Path, lines: list[int], header: bool, keep, cut) -> None:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sniff, "_excise", full)
    src = _damaged(tmp_path, "NC", blank_line=False)
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [src]))
    assert r.quarantined >= 6 and r.loaded + r.quarantined == r.rows_read
    assert not list((tmp_path / "ws").rglob("voterolls_*.txt"))
