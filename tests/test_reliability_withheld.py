"""Nothing withheld on disk, even after a kill; NUL bytes, blank and over-long lines; directories.

Issue 17: after SIGKILL during the ingest of a file with mixed line endings, a
raw copy of the input (full dates of birth of a state that publishes only the
birth year) stayed under the workspace's scratch folder until the next command
opened the workspace.  The reader's copies are now anonymous files
(``voterolls.scratch``): here ingests of WA files in the 2016 layout (full
DOB; WA's policy allows the year only) are killed at many moments, and every
file of the workspace is searched for the full dates, *before* anything opens
the workspace again.

The readers' own bad-input cases (NUL inside a field, a line of spaces, a
line of 32 MiB or more, a directory given as a file) are checked here too.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability_helpers import FULL, ForkServer

from voterolls.errors import UserError
from voterolls.formats.sample import national_sample
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.policy import get_policy
from voterolls.synth.native import write_native

STATE = "WA"
FORMAT = "wa_vrdb_2016"
#: Kill just after a copy of the input was written, at every ingest phase, inside the commit.
POINTS = [
    "scratch:normalise_endings",
    "scratch:excise",
    "phase:scan",
    "phase:registrations",
    "phase:reconcile",
    "phase:uniformity",
    "phase:commit",
    "after_rename",
    "before_commit",
]
RANDOM_KILLS = 8


def _dob_strings(regs) -> set[bytes]:  # noqa: ANN001
    """Every full DOB of the sample, in the spellings a file or a log could carry."""
    out: set[bytes] = set()
    for d in regs.column("dob").to_pylist():
        out |= {d.strftime(f).encode() for f in ("%m/%d/%Y", "%Y-%m-%d", "%Y%m%d")}
    return out


def _withheld_on_disk(root: Path, values: set[bytes]) -> list[str]:
    """Files under ``root`` holding any of ``values`` (every file, binary ones included)."""
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits = [v for v in values if v in data]
            if hits:
                found.append(f"{p.relative_to(root)} ({len(hits)} dates)")
    return found


def _inputs(tmp: Path) -> tuple[list[list[Path]], set[bytes]]:
    """Two versions of WA's registration file: one with mixed line endings, one with bad lines."""
    assert get_policy(STATE).dob_disclosure != "full"
    regs, _ = national_sample(STATE, 80, seed=17)
    mixed = write_native(STATE, regs, None, tmp / "mixed", format=FORMAT, policy=FULL)[0]
    lines = mixed.read_bytes().split(b"\n")
    for i in range(3, len(lines) - 1, 4):
        lines[i] += b"\r"  # every fourth line CRLF
    mixed.write_bytes(b"\n".join(lines))
    regs2, _ = national_sample(STATE, 80, seed=18)
    bad = write_native(STATE, regs2, None, tmp / "bad", format=FORMAT, policy=FULL)[0]
    lines = bad.read_bytes().split(b"\n")
    lines[7] = lines[7].replace(b"\t", b"", 2)  # two fields short
    lines[30] = lines[30] + b'\t"stray'
    bad.write_bytes(b"\n".join(lines))
    return [[mixed], [bad]], _dob_strings(regs) | _dob_strings(regs2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, monkeypatch_module):  # noqa: ANN001
    tmp = tmp_path_factory.mktemp("withheld")
    versions, dobs = _inputs(tmp)
    monkeypatch_module.setenv("VR_SPLIT_MIN_LINES", "1")  # the 80-line file with bad lines is split
    server = ForkServer(tmp / "fork_server.stderr")
    yield tmp, versions, dobs, server
    server.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_the_scanner_finds_a_planted_copy(setup) -> None:  # noqa: ANN001
    tmp, versions, dobs, _ = setup
    plant = tmp / "plant"
    (plant / "tmp" / "x").mkdir(parents=True)
    (plant / "tmp" / "x" / "copy.bin").write_bytes(b"\0" * 10 + versions[0][0].read_bytes()[-3000:])
    assert _withheld_on_disk(plant, dobs)
    assert all(len(_withheld_on_disk(v[0].parent, dobs)) == 1 for v in versions)


def _kill_and_scan(server: ForkServer, ws: Path, paths: list[Path], dobs: set[bytes], kill: str | float) -> str:
    if isinstance(kill, str):
        pid = server.start(ws, STATE, paths, kill)
    else:
        pid = server.start(ws, STATE, paths)
        time.sleep(kill)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # the ingest child only, by its pid
    end = server.wait()
    outcome = "killed" if end["signal"] == signal.SIGKILL else "finished"
    if outcome == "finished":
        assert end["rc"] == 0, f"ingest failed on its own: {end}; see {server.stderr_path}"
    leaked = _withheld_on_disk(ws, dobs)  # before anything opens the workspace again
    assert not leaked, f"kill at {kill}: withheld dates of birth on disk: {leaked}"
    return outcome


