"""Workspace: atomic snapshots (failures and SIGKILL leave the previous one intact),
stale-directory cleanup, concurrent ingests of different states, empty views."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from voterolls.formats.sample import national_sample
from voterolls.ingest import writer
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.schema import REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA
from voterolls.store import Workspace
from voterolls.synth.native import write_native

ROOT = Path(__file__).resolve().parent.parent


def _files(tmp: Path, state: str, n: int, seed: int = 7, sub: str = "in") -> list[Path]:
    regs, vh = national_sample(state, n, seed=seed)
    return write_native(state, regs, vh, tmp / sub / state)


def _state_of(ws: Workspace, state: str) -> tuple[str, int]:
    con = ws.connect()
    sid = ws.current()[state]
    n = con.sql(f"SELECT count(*) FROM registrations WHERE state = '{state}'").fetchall()[0][0]
    return sid, n


def test_empty_workspace_has_typed_views(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    con = ws.connect()
    assert con.sql("SELECT * FROM registrations").columns == REGISTRATION_SCHEMA.names
    assert con.sql("SELECT * FROM vote_history").columns == VOTE_HISTORY_SCHEMA.names
    assert con.sql("SELECT count(*) FROM snapshots").fetchall()[0][0] == 0
    assert (tmp_path / "ws" / "catalog.duckdb").exists()


def test_failure_mid_write_keeps_previous_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ingest(IngestRequest.of(ws, "NC", _files(tmp_path, "NC", 50)))
    before = _state_of(ws, "NC")

    real = writer.stream_write

    def half_then_fail(rel, out, *a, **kw):  # noqa: ANN001
        real(rel, out, *a, **kw)  # the new registrations file is fully written ...
        raise OSError("disk full (simulated)")  # ... then the ingest dies

    monkeypatch.setattr(writer, "stream_write", half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        ingest(IngestRequest.of(ws, "NC", _files(tmp_path, "NC", 70, seed=8, sub="v2")))
    assert _state_of(ws, "NC") == before
    assert [s["snapshot_id"] for s in ws.snapshots("NC")] == [first.snapshot_id]
    assert not [d for d in (ws.path / "tmp").iterdir() if d.name.startswith("NC-")]
    assert [d.name for d in (ws.path / "states" / "NC").iterdir()] == [first.snapshot_id]

    # a failure inside the catalog transaction rolls back and removes the renamed directory
    monkeypatch.setattr(writer, "stream_write", real)
    import voterolls.store as store

    monkeypatch.setattr(store, "FILE_MANIFEST_COLUMNS", (*store.FILE_MANIFEST_COLUMNS, "no_such_column"))
    with pytest.raises(Exception):  # noqa: B017 - DuckDB binder error from the broken insert
        ingest(IngestRequest.of(ws, "NC", _files(tmp_path, "NC", 70, seed=8, sub="v3")))
    monkeypatch.undo()
    ws2 = Workspace(ws.path)
    assert _state_of(ws2, "NC") == before
    assert [d.name for d in (ws.path / "states" / "NC").iterdir()] == [first.snapshot_id]


_KILL_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import pyarrow.parquet as pq
    from voterolls.ingest import writer
    from voterolls.ingest.pipeline import IngestRequest, ingest
    from voterolls.store import Workspace

    ws_path, stage, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    ws = Workspace(ws_path)
    if stage == "writing":
        real = writer.stream_write
        def die(rel, out, *a, **kw):
            # part of a Parquet file is on disk, then the process is killed
            out.write_bytes(b"PAR1 partial")
            os.kill(os.getpid(), signal.SIGKILL)
        writer.stream_write = die
    elif stage == "renamed":
        real_rename = os.rename
        def rename_then_die(a, b):
            real_rename(a, b)
            os.kill(os.getpid(), signal.SIGKILL)  # after the rename, before the catalog commit
        os.rename = rename_then_die
    ingest(IngestRequest.of(ws, "NC", [Path(f) for f in files]))
    """
)


@pytest.mark.parametrize("stage", ["writing", "renamed"])
def test_sigkill_leaves_previous_snapshot_and_opens_clean(tmp_path: Path, stage: str) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest(IngestRequest.of(ws, "NC", _files(tmp_path, "NC", 40)))
    before = _state_of(ws, "NC")
    v2 = _files(tmp_path, "NC", 60, seed=9, sub="v2")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _KILL_CHILD, str(ws.path), stage, *map(str, v2)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    leftovers = [d for d in (ws.path / "tmp").iterdir() if d.name.startswith("NC-")] + [
        d for d in (ws.path / "states" / "NC").iterdir() if d.name != before[0]
    ]
    assert leftovers  # the killed ingest did leave debris ...
    ws2 = Workspace(ws.path)  # ... which opening the workspace removes
    assert _state_of(ws2, "NC") == before
    assert not [d for d in (ws.path / "tmp").iterdir() if d.name.startswith("NC-")]
    assert [d.name for d in (ws.path / "states" / "NC").iterdir()] == [before[0]]
    # and the next ingest of the same new files succeeds
    r = ingest(IngestRequest.of(ws2, "NC", v2))
    assert r.status == "new" and _state_of(ws2, "NC")[1] == 60


