"""A tamper-evident, append-only audit log (a hash chain).

Every request the service answers and every read of voter data is appended
here, so that "who saw what, when" has one answer that cannot be quietly
rewritten.  Each entry is one JSON line::

    {"seq": 7, "time": "...Z", "actor": "nc-upload", "role": "state",
     "action": "GET /api/states/NC/matches", "target": "NC", "status": "200",
     "prev_hash": "<hash of entry 6>", "hash": "<sha256 of this entry>"}

``hash`` is SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
the entry *without* ``hash`` but *with* ``prev_hash``; the first entry's
``prev_hash`` is 64 zeros.  Editing an entry breaks its own hash, removing one
breaks the next entry's ``prev_hash`` and the ``seq`` run, and swapping two
breaks both: :func:`verify` names the first ``seq`` where the chain breaks.

A chain alone cannot reveal that its *last* entries were cut off, so every
append also rewrites ``audit.head`` (last seq and hash); ``verify`` checks the
log against it, and ``--anchor SEQ:HASH`` checks against a head an auditor
copied somewhere else (the only defence against someone who can rewrite both
files).  Entries hold account names, roles, paths, state codes and counts,
never tokens or a voter's personal data: callers pass only those.

Write-ahead: callers append an action's entry *before* the action takes
effect (``append`` returns only after the line is fsynced), and refuse the
action when the entry cannot be written (:class:`AuditUnavailable`).  A crash
in the middle of an append can leave a *torn* last line; nothing is appended
after it (a line glued to it would break the chain) until ``voterolls audit
repair`` (:func:`repair`) has kept a copy, cut the torn bytes and appended a
``audit repair`` entry that :func:`verify` accepts and reports.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from voterolls.errors import UserError

GENESIS = "0" * 64
ENTRY_FIELDS = ("seq", "time", "actor", "role", "action", "target", "status", "prev_hash")
#: Longest value kept in a text field: keeps a hostile path or name from bloating the log.
MAX_FIELD = 300


def canonical(entry: dict) -> bytes:
    """The bytes the hash covers: every field but ``hash``, in canonical JSON."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


#: Anything shaped like an access token is redacted, wherever a client put it (a path, a name).
_TOKEN_LIKE = re.compile(r"vr_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def _clip(value: object) -> str:
    text = "" if value is None else str(value)
    text = _TOKEN_LIKE.sub("vr_[redacted]", text)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 1] + "…"


#: The action of the entry ``repair`` appends; ``verify`` lists where they are.
REPAIR_ACTION = "audit repair"


class AuditUnavailable(UserError):
    """The audit log cannot take an entry (torn tail, full disk, no permission): refuse the action."""


def _repair_hint(path: Path) -> str:
    workspace = path.parent.parent
    return f"run `voterolls audit repair --workspace {workspace}`"


def torn_message(path: Path) -> str:
    return (f"the audit log {path} ends in a torn entry (a crash while it was being written); "
            f"{_repair_hint(path)} and try again")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    #: seq of the first entry that fails, or None when ``ok``
    bad_seq: int | None = None
    message: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS
    #: seq of every ``audit repair`` entry (a torn tail was cut there)
    repairs: tuple[int, ...] = ()


