"""Deliveries as states make them: compressed, by county, in parts, with guards (issue 16).

Files are written by the project's native writer from small made-up tables
(``voterolls.formats.sample``) and then packed, split and damaged here with
the standard library, so what is tested is the ingest of a delivery, not the
writer.  Counts are checked against the tables the files were made from.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from delivery_files import FL_COUNTIES, fl_county_files

from voterolls.errors import UserError
from voterolls.formats.sample import national_sample
from voterolls.ingest.delivery import DeliveryOptions, normalise_scope
from voterolls.ingest.diff import diff_snapshots
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.store import Workspace
from voterolls.synth.native import write_native

ROOT = Path(__file__).resolve().parent.parent
VOTEROLLS = Path(sys.executable).parent / "voterolls"

def _counts(ws: Workspace, state: str) -> tuple[int, int, int]:
    con = ws.connect()
    regs, ids = con.execute(
        "SELECT count(*), count(DISTINCT state_voter_id) FROM registrations WHERE state = ?", [state]
    ).fetchall()[0]
    vh = con.execute("SELECT count(*) FROM vote_history WHERE state = ?", [state]).fetchall()[0][0]
    return int(regs), int(ids), int(vh)


@pytest.fixture(scope="module")
def nc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("nc")
    regs, vh = national_sample("NC", 300, seed=11)
    files = write_native("NC", regs, vh, d / "plain")
    reg = next(f for f in files if "ncvoter" in f.name)
    his = next(f for f in files if "ncvhis" in f.name)
    ws = Workspace(d / "ws_plain")
    plain = ingest(IngestRequest.of(ws, "NC", [reg, his]))
    return {"dir": d, "reg": reg, "his": his, "plain": plain}


@pytest.fixture(scope="module")
def fl(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """67 FL county extracts and 67 history files, 6 voters per county."""
    d = tmp_path_factory.mktemp("fl")
    reg, his = fl_county_files(d / "files")
    ws = Workspace(d / "ws_one")
    one = ingest(IngestRequest.of(ws, "FL", reg + his))
    return {"dir": d, "reg": reg, "his": his, "one": one, "ws_one": ws}


# ---------------------------------------------------------------------- compressed
def test_zip_with_several_members_reads_like_the_plain_files(nc: dict, tmp_path: Path) -> None:
    z = tmp_path / "ncvoter_statewide.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(nc["reg"], nc["reg"].name)
        zf.write(nc["his"], nc["his"].name)
    ws = Workspace(tmp_path / "ws")
    r = ingest(IngestRequest.of(ws, "NC", [z]))
    plain = nc["plain"]
    assert (r.loaded, r.vote_history_loaded, r.quarantined) == (plain.loaded, plain.vote_history_loaded, plain.quarantined)
    by_name = {f.file_name: f for f in r.files}
    assert set(by_name) == {f"ncvoter_statewide.zip!{nc['reg'].name}", f"ncvoter_statewide.zip!{nc['his'].name}"}
    plain_sha = {f.file_name: f.sha256 for f in plain.files}
    for f in r.files:  # each member has its own sha256 (of its bytes) and counts
        member = f.file_name.split("!")[1]
        assert f.sha256 == plain_sha[member]
        assert f.container_sha256 is not None and f.container_sha256 != f.sha256
    manifest = ws.manifest("NC")
    assert {f["file_name"] for f in manifest["files"]} == set(by_name)
    # the same zip again changes nothing
    assert ingest(IngestRequest.of(ws, "NC", [z])).status == "unchanged"
    # no unpacked copy is left anywhere in the workspace
    assert not [p for p in ws.path.rglob("*") if p.is_file() and p.name.startswith("voterolls_")]


def test_quarantine_names_the_member_and_line(nc: dict, tmp_path: Path) -> None:
    lines = nc["reg"].read_bytes().split(b"\n")
    lines[3] = b"broken\tline"
    lines[6] = lines[6][:12] + b"\x00" + lines[6][12:]  # a NUL byte (main's line quarantine) inside a member
    damaged = b"\n".join(lines)
    z = tmp_path / "ncvoter_statewide.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ncvoter1.txt", damaged)
        zf.write(nc["his"], "ncvhis1.txt")
    ws = Workspace(tmp_path / "ws")
    r = ingest(IngestRequest.of(ws, "NC", [z]))
    q = pq.read_table(ws.snapshot_dir("NC", r.snapshot_id) / "quarantine.parquet").to_pylist()
    assert {(row["file"], row["line"]) for row in q} == {
        ("ncvoter_statewide.zip!ncvoter1.txt", 4), ("ncvoter_statewide.zip!ncvoter1.txt", 7)
    }
    assert r.quarantined == 2 and r.loaded == nc["plain"].loaded - 2


def test_gz_files_read_like_the_plain_files(nc: dict, tmp_path: Path) -> None:
    out = []
    for f in (nc["reg"], nc["his"]):
        g = tmp_path / (f.name + ".gz")
        g.write_bytes(gzip.compress(f.read_bytes()))
        out.append(g)
    ws = Workspace(tmp_path / "ws")
    r = ingest(IngestRequest.of(ws, "NC", out))
    assert (r.loaded, r.vote_history_loaded) == (nc["plain"].loaded, nc["plain"].vote_history_loaded)
    assert sorted(f.file_name for f in r.files) == sorted(f"{f.name}.gz!{f.name}" for f in (nc["reg"], nc["his"]))


def test_nested_county_zips(fl: dict, tmp_path: Path) -> None:
    """A statewide zip of per-county zips (each with its extract and history): every county once."""
    outer = tmp_path / "FL_statewide.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as zo:
        for reg, his in zip(fl["reg"], fl["his"], strict=True):
            county = reg.name.split("_")[0]
            inner = tmp_path / f"{county}.zip"
            with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zi:
                zi.write(reg, reg.name)
                zi.write(his, his.name)
            zo.write(inner, inner.name)
    ws = Workspace(tmp_path / "ws")
    r = ingest(IngestRequest.of(ws, "FL", [outer]))
    assert (r.loaded, r.vote_history_loaded) == (fl["one"].loaded, fl["one"].vote_history_loaded)
    assert len(r.files) == 134
    assert any(f.file_name == f"FL_statewide.zip!ALA.zip!{fl['reg'][0].name}" for f in r.files)
    scopes = {s["scope"] for s in ws.manifest("FL")["scopes"]}
    assert scopes == {f"county:{c}" for c in FL_COUNTIES}


def test_unreadable_archive_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "cut.zip"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(UserError, match="cut.zip is not a readable ZIP archive"):
        ingest(IngestRequest.of(Workspace(tmp_path / "ws"), "NC", [bad]))
    bad_gz = tmp_path / "cut.txt.gz"
    bad_gz.write_bytes(gzip.compress(b"x" * 1000)[:30])
    with pytest.raises(UserError, match="cut.txt.gz"):
        ingest(IngestRequest.of(Workspace(tmp_path / "ws"), "NC", [bad_gz]))


# ---------------------------------------------------------------------- parts and scopes
def test_fl_67_counties_in_one_delivery(fl: dict) -> None:
    ws = fl["ws_one"]
    regs, ids, vh = _counts(ws, "FL")
    assert regs == ids == fl["one"].loaded == 6 * 67 - fl["one"].protected_excluded
    assert vh == fl["one"].vote_history_loaded > 0
    scopes = ws.manifest("FL")["scopes"]
    assert {(s["role"], s["scope"]) for s in scopes} == {
        (role, f"county:{c}") for c in FL_COUNTIES for role in ("registrations", "history")
    }


def test_fl_67_counties_in_three_submissions(fl: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    reg, his = fl["reg"], fl["his"]
    cuts = [(0, 20), (20, 45), (45, 67)]
    results = [ingest(IngestRequest.of(ws, "FL", reg[a:b] + his[a:b])) for a, b in cuts]
    assert all(r.status == "new" for r in results)
    assert _counts(ws, "FL") == _counts(fl["ws_one"], "FL")
    con = ws.connect()
    per_county = dict(con.sql("SELECT county, count(*) FROM registrations GROUP BY county").fetchall())
    one = dict(fl["ws_one"].connect().sql("SELECT county, count(*) FROM registrations GROUP BY county").fetchall())
    assert per_county == one and len(per_county) == 67  # every county once
    # sending the second submission again changes nothing
    again = ingest(IngestRequest.of(ws, "FL", reg[20:45] + his[20:45]))
    assert again.status == "unchanged" and again.snapshot_id == results[-1].snapshot_id
    # the final snapshot's manifest says which snapshot each part came from
    m = ws.manifest("FL")
    assert {tuple(s["part_snapshots"]) for s in m["scopes"]} == {(r.snapshot_id,) for r in results}
    # diff: the last delivery changed only its 22 counties' scopes
    d = diff_snapshots(ws, "FL")
    changed = {s["scope"] for s in d.scopes if s["replaced"]}
    assert changed == {f"county:{c}" for c in FL_COUNTIES[45:]}
    assert sum(s["added"] for s in d.scopes) == d.added == _counts(ws, "FL")[0] - d.old_rows


def test_history_before_and_after_its_registrations(fl: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    reg, his = fl["reg"], fl["his"]
    first = ingest(IngestRequest.of(ws, "FL", his[:10]))  # history first: no registration yet
    assert first.loaded == 0 and first.vote_history_loaded > 0
    ingest(IngestRequest.of(ws, "FL", reg))  # registrations later: the history stays
    only_history = ingest(IngestRequest.of(ws, "FL", his[10:]))  # the rest of the history alone
    assert only_history.status == "new"
    assert _counts(ws, "FL") == _counts(fl["ws_one"], "FL")


def test_protected_voters_history_is_withheld_whatever_the_order(tmp_path: Path) -> None:
    """Protected voters' ids are not stored, yet their history is withheld when it comes apart."""
    reg, his = fl_county_files(tmp_path / "files", per_county=4, protected_every=4)
    one = ingest(IngestRequest.of(Workspace(tmp_path / "one"), "FL", reg + his))
    assert one.protected_excluded > 0 and one.vote_history_withheld > 0
    after = Workspace(tmp_path / "after")
    ingest(IngestRequest.of(after, "FL", reg))
    h = ingest(IngestRequest.of(after, "FL", his))  # history after its registrations
    before = Workspace(tmp_path / "before")
    ingest(IngestRequest.of(before, "FL", his))
    r = ingest(IngestRequest.of(before, "FL", reg))  # history before its registrations
    for ws, res in ((after, h), (before, r)):
        assert _counts(ws, "FL") == _counts(Workspace(tmp_path / "one"), "FL")
        assert res.vote_history_withheld == one.vote_history_withheld
    assert not list((tmp_path / "after").rglob("*protected*")) or all(
        "state_voter_id" not in pq.read_schema(p).names for p in (tmp_path / "after").rglob("protected.parquet")
    )


