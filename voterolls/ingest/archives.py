"""Compressed deliveries: ``.zip`` (one or many members, zips nested in zips) and ``.gz``.

States publish their rolls compressed (NC's statewide and county files are
zips, Ohio's statewide files gzip).  Ingest reads them as sent: each member is
streamed out of its archive into an *anonymous* scratch file
(:func:`voterolls.scratch.anonymous_file`: unlinked at creation, reached as
``/proc/self/fd/N``) in the staged snapshot's scratch directory, and the
readers see a plain path.  Why a copy and not DuckDB reading the archive: the
readers count physical lines, split a long file around its bad lines and
re-read parts of it, which needs a seekable file; gzip is a stream.  Why
anonymous: the member holds what the state sent, fields its law withholds
included, so a killed ingest must not leave it on disk (law before storage).

A member is known by its *display name*, ``archive.zip!member.txt`` (nested:
``outer.zip!inner.zip!member.txt``): the manifest and quarantine rows name it,
never the ``/proc`` path.  The archive is recognised by its first bytes, not
its name.
"""

from __future__ import annotations

import contextlib
import gzip
import shutil
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from voterolls.errors import UserError
from voterolls.scratch import anonymous_file

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
#: Copy buffer: large enough that the copy runs at memcpy speed, small enough to stay bounded.
COPY_BYTES = 1 << 20
#: Nesting deeper than this is not how a state packs files (and would be a zip bomb's shape).
MAX_DEPTH = 3
#: An archive holding more members than this is refused (the largest delivery, TX, has 254 counties).
MAX_MEMBERS = 2_000


@dataclass(frozen=True)
class Input:
    """One file the readers will see: a plain input, or a member unpacked from an archive."""

    path: Path  # what the readers open (``/proc/self/fd/N`` for an unpacked member)
    display: str  # what people read: ``name.txt`` or ``archive.zip!member.txt``
    source: Path  # the file the user gave
    container_sha256: str | None = None  # sha256 of ``source`` when it is an archive

    @property
    def member(self) -> str:
        """The member's own file name (the last part of the display name)."""
        return self.display.rsplit("!", 1)[-1].rsplit("/", 1)[-1]


def compression(path: Path) -> str | None:
    """``"zip"``, ``"gzip"`` or None, from the file's first bytes."""
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return None


def is_compressed(path: Path) -> bool:
    return compression(path) is not None


@contextlib.contextmanager
def unpacked(paths: list[Path], scratch_dir: Path, container_sha: dict[str, str]) -> Iterator[list[Input]]:
    """Yield every input as a plain file, archives unpacked into anonymous scratch files.

    ``container_sha`` maps ``str(path)`` of each archive to its sha256 (already
    computed for the ingest key).  The scratch files live while the context is
    open and vanish when it closes, or when the process dies.
    """
    with contextlib.ExitStack() as stack:
        out: list[Input] = []
        for p in paths:
            kind = compression(p)
            if kind is None:
                out.append(Input(path=p, display=p.name, source=p))
                continue
            sha = container_sha.get(str(p))
            with p.open("rb") as fh:
                _unpack(fh, kind, p.name, p, sha, scratch_dir, stack, out, depth=1)
        if len(out) > MAX_MEMBERS:
            raise UserError(f"the delivery holds {len(out):,} files; at most {MAX_MEMBERS:,} are read at once", file=paths[0])
        yield out


def _unpack(
    fh: BinaryIO,
    kind: str,
    display: str,
    source: Path,
    sha: str | None,
    scratch_dir: Path,
    stack: contextlib.ExitStack,
    out: list[Input],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        raise UserError(f"archives nested more than {MAX_DEPTH} deep ({display})", file=source)
    if kind == "gzip":
        name = display.rsplit("!", 1)[-1]
        member = name[:-3] if name.lower().endswith(".gz") else name + ".out"
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                _add(gz, f"{display}!{member}", source, sha, scratch_dir, stack, out, depth)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{display} is not a readable gzip file ({_reason(exc)})", file=source) from None
        return
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{display} is not a readable ZIP archive ({_reason(exc)})", file=source) from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _is_noise(i.filename)]
        if not infos:
            raise UserError(f"{display} holds no file", file=source)
        if len(infos) > MAX_MEMBERS:
            raise UserError(f"{display} holds {len(infos):,} files; at most {MAX_MEMBERS:,} are read", file=source)
        for info in sorted(infos, key=lambda i: i.filename):
            if info.flag_bits & 0x1:
                raise UserError(f"{display}!{info.filename} is encrypted; send it unencrypted", file=source)
            try:
                with zf.open(info) as member:
                    _add(member, f"{display}!{info.filename}", source, sha, scratch_dir, stack, out, depth)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
                raise UserError(
                    f"{display}!{info.filename} cannot be unpacked ({_reason(exc)})", file=source
                ) from None


def _add(
    stream: BinaryIO,
    display: str,
    source: Path,
    sha: str | None,
    scratch_dir: Path,
    stack: contextlib.ExitStack,
    out: list[Input],
    depth: int,
) -> None:
    """Copy ``stream`` into an anonymous file; an archive inside is unpacked in turn."""
    scratch = stack.enter_context(anonymous_file(scratch_dir, suffix=".member"))
    shutil.copyfileobj(stream, scratch.fileobj, COPY_BYTES)
    scratch.flush()
    scratch.fileobj.seek(0)
    head = scratch.fileobj.read(4)
    scratch.fileobj.seek(0)
    inner = "zip" if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)) else "gzip" if head.startswith(GZIP_MAGIC) else None
    if inner is not None:
        _unpack(scratch.fileobj, inner, display, source, sha, scratch_dir, stack, out, depth + 1)
        return
    out.append(Input(path=scratch.path, display=display, source=source, container_sha256=sha))


def _is_noise(name: str) -> bool:
    """Entries archivers add that are not data (macOS resource forks, Finder files)."""
    base = name.rsplit("/", 1)[-1]
    return name.startswith("__MACOSX/") or base in (".DS_Store", "Thumbs.db") or base.startswith("._")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
