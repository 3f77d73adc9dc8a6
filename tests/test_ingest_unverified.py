"""A clean file is read once: its shape is proved by the load itself, not by a pass of its own.

Ingest reads a clean group of registration files before verifying them
(``fast.unverified``); the load proves every line is one record.  When the
load refutes that, ingest discards what it wrote and reads the files again
verified first.  Either way the stored snapshot must be exactly what the
verified read stores: the same rows, line numbers, quarantine and counts.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voterolls.formats import fast
from voterolls.formats.sample import national_sample
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.synth.native import write_native

NCID = 3  # 0-based field of the voter id in NC's ncvoter layout
STREET = 12  # res_street_address
LAST = -1  # the last field: a district the national schema does not read


def _nc_lines(tmp: Path) -> tuple[list[bytes], str]:
    regs, _ = national_sample("NC", 300, seed=5)
    reg = next(p for p in write_native("NC", regs, None, tmp / "in") if p.name.startswith("ncvoter"))
    lines = reg.read_bytes().split(b"\n")
    assert lines[-1] == b""
    return lines[:-1], reg.name


def _set_field(line: bytes, i: int, value: bytes) -> bytes:
    fields = line.split(b"\t")
    fields[i] = value
    return b"\t".join(fields)


def _damage(kind: str, body: list[bytes]) -> list[bytes]:
    """One kind of damage at line 40 of the file (a data line)."""
    k = 39
    if kind == "clean":
        pass
    elif kind == "short_line":
        body[k] = b'"short"\t"line"'
    elif kind == "field_too_many":
        body[k] = body[k] + b'\t"extra"'
    elif kind == "blank_voter_id":
        body[k] = _set_field(body[k], NCID, b'""')
    elif kind == "record_over_two_lines":
        body[k] = _set_field(body[k], STREET, b'"12 OAK\nST"')
    elif kind == "blank_line":
        body.insert(k, b"")
    elif kind == "invalid_utf8_in_an_unread_field":
        body[k] = _set_field(body[k], LAST, b'"X\xffY"')
    elif kind == "reserved_control_byte":
        body[k] = _set_field(body[k], LAST, b'"X\x1fY"')
    else:
        raise AssertionError(kind)
    return body


def _stored(ws: Path, name: str) -> pa.Table:
    t = pq.read_table(next(ws.glob(f"states/NC/*/{name}.parquet")))
    keys = ("file", "line") if name == "quarantine" else ("source_file", "source_line")
    return t.sort_by([(c, "ascending") for c in keys])


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    real = getattr(fast, name)
    calls: list[int] = []

    def wrapper(*a: object, **kw: object) -> object:
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(fast, name, wrapper)
    return calls


#: damage -> (read before verification?, refuted by the read?)
CASES = {
    "clean": (True, False),
    "short_line": (True, True),
    "field_too_many": (True, True),
    "blank_voter_id": (True, True),
    "record_over_two_lines": (True, True),
    "blank_line": (True, True),
    # what only a decoding pass over every byte sees: such files are verified first
    "invalid_utf8_in_an_unread_field": (False, False),
    "reserved_control_byte": (False, False),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_a_read_before_verification_stores_what_the_verified_read_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    body, name = _nc_lines(tmp_path)
    src = tmp_path / name
    src.write_bytes(b"\n".join(_damage(kind, body)) + b"\n")

    unverified = _spy(monkeypatch, "unverified")
    verified = _spy(monkeypatch, "verify")
    a = ingest(IngestRequest.of(tmp_path / "first", "NC", [src]))
    read_first, refuted = CASES[kind]
    assert bool(unverified) == read_first
    assert bool(verified) == (refuted or not read_first), "a clean file needs no verification pass"

    monkeypatch.setattr(fast, "trusted", lambda plans: False)  # the verified read, as before
    b = ingest(IngestRequest.of(tmp_path / "verified", "NC", [src]))

    assert (a.rows_read, a.loaded, a.quarantined) == (b.rows_read, b.loaded, b.quarantined)
    if kind == "clean":
        assert a.quarantined == 0
    elif refuted:
        assert a.quarantined >= 1, "the damaged line is quarantined"
    for table in ("registrations", "quarantine"):
        ta, tb = _stored(tmp_path / "first", table), _stored(tmp_path / "verified", table)
        assert ta.num_rows == tb.num_rows, table
        for col in ta.column_names:
            if col != "snapshot_id":
                assert ta.column(col).to_pylist() == tb.column(col).to_pylist(), (table, col)


def test_the_refused_read_leaves_no_rows_of_its_own(tmp_path: Path) -> None:
    """A refuted read's partial output is discarded: loaded + quarantined = lines read, once."""
    body, name = _nc_lines(tmp_path)
    src = tmp_path / name
    src.write_bytes(b"\n".join(_damage("field_too_many", body)) + b"\n")
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [src]))
    stored = _stored(tmp_path / "ws", "registrations")
    assert r.rows_read == len(body) - 1  # the header is not a registration
    assert stored.num_rows == r.loaded == r.rows_read - 1 and r.quarantined == 1
    assert len(set(stored.column("source_line").to_pylist())) == stored.num_rows


