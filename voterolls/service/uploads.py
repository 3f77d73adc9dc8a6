"""Receiving a state's files: streamed to disk, size-capped, checked, safely named.

A voter file can be gigabytes, so the body is written to disk chunk by chunk
as it arrives (never held whole in memory) under
``W/service/uploads/<STATE>/<submission>/``.  The client's file name is only
a hint: it is cut to its last path component, stripped to ``[A-Za-z0-9._-]``
and checked to resolve inside the submission folder, so ``../../x`` or
``C:\\x`` cannot escape.  Each file's first KiB must look like text (no NUL
bytes, unless it is UTF-16, which the NC snapshot files are) or be a ZIP or
gzip archive, the forms states publish in (the ingest unpacks them,
``voterolls.ingest.archives``); an archive is opened once on arrival so a
damaged one is refused at once.  Other binaries (bzip2, xz, 7-Zip, PDF ...)
are refused with advice.

A state sends its county files in one submission (up to ``MAX_FILES``: the
largest per-county delivery, TX, has 254 counties, twice with history) or in
several: each file replaces only its own scope (``voterolls.ingest.delivery``).

Two request shapes are accepted: ``multipart/form-data`` (the page's form,
any number of files) and a raw body (``curl --data-binary @file``) with the
name in ``X-Filename`` or ``?filename=``.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

SNIFF_BYTES = 1024
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
#: Files per submission: every county file of the largest per-county state with its history
#: (TX: 254 + 254) fits; each file costs one directory entry and one open handle at a time.
MAX_FILES = 600
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
#: Compressed forms the ingest reads (by first bytes).
_READABLE_ARCHIVES = {b"PK\x03\x04": "a ZIP archive", b"PK\x05\x06": "a ZIP archive", b"\x1f\x8b": "a gzip file"}
#: The binary form a sealed-only delivery's tables travel in (accepted on the delivery route only;
#: the route then insists on a complete sealed-only delivery, voterolls.service.sealed).
_SEALED_TABLES = {b"PAR1": "a Parquet file"}
_ARCHIVES = {
    b"BZh": "a bzip2 file",
    b"\xfd7zXZ\x00": "an xz file",
    b"7z\xbc\xaf\x27\x1c": "a 7-Zip archive",
    b"%PDF": "a PDF document",
}


class UploadRejected(Exception):
    """The upload cannot be accepted; ``status`` is the HTTP code to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ReceivedFile:
    name: str  # the safe name it is stored under
    path: Path
    size: int = 0
    sha256: str = ""
    head: bytes = b""


@dataclass
class Received:
    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    total_bytes: int = 0


def safe_filename(client_name: str | None, taken: set[str] | None = None) -> str:
    """A harmless file name from whatever the client sent (which is never trusted)."""
    name = (client_name or "").replace("\x00", "")
    name = re.split(r"[\\/]", name)[-1]  # last component, either separator
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = _SAFE_CHARS.sub("_", name).strip("._-")
    if not name or name in {".", ".."}:
        name = "upload.txt"
    if len(name) > 100:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 90] + dot + ext[:9]) if dot and len(ext) <= 9 else name[:100]
    taken = taken if taken is not None else set()
    base, n = name, 2
    while name.lower() in taken:
        stem, dot, ext = base.rpartition(".")
        name = f"{stem}-{n}.{ext}" if dot else f"{base}-{n}"
        n += 1
    taken.add(name.lower())
    return name


def check_text(head: bytes, name: str, *, archives: bool = True) -> None:
    """Reject binaries by their first KiB; UTF-16 text and (if ``archives``) ZIP / gzip archives
    and Parquet (a sealed-only delivery's tables) are allowed.

    A state's delivery may be compressed (the ingest unpacks it); an external
    list is read as text only, so its route passes ``archives=False``.
    """
    if head.startswith(tuple(_SEALED_TABLES)) and archives:
        return
    if head.startswith(tuple(_READABLE_ARCHIVES)):
        if archives:
            return
        what = next(w for m, w in _READABLE_ARCHIVES.items() if head.startswith(m))
        raise UploadRejected(415, f"{name}: this is {what}; this upload takes the text file itself: unpack it first.")
    for magic, what in _ARCHIVES.items():
        if head.startswith(magic):
            raise UploadRejected(
                415,
                f"{name}: this is {what}, not a text voter file. Upload the text file(s) as "
                "published, or a .zip or .gz of them.",
            )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 with a byte-order mark
    if b"\x00" in head:
        even, odd = head[0::2], head[1::2]
        if len(head) >= 4 and (odd.count(0) == len(odd) and 0 not in even or even.count(0) == len(even) and 0 not in odd):
            return  # UTF-16 without a BOM: every other byte NUL, the rest not
        raise UploadRejected(
            415,
            f"{name}: this looks like a binary file (it contains NUL bytes in its first "
            f"{SNIFF_BYTES} bytes), not a text voter file. Upload the state's delimited or "
            "fixed-width text file as published.",
        )


def is_parquet(head: bytes) -> bool:
    """Is this a Parquet file (by its first bytes)?"""
    return head.startswith(tuple(_SEALED_TABLES))


def is_archive(head: bytes) -> bool:
    """Is this a ZIP or gzip file (by its first bytes)?"""
    return head.startswith(tuple(_READABLE_ARCHIVES))


