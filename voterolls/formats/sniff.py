"""Byte-level facts about a file, gathered in one streaming pass.

``rows_read`` must be counted independently of the parser, so this pass
counts record terminators itself (LF, CRLF and bare CR; UTF-16 code units for
UTF-16 files) while it hashes the file.  It also notices mixed line endings,
which DuckDB's strict reader refuses, so the engine can normalise them into a
scratch copy first.  Copies (:func:`normalise_endings`, :func:`excise`) are
written into files the caller opened with ``voterolls.scratch.anonymous_file``:
they hold the input as sent, withheld fields included, so they have no name
on disk and vanish with the process, even a killed one.
"""

from __future__ import annotations

import codecs
import hashlib
import queue
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa

CHUNK = 1 << 22  # 4 MiB


@dataclass
class FileFacts:
    sha256: str
    size: int
    lines: int  # physical lines, including a header line
    lf: int
    crlf: int
    bare_cr: int
    utf16: bool
    bom: bool
    #: the file's modification time when the pass began (a rewrite during ingest changes it)
    mtime_ns: int = 0
    #: NUL bytes (UTF-16: NUL code units) in the file; lines holding one are quarantined
    nul: int = 0
    #: the whole file is valid UTF-8 (False for UTF-16 files: not checked)
    utf8: bool = False
    #: the file holds a byte 0x1d-0x1f, which the line reader reserves (such lines are quarantined)
    reserved_controls: bool = False

    @property
    def mixed_endings(self) -> bool:
        kinds = (self.lf - self.crlf > 0) + (self.crlf > 0) + (self.bare_cr > 0)
        return kinds > 1 or self.bare_cr > 0


def head(path: Path, n: int = 1 << 16) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def is_utf16(first: bytes) -> bool:
    """A UTF-16 byte-order mark, little- or big-endian."""
    return first.startswith((b"\xff\xfe", b"\xfe\xff"))


def bom_encoding(first: bytes) -> str | None:
    """The encoding a byte-order mark declares (None without one)."""
    if first.startswith(b"\xff\xfe"):
        return "utf-16"
    if first.startswith(b"\xfe\xff"):
        return "utf-16-be"
    if first.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    return None


#: How much of a file's head decides its encoding when there is no byte-order mark.
ENCODING_HEAD = 1 << 20


def encoding_of(path: Path, declared: str = "utf-8") -> str:
    """The file's encoding from its bytes: a BOM, else valid UTF-8 with non-ASCII bytes, else latin-1.

    A head of plain ASCII says nothing, so the layout's ``declared`` encoding
    stands (UTF-16 layouts: UTF-8, since the file has no UTF-16 BOM).  An NC
    VR_Snapshot re-saved as UTF-8 with BOM, an OH file saved as UTF-8, a CO
    extract in latin-1: each is read in the encoding its bytes show.
    """
    st = path.stat()
    return _encoding_of(str(path), declared, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=1024)
def _encoding_of(path_s: str, declared: str, size: int, mtime_ns: int) -> str:
    # cached: detection asks once per layout tried
    raw = head(Path(path_s), ENCODING_HEAD)
    bom = bom_encoding(raw)
    if bom:
        return bom
    if raw.isascii():
        return declared if declared in ("utf-8", "latin-1") else "utf-8"
    # valid multi-byte UTF-8 characters anywhere: UTF-8 (a line with invalid bytes is then a
    # damaged line, quarantined); non-ASCII bytes none of which form UTF-8: latin-1
    text = raw.decode("utf-8", errors="replace")
    if any(ord(c) > 127 and c != "\ufffd" for c in text):
        return "utf-8"
    return "latin-1"


class _Hasher:
    """Feeds chunks, in order, to a hash on a worker thread while the caller counts lines.

    hashlib releases the GIL on large buffers, so on two cores the sha256 of a
    big file costs no wall time beside the line count.
    """

    def __init__(self, h: Any) -> None:
        self._h = h
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._t = threading.Thread(target=self._run, name="sha256", daemon=True)

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            self._h.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._q.put(chunk)

    def __enter__(self) -> _Hasher:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._q.put(None)
        self._t.join()