@pytest.mark.parametrize("chunk", [3, 4, 5, 7, 1 << 22])
def test_the_byte_pass_checks_utf8_across_its_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Multi-byte characters cut by a chunk boundary are whole; a bad or truncated one is not."""
    from voterolls.formats import sniff

    monkeypatch.setattr(sniff, "CHUNK", chunk)
    text = "JOSÉ\tÅSA\t€\t𝄞\tZOË\n".encode()
    cases = {
        text * 3: (True, False),
        text + b"X\xffY\n": (False, False),
        text + "É".encode()[:1]: (False, False),  # the file ends inside a character
        text + b"\x1d\n": (True, True),
    }
    for data, (utf8, controls) in cases.items():
        p = tmp_path / "f.txt"
        p.write_bytes(data)
        facts = sniff.facts(p)
        assert (facts.utf8, facts.reserved_controls) == (utf8, controls), (chunk, data)


def test_the_uniformity_counts_summed_while_writing_equal_a_query_of_the_written_file(tmp_path: Path) -> None:
    """Every registration figure of the uniformity report, tallied per written batch, equals
    the same aggregate over the stored snapshot (quarantined and protected rows excluded)."""
    from voterolls.ingest import uniformity
    from voterolls.store import Workspace

    body, name = _nc_lines(tmp_path)
    body = _damage("blank_voter_id", body)
    # three party codes NC's layout does not map: the unmapped and plausible tests must count them
    odd = [i for i, line in enumerate(body) if b'\t"LIB"\t' in line][:3]
    for i in odd:
        body[i] = body[i].replace(b'\t"LIB"\t', b'\t"ZZZ"\t')
    src = tmp_path / name
    src.write_bytes(b"\n".join(body) + b"\n")
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [src]))
    assert r.quarantined == 1 and len(odd) == 3
    snap = Workspace(tmp_path / "ws").snapshot_dir("NC", r.snapshot_id)
    stored = pq.read_table(snap / "uniformity.parquet")
    from voterolls.formats.detect import resolve_format

    again = uniformity.compute(
        snap / "registrations.parquet", snap / "vote_history.parquet", state="NC", snapshot_id=r.snapshot_id,
        spec=resolve_format(r.format, []), policy=None,
    )  # fmt: skip
    cols = ["dataset", "field", "rows", "non_null", "plausible", "unmapped"]
    assert stored.select(cols).to_pylist() == again.select(cols).to_pylist()
    regs = {x["field"]: x for x in stored.to_pylist() if x["dataset"] == "registrations"}
    assert regs["state_voter_id"]["rows"] == r.loaded == pq.read_metadata(snap / "registrations.parquet").num_rows
    assert 0 < regs["residence_zip5"]["plausible"] <= regs["residence_zip5"]["non_null"] <= r.loaded
    assert regs["party"]["unmapped"] == 3
    assert regs["party_code"]["non_null"] - regs["party_code"]["plausible"] == 3


def test_damage_past_the_first_batch_is_refuted_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse error in a later batch reaches the reader as Arrow's error, not DuckDB's: it
    refutes the read all the same (small batches put the damaged line well past the first)."""
    from voterolls.ingest import pipeline

    monkeypatch.setattr(pipeline, "BATCH_ROWS", 16)
    body, name = _nc_lines(tmp_path)
    body[250] = b'"short"\t"line"'
    src = tmp_path / name
    src.write_bytes(b"\n".join(body) + b"\n")
    verified = _spy(monkeypatch, "verify")
    r = ingest(IngestRequest.of(tmp_path / "ws", "NC", [src]))
    assert verified and r.quarantined == 1 and r.loaded == r.rows_read - 1
    q = _stored(tmp_path / "ws", "quarantine")
    assert q.column("line").to_pylist() == [251]