def test_explicit_scope_and_bad_scope(fl: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    renamed = tmp_path / "extract_a.txt"
    shutil.copy(fl["reg"][0], renamed)
    r = ingest(IngestRequest.of(ws, "FL", [renamed], delivery=DeliveryOptions(scope="county:ala")))
    assert [f.scope for f in r.files] == ["county:ALA"]
    # a per-county layout under a name that says nothing: the scope comes from the rows' one county
    other = tmp_path / "extract_b.txt"
    shutil.copy(fl["reg"][1], other)
    r2 = ingest(IngestRequest.of(ws, "FL", [other]))
    assert [f.scope for f in r2.files if f.part_snapshot == r2.snapshot_id] == [f"county:{FL_COUNTIES[1]}"]
    assert _counts(ws, "FL")[0] == r2.loaded == r.loaded + sum(f.loaded for f in r2.files if f.part_snapshot == r2.snapshot_id)
    with pytest.raises(UserError, match="unknown scope 'parish'"):
        normalise_scope("parish")


def test_county_part_cannot_replace_a_share_of_a_statewide_file(nc: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ingest(IngestRequest.of(ws, "NC", [nc["reg"], nc["his"]]))
    part = tmp_path / "ncvoter5.txt"  # NC's name for county 5's file
    part.write_bytes(b"\n".join(nc["reg"].read_bytes().split(b"\n")[:21]) + b"\n")
    with pytest.raises(UserError, match="whole-state file .* --replace-state"):
        ingest(IngestRequest.of(ws, "NC", [part]))


# ---------------------------------------------------------------------- guards
def test_header_only_file_is_refused(nc: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ingest(IngestRequest.of(ws, "NC", [nc["reg"], nc["his"]]))
    header_only = tmp_path / "ncvoter_Statewide.txt"
    header_only.write_bytes(nc["reg"].read_bytes().split(b"\n", 1)[0] + b"\n")
    with pytest.raises(UserError, match=r"holds no rows .* --allow-shrink"):
        ingest(IngestRequest.of(ws, "NC", [header_only]))
    assert ws.current()["NC"] == first.snapshot_id


def test_shrink_refused_then_allowed_with_the_flag(nc: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ingest(IngestRequest.of(ws, "NC", [nc["reg"], nc["his"]]))
    lines = nc["reg"].read_bytes().split(b"\n")
    small = tmp_path / "small" / nc["reg"].name
    small.parent.mkdir()
    small.write_bytes(b"\n".join(lines[:101]) + b"\n")  # header + 100 of 300
    with pytest.raises(UserError) as err:
        ingest(IngestRequest.of(ws, "NC", [small]))
    msg = str(err.value)
    assert f"from {first.loaded:,} to 100" in msg and "more than the 10% allowed" in msg and "--allow-shrink" in msg
    assert ws.current()["NC"] == first.snapshot_id
    r = ingest(IngestRequest.of(ws, "NC", [small], delivery=DeliveryOptions(allow_shrink=True)))
    assert r.status == "new" and r.loaded == 100
    assert r.vote_history_loaded == first.vote_history_loaded  # ncvhis carried over


def test_dropping_the_vote_history_is_refused(nc: dict, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    first = ingest(IngestRequest.of(ws, "NC", [nc["reg"], nc["his"]]))
    changed = tmp_path / "v2" / nc["reg"].name
    changed.parent.mkdir()
    changed.write_bytes(nc["reg"].read_bytes() + b"")
    # ncvoter alone replaces the registrations and keeps ncvhis: no history lost
    kept = ingest(IngestRequest.of(ws, "NC", [nc["reg"]], delivery=DeliveryOptions(scope="state")))
    assert kept.vote_history_loaded == first.vote_history_loaded
    # the same file as an explicit whole-state replacement would drop the history: refused
    with pytest.raises(UserError, match=rf"drop NC's vote history from {first.vote_history_loaded:,} to 0 rows"):
        ingest(IngestRequest.of(ws, "NC", [nc["reg"]], delivery=DeliveryOptions(replace_state=True)))
    r = ingest(IngestRequest.of(ws, "NC", [nc["reg"]], delivery=DeliveryOptions(replace_state=True, allow_shrink=True)))
    assert r.vote_history_loaded == 0


def _cli(*args: str, ws: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VOTEROLLS_WORKSPACE": str(ws)}
    return subprocess.run([str(VOTEROLLS), *args], env=env, capture_output=True, text=True, timeout=300)


def test_wrong_state_refused_through_the_installed_script(nc: dict, fl: dict, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    # a header-less FL extract named as WA's (once made WA an empty snapshot, exit 0)
    p = _cli("ingest", "WA", str(fl["reg"][0]), ws=ws)
    said = " ".join(p.stderr.split())
    assert p.returncode == 2 and "the layout is FL's (fl_extract), not WA's" in said, p.stderr
    assert "WARNING" not in p.stderr and "Traceback" not in p.stderr
    p = _cli("ingest", "FL", str(nc["reg"]), str(nc["his"]), "--workspace", str(ws), ws=ws)
    assert p.returncode == 2, p.stderr
    said = " ".join(p.stderr.split())
    assert "the layout is NC's (nc_ncvoter_2022), not FL's" in said and "pass --format nc_ncvoter_2022" in said
    assert "Traceback" not in p.stderr
    assert "FL" not in Workspace(ws).current()
    # --format forces it
    forced = _cli("ingest", "FL", str(nc["reg"]), str(nc["his"]), "--format", "nc_ncvoter_2022", "--json", ws=ws)
    assert forced.returncode == 0, forced.stderr
    assert "FL" in Workspace(ws).current()


def test_shrink_through_the_installed_script(nc: dict, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert _cli("ingest", "NC", str(nc["reg"]), str(nc["his"]), ws=ws).returncode == 0
    small = tmp_path / "s" / nc["reg"].name
    small.parent.mkdir()
    small.write_bytes(b"\n".join(nc["reg"].read_bytes().split(b"\n")[:51]) + b"\n")
    p = _cli("ingest", "NC", str(small), ws=ws)
    said = " ".join(p.stderr.split())
    assert p.returncode == 2 and "to 50" in said and "--allow-shrink" in said, p.stderr
    ok = _cli("ingest", "NC", str(small), "--allow-shrink", ws=ws)
    assert ok.returncode == 0, ok.stderr
    d = _cli("diff", "NC", ws=ws)
    assert d.returncode == 0 and "registrations" in d.stdout and "state" in d.stdout, d.stderr


# ---------------------------------------------------------------------- killed deliveries
_KILL_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from voterolls.ingest import pipeline, archives, parts
    from voterolls.store import Workspace

    ws_path, point, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    def die(*a, **kw):
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "carry_over":
        parts._merge = die
    elif point == "unpacked":
        real = archives._add
        def add_then_die(*a, **kw):
            real(*a, **kw)
            die()
        archives._add = add_then_die
    elif point == "renamed":
        real_rename = os.rename
        def rename_then_die(a, b):
            real_rename(a, b)
            die()
        os.rename = rename_then_die
    pipeline.ingest(pipeline.IngestRequest.of(Workspace(ws_path), "FL", [Path(f) for f in files]))
    """
)


@pytest.mark.parametrize("point", ["carry_over", "unpacked", "renamed"])
def test_killed_multipart_or_compressed_ingest_keeps_the_previous_view(fl: dict, tmp_path: Path, point: str) -> None:
    ws = Workspace(tmp_path / "ws")
    reg, his = fl["reg"], fl["his"]
    base = ingest(IngestRequest.of(ws, "FL", reg[:40] + his[:40]))
    before = (_counts(ws, "FL"), ws.current()["FL"])
    if point == "unpacked":  # a zipped delivery of the other 27 counties
        z = tmp_path / "rest.zip"
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in reg[40:] + his[40:]:
                zf.write(f, f.name)
        rest = [z]
    else:
        rest = reg[40:] + his[40:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_CHILD, str(ws.path), point, *map(str, rest)], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # no raw copy of an input on disk: the unpacked members had no name
    assert not [p for p in ws.path.rglob("*") if p.is_file() and p.name.startswith("voterolls_")]
    ws2 = Workspace(ws.path)
    assert (_counts(ws2, "FL"), ws2.current()["FL"]) == before
    assert [s["snapshot_id"] for s in ws2.snapshots("FL")] == [base.snapshot_id]
    r = ingest(IngestRequest.of(ws2, "FL", rest))
    assert r.status == "new" and _counts(ws2, "FL") == _counts(fl["ws_one"], "FL")


def test_scopes_from_the_names_states_use() -> None:
    from voterolls.formats import get_format
    from voterolls.ingest.delivery import scope_from_name

    def scope(fmt: str, name: str, role: str = "registrations") -> str | None:
        f = get_format(fmt)
        return scope_from_name(name, role, f.state, f.layouts())

    assert scope("fl_extract", "ALA_20250106.txt") == "county:ALA"
    assert scope("fl_extract", "ALA_H_20250106.txt", "history") == "county:ALA"
    assert scope("oh_swvf", "SWVF_1_22.txt") == "range:1-22"
    assert scope("pa_fve", "ADAMS FVE 20240101.txt") == "county:ADAMS"
    assert scope("nc_ncvoter_2022", "ncvoter_Statewide.txt") == "state"
    assert scope("nc_ncvoter_2022", "ncvoter92.txt") == "county:92"
    assert scope("nc_ncvoter_2022", "ncvhis92.txt", "history") == "county:92"
    assert scope("nc_ncvoter_2022", "my_copy.txt") is None


# ---------------------------------------------------------------------- a county-range state, as a user runs it
def _json(p: subprocess.CompletedProcess) -> dict:
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _per_file_rows(ws: Path, state: str) -> dict[str, tuple[int, int]]:
    """sha256 of each registration file -> (its registrations, its vote-history rows) in the current view."""
    w = Workspace(ws)
    snap = w.snapshot_dir(state, w.current()[state])
    regs = pq.read_table(snap / "registrations.parquet", columns=["source_file"]).column("source_file").to_pylist()
    vh = pq.read_table(snap / "vote_history.parquet", columns=["source_file"]).column("source_file").to_pylist()
    return {f: (regs.count(f), vh.count(f)) for f in set(regs) | set(vh)}


def test_ohio_four_gzip_range_files_through_the_installed_script(tmp_path: Path) -> None:
    """OH's four county-range SWVF files, gzipped as the SOS ships them: one range re-delivered,
    an empty range and a halved range refused with the numbers, the per-scope diff checked
    against the stored rows."""
    regs, vh = national_sample("OH", 400, seed=3)
    plain = write_native("OH", regs, vh, tmp_path / "plain")
    assert sorted(f.name for f in plain) == ["SWVF_1_22.txt", "SWVF_23_44.txt", "SWVF_45_66.txt", "SWVF_67_88.txt"]
    gz = []
    for f in plain:
        g = tmp_path / "gz" / (f.name + ".gz")
        g.parent.mkdir(exist_ok=True)
        g.write_bytes(gzip.compress(f.read_bytes()))
        gz.append(g)
    ws = tmp_path / "ws"
    first = _json(_cli("ingest", "OH", *map(str, gz), "--json", ws=ws))
    assert (first["loaded"], first["vote_history_loaded"]) == (regs.num_rows, vh.num_rows)
    assert {f["scope"] for f in first["files"]} == {"range:1-22", "range:23-44", "range:45-66", "range:67-88"}
    # an empty range: refused, naming the file, the scope and what it held
    lines = (tmp_path / "plain" / "SWVF_23_44.txt").read_bytes().split(b"\n")
    held = sum(1 for x in lines[1:] if x)
    empty = tmp_path / "empty" / "SWVF_23_44.txt"
    empty.parent.mkdir()
    empty.write_bytes(lines[0] + b"\n")
    p = _cli("ingest", "OH", str(empty), ws=ws)
    said = " ".join(p.stderr.split())
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "SWVF_23_44.txt: the file holds no rows" in said and f"range:23-44 (from {held:,} rows to 0)" in said
    # half the range: refused with the numbers, then accepted with --allow-shrink
    half = tmp_path / "half" / "SWVF_23_44.txt"
    half.parent.mkdir()
    half.write_bytes(b"\n".join(lines[: 1 + held // 2]) + b"\n")
    p = _cli("ingest", "OH", str(half), ws=ws)
    said = " ".join(p.stderr.split())
    assert p.returncode == 2 and f"for range:23-44 from {held:,} to {held // 2:,}" in said, p.stderr
    assert Workspace(ws).current()["OH"] == first["snapshot_id"]
    second = _json(_cli("ingest", "OH", str(half), "--allow-shrink", "--json", ws=ws))
    assert second["loaded"] == regs.num_rows - held + held // 2
    # the per-scope diff, every figure against the rows stored
    d = _json(_cli("diff", "OH", "--json", ws=ws))
    now = _per_file_rows(ws, "OH")
    by_scope = {s["scope"]: s for s in d["scopes"]}
    assert set(by_scope) == {"range:1-22", "range:23-44", "range:45-66", "range:67-88"}
    for f in first["files"]:
        s = by_scope[f["scope"]]
        assert (s["old_rows"], s["vote_history_old"]) == (f["loaded"], f["vote_history_loaded"])
        if f["scope"] == "range:23-44":
            new_sha = next(g["sha256"] for g in second["files"] if g["file_name"] == "SWVF_23_44.txt")
            assert s["replaced"] is True and (s["new_rows"], s["vote_history_new"]) == now[new_sha]
            assert (s["removed"], s["added"], s["changed"]) == (held - held // 2, 0, 0)
        else:
            assert s["replaced"] is False and (s["new_rows"], s["vote_history_new"]) == now[f["sha256"]]
            assert (s["removed"], s["added"], s["changed"]) == (0, 0, 0) and now[f["sha256"]][0] == f["loaded"]
    assert (d["old_rows"], d["new_rows"], d["removed"]) == (regs.num_rows, second["loaded"], held - held // 2)
    # the table a user reads prints the same figures for the replaced range
    t = _cli("diff", "OH", ws=ws)
    row = next(x for x in t.stdout.splitlines() if "range:23-44" in x)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    s = by_scope["range:23-44"]
    assert cells == ["range:23-44", "yes", f"{held:,}", f"{s['new_rows']:,}", "0", f"{held - held // 2:,}", "0",
                     f"{s['vote_history_old']:,}", f"{s['vote_history_new']:,}"]
