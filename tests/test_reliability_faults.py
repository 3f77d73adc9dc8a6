"""Fault injection: an ingest killed with SIGKILL at any moment never damages the workspace.

Each run starts a child process that ingests a state's files, kills it with
SIGKILL (no cleanup handlers run) either after a random delay or at a chosen
point (each ingest phase, just after the snapshot directory is renamed into
place, between the catalog INSERT and COMMIT, just before COMMIT), then checks:

* the workspace opens cleanly (``Workspace(path)``, ``connect()``);
* the state's current snapshot is either the previous one, byte-for-byte the
  same content (row counts and content hash of registrations, vote history
  and quarantine), or the new one complete; never a mix;
* the previous snapshot's files are still intact whatever happened;
* no staged temp directory or uncommitted snapshot directory survives;
* re-running the ingest gives exactly what an uninterrupted run gives.

Runs alternate between two versions of the state's files so every kill
interrupts a real change of snapshot.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    FULL,
    ForkServer,
    snap_counts,
    snapshot_fingerprint,
    state_fingerprint,
    without_id,
)

from voterolls.formats.sample import national_sample
from voterolls.ingest.delivery import DeliveryOptions
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.store import Workspace
from voterolls.synth.native import write_native

RANDOM_KILLS = 20
#: The two versions may differ by more than the delivery guard's 10%: switching is intended.
SWITCH = DeliveryOptions(allow_shrink=True)
STATE = "NC"
POINTS = [
    "phase:hash",
    "phase:scan",
    "phase:registrations",
    "phase:vote_history",
    "phase:reconcile",
    "phase:delivery",
    "phase:uniformity",
    "phase:commit",
    "after_rename",
    "after_insert",
    "before_commit",
]


def _versions(tmp: Path) -> list[list[Path]]:
    out = []
    for i, seed in enumerate((7, 8)):
        regs, vh = national_sample(STATE, 25 + i * 5, seed=seed, protected_every=6)
        out.append(write_native(STATE, regs, vh, tmp / f"v{i}", policy=FULL))
    return out


def _references(tmp: Path, versions: list[list[Path]]) -> list[dict]:
    """What an uninterrupted ingest of each version stores (in its own workspace)."""
    refs = []
    for i, paths in enumerate(versions):
        ws = tmp / f"ref{i}"
        ingest(IngestRequest.of(ws, STATE, paths))
        refs.append(without_id(state_fingerprint(ws, STATE)))
    return refs


def _assert_clean(ws_path: Path) -> None:
    ws = Workspace(ws_path)  # opening removes stale staging and orphans
    con = ws.connect()
    try:
        n = con.execute("SELECT count(*) FROM registrations").fetchone()[0]
        assert n == sum(s["loaded"] for s in (ws.current_snapshot(x) for x in ws.states()))
    finally:
        con.close()
    known = {s["snapshot_id"] for s in ws.snapshots()}
    for state_dir in (ws_path / "states").iterdir():
        for snap in state_dir.iterdir():
            assert snap.name in known, f"uncommitted snapshot directory left behind: {snap.name}"
            # `.lock` is the staging lock, unlinked just after COMMIT: a kill in that window leaves
            # the empty lock file in a committed snapshot, which holds no data and nothing reads
            files = sorted(p.name for p in snap.iterdir() if p.is_file() and p.name not in ("protected.parquet", ".lock"))
            assert files == sorted(
                ["manifest.json", "quarantine.parquet", "registrations.parquet", "uniformity.parquet", "vote_history.parquet"]
            ), f"snapshot {snap.name} is incomplete"
    staged = [d.name for d in (ws_path / "tmp").iterdir() if d.name[:3] == f"{STATE}-"]
    assert not staged, f"staged ingest directories left behind: {staged}"


#: Duration of the last in-process re-run: the random kills' window follows it.
_LAST_RERUN: list[float] = []


def _one_run(server: ForkServer, ws: Path, versions, refs, target: int, kill: str | float) -> str:
    """Kill an ingest of ``versions[target]`` over the other version; check; re-run. Returns outcome."""
    before_snap = Workspace(ws).current_snapshot(STATE)
    before = {**snap_counts(before_snap), **snapshot_fingerprint(ws / before_snap["path"])}
    if isinstance(kill, str):
        pid = server.start(ws, STATE, versions[target], kill, allow_shrink=True)
    else:
        pid = server.start(ws, STATE, versions[target], allow_shrink=True)
        time.sleep(kill)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # the ingest child only, by its pid
    end = server.wait()
    if end["signal"] == signal.SIGKILL:
        outcome = "killed"
    else:
        assert end["rc"] == 0, f"ingest failed on its own: {end}; see {server.stderr_path}"
        outcome = "finished"
    # the workspace opens and is one of the two complete states
    _assert_clean(ws)
    now = state_fingerprint(ws, STATE)
    if now["snapshot_id"] == before["snapshot_id"]:
        assert now == before, "the previous snapshot changed"
        state = "old"
    else:
        assert without_id(now) == refs[target], "a new snapshot is current but differs from an uninterrupted run"
        state = "new"
        prev = snapshot_fingerprint(ws / before_snap["path"])
        assert prev == without_id({k: before[k] for k in prev}), "the previous snapshot's files changed"
    # re-running finishes with what an uninterrupted run gives
    t = time.monotonic()
    r = ingest(IngestRequest.of(ws, STATE, versions[target], delivery=SWITCH))
    _LAST_RERUN[:] = [time.monotonic() - t]
    assert r.status == ("unchanged" if state == "new" else "new")
    assert without_id(state_fingerprint(ws, STATE)) == refs[target]
    return f"{outcome}/{state}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    versions = _versions(tmp)
    refs = _references(tmp, versions)
    assert refs[0] != refs[1]
    server = ForkServer(tmp / "fork_server.stderr")
    # how long a forked ingest takes: the window the random kills sample
    probe = tmp / "probe"
    ingest(IngestRequest.of(probe, STATE, versions[0]))
    t = time.monotonic()
    server.start(probe, STATE, versions[1], allow_shrink=True)
    assert server.wait()["rc"] == 0, (tmp / "fork_server.stderr").read_text()
    window = time.monotonic() - t
    yield tmp, versions, refs, window, server
    server.close()


@pytest.mark.slow
def test_random_sigkill_during_ingest(setup) -> None:
    """Keep killing at random moments until RANDOM_KILLS ingests were really killed.

    The kill window follows the machine: it is the duration of the last
    uninterrupted re-run (the same ingest in this process), so a busy or an
    idle machine both get kills spread over the whole ingest, commit included.
    """
    tmp, versions, refs, window, server = setup
    ws = tmp / "ws_random"
    ingest(IngestRequest.of(ws, STATE, versions[0]))
    rng = random.Random(20261124)
    outcomes = []
    attempt = 0
    while sum(o.startswith("killed") for o in outcomes) < RANDOM_KILLS:
        assert attempt < 3 * RANDOM_KILLS, f"too few kills landed: {outcomes}"
        delay = rng.uniform(0, window)
        outcomes.append(_one_run(server, ws, versions, refs, target=(attempt + 1) % 2, kill=delay))
        window = max(0.2, 0.5 * window + 0.5 * _LAST_RERUN[0]) if _LAST_RERUN else window
        attempt += 1
    print("random kill outcomes:", {o: outcomes.count(o) for o in sorted(set(outcomes))})


def test_sigkill_at_each_critical_point(setup) -> None:
    """Every phase, and the three instants inside the commit; each point is before COMMIT."""
    tmp, versions, refs, _, server = setup
    ws = tmp / "ws_points"
    ingest(IngestRequest.of(ws, STATE, versions[0]))
    for i, point in enumerate(POINTS):
        outcome = _one_run(server, ws, versions, refs, target=(i + 1) % 2, kill=point)
        assert outcome == "killed/old", f"kill at {point}: {outcome}"


# ---------------------------------------------------------------------------
# a damaged workspace on disk (bit rot, a deleted file, a bad restore)
# ---------------------------------------------------------------------------


@pytest.fixture
def one_snapshot(tmp_path: Path):
    regs, vh = national_sample(STATE, 12, seed=9)
    paths = write_native(STATE, regs, vh, tmp_path / "files", policy=FULL)
    ws = tmp_path / "ws"
    ingest(IngestRequest.of(ws, STATE, paths))
    snap = Workspace(ws).current_snapshot(STATE)
    return ws, paths, ws / snap["path"]


def test_missing_snapshot_file_is_an_error_not_zero_rows(one_snapshot) -> None:
    from voterolls.errors import UserError

    ws, _, snap_dir = one_snapshot
    (snap_dir / "registrations.parquet").unlink()
    w = Workspace(ws)
    assert w.states() == [STATE]
    with pytest.raises(UserError, match="registrations.parquet"):
        con = w.connect()
        con.execute("SELECT count(*) FROM registrations").fetchone()


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_reingest_repairs_a_damaged_current_snapshot(one_snapshot, damage: str) -> None:
    ws, paths, snap_dir = one_snapshot
    f = snap_dir / "registrations.parquet"
    if damage == "delete":
        f.unlink()
    else:
        f.write_bytes(f.read_bytes()[:100])
    r = ingest(IngestRequest.of(ws, STATE, paths))
    assert r.status == "new"
    con = Workspace(ws).connect()
    assert con.execute("SELECT count(*) FROM registrations").fetchone()[0] == r.loaded


def test_damaged_catalog_is_a_clear_error(one_snapshot) -> None:
    import subprocess

    from reliability_helpers import PYTHON, ROOT

    ws, _, _ = one_snapshot
    cat = ws / "catalog.duckdb"
    data = bytearray(cat.read_bytes())
    data[5000:5100] = b"\xaa" * 100  # bit rot inside a block
    cat.write_bytes(bytes(data))
    p = subprocess.run([str(Path(PYTHON).parent / "voterolls"), "uniformity", "-w", str(ws)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr[-1500:]
    assert "catalog.duckdb" in p.stderr
