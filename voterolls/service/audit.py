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


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    #: seq of the first entry that fails, or None when ``ok``
    bad_seq: int | None = None
    message: str = ""
    head_seq: int = 0
    head_hash: str = GENESIS


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
        """Append one entry and return it (with its hash)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                last = _last_entry(fd)
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
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue

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


def _last_entry(fd: int) -> dict | None:
    """The last complete entry of the open log, read backwards from the end."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return None
    block = 4096
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        stripped = buf.rstrip(b"\n")
        if b"\n" in stripped or pos == 0:
            last = stripped.rsplit(b"\n", 1)[-1]
            try:
                return json.loads(last)
            except json.JSONDecodeError as exc:
                raise RuntimeError(
                    "the last audit entry is not valid JSON (a torn write or an edit); "
                    "run `voterolls audit verify` before appending"
                ) from exc
    return None


def verify(path: Path, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the chain; return the first broken ``seq`` with a plain-words reason."""
    path = Path(path)
    if not path.exists():
        return VerifyResult(True, 0, message=f"{path}: no audit log yet (nothing to verify)")
    prev_hash = GENESIS
    expected = 1
    count = 0
    anchor_seen = False
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                return _fail(count, expected, f"line {lineno} is blank (an entry was blanked out)")
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return _fail(count, expected, f"line {lineno} is not valid JSON (edited or truncated)")
            if not isinstance(entry, dict) or set(entry) != {*ENTRY_FIELDS, "hash"}:
                return _fail(count, expected, f"line {lineno} does not have exactly the entry fields")
            seq = entry["seq"]
            if entry_hash(entry) != entry["hash"]:
                return _fail(count, seq, f"seq {seq} (line {lineno}) was edited: its hash does not match its content")
            if seq != expected:
                if isinstance(seq, int) and seq > expected:
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
            prev_hash = entry["hash"]
            expected = seq + 1
            count += 1
    head_seq = expected - 1
    if anchor and not anchor_seen:
        return _fail(count, anchor[0], f"seq {anchor[0]} from your anchor is missing: the log was cut short")
    head_file = path.with_name(path.stem + ".head")
    if head_file.exists():
        try:
            head = json.loads(head_file.read_text(encoding="utf-8"))
            if int(head["seq"]) > head_seq:
                return _fail(count, head_seq + 1, f"the log ends at seq {head_seq} but {head_file.name} records seq {head['seq']}: entries were removed from the end")
            if int(head["seq"]) == head_seq and head["hash"] != prev_hash:
                return _fail(count, head_seq, f"seq {head_seq} differs from {head_file.name}: the last entry was replaced")
        except (ValueError, KeyError, TypeError):
            return _fail(count, head_seq, f"{head_file.name} is unreadable")
    return VerifyResult(
        True,
        count,
        message=f"audit log intact: {count} entries, head seq {head_seq} hash {prev_hash}",
        head_seq=head_seq,
        head_hash=prev_hash,
    )


def _fail(count: int, seq: int, message: str) -> VerifyResult:
    return VerifyResult(False, count, bad_seq=seq, message=f"audit log broken at seq {seq}: {message}")
