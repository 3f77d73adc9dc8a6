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

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    FULL,
    ROOT,
    ingest_cmd,
    snapshot_fingerprint,
    state_fingerprint,
    without_id,
)

from voterolls.formats import write_native
from voterolls.formats.sample import national_sample
from voterolls.ingest.pipeline import ingest
from voterolls.store import Workspace

RANDOM_KILLS = 20
STATE = "NC"
POINTS = [
    "phase:hash",
    "phase:scan",
    "phase:registrations",
    "phase:vote_history",
    "phase:reconcile",
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
        ingest(ws, STATE, paths)
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
            assert sorted(p.name for p in snap.iterdir() if p.is_file()) == sorted(
                ["manifest.json", "quarantine.parquet", "registrations.parquet", "uniformity.parquet", "vote_history.parquet"]
            ), f"snapshot {snap.name} is incomplete"
    staged = [d.name for d in (ws_path / "tmp").iterdir() if d.name[:3] == f"{STATE}-"]
    assert not staged, f"staged ingest directories left behind: {staged}"


def _start(ws: Path, paths: list[Path], kill_at: str = "") -> subprocess.Popen:
    env = {**os.environ, "VR_KILL_AT": kill_at}
    p = subprocess.Popen(
        ingest_cmd(ws, STATE, paths), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = p.stdout.readline()
    if line.strip() != "ready":
        p.kill()
        raise AssertionError(f"child did not start: {line!r} {p.stderr.read()[-2000:]}")
    return p


def _one_run(ws: Path, versions, refs, target: int, kill: str | float) -> str:
    """Kill an ingest of ``versions[target]`` over the other version; check; re-run. Returns outcome."""
    before_snap = Workspace(ws).current_snapshot(STATE)
    before = state_fingerprint(ws, STATE)
    before_files = snapshot_fingerprint(ws / before_snap["path"])
    if isinstance(kill, str):
        p = _start(ws, versions[target], kill)
        p.wait(timeout=120)
    else:
        p = _start(ws, versions[target])
        time.sleep(kill)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=120)
    out, err = p.communicate()
    outcome = "killed" if p.returncode == -signal.SIGKILL else "finished"
    if outcome == "finished":
        assert p.returncode == 0, err[-3000:]
    # the workspace opens and is one of the two complete states
    _assert_clean(ws)
    now = state_fingerprint(ws, STATE)
    if now["snapshot_id"] == before["snapshot_id"]:
        assert now == before, "the previous snapshot changed"
        state = "old"
    else:
        assert without_id(now) == refs[target], "a new snapshot is current but differs from an uninterrupted run"
        state = "new"
    assert snapshot_fingerprint(ws / before_snap["path"]) == before_files, "the previous snapshot's files changed"
    # re-running finishes with what an uninterrupted run gives
    r = ingest(ws, STATE, versions[target])
    assert r.status == ("unchanged" if state == "new" else "new")
    assert without_id(state_fingerprint(ws, STATE)) == refs[target]
    _assert_clean(ws)
    return f"{outcome}/{state}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    versions = _versions(tmp)
    refs = _references(tmp, versions)
    assert refs[0] != refs[1]
    # how long a child takes from "ready" to exit: the window the random kills sample
    probe = tmp / "probe"
    ingest(probe, STATE, versions[0])
    t = time.monotonic()
    p = _start(probe, versions[1])
    p.wait(timeout=120)
    window = time.monotonic() - t
    assert p.returncode == 0, p.stderr.read()
    return tmp, versions, refs, window


@pytest.mark.slow
def test_random_sigkill_during_ingest(setup) -> None:
    tmp, versions, refs, window = setup
    ws = tmp / "ws_random"
    ingest(ws, STATE, versions[0])
    rng = random.Random(20261124)
    outcomes = []
    for i in range(RANDOM_KILLS):
        delay = rng.uniform(0, window * 1.05)
        outcomes.append(_one_run(ws, versions, refs, target=(i + 1) % 2, kill=delay))
    # the random delays must actually interrupt ingests, not only watch them finish
    assert sum(o.startswith("killed") for o in outcomes) >= RANDOM_KILLS // 2, outcomes
    print("random kill outcomes:", {o: outcomes.count(o) for o in sorted(set(outcomes))})


@pytest.mark.parametrize("point", POINTS)
def test_sigkill_at_each_critical_point(setup, point: str) -> None:
    tmp, versions, refs, _ = setup
    ws = tmp / f"ws_{point.replace(':', '_')}"
    ingest(ws, STATE, versions[0])
    outcome = _one_run(ws, versions, refs, target=1, kill=point)
    assert outcome.startswith("killed"), f"the kill hook at {point} never fired"
    # every point is before the catalog COMMIT: the old snapshot must still be current
    assert outcome == "killed/old", f"kill at {point}: {outcome}"