_CONCURRENT_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from voterolls.ingest.pipeline import IngestRequest, ingest
    r = ingest(IngestRequest.of(sys.argv[1], sys.argv[2], [Path(p) for p in sys.argv[3:]], threads=1))
    print(r.status, r.loaded)
    """
)


@pytest.mark.slow
def test_concurrent_ingests_of_different_states_both_land(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = []
    for state, n in (("NC", 70), ("FL", 50), ("OH", 40)):
        files = _files(tmp_path, state, n)
        procs.append(
            (state, n, subprocess.Popen([sys.executable, "-c", _CONCURRENT_CHILD, str(ws.path), state, *map(str, files)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        )
    for state, _n, p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"{state}: {err.decode()[-2000:]}"
        assert out.decode().strip().splitlines()[-1].split()[0] == "new"
    con = ws.connect()
    got = dict(con.sql("SELECT state, count(*) FROM registrations GROUP BY state").fetchall())
    assert set(got) == {"NC", "FL", "OH"}
    assert got["NC"] == 70 and got["OH"] == 40 and got["FL"] <= 50
    assert len(ws.snapshots()) == 3


def test_stage_of_live_ingest_is_not_cleaned(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    staged = ws.stage("NC")
    (staged.dir / "registrations.parquet").write_bytes(b"in progress")
    Workspace(ws.path)  # another process opening the workspace meanwhile
    assert staged.dir.exists()  # held by a live lock: left alone
    ws.discard(staged)
    assert not staged.dir.exists()


def test_snapshot_files_are_zstd_parquet(tmp_path: Path) -> None:
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", _files(tmp_path, "NC", 30)))
    d = Workspace(tmp_path / "ws").snapshot_dir("NC", r.snapshot_id)
    for name in ("registrations", "vote_history", "quarantine", "uniformity"):
        md = pq.ParquetFile(d / f"{name}.parquet").metadata
        if md.num_row_groups:
            assert md.row_group(0).column(0).compression == "ZSTD"
    assert pq.read_schema(d / "registrations.parquet").remove_metadata() == REGISTRATION_SCHEMA.remove_metadata()
    assert (d / "manifest.json").exists()


# ---------------------------------------------------------------- a damaged workspace on disk


@pytest.fixture
def nc_workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with one NC snapshot: (workspace path, snapshot directory)."""
    ws = Workspace(tmp_path / "ws")
    r = ingest(IngestRequest.of(ws, "NC", _files(tmp_path, "NC", 20)))
    return ws.path, ws.snapshot_dir("NC", r.snapshot_id)


@pytest.mark.parametrize("name", ["registrations.parquet", "vote_history.parquet"])
@pytest.mark.parametrize("damage", ["delete", "truncate", "empty"])
def test_missing_or_cut_snapshot_file_is_a_user_error(nc_workspace, name: str, damage: str) -> None:
    from voterolls.errors import UserError

    path, snap = nc_workspace
    f = snap / name
    if damage == "delete":
        f.unlink()
    else:
        f.write_bytes(f.read_bytes()[: 100 if damage == "truncate" else 0])
    ws = Workspace(path)
    assert ws.states() == ["NC"]  # the catalog still says NC is current ...
    with pytest.raises(UserError, match=name) as exc:  # ... so its rows must not silently vanish
        ws.connect()
    msg = str(exc.value)
    assert snap.name in msg and "NC" in msg
    assert ("missing" if damage == "delete" else "damaged") in msg
    assert "ingest" in msg  # says how to repair


def test_optional_snapshot_files_may_be_absent(nc_workspace) -> None:
    """Quarantine and uniformity are optional (snapshots committed without them); present ones are checked."""
    from voterolls.errors import UserError

    path, snap = nc_workspace
    (snap / "quarantine.parquet").unlink()
    con = Workspace(path).connect()
    assert con.sql("SELECT count(*) FROM registrations").fetchall()[0][0] > 0
    (snap / "uniformity.parquet").write_bytes(b"PAR1")
    with pytest.raises(UserError, match="uniformity.parquet"):
        Workspace(path).connect()


@pytest.mark.parametrize("damage", ["bit rot", "header", "truncate", "garbage", "empty"])
def test_damaged_catalog_is_a_user_error_naming_it(nc_workspace, damage: str) -> None:
    from voterolls.errors import UserError

    path, snap = nc_workspace
    cat = path / "catalog.duckdb"
    data = bytearray(cat.read_bytes())
    if damage == "bit rot":
        data[5000:5100] = b"\xaa" * 100
    elif damage == "header":
        data[100:200] = b"\x00" * 100
    elif damage == "truncate":
        data = data[:5000]
    elif damage == "garbage":
        data = bytearray(os.urandom(8192))
    else:
        data = bytearray()
    cat.write_bytes(bytes(data))
    with pytest.raises(UserError, match="catalog.duckdb") as exc:
        Workspace(path).connect()
    assert "backup" in str(exc.value)
    assert snap.exists(), "a damaged catalog must never cost a snapshot"


def test_lost_catalog_does_not_discard_the_snapshots(nc_workspace) -> None:
    """Without the catalog every snapshot would look uncommitted; opening must refuse, not clean up."""
    from voterolls.errors import UserError

    path, snap = nc_workspace
    (path / "catalog.duckdb").rename(path / "catalog.duckdb.lost")
    for _ in range(2):
        with pytest.raises(UserError, match=r"catalog \(catalog.duckdb\) is missing"):
            Workspace(path)
    assert (snap / "registrations.parquet").exists()
    (path / "catalog.duckdb.lost").rename(path / "catalog.duckdb")
    assert Workspace(path).states() == ["NC"]


def test_damaged_catalog_through_the_cli_is_one_line(nc_workspace) -> None:
    path, _ = nc_workspace
    cat = path / "catalog.duckdb"
    cat.write_bytes(b"not a database at all\n" * 10)
    exe = Path(sys.executable).parent / "voterolls"
    p = subprocess.run([str(exe), "diff", "NC", "-w", str(path)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "catalog.duckdb" in p.stderr, p.stderr[-1500:]
