"""``sniff.facts``: the one byte pass that hashes a file and counts its line terminators.

The pass reads in chunks, skips counting bytes a chunk does not hold and hashes on
a worker thread; these tests compare it with a plain, whole-file computation on
bytes hypothesis makes, with chunks small enough that every terminator and pair
can straddle a chunk boundary.
"""

from __future__ import annotations

import hashlib
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from voterolls.formats import sniff

ALPHABET = st.sampled_from([b"a", b"\n", b"\r", b"\0", b"\t", b'"'])


@contextmanager
def _chunk(n: int):
    old = sniff.CHUNK
    sniff.CHUNK = n
    try:
        yield
    finally:
        sniff.CHUNK = old


def _expected(data: bytes) -> tuple[str, int, int, int, int, int]:
    crlf = data.count(b"\r\n")
    bare_cr = data.count(b"\r") - crlf
    lines = data.count(b"\n") + bare_cr + (1 if data and data[-1:] not in (b"\n", b"\r") else 0)
    return hashlib.sha256(data).hexdigest(), lines, data.count(b"\n"), crlf, bare_cr, data.count(b"\0")


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(ALPHABET, max_size=60), chunk=st.integers(min_value=1, max_value=9))
def test_facts_match_a_whole_file_count(parts: list[bytes], chunk: int) -> None:
    data = b"".join(parts)
    with tempfile.TemporaryDirectory() as d, _chunk(chunk):
        path = Path(d) / "f.txt"
        path.write_bytes(data)
        f = sniff.facts(path)
    assert (f.sha256, f.lines, f.lf, f.crlf, f.bare_cr, f.nul) == _expected(data)
    assert f.size == len(data)


def test_facts_of_a_large_file_hash_every_chunk_in_order(tmp_path: Path) -> None:
    # several real chunks with distinct content: a hash fed out of order or short would differ
    data = b"".join(f"{i:07d},x\r\n".encode() for i in range(1_200_000))
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    f = sniff.facts(path)
    assert f.size > 2 * sniff.CHUNK
    assert f.sha256 == hashlib.sha256(data).hexdigest()
    assert (f.lines, f.crlf, f.bare_cr, f.nul) == (1_200_000, 1_200_000, 0, 0)