class AuditLog:
    """Appends to ``W/service/audit.log``; safe across threads and processes.

    Appends take an exclusive ``flock`` on the log, read the last entry from
    the file itself (so the CLI and a running server can both append), write
    one line and ``fsync`` it before returning.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.stem + ".head")
        self._lock = threading.Lock()

    # -------------------------------------------------------------- append
    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str = "",
        status: str | int = "",
        now: datetime | None = None,
    ) -> dict:
        """Append one entry, durable (fsynced) when this returns; :class:`AuditUnavailable` if it cannot be."""
        try:
            return self._append(actor=actor, role=role, action=action, target=target, status=status, now=now)
        except OSError as exc:
            raise AuditUnavailable(
                f"the audit log {self.path} cannot be written ({exc.strerror or type(exc).__name__})") from None

    def _append(self, *, actor: str, role: str, action: str, target: str, status: str | int,
                now: datetime | None) -> dict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last = _last_entry(fd, self.path)
                entry = {
                    "seq": (last["seq"] + 1) if last else 1,
                    "time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "actor": _clip(actor),
                    "role": _clip(role),
                    "action": _clip(action),
                    "target": _clip(target),
                    "status": _clip(status),
                    "prev_hash": last["hash"] if last else GENESIS,
                }
                entry["hash"] = entry_hash(entry)
                line = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
                self._write_head(entry)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        return entry

    def check(self) -> None:
        """Raise :class:`AuditUnavailable` when the log ends in a torn entry (cheap: reads the last line)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AuditUnavailable(
                f"the audit log {self.path} cannot be read ({exc.strerror or type(exc).__name__})") from None
        try:
            _last_entry(fd, self.path)
        finally:
            os.close(fd)

    def _write_head(self, entry: dict) -> None:
        tmp = self.head_path.with_suffix(".head.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"seq": entry["seq"], "hash": entry["hash"]}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head_path)

    # ---------------------------------------------------------------- read
    def entries(self) -> Iterator[dict]:
        """Every entry, oldest first (unverified: use :meth:`verify` for that)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:  # bytes: a damaged line must not stop the auditor's page
            for line in f:
                if line.strip():
                    try:
                        entry = json.loads(line)
                    except (json.JSONDecodeError, UnicodeDecodeError):
                        continue
                    if isinstance(entry, dict):
                        yield entry

    def tail(self, n: int = 200) -> list[dict]:
        """The last ``n`` entries, newest first (for the auditor's page)."""
        out: list[dict] = []
        for e in self.entries():
            out.append(e)
            if len(out) > n:
                out.pop(0)
        return out[::-1]

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        return verify(self.path, anchor=anchor)


def _last_entry(fd: int, path: Path) -> dict | None:
    """The last entry of the open log, read backwards from the end; :class:`AuditUnavailable` if torn."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditUnavailable(torn_message(path))
    block = 4096
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        stripped = buf[:-1]
        if b"\n" in stripped or pos == 0:
            last = stripped.rsplit(b"\n", 1)[-1]
            try:
                entry = json.loads(last)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise AuditUnavailable(torn_message(path)) from None
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int) or "hash" not in entry:
                raise AuditUnavailable(torn_message(path))
            return entry
    return None


@dataclass(frozen=True)
class TornTail:
    """Bytes at the end of the log that are not a complete entry: where they start and how many."""

    offset: int
    size: int
    after_seq: int


def torn_tail(path: Path) -> TornTail | None:
    """The torn last line of the log, if any: no line end, or not valid JSON (None when it is whole)."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None
        pos, buf = size, b""
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            if b"\n" in buf[:-1] or pos == 0:
                break
        start = pos + (buf.rfind(b"\n", 0, len(buf) - 1) + 1)
        f.seek(start)
        last = f.read()
        if last.endswith(b"\n"):
            try:
                json.loads(last)
                return None
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        f.seek(0)
        prev = _verify_stream(f, start, None, None, None)
    return TornTail(offset=start, size=size - start, after_seq=prev.head_seq)


def repair(path: Path, *, actor: str, now: datetime | None = None) -> tuple[dict, Path]:
    """Cut a torn last entry: keep a copy of the whole log, truncate, append an ``audit repair`` entry.

    Only a torn *last* line is repaired, and only when everything before it
    verifies: an edit, a removal or a reordering stays for ``verify`` to name
    (``UserError``).  Returns (the repair entry, the copy's path).
    """
    path = Path(path)
    tail = torn_tail(path)
    if tail is None:
        raise UserError(f"the audit log {path} has no torn entry at its end: nothing to repair")
    with open(path, "rb") as f:
        before = _verify_stream(f, tail.offset, path.with_name(path.stem + ".head"), None, None)
    if not before.ok:
        raise UserError(f"the audit log {path} is broken before its last line ({before.message}); "
                        "repair only removes a torn last entry, so restore the log from a backup")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    copy = path.with_name(f"{path.name}.torn-{stamp}")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        with open(copy, "xb") as out:
            os.chmod(copy, 0o600)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.ftruncate(fd, tail.offset)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    entry = AuditLog(path).append(
        actor=actor, role="operator", action=REPAIR_ACTION, target=path.name,
        status=f"cut a torn entry of {tail.size} bytes after seq {tail.after_seq}; copy kept as {copy.name}",
        now=now)
    return entry, copy


def verify(path: Path, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the chain; return the first broken ``seq`` with a plain-words reason."""
    path = Path(path)
    if not path.exists():
        return VerifyResult(True, 0, message=f"{path}: no audit log yet (nothing to verify)")
    with open(path, "rb") as f:
        return _verify_stream(f, None, path.with_name(path.stem + ".head"), anchor, path)


def _lines_upto(f, end: int | None) -> Iterator[bytes]:  # noqa: ANN001 - a binary file
    pos = 0
    for raw in f:
        if end is not None and pos >= end:
            return
        pos += len(raw)
        yield raw


def _verify_stream(f, end: int | None, head_file: Path | None, anchor: tuple[int, str] | None,  # noqa: ANN001, C901
                   path: Path | None) -> VerifyResult:
    """Verify the lines of binary file ``f`` up to byte ``end`` (streamed; ``path`` only for hints)."""
    prev_hash = GENESIS
    expected = 1
    count = 0
    anchor_seen = False
    repairs: list[int] = []
    for lineno, raw in enumerate(_lines_upto(f, end), start=1):
        torn = not raw.endswith(b"\n")
        hint = f"; if the service crashed while writing it, {_repair_hint(path)}" if path is not None else ""
        if not raw.strip():
            return _fail(count, expected, f"line {lineno} is blank (an entry was blanked out)")
        try:
            entry = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _fail(count, expected, f"line {lineno} is not valid JSON (edited or truncated)"
                         + (hint if _at_end(f) else ""))
        if torn:
            return _fail(count, expected, f"line {lineno} has no line end (a torn write){hint}")
        if not isinstance(entry, dict) or set(entry) != {*ENTRY_FIELDS, "hash"}:
            return _fail(count, expected, f"line {lineno} does not have exactly the entry fields")
        seq = entry["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            return _fail(count, expected, f"line {lineno} has no whole-number seq")
        if entry_hash(entry) != entry["hash"]:
            return _fail(count, seq, f"seq {seq} (line {lineno}) was edited: its hash does not match its content")
        if seq != expected:
            if seq > expected:
                why = f"seq {expected} is missing (line {lineno} holds seq {seq}): an entry was removed"
            else:
                why = f"line {lineno} holds seq {seq} where seq {expected} belongs: entries were reordered or duplicated"
            return _fail(count, expected, why)
        if entry["prev_hash"] != prev_hash:
            return _fail(count, seq, f"seq {seq} does not chain to seq {seq - 1}: entries were removed, replaced or reordered")
        if anchor and seq == anchor[0]:
            anchor_seen = True
            if entry["hash"] != anchor[1]:
                return _fail(count, seq, f"seq {seq} differs from the anchor you recorded: the log was rewritten")
        if entry["action"] == REPAIR_ACTION:
            repairs.append(seq)
        prev_hash = entry["hash"]
        expected = seq + 1
        count += 1
    head_seq = expected - 1
    if anchor and not anchor_seen:
        return _fail(count, anchor[0], f"seq {anchor[0]} from your anchor is missing: the log was cut short")
    if head_file is not None and head_file.exists():
        try:
            head = json.loads(head_file.read_text(encoding="utf-8"))
            if int(head["seq"]) > head_seq:
                return _fail(count, head_seq + 1, f"the log ends at seq {head_seq} but {head_file.name} records seq {head['seq']}: entries were removed from the end")
            if int(head["seq"]) == head_seq and head["hash"] != prev_hash:
                return _fail(count, head_seq, f"seq {head_seq} differs from {head_file.name}: the last entry was replaced")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return _fail(count, head_seq, f"{head_file.name} is unreadable")
    shown = ""
    if repairs:
        shown = (f" (repaired at seq {', '.join(map(str, repairs))}: a torn entry was cut, "
                 "the copy is kept beside the log)")
    return VerifyResult(
        True,
        count,
        message=f"audit log intact: {count} entries{shown}, head seq {head_seq} hash {prev_hash}",
        head_seq=head_seq,
        head_hash=prev_hash,
        repairs=tuple(repairs),
    )


def _at_end(f) -> bool:  # noqa: ANN001 - a binary file
    """True when the line just read was the file's last (peeks one byte)."""
    pos = f.tell()
    more = f.read(1)
    f.seek(pos)
    return not more


def _fail(count: int, seq: int, message: str) -> VerifyResult:
    return VerifyResult(False, count, bad_seq=seq, message=f"audit log broken at seq {seq}: {message}")
