"""Round trip: synthetic nation -> native files -> ingest-dir -> counts equal truth minus protected."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from voterolls.ingest.commands import ingest_directory
from voterolls.store import Workspace

synth = pytest.importorskip("voterolls.synth")


def _roundtrip(tmp_path: Path, states: list[str], people: int) -> None:
    nation = synth.generate_nation(people, 5).restrict(states)
    synth.write_nation(nation, tmp_path / "gen")
    ws = Workspace(tmp_path / "ws")
    results = {r.state: r for r in ingest_directory(tmp_path / "gen", ws)}
    assert set(results) == set(states)
    regs = nation.registrations
    con = ws.connect()
    stored = dict(con.sql("SELECT state, count(*) FROM registrations GROUP BY state").fetchall())
    for st in states:
        mine = regs.filter(pc.equal(regs["state"], st))
        protected = int(pc.sum(mine["protected"].cast("int64")).as_py() or 0)
        r = results[st]
        assert r.quarantined == 0, st
        assert r.loaded == mine.num_rows - protected, st
        assert stored.get(st, 0) == r.loaded
        assert r.rows_read == r.loaded + r.quarantined + r.protected_excluded
    # a second run over the same directory changes nothing
    again = ingest_directory(tmp_path / "gen", ws)
    assert {r.status for r in again} == {"unchanged"}


def test_roundtrip_small_nation(tmp_path: Path) -> None:
    _roundtrip(tmp_path, ["NC", "NY", "OH", "DE", "WA"], 3000)


@pytest.mark.slow
def test_roundtrip_with_florida_county_files(tmp_path: Path) -> None:
    _roundtrip(tmp_path, ["FL", "PA"], 800)