def facts(path: Path) -> FileFacts:
    """Hash and count line terminators in one chunked pass (``bytes.count``; numpy for UTF-16)."""
    h = hashlib.sha256()
    mtime_ns = path.stat().st_mtime_ns
    first = head(path, 4)
    utf16 = is_utf16(first)
    unit = ">u2" if first.startswith(b"\xfe\xff") else "<u2"
    lf = crlf = cr = nul = 0
    size = 0
    last_unit = None
    prev_cr = False
    carry = b""
    utf8 = not utf16
    controls = False
    partial = b""  # a UTF-8 sequence cut by the chunk boundary, completed by the next chunk
    with path.open("rb") as fh, _Hasher(h) as hasher:
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            hasher.update(chunk)
            size += len(chunk)
            if utf16:
                data = carry + chunk
                usable = len(data) - (len(data) % 2)
                carry = data[usable:]
                units = np.frombuffer(data[:usable], dtype=unit)
                is_lf, is_cr = units == 0x0A, units == 0x0D
            else:
                # bytes.count is memchr-fast (about 10x numpy's compare + sum); "\r\n" cannot
                # overlap itself, so its count is the CRLF pairs inside the chunk
                # ``in`` is memchr (about 10x ``count``): most files have no CR and no NUL at all
                if utf8:
                    utf8, partial = _utf8_valid(partial, chunk)
                controls = controls or any(c in chunk for c in _RESERVED)
                n_cr = chunk.count(b"\r") if b"\r" in chunk else 0
                lf += chunk.count(b"\n")
                nul += chunk.count(b"\0") if b"\0" in chunk else 0
                cr += n_cr
                if n_cr:
                    crlf += chunk.count(b"\r\n")
                if prev_cr and chunk[0] == 0x0A:
                    crlf += 1
                prev_cr = chunk[-1] == 0x0D
                last_unit = chunk[-1]
                continue
            if units.size == 0:
                continue
            nul += int((units == 0).sum())
            n_lf = int(is_lf.sum())
            n_cr = int(is_cr.sum())
            pairs = int((is_cr[:-1] & is_lf[1:]).sum())
            if prev_cr and is_lf[0]:
                pairs += 1
            lf += n_lf
            cr += n_cr
            crlf += pairs
            prev_cr = bool(is_cr[-1])
            last_unit = int(units[-1])
    bare_cr = cr - crlf
    lines = lf + bare_cr
    if last_unit is not None and last_unit not in (0x0A, 0x0D):
        lines += 1  # final line without a terminator
    if utf16 and size == 2:
        lines = 0  # a BOM alone
    return FileFacts(
        h.hexdigest(),
        size,
        lines,
        lf,
        crlf,
        bare_cr,
        utf16,
        first.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")),
        mtime_ns,
        nul,
        utf8 and not partial,
        controls,
    )


_RESERVED = (b"\x1d", b"\x1e", b"\x1f")


def _utf8_valid(partial: bytes, chunk: bytes) -> tuple[bool, bytes]:
    """Is ``partial + chunk`` valid UTF-8 up to a sequence the chunk's end cuts (returned, to carry)?

    Arrow's UTF-8 validation (a binary -> string cast of a zero-copy view)
    checks hundreds of MB in a few hundredths of a second, so a whole-file
    check costs nothing beside the hash; the fast reader relies on it
    (``fast.trusted``) to skip its own per-line decoding pass.
    """
    cut = len(chunk)
    for i in range(1, min(4, len(chunk)) + 1):
        b = chunk[-i]
        if b < 0x80:
            break
        if b >= 0xC0:  # a lead byte: is its sequence complete inside the chunk?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if need > i:
                cut = len(chunk) - i
            break
    data = partial + chunk[:cut] if partial else (chunk if cut == len(chunk) else chunk[:cut])
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32).tobytes())
    view = pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        view.cast(pa.string())
    except pa.ArrowInvalid:
        return False, b""
    return True, chunk[cut:]


def long_lines(path: Path, limit: int) -> list[int]:
    """1-based numbers of the lines (LF-terminated) longer than ``limit`` bytes, in one chunked pass.

    Only called when DuckDB's line count falls short: it skips, without a
    reject, a line that does not fit its read buffer (32 MiB).
    """
    out: list[int] = []
    line, start, pos = 1, 0, 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 0x0A)
            if nl.size:
                ends = nl + pos
                starts = np.concatenate(([start], ends[:-1] + 1))
                out.extend((line + np.flatnonzero(ends - starts > limit)).tolist())
                line += int(nl.size)
                start = int(ends[-1]) + 1
            pos += len(chunk)
    if pos - start > limit:
        out.append(line)
    return out


