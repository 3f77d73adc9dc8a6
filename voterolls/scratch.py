"""Scratch files that have no name on disk.

A reader sometimes needs a copy of its input: line endings normalised, a long
file split around its bad lines, a compressed member unpacked.  Such a copy
holds the input as the state sent it, fields its law withholds included, so it
must never outlive the process that made it - not even when that process is
killed.  An *anonymous* file is created in a directory, unlinked at once and
reached only through this process's ``/proc/self/fd/N`` while it stays open:
the kernel frees it when the descriptor closes, however the process ends.

DuckDB (and any other reader in this process) opens the ``/proc/self/fd/N``
path like an ordinary file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ScratchFile", "anonymous_file"]


@dataclass(frozen=True)
class ScratchFile:
    """An open, nameless file: write through ``fileobj``, read back through ``path``."""

    fileobj: BinaryIO
    path: Path

    def flush(self) -> None:
        """Make what was written visible to readers opening ``path``."""
        self.fileobj.flush()


@contextmanager
def anonymous_file(directory: Path | None = None, suffix: str = "") -> Iterator[ScratchFile]:
    """Yield a file created in ``directory`` (the system temp dir if None) and unlinked at once.

    ``suffix`` only names the short-lived directory entry (useful in an strace);
    readers must not rely on it, since ``path`` is ``/proc/self/fd/N``.
    """
    fd, name = tempfile.mkstemp(prefix="voterolls_", suffix=suffix, dir=directory)
    try:
        os.unlink(name)
        fileobj = os.fdopen(fd, "w+b")
    except BaseException:
        os.close(fd)
        raise
    with fileobj:
        yield ScratchFile(fileobj=fileobj, path=Path(f"/proc/self/fd/{fd}"))
