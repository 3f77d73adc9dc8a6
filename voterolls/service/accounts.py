"""Accounts, roles and API tokens, stored in ``W/service/accounts.json``.

Four roles, each with the least it needs:

``state``    a state's uploader: uploads its own files, sees its own
             submissions, quarantine summary and its own voters' matches;
             bound to exactly one state.
``analyst``  aggregates and the report; never a row of personal data.
``auditor``  the audit log and its verification.
``admin``    accounts (create, list, revoke, new token); no voter data.

A token is ``vr_<id>_<secret>``: ``id`` is public and picks the stored hash,
``secret`` is 32 random bytes.  Only SHA-256 of the whole token is stored and
it is compared with :func:`hmac.compare_digest`; the plaintext is shown once,
when the token is made, and never written anywhere.  (A 256-bit random
secret needs no slow hash: there is nothing to brute-force.)  Tokens expire
(default 90 days); revoking an account kills all its tokens and sessions.

:class:`FailureLimiter` bounds failed authentications per client address
(bearer tokens and the login form): a flood of wrong tokens costs at most
``max_failures`` checks of the accounts file per window, then gets 429.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.schema import JURISDICTIONS

log = get_logger(__name__)

ROLES = ("state", "analyst", "auditor", "admin")
ROLE_LABELS = {
    "state": "state uploader",
    "analyst": "analyst",
    "auditor": "auditor",
    "admin": "administrator",
}
DEFAULT_TOKEN_DAYS = 90
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,47}$")
_TOKEN_RE = re.compile(r"^vr_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime | None) -> str | None:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def _parse(t: str | None) -> datetime | None:
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if t else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class TokenRecord:
    id: str
    sha256: str
    created: str
    expires: str | None
    revoked: str | None = None


@dataclass
class Account:
    name: str
    role: str
    state: str | None
    created: str
    revoked: str | None = None
    tokens: list[TokenRecord] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.revoked is None

    def public(self) -> dict:
        """What the admin page and ``accounts list`` show: no hashes."""
        now = _now()
        live = [
            t
            for t in self.tokens
            if t.revoked is None and (t.expires is None or _parse(t.expires) > now)
        ]
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "created": self.created,
            "revoked": self.revoked,
            "live_tokens": len(live),
            "expires": max((t.expires or "never" for t in live), default=None),
        }


@dataclass(frozen=True)
class Principal:
    """Who is making a request (what the authorisation checks look at)."""

    name: str
    role: str
    state: str | None
    token_id: str | None = None


class AuthError(Exception):
    """Credentials missing, unknown, expired or revoked (HTTP 401)."""


class AccountStore:
    """The accounts file: small JSON, rewritten atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time, across threads and processes (the CLI and a running server)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._thread_lock:
            fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    # ------------------------------------------------------------ storage
    def _load(self) -> dict[str, Account]:
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text(encoding="utf-8"))
        out = {}
        for name, a in raw.get("accounts", {}).items():
            tokens = [TokenRecord(**t) for t in a.pop("tokens", [])]
            out[name] = Account(**a, tokens=tokens)
        return out

    def _save(self, accounts: dict[str, Account]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        doc = {"version": 1, "accounts": {n: asdict(a) for n, a in sorted(accounts.items())}}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    # ------------------------------------------------------------ admin
    def list(self) -> list[Account]:
        return sorted(self._load().values(), key=lambda a: a.name)

    def get(self, name: str) -> Account | None:
        return self._load().get(name)

    def create(
        self,
        name: str,
        role: str,
        state: str | None = None,
        *,
        expires_days: int | None = DEFAULT_TOKEN_DAYS,
    ) -> tuple[Account, str]:
        """Create an account and its first token; return both (the token only here)."""
        name = name.strip().lower()
        if not _NAME_RE.match(name):
            raise UserError(
                "account names are 2-48 characters: lower-case letters, digits, '.', '_' or '-'",
                field="name",
            )
        if role not in ROLES:
            raise UserError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", field="role")
        if role == "state":
            state = (state or "").strip().upper()
            if state not in JURISDICTIONS:
                raise UserError(
                    "a state uploader account needs exactly one state: a USPS code such as NC",
                    field="state",
                )
        elif state:
            raise UserError(f"only state uploader accounts have a state; a {role} sees no single state", field="state")
        else:
            state = None
        with self._lock():
            accounts = self._load()
            if name in accounts:
                raise UserError(f"account {name!r} already exists", field="name")
            acct = Account(name=name, role=role, state=state, created=_iso(_now()))
            token = self._new_token(acct, expires_days)
            accounts[name] = acct
            self._save(accounts)
        return acct, token

    def issue_token(self, name: str, *, expires_days: int | None = DEFAULT_TOKEN_DAYS) -> str:
        """A new token for an existing, active account (rotation); old ones stay until revoked."""
        with self._lock():
            accounts = self._load()
            acct = accounts.get(name)
            if acct is None or not acct.active:
                raise UserError(f"no active account {name!r}", field="name")
            token = self._new_token(acct, expires_days)
            self._save(accounts)
        return token

    def revoke(self, name: str) -> Account:
        with self._lock():
            accounts = self._load()
            acct = accounts.get(name)
            if acct is None:
                raise UserError(f"no account {name!r}", field="name")
            stamp = _iso(_now())
            acct.revoked = acct.revoked or stamp
            for t in acct.tokens:
                t.revoked = t.revoked or stamp
            self._save(accounts)
        return acct

    @staticmethod
    def _new_token(acct: Account, expires_days: int | None) -> str:
        token_id = secrets.token_hex(6)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        token = f"vr_{token_id}_{secret}"
        now = _now()
        expires = _iso(now + timedelta(days=expires_days)) if expires_days else None
        acct.tokens.append(TokenRecord(token_id, hash_token(token), _iso(now), expires))
        return token

    # ------------------------------------------------------------ auth
    def authenticate(self, token: str, *, now: datetime | None = None) -> Principal:
        """The principal for ``token``; :class:`AuthError` says why not (never echoing it)."""
        m = _TOKEN_RE.match(token.strip()) if token else None
        if not m:
            raise AuthError("invalid token")
        token_id = m.group(1)
        presented = hash_token(token.strip())
        accounts = self._load()  # replaced atomically by writers: a plain read is consistent
        for acct in accounts.values():
            for t in acct.tokens:
                if t.id != token_id:
                    continue
                if not hmac.compare_digest(presented, t.sha256):
                    raise AuthError("invalid token")
                if t.revoked or not acct.active:
                    raise AuthError("token revoked")
                if t.expires and _parse(t.expires) <= (now or _now()):
                    raise AuthError("token expired")
                return Principal(acct.name, acct.role, acct.state, token_id)
        # Same work on a miss as on a hit, so timing says nothing about which ids exist.
        hmac.compare_digest(presented, "0" * 64)
        raise AuthError("invalid token")

    def still_valid(self, principal: Principal, *, now: datetime | None = None) -> bool:
        """Is the token behind a session still good (not revoked, not expired)?"""
        acct = self.get(principal.name)
        if acct is None or not acct.active:
            return False
        for t in acct.tokens:
            if t.id == principal.token_id:
                return t.revoked is None and (
                    t.expires is None or _parse(t.expires) > (now or _now())
                )
        return False


# ------------------------------------------------------------ failed-authentication limit
#: Defaults: generous enough that a state office behind one NAT address, or a
#: script retrying with one stale token, does not lock its colleagues out; low
#: enough that a flood of wrong tokens is a trickle of real checks.
DEFAULT_MAX_FAILURES = 100
DEFAULT_WINDOW_S = 60.0
#: Addresses remembered at once (each holds at most ``max_failures`` timestamps).
DEFAULT_MAX_CLIENTS = 4096


@dataclass
class _ClientFailures:
    failures: deque[float]  # times of recent failures, oldest first (at most max_failures)
    in_flight: int = 0  # attempts begun and not yet ended
    warned: bool = False  # the operator was told this address hit the limit


class FailureLimiter:
    """At most ``max_failures`` failed authentications per client address in any ``window_s`` seconds.

    Why: a token is 256 random bits, so guessing is hopeless anyway; the
    limit is about cost and noise.  Each attempt reads the accounts file and
    writes an audit entry; without a bound one client could keep the service
    busy checking garbage.  Once an address has used up its failures, every
    further attempt that presents credentials (a bearer token, the login
    form) is answered 429 *before* any check, until the oldest failure leaves
    the window; requests without credentials and session cookies are not
    affected, and nor is any other address.

    The count is a sliding window and exact under concurrency: an attempt
    reserves a slot in :meth:`begin` (an in-flight attempt counts as a
    failure until :meth:`end` says how it went), so many threads at once
    cannot slip past the limit.  Successes are not remembered; failures
    expire.  Memory is bounded: at most ``max_clients`` addresses, the least
    recently seen forgotten first.  In-process only: each server process has
    its own limiter (``voterolls serve`` runs one).
    """

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or window_s <= 0 or max_clients < 1:
            raise ValueError("max_failures, window_s and max_clients must be positive")
        self.max_failures = int(max_failures)
        self.window_s = float(window_s)
        self.max_clients = int(max_clients)
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[str, _ClientFailures] = OrderedDict()
        #: attempts refused with 429 since start (for tests and the operator)
        self.refused = 0

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()

    def begin(self, client: str) -> float:
        """Reserve an attempt for ``client``: 0.0 if it may go ahead, else seconds until it may."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:
                entry = _ClientFailures(deque(maxlen=self.max_failures))
                self._clients[client] = entry
                self._trim()
            else:
                self._clients.move_to_end(client)
            failures = entry.failures
            self._expire(failures, now)
            if len(failures) + entry.in_flight >= self.max_failures:
                self.refused += 1
                if len(failures) >= self.max_failures:
                    return max(failures[0] + self.window_s - now, 0.001)
                return 1.0  # the rest of the allowance is in flight; ask again shortly
            entry.in_flight += 1
            return 0.0

    def end(self, client: str, *, failed: bool) -> None:
        """Close an attempt opened with :meth:`begin` (whether it failed decides if it counts)."""
        now = self._clock()
        with self._lock:
            entry = self._clients.get(client)
            if entry is None:  # forgotten meanwhile (more than max_clients addresses)
                return
            failures = entry.failures
            entry.in_flight = max(entry.in_flight - 1, 0)
            if failed:
                failures.append(now)
                if len(failures) == self.max_failures and not entry.warned:
                    entry.warned = True  # once per episode, not once per freed slot
                    log.warning("authentication failures from %s reached %d in %.0f s; refusing further "
                                "attempts from it for a while", client, self.max_failures, self.window_s)
            self._expire(failures, now)
            if not failures and not entry.in_flight:
                del self._clients[client]  # nothing to remember

    def _trim(self) -> None:
        """Forget the least recently seen addresses beyond ``max_clients`` (under the lock)."""
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

    @staticmethod
    def retry_after(seconds: float) -> int:
        """Whole seconds for a ``Retry-After`` header (never 0)."""
        return max(1, math.ceil(seconds))

    def tracked(self) -> int:
        """How many addresses are remembered now (bounded by ``max_clients``)."""
        with self._lock:
            return len(self._clients)