def test_no_withheld_value_on_disk_after_a_kill_at_each_point(setup) -> None:  # noqa: ANN001
    tmp, versions, dobs, server = setup
    ws = tmp / "ws_points"
    outcomes = {}
    for point in POINTS:
        for j, paths in enumerate(versions):
            outcomes[(point, j)] = _kill_and_scan(server, ws, paths, dobs, point)
    # the copies were really made (and the process died holding them)
    assert outcomes[("scratch:normalise_endings", 0)] == "killed"
    assert outcomes[("scratch:excise", 1)] == "killed"
    # (a version already current is "unchanged" and stops early, so each point kills one of the two)
    assert all("killed" in (outcomes[(p, 0)], outcomes[(p, 1)]) for p in POINTS), outcomes
    print("fixed points:", sum(o == "killed" for o in outcomes.values()), "of", len(outcomes), "runs killed")
    r = ingest(IngestRequest.of(ws, STATE, versions[1]))
    assert r.quarantined == 2 and r.loaded == 78
    assert not _withheld_on_disk(ws, dobs)


def test_no_withheld_value_on_disk_after_random_kills(setup) -> None:  # noqa: ANN001
    tmp, versions, dobs, server = setup
    ws = tmp / "ws_random"
    t = time.monotonic()
    server.start(ws, STATE, versions[0])
    assert server.wait()["rc"] == 0
    window = time.monotonic() - t
    rng = random.Random(20261207)
    outcomes = []
    for attempt in range(3 * RANDOM_KILLS):
        if outcomes.count("killed") >= RANDOM_KILLS:
            break
        outcomes.append(_kill_and_scan(server, ws, versions[(attempt + 1) % 2], dobs, rng.uniform(0, window)))
    print("random kills:", {o: outcomes.count(o) for o in sorted(set(outcomes))}, f"window {window:.1f} s")
    assert outcomes.count("killed") >= RANDOM_KILLS // 2, outcomes


# ---------------------------------------------------------------- bad lines
def _one_file(tmp: Path, state: str, fmt: str | None = None) -> tuple[Path, list[bytes]]:
    regs, vh = national_sample(state, 20, seed=5)
    path = [p for p in write_native(state, regs, vh, tmp / "in", format=fmt, policy=FULL)
            if "hist" not in p.name.lower() and "vhis" not in p.name][0]
    return path, path.read_bytes().split(b"\n")


def _quarantine(ws: Path) -> list[dict]:
    q = next((ws / "states").rglob("quarantine.parquet"))
    return pq.read_table(q).select(["line", "field", "reason"]).to_pylist()


@pytest.mark.parametrize("state", ["NC", "WA", "VT"])  # quoted tab (line engine), pipe (fast path), generic CSV
def test_nul_bytes_inside_a_field_quarantine_the_line(tmp_path: Path, state: str) -> None:
    path, lines = _one_file(tmp_path, state)
    d = next(c for c in (b"\t", b"|", b",") if c in lines[0])
    fields = lines[5].split(d)
    k = max(range(len(fields)), key=lambda i: len(fields[i]) if fields[i].strip(b'"').isalpha() else 0)
    fields[k] = fields[k][:2] + b"\0\0" + fields[k][2:]
    lines[5] = d.join(fields)
    path.write_bytes(b"\n".join(lines))
    r = ingest(IngestRequest.of(tmp_path / "ws", state, [path]))
    assert (r.rows_read, r.loaded, r.quarantined) == (20, 19, 1)
    assert _quarantine(tmp_path / "ws") == [{"line": 6, "field": None, "reason": "line contains NUL bytes (0x00)"}]


@pytest.mark.parametrize("state", ["NC", "WA", "NY"])  # quoted, pipe, fixed width
def test_a_line_of_spaces_is_a_blank_line(tmp_path: Path, state: str) -> None:
    path, lines = _one_file(tmp_path, state)
    header = 1 if state != "NY" else 0
    lines[8] = b" \t  " if state != "NY" else b" " * len(lines[8])
    path.write_bytes(b"\n".join(lines))
    r = ingest(IngestRequest.of(tmp_path / "ws", state, [path]))
    assert r.quarantined == 1 and r.loaded == 19
    assert _quarantine(tmp_path / "ws") == [{"line": 9, "field": None, "reason": "blank line (only spaces or tabs)"}]
    assert header in (0, 1)


@pytest.mark.parametrize("size_mib", [3, 33])
def test_an_over_long_line_is_quarantined_and_the_rest_loads(tmp_path: Path, size_mib: int) -> None:
    """3 MiB: DuckDB rejects it; 33 MiB: DuckDB skips it without a word (it does not fit its
    read buffer), which used to refuse the whole file as "line count does not reconcile"."""
    path, lines = _one_file(tmp_path, "WA")
    lines[12] = lines[12] + b"x" * (size_mib << 20)
    lines[15] = lines[15] + b"\r"  # mixed line endings too: the normalised copy is measured
    path.write_bytes(b"\n".join(lines))
    r = ingest(IngestRequest.of(tmp_path / "ws", "WA", [path]))
    assert (r.rows_read, r.loaded, r.quarantined) == (20, 19, 1)
    assert _quarantine(tmp_path / "ws") == [
        {"line": 13, "field": None, "reason": "line longer than 2 MiB (no voter record is)"}]


def test_a_directory_given_as_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "NC").mkdir()
    with pytest.raises(UserError, match=r"NC: is a directory; give the file itself \(a file inside it\)$"):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", [tmp_path / "NC"]))
    from voterolls.formats import detect_format

    with pytest.raises(UserError, match="is a directory"):
        detect_format([tmp_path / "NC"])
