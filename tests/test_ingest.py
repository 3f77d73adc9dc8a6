"""Ingest end to end with the real readers and policy: reconciliation, quarantine,
protected voters, policy before storage (byte scan), sealed sidecar, new snapshot + diff."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from voterolls.errors import UserError
from voterolls.formats.sample import national_sample
from voterolls.ingest.diff import diff_snapshots
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.store import Workspace
from voterolls.synth.native import write_native


def _native(tmp: Path, state: str, n: int = 120, **kw) -> list[Path]:
    regs, vh = national_sample(state, n, **kw)
    return write_native(state, regs, vh, tmp / "in" / state)


def _reg_file(paths: list[Path]) -> Path:
    return next(p for p in paths if "vhis" not in p.name and "_H_" not in p.name)


def test_nc_reconciles_and_quarantines_without_content(tmp_path: Path) -> None:
    paths = _native(tmp_path, "NC")
    reg = _reg_file(paths)
    secret = "ZZQUARANTINEDNAME"
    with reg.open("a", encoding="utf-8") as fh:  # a line with too few fields
        fh.write(f'"1"\t"WAKE"\t"{secret}"\n')
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", paths))
    assert r.status == "new"
    f = next(x for x in r.files if x.file_name == reg.name)
    assert f.rows_read == 121
    assert f.quarantined == 1
    assert f.rows_read == f.loaded + f.quarantined + f.protected_excluded
    ws = Workspace(tmp_path / "ws")
    snap = ws.snapshot_dir("NC", r.snapshot_id)
    q = pq.read_table(snap / "quarantine.parquet").to_pylist()
    assert [(x["file"], x["line"]) for x in q] == [(reg.name, 122)]
    assert q[0]["reason"] and secret not in json.dumps(q)
    assert pq.ParquetFile(snap / "registrations.parquet").metadata.num_rows == f.loaded
    # the catalog and manifest agree with the result
    man = json.loads((snap / "manifest.json").read_text())
    assert man["totals"]["loaded"] == r.loaded == f.loaded
    fm = {x["file_name"]: x for x in ws.file_manifests("NC", r.snapshot_id)}
    assert fm[reg.name]["quarantined"] == 1
    hist = next(x for x in r.files if x.role == "history")
    assert hist.rows_read == hist.vote_history_loaded + hist.vote_history_withheld + hist.quarantined
    con = ws.connect()
    assert con.sql("SELECT count(*) FROM registrations").fetchall()[0][0] == f.loaded
    assert con.sql("SELECT count(*) FROM vote_history").fetchall()[0][0] == r.vote_history_loaded > 0
    # normalised on the way in: NC does not publish full DOB; names folded
    row = con.sql("SELECT count(dob), count(birth_year), count(*) FILTER (WHERE last_name LIKE '%Ü%') FROM registrations").fetchall()[0]
    assert row[0] == 0 and row[1] == f.loaded and row[2] == 0


def test_idempotent_same_files_change_nothing(tmp_path: Path) -> None:
    paths = _native(tmp_path, "NC", 60)
    ws = Workspace(tmp_path / "ws")
    first = ingest(IngestRequest.of(ws, "NC", paths))
    before = sorted(p.relative_to(ws.path) for p in ws.path.rglob("*") if "tmp" not in p.parts)
    again = ingest(IngestRequest.of(ws, "NC", list(reversed(paths))))
    assert again.status == "unchanged"
    assert again.snapshot_id == first.snapshot_id
    assert again.loaded == first.loaded
    assert len(ws.snapshots("NC")) == 1
    after = sorted(p.relative_to(ws.path) for p in ws.path.rglob("*") if "tmp" not in p.parts)
    assert before == after


def test_new_file_new_snapshot_and_diff(tmp_path: Path) -> None:
    regs, vh = national_sample("NC", 80)
    ws = Workspace(tmp_path / "ws")
    p1 = write_native("NC", regs, vh, tmp_path / "v1")
    s1 = ingest(IngestRequest.of(ws, "NC", p1))
    # next delivery: voter 0 removed, voter 1 moved (new address + ZIP), two new voters
    ids = regs.column("state_voter_id").to_pylist()
    keep = pa.array([i != ids[0] for i in ids])
    regs2 = regs.filter(keep)
    addr = regs2.column("residence_address").to_pylist()
    zips = regs2.column("residence_zip5").to_pylist()
    addr[0], zips[0] = "999 NEW RD", "27999"
    regs2 = regs2.set_column(regs2.schema.get_field_index("residence_address"), "residence_address", pa.array(addr))
    regs2 = regs2.set_column(regs2.schema.get_field_index("residence_zip5"), "residence_zip5", pa.array(zips))
    extra, _ = national_sample("NC", 2, seed=99)
    extra = extra.set_column(extra.schema.get_field_index("state_voter_id"), "state_voter_id", pa.array(["NCNEW1", "NCNEW2"]))
    regs2 = pa.concat_tables([regs2, extra.cast(regs2.schema)])
    p2 = write_native("NC", regs2, vh, tmp_path / "v2")
    s2 = ingest(IngestRequest.of(ws, "NC", p2))
    assert s2.status == "new" and s2.snapshot_id != s1.snapshot_id
    assert ws.current()["NC"] == s2.snapshot_id
    d = diff_snapshots(ws, "NC")
    assert (d.old_snapshot, d.new_snapshot) == (s1.snapshot_id, s2.snapshot_id)
    assert (d.added, d.removed, d.changed) == (2, 1, 1)
    assert d.changed_fields == {"residence_address": 1, "residence_zip5": 1}
    assert d.unchanged == 80 - 2
    out = CliRunner().invoke(_app(), ["diff", "NC", "--workspace", str(ws.path)])
    assert out.exit_code == 0, out.output
    assert "added" in out.output and "999 NEW RD" not in out.output
    # a damaged snapshot is refused by the one snapshot check, never compared as rows removed
    old_regs = ws.snapshot_dir("NC", s1.snapshot_id) / "registrations.parquet"
    old_regs.write_bytes(old_regs.read_bytes()[:100])
    with pytest.raises(UserError, match=f"snapshot {s1.snapshot_id} of NC cannot be compared: registrations.parquet unreadable"):
        diff_snapshots(ws, "NC")
    # as a user runs it: the installed script, one sentence, exit code 2
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("voterolls")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([str(exe), "diff", "NC", "--workspace", str(ws.path)], env=env, capture_output=True, text=True, timeout=300)
    said = " ".join(p.stderr.split())
    assert p.returncode == 2 and "cannot be compared: registrations.parquet unreadable" in said, p.stderr
    assert "Traceback" not in p.stderr


def _app():
    from voterolls.cli import app

    return app


def _write_generic_de(tmp: Path, n: int = 40) -> tuple[Path, list[str], list[str], list[str]]:
    """A generic-layout file for Delaware carrying full DOB, phone and e-mail (which DE does not publish)."""
    dobs = [dt.date(1950, 1, 1) + dt.timedelta(days=137 * i + 11) for i in range(n)]
    phones = [f"30255{5000 + i:05d}"[-10:] for i in range(n)]
    emails = [f"person{i}.secret@example.net" for i in range(n)]
    t = pa.table(
        {
            "state_voter_id": [f"DE{i:06d}" for i in range(n)],
            "county": ["NEW CASTLE"] * n,
            "last_name": ["Testperson"] * n,
            "first_name": ["Alex"] * n,
            "middle_name": [""] * n,
            "name_suffix": [""] * n,
            "dob": [d.isoformat() for d in dobs],
            "birth_year": [str(d.year) for d in dobs],
            "gender": ["F"] * n,
            "party": ["DEM"] * n,
            "status": ["active"] * n,
            "status_reason": [""] * n,
            "race": ["unknown"] * n,
            "uocava": ["none"] * n,
            "registration_date": ["2010-01-01"] * n,
            "residence_address": ["1 Main Street"] * n,
            "residence_city": ["Dover"] * n,
            "residence_zip5": ["19901"] * n,
            "phone": phones,
            "email": emails,
        }
    )
    path = tmp / "in" / "DE" / "DE_voters.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(t, path, pacsv.WriteOptions(quoting_style="needed"))
    needles = [d.isoformat() for d in dobs] + [d.strftime("%Y%m%d") for d in dobs] + [d.strftime("%m/%d/%Y") for d in dobs]
    return path, needles, phones, emails


def test_policy_before_storage_no_forbidden_bytes_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from voterolls.policy import get_policy

    pol = get_policy("DE")
    assert pol.dob_disclosure == "year" and not pol.phone_public and not pol.email_public
    path, dob_strings, phones, emails = _write_generic_de(tmp_path)
    ws_path = tmp_path / "ws"
    caplog.set_level("DEBUG", logger="voterolls")
    r = ingest(IngestRequest.of(ws_path, "DE", [path], format="generic"))
    assert r.loaded == 40 and r.policy["values_removed"]["phone"] == 40 and r.policy["values_removed"]["email"] == 40
    assert r.policy["values_removed"]["dob"] == 40  # generalised to birth year
    ws = Workspace(ws_path)
    con = ws.connect()
    assert con.sql("SELECT count(dob), count(phone), count(email), count(birth_year) FROM registrations").fetchall()[0] == (0, 0, 0, 40)
    # CLI output too
    out = CliRunner().invoke(_app(), ["uniformity", "DE", "--workspace", str(ws_path)])
    assert out.exit_code == 0, out.output
    needles = [s.encode() for s in dob_strings + phones + emails]
    needles += [s.encode("utf-16-le") for s in dob_strings[:5] + emails[:5]]
    scanned = 0
    for f in ws_path.rglob("*"):
        if not f.is_file():
            continue
        data = f.read_bytes()
        scanned += 1
        for nd in needles:
            assert nd not in data, f"{nd!r} found in {f.relative_to(ws_path)}"
        if f.suffix == ".parquet":  # compressed pages: scan the decoded values as well
            text = json.dumps(pq.read_table(f).to_pylist(), default=str)
            for s in dob_strings[:40] + phones + emails:
                assert s not in text, f"{s} decoded from {f.relative_to(ws_path)}"
    assert scanned >= 6
    logs = caplog.text + out.output
    for s in dob_strings + phones + emails:
        assert s not in logs


def test_protected_voters_excluded_with_their_history(tmp_path: Path) -> None:
    regs, vh = national_sample("FL", 100, protected_every=10)
    prot_ids = set(regs.filter(regs.column("protected")).column("state_voter_id").to_pylist())
    assert prot_ids
    paths = write_native("FL", regs, vh, tmp_path / "in")
    r = ingest(IngestRequest.of(tmp_path / "ws", "FL", paths))
    assert r.protected_excluded == len(prot_ids)
    assert r.rows_read == r.loaded + r.quarantined + r.protected_excluded
    con = Workspace(tmp_path / "ws").connect()
    ids = {x[0] for x in con.sql("SELECT state_voter_id FROM registrations").fetchall()}
    vids = {x[0] for x in con.sql("SELECT DISTINCT state_voter_id FROM vote_history").fetchall()}
    assert not ids & prot_ids and not vids & prot_ids
    assert r.vote_history_withheld > 0


def test_sealed_sidecar_joined_and_checked(tmp_path: Path) -> None:
    paths = _native(tmp_path, "NC", 30)
    ids = [f"NC{100000 + k:08d}" for k in range(30)]
    sealed = tmp_path / "NC_sealed.csv"
    lines = ["state_voter_id,dob_token,ssn4_token,dl_token"]
    lines += [f"{i},{'a' * 64},{'b' * 64}," for i in ids[:20]] + [f"NCUNKNOWN,{'c' * 64},{'d' * 64},{'e' * 64}"]
    sealed.write_text("\n".join(lines) + "\n")
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", paths, sealed=sealed))
    assert r.sealed_matched == 20
    con = Workspace(tmp_path / "ws").connect()
    assert con.sql("SELECT count(ssn4_token), count(dob_token), count(dl_token), count(*) FROM registrations").fetchall()[0] == (20, 20, 0, r.loaded)
    dup = tmp_path / "dup.csv"
    dup.write_text("state_voter_id,dob_token,ssn4_token,dl_token\nA,1,2,3\nA,4,5,6\n")
    with pytest.raises(UserError, match="duplicate"):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", paths, sealed=dup))
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ssn\n1,2\n")
    with pytest.raises(UserError, match="header"):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", paths, sealed=bad))
    assert len(Workspace(tmp_path / "ws").snapshots("NC")) == 1


def test_user_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown state"):
        ingest(IngestRequest.of(tmp_path / "ws", "ZZ", [tmp_path / "x"]))
    with pytest.raises(UserError, match="not found") as e:
        ingest(IngestRequest.of(tmp_path / "ws", "NC", [tmp_path / "missing.txt"]))
    assert "missing.txt" in str(e.value)
    res = CliRunner().invoke(_app(), ["ingest", "NC", str(tmp_path / "missing.txt"), "--workspace", str(tmp_path / "ws")])
    assert res.exit_code != 0


def test_uniformity_report_per_field(tmp_path: Path) -> None:
    paths = _native(tmp_path, "OH", 60)
    r = ingest(IngestRequest.of(tmp_path / "ws", "OH", paths))
    ws = Workspace(tmp_path / "ws")
    u = {x["field"]: x for x in pq.read_table(ws.snapshot_dir("OH", r.snapshot_id) / "uniformity.parquet").to_pylist() if x["dataset"] == "registrations"}
    assert u["dob"]["present"] and u["dob"]["policy"] == "allowed" and u["dob"]["non_null_share"] == 1.0
    assert u["phone"]["present"] is False
    assert u["ssn4_token"]["present"] is False
    assert u["party"]["policy"] == "withheld"  # Ohio: no party registration on file
    assert 0.0 <= u["residence_zip5"]["plausible_share"] <= 1.0
    res = CliRunner().invoke(_app(), ["uniformity", "OH", "--workspace", str(ws.path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert {x["field"] for x in rows} >= {"dob", "residence_zip5", "party", "election_date"}


def test_override_needs_basis_and_is_recorded(tmp_path: Path) -> None:
    path, _dobs, phones, _emails = _write_generic_de(tmp_path, 10)
    ws = tmp_path / "ws"
    res = CliRunner().invoke(_app(), ["ingest", "DE", str(path), "--format", "generic", "--workspace", str(ws), "--allow", "phone"])
    assert res.exit_code != 0 and isinstance(res.exception, UserError) and "override-policy" in str(res.exception)
    res = CliRunner().invoke(
        _app(),
        ["ingest", "DE", str(path), "--format", "generic", "--workspace", str(ws), "--json",
         "--override-policy", "court order 2026-CV-0042 (test)", "--allow", "phone"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{") :])
    assert out["policy"]["override_fields"] == ["phone"]
    con = Workspace(ws).connect()
    assert con.sql("SELECT count(phone), count(email), count(dob) FROM registrations").fetchall()[0] == (10, 0, 0)
    snap = con.sql("SELECT override_fields, override_legal_basis FROM snapshots").fetchall()[0]
    assert snap == (["phone"], "court order 2026-CV-0042 (test)")


def _numbered_nc(tmp: Path, name: str, rows: int, tag: str) -> Path:
    """An NC ncvoter file whose ncid encodes its physical line: ``<tag><line>``."""
    regs, _ = national_sample("NC", 500, seed=5)
    src = _reg_file(write_native("NC", regs, None, tmp / f"src_{name}"))
    header, _, body = src.read_bytes().partition(b"\n")
    cols = header.split(b"\t")
    at = cols.index(b'"ncid"')
    lines = [ln for ln in body.split(b"\n") if ln]
    # blank or dirty names would change nothing here; ids must be non-blank and unique
    out = [header]
    for k in range(rows):
        f = lines[k % len(lines)].split(b"\t")
        f[at] = b'"%s%d"' % (tag.encode(), k + 2)  # line 1 is the header
        out.append(b"\t".join(f))
    p = tmp / name
    p.write_bytes(b"\n".join(out) + b"\n")
    return p


def test_parallel_read_keeps_file_order_and_line_numbers(tmp_path: Path) -> None:
    """A clean file is read by DuckDB's parallel CSV reader without the numbering window;
    source_line is then the record's stream position: it must equal the physical line.

    The first file (~14 MB) spans several of DuckDB's parallel CSV scan ranges, and a
    second file checks the per-file offsets; every id encodes its own line.
    """
    import duckdb

    from voterolls.formats import scan

    big = _numbered_nc(tmp_path, "ncvoter_a.txt", 50_000, "A")
    small = _numbered_nc(tmp_path, "ncvoter_b.txt", 3_000, "B")
    con = duckdb.connect(config={"threads": 2})
    s = scan(con, [big, small], state="NC")
    assert any(o is not None for _, o, _ in s._reg_parts), "clean files should take the ordinal path"
    got = pa.Table.from_batches(list(s.registration_batches(8_192)))
    exact = s.registrations.to_arrow_table()
    s.finish()
    assert got.num_rows == exact.num_rows == 53_000
    for col in ("state_voter_id", "source_file", "source_line", "last_name", "party", "birth_year"):
        assert got.column(col).to_pylist() == exact.column(col).to_pylist(), col
    ids = got.column("state_voter_id").to_pylist()
    lines = got.column("source_line").to_pylist()
    assert all(i == f"{i[0]}{n}" for i, n in zip(ids, lines, strict=True))
    # and end to end: what ingest stores
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [big, small]))
    assert r.loaded == 53_000 and r.quarantined == 0
    stored = pq.read_table(next((tmp_path / "ws").glob("states/NC/*/registrations.parquet")), columns=["state_voter_id", "source_line"])
    assert all(i == f"{i[0]}{n}" for i, n in zip(stored.column(0).to_pylist(), stored.column(1).to_pylist(), strict=True))


@pytest.mark.parametrize("state", ["NC", "FL"])
def test_clean_file_stores_the_same_rows_on_the_parallel_and_the_line_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    """On a clean file the policy / normalisation chain runs inside DuckDB's parallel read and
    nicknames are mapped per Arrow batch; the line engine runs the same chain on a second
    cursor with the SQL nickname join.  Both must store identical registrations."""
    from voterolls.formats import fast

    regs, vh = national_sample(state, 3_000)
    first = regs.column("first_name").to_pylist()
    nicknames = ["Bob", "bill", "PEGGY", "Jack", "Liz"]  # mapped per batch vs by the SQL join
    first = [nicknames[i % 5] if i % 7 == 0 else f for i, f in enumerate(first)]
    regs = regs.set_column(regs.schema.get_field_index("first_name"), "first_name", pa.array(first, pa.string()))
    paths = write_native(state, regs, vh, tmp_path / "in")
    a = ingest(IngestRequest.of(tmp_path / "wa", state, paths))
    monkeypatch.setattr(fast, "eligible", lambda plan: False)  # every file through the line engine
    b = ingest(IngestRequest.of(tmp_path / "wb", state, paths))
    assert a.loaded == b.loaded > 2_000 and a.quarantined == b.quarantined

    def stored(ws: Path) -> pa.Table:
        t = pq.read_table(next(ws.glob(f"states/{state}/*/registrations.parquet")))
        return t.sort_by([("source_file", "ascending"), ("source_line", "ascending")])

    ta, tb = stored(tmp_path / "wa"), stored(tmp_path / "wb")
    assert ta.schema == tb.schema
    for name in ta.column_names:
        assert ta.column(name).to_pylist() == tb.column(name).to_pylist(), name
    nick = pc.sum(pc.not_equal(ta.column("first_name"), ta.column("first_name_canonical"))).as_py()
    assert nick, "the sample should carry nicknames"


def test_line_numberer_refuses_out_of_order_streams() -> None:
    from voterolls.formats.fast import LineNumberer

    num = LineNumberer([3, 2], header=1)
    assert num(pa.array([0, 0, 0, 1], pa.int64())).to_pylist() == [2, 3, 4, 2]
    with pytest.raises(RuntimeError):
        num(pa.array([0], pa.int64()))  # back to the first file
    short = LineNumberer([2], header=0)
    short(pa.array([0], pa.int64()))
    with pytest.raises(RuntimeError):
        short.close()  # fewer records than verified
    over = LineNumberer([1], header=0)
    with pytest.raises(RuntimeError):
        over(pa.array([0, 0], pa.int64()))


def test_byte_pass_counts_every_line_ending(tmp_path: Path) -> None:
    """sniff.facts (the byte pass ingest hashes and counts with) against a plain reference,
    for LF, CRLF and bare CR, also when a CRLF pair straddles a chunk boundary."""
    import hashlib
    import random

    from voterolls.formats import sniff

    rng = random.Random(7)
    p = tmp_path / "f.txt"
    old_chunk = sniff.CHUNK
    try:
        for _ in range(150):
            data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(0, 30)))
            p.write_bytes(data)
            lf, crlf = data.count(b"\n"), data.count(b"\r\n")
            bare_cr = data.count(b"\r") - crlf
            lines = lf + bare_cr + (1 if data and data[-1:] not in (b"\n", b"\r") else 0)
            for chunk in (1, 2, 5, 1 << 22):
                sniff.CHUNK = chunk
                f = sniff.facts(p)
                assert (f.lines, f.lf, f.crlf, f.bare_cr, f.size) == (lines, lf, crlf, bare_cr, len(data)), (data, chunk)
                assert f.sha256 == hashlib.sha256(data).hexdigest()
    finally:
        sniff.CHUNK = old_chunk


def test_a_file_rewritten_during_ingest_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest hashes each file once, before reading it; a rewrite with the same line count
    must still be noticed (size / mtime), and nothing is committed."""
    import importlib
    import os

    scan_mod = importlib.import_module("voterolls.formats.scan")
    paths = _native(tmp_path, "NC", 200)
    reg = _reg_file(paths)
    real = scan_mod.fast.verify

    def rewrite_then_verify(con, plans, state):  # noqa: ANN001, ANN202
        out = real(con, plans, state)
        data = reg.read_bytes()
        reg.write_bytes(data.replace(b'"A"', b'"I"', 1))  # same lines, different bytes
        st = reg.stat()
        os.utime(reg, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return out

    monkeypatch.setattr(scan_mod.fast, "verify", rewrite_then_verify)
    with pytest.raises(UserError, match="changed while it was being ingested"):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", paths))
    assert Workspace(tmp_path / "ws").current_snapshot("NC") is None


def test_overlapped_writer_raises_either_sides_error_without_hanging() -> None:
    """Counting / Parquet encoding runs in a worker thread beside DuckDB's next batch; the
    first error on either side must reach the caller and stop the other side."""
    import threading

    from voterolls.ingest.writer import overlapped

    batch = pa.record_batch({"x": pa.array([1, 2, 3])})
    seen: list[int] = []

    def consume(b: pa.RecordBatch) -> None:
        seen.append(b.num_rows)
        if len(seen) == 3:
            raise ValueError("disk full")

    pulled = 0

    def endless():  # noqa: ANN202 - a producer that would never stop by itself
        nonlocal pulled
        while True:
            pulled += 1
            yield batch

    with pytest.raises(ValueError, match="disk full"):
        overlapped(endless(), consume)
    assert len(seen) == 3 and pulled < 10  # the producer stopped soon after

    def failing():  # noqa: ANN202
        yield batch
        yield batch
        raise RuntimeError("reader failed")

    got: list[int] = []
    with pytest.raises(RuntimeError, match="reader failed"):
        overlapped(failing(), lambda b: got.append(b.num_rows))
    assert not [t for t in threading.enumerate() if t.name == "voterolls-ingest-writer"]

    done: list[int] = []
    overlapped(iter([batch] * 5), lambda b: done.append(b.num_rows))
    assert done == [3] * 5
