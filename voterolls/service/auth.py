"""Who is asking: bearer tokens for the API, session cookies for the pages.

The API takes ``Authorization: Bearer vr_...``.  The pages take a session
cookie set by the login form: a fresh random id (not the token), HttpOnly,
SameSite=Strict, Secure whenever the service runs over TLS, held only in the
server's memory as a hash, ending after 8 idle hours, 12 hours in all, at
logout, or as soon as the token behind it is revoked or expires.  A form or
script that changes something with a session cookie must also present the
session's CSRF token (belt and braces on top of SameSite=Strict).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from voterolls.service.accounts import AccountStore, AuthError, Principal

SESSION_COOKIE = "vr_session"
IDLE_SECONDS = 8 * 3600
ABSOLUTE_SECONDS = 12 * 3600


@dataclass
class Session:
    principal: Principal
    csrf: str
    created: float
    last_seen: float


class SessionStore:
    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def create(self, principal: Principal) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(principal, secrets.token_urlsafe(24), now, now)
        with self._lock:
            self._sessions[self._key(sid)] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        key = self._key(sid)
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now - session.last_seen > IDLE_SECONDS or now - session.created > ABSOLUTE_SECONDS:
                del self._sessions[key]
                return None
        if not self._accounts.still_valid(session.principal):
            self.drop(sid)
            return None
        session.last_seen = now
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self._sessions.pop(self._key(sid), None)

    def drop_account(self, name: str) -> None:
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.principal.name == name]:
                del self._sessions[key]


@dataclass(frozen=True)
class Credentials:
    """What a request presented, resolved."""

    principal: Principal | None
    #: "bearer", "session" or None
    via: str | None
    session: Session | None = None
    #: why a presented bearer token failed ("invalid token", "token expired", ...)
    error: str | None = None


def resolve(headers, cookies, accounts: AccountStore, sessions: SessionStore) -> Credentials:
    """Bearer first (an explicit header wins), then the session cookie."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return Credentials(None, "bearer", error="use 'Authorization: Bearer <token>'")
        try:
            return Credentials(accounts.authenticate(value.strip()), "bearer")
        except AuthError as exc:
            return Credentials(None, "bearer", error=str(exc))
    session = sessions.get(cookies.get(SESSION_COOKIE))
    if session is not None:
        return Credentials(session.principal, "session", session)
    return Credentials(None, None)


def csrf_ok(session: Session | None, presented: str | None) -> bool:
    return bool(session and presented and hmac.compare_digest(session.csrf, presented))