def check_archive(path: Path, head: bytes, name: str) -> None:
    """A ZIP or gzip upload must open: a damaged one is refused now, not after the upload was accepted."""
    import gzip
    import zipfile
    import zlib

    what = next((w for m, w in _READABLE_ARCHIVES.items() if head.startswith(m)), None)
    if what is None:
        return
    try:
        if what == "a ZIP archive":
            with zipfile.ZipFile(path) as zf:
                if not [i for i in zf.infolist() if not i.is_dir()]:
                    raise UploadRejected(422, f"{name}: this ZIP archive holds no file.")
        else:
            with gzip.open(path) as gz:
                gz.read(SNIFF_BYTES)
    except UploadRejected:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise UploadRejected(
            422, f"{name}: this is {what}, but it cannot be read ({type(exc).__name__}); send it again or send the text files."
        ) from None


def _within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


class _Sink:
    """Writes one incoming file chunk by chunk, hashing and sniffing as it goes."""

    def __init__(self, folder: Path, client_name: str | None, taken: set[str], archives: bool = True) -> None:
        self.archives = archives
        name = safe_filename(client_name, taken)
        path = folder / name
        if not _within(path, folder):  # cannot happen after safe_filename; checked anyway
            raise UploadRejected(400, "unsafe file name")
        self.file = ReceivedFile(name=name, path=path)
        self._fh = open(path, "xb")  # noqa: SIM115  (closed in close())
        self._hash = hashlib.sha256()
        self._checked = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._checked:
            need = SNIFF_BYTES - len(self.file.head)
            self.file.head += data[:need]
            if len(self.file.head) >= SNIFF_BYTES:
                check_text(self.file.head, self.file.name, archives=self.archives)
                self._checked = True
        self._fh.write(data)
        self._hash.update(data)
        self.file.size += len(data)

    def close(self) -> ReceivedFile:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        if not self._checked:
            if self.file.size == 0:
                raise UploadRejected(422, f"{self.file.name}: the file is empty")
            check_text(self.file.head, self.file.name, archives=self.archives)
        check_archive(self.file.path, self.file.head, self.file.name)
        self.file.sha256 = self._hash.hexdigest()
        return self.file

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()


async def receive(
    request, folder: Path, max_bytes: int, *, require_field: str | None = None, archives: bool = True
) -> Received:
    """Stream the request body into ``folder``; raise :class:`UploadRejected` on any problem.

    ``require_field`` (the page form's CSRF field) must arrive before the first
    file, so that a forged form post is refused before a byte of it is stored.
    On rejection the caller removes ``folder``; nothing partial is ever ingested.
    ``archives=False``: a ZIP or gzip file is refused (415), for uploads read as text only.
    """
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise UploadRejected(413, _too_big(max_bytes))
    folder.mkdir(parents=True, exist_ok=False)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    out = Received()
    taken: set[str] = set()
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadRejected(400, "multipart upload without a boundary")
        await _receive_multipart(request, folder, max_bytes, boundary, out, taken, require_field, archives)
    else:
        if require_field:
            raise UploadRejected(403, "The form has expired; reload the page and try again.")
        client_name = request.headers.get("x-filename") or request.query_params.get("filename")
        sink = _Sink(folder, client_name, taken, archives)
        try:
            async for chunk in request.stream():
                out.total_bytes += len(chunk)
                if out.total_bytes > max_bytes:
                    raise UploadRejected(413, _too_big(max_bytes))
                sink.write(chunk)
            out.files.append(sink.close())
        finally:
            sink.abort()
    if not out.files:
        raise UploadRejected(400, "no file in the upload: choose at least one file")
    return out


async def _receive_multipart(
    request, folder, max_bytes, boundary, out: Received, taken, require_field, archives: bool = True
) -> None:
    state: dict = {"headers": {}, "field": b"", "value": b"", "sink": None, "name": None, "buf": b""}
    errors: list[UploadRejected] = []

    def on_part_begin() -> None:
        state.update(headers={}, sink=None, name=None, buf=b"")

    def on_header_field(data, start, end) -> None:
        state["field"] += data[start:end]

    def on_header_value(data, start, end) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, opts = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = opts.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in opts or state["name"] in ("file", "files"):
            if require_field and require_field not in out.fields:
                raise UploadRejected(403, "The form has expired; reload the page and try again.")
            if len(out.files) >= MAX_FILES:
                raise UploadRejected(400, f"at most {MAX_FILES} files per submission")
            client = opts.get(b"filename", b"").decode("utf-8", "replace")
            state["sink"] = _Sink(folder, client, taken, archives)
            state["client"] = client

    def on_part_data(data, start, end) -> None:
        sink = state["sink"]
        if sink is not None:
            sink.write(data[start:end])
        elif len(state["buf"]) < 4096:  # small form fields only (the CSRF token)
            state["buf"] += data[start:end]

    def on_part_end() -> None:
        sink = state["sink"]
        if sink is not None:
            state["sink"] = None
            if sink.file.size == 0 and not state.get("client"):
                sink.abort()  # a form with no file chosen sends one empty part, filename=""
                sink.file.path.unlink(missing_ok=True)
                return
            out.files.append(sink.close())
        elif state["name"]:
            out.fields[state["name"]] = state["buf"][:4096].decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            out.total_bytes += len(chunk)
            if out.total_bytes > max_bytes:
                raise UploadRejected(413, _too_big(max_bytes))
            parser.write(chunk)
        parser.finalize()
    except UploadRejected:
        raise
    except Exception as exc:  # a malformed body from the client
        errors.append(UploadRejected(400, f"malformed multipart upload ({type(exc).__name__})"))
    finally:
        if state["sink"] is not None:
            state["sink"].abort()
    if errors:
        raise errors[0]


def _too_big(max_bytes: int) -> str:
    return (
        f"the upload is larger than this service accepts ({human_size(max_bytes)}). Send the files "
        "compressed (.zip or .gz), or in several submissions (each county file replaces only its "
        "own county, so nothing is lost), or ask the administrator to raise --max-upload."
    )


def human_size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return str(n)