def normalise_endings(path: Path, encoding: str, out: BinaryIO) -> None:
    """Copy ``path`` into ``out`` (an anonymous scratch file) with every line ending as LF, in UTF-8.

    Streaming, chunked.  Invalid bytes are kept as U+FFFD so the line still
    counts (and is quarantined by the reader's encoding check).
    """
    # Python's "utf-16" reads either byte order from the BOM; a UTF-8 BOM is dropped
    py_enc = {"utf-8": "utf-8-sig", "latin-1": "latin-1", "utf-16": "utf-16", "utf-16-be": "utf-16"}[encoding]
    dec = codecs.getincrementaldecoder(py_enc)(errors="replace")
    pending_cr = False
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(CHUNK)
            final = not chunk
            text = dec.decode(chunk, final=final)
            if pending_cr:
                text = "\r" + text
                pending_cr = False
            if text.endswith("\r") and not final:
                text = text[:-1]
                pending_cr = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            out.write(text.encode("utf-8"))
            if final:
                break
    out.flush()


def excise(path: Path, lines: list[int], *, header: bool, keep: BinaryIO, cut: BinaryIO) -> None:
    """Split ``path`` into ``keep`` (every line but ``lines``) and ``cut`` (those lines).

    ``keep`` and ``cut`` are open anonymous scratch files.  ``lines`` are
    sorted 1-based physical line numbers (LF-terminated lines: only files with
    one kind of line ending get here).  With ``header`` the first line is
    written to both files, so each reads like the original.  The runs between
    cut lines are copied in 4 MiB blocks; newlines are looked for only in the
    blocks that hold a cut line.
    """
    _excise(path, lines, header, keep, cut)
    keep.flush()
    cut.flush()


def _excise(path: Path, lines: list[int], header: bool, keep: BinaryIO, out: BinaryIO) -> None:
    import mmap

    with (
        path.open("rb") as fh,
        mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm,
    ):
        size = len(mm)

        def line_end(pos: int) -> int:
            """Offset just after the line that starts at ``pos``."""
            end = mm.find(b"\n", pos)
            return size if end < 0 else end + 1

        pos, at = 0, 1  # ``at``: number of the line that starts at ``pos``
        if header:
            end = line_end(0)
            keep.write(mm[:end])
            out.write(mm[:end])
            pos, at = end, 2
        for n in lines:
            if n < at:
                continue  # the header, or a duplicate
            while at < n:  # copy lines at .. n-1
                block = mm[pos : pos + CHUNK]
                if not block:
                    break
                count = block.count(b"\n")
                if count < n - at:
                    keep.write(block)
                    pos, at = pos + len(block), at + count
                    continue
                stop = pos
                for _ in range(n - at):
                    stop = mm.find(b"\n", stop) + 1
                keep.write(mm[pos:stop])
                pos, at = stop, n
            end = line_end(pos)
            out.write(mm[pos:end])
            pos, at = end, n + 1
        while pos < size:
            keep.write(mm[pos : pos + CHUNK])
            pos += CHUNK


def first_lines(path: Path, encoding_hint: str | None = None, n: int = 3) -> tuple[str, list[str]]:
    """(encoding guess, first ``n`` lines decoded) from the file's head, for detection and shape checks."""
    st = path.stat()
    enc, lines = _first_lines(str(path), encoding_hint, st.st_size, st.st_mtime_ns)
    return enc, lines[:n]


@lru_cache(maxsize=1024)
def _first_lines(
    path_s: str, encoding_hint: str | None, size: int, mtime_ns: int
) -> tuple[str, list[str]]:
    # cached: detection tries every layout against the same few files
    path = Path(path_s)
    raw = head(path)
    if is_utf16(raw):
        enc = bom_encoding(raw) or "utf-16"
        text = raw[2:].decode("utf-16-le" if enc == "utf-16" else "utf-16-be", errors="replace")
    elif raw.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8"
        text = raw[3:].decode("utf-8", errors="replace")
    else:
        try:
            # a truncated multi-byte sequence at the end of the head is fine
            text = raw.decode("utf-8")
            enc = "utf-8"
        except UnicodeDecodeError as exc:
            if exc.start >= len(raw) - 3:
                text = raw[: exc.start].decode("utf-8")
                enc = "utf-8"
            else:
                enc = "latin-1"
                text = raw.decode("latin-1")
        if encoding_hint == "latin-1":
            enc, text = "latin-1", raw.decode("latin-1")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(raw) == (1 << 16) and len(lines) > 1:
        lines = lines[:-1]  # last one may be cut
    return enc, lines[:16]  # detection judges up to a dozen records
