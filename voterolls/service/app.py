"""The intake service: a FastAPI app with roles, streamed uploads and an audit trail.

``create_app(workspace)`` builds it; ``voterolls serve`` runs it under
uvicorn.  Every route declares who may call it through :func:`_require`, the
single place where authorisation is decided:

=========================================  ===========================  ==============
route                                      who                          answers
=========================================  ===========================  ==============
GET  /api/me                               any account                  200
POST /api/states/{XX}/submissions          state uploader of XX         202
GET  /api/states/{XX}/submissions          state uploader of XX         200
GET  /api/states/{XX}/jobs/{id}            state uploader of XX         200 / 404
GET  /api/states/{XX}/quarantine           state uploader of XX         200
GET  /api/states/{XX}/matches              state uploader of XX         200
GET  /api/states/{XX}/lists/{name}.csv     state uploader of XX         200 / 404
POST /api/states/{XX}/lists/external       state uploader of XX         200 / 409 / 413 / 422 / 429
GET  /api/aggregates                       analyst                      200
GET  /api/audit, /api/audit/verify         auditor                      200
GET  /api/accounts                         admin                        200
POST /api/accounts, .../{name}/tokens      admin                        201
POST /api/accounts/{name}/revoke           admin                        200
GET  /states/{XX}, /analyst, /auditor,     as the matching API;         200, or 303 to
     /admin, /report                       /report: state and analyst   /login
=========================================  ===========================  ==============

No credentials: 401 (API) or a redirect to the login page (pages); a bad,
expired or revoked token: 401; the wrong role or another state: 403.  After
too many failed authentications from one client address (bearer tokens and
the login form; ``accounts.FailureLimiter``), 429 with ``Retry-After``.  An
ASGI middleware appends every request to the audit log after it is answered.

A submission is either the state's native files (plaintext, the law applied
at ingest) or a sealed-only delivery (``manifest.json``,
``registrations.parquet``, ``vote_history.parquet`` from ``voterolls seal
--sealed-only``), recognised, checked and refused when plaintext is mixed in
by :mod:`voterolls.service.sealed` before anything is queued.

Write-ahead: a route that acts (upload, account change) or serves data
appends its own entry before the action takes effect or the data leaves; when
the log cannot take an entry (:class:`~voterolls.service.audit.AuditUnavailable`:
a torn last entry, a full disk) the request is refused with 503 and nothing
is done.  The middleware checks the log's tail before every request, so a
torn log stops the whole service (health probe included) until
``voterolls audit repair``.

Every error, FastAPI's own validation errors included, is answered in one
shape: ``{"error": "<one sentence>"}`` (an HTML page for browser pages),
never echoing the value the caller sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from voterolls import __version__
from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.privacy import label as privacy_label
from voterolls.schema import JURISDICTIONS
from voterolls.service import data as wsdata
from voterolls.service import lists as svclists
from voterolls.service import sealed as svcsealed
from voterolls.service.accounts import (
    ROLE_LABELS,
    ROLES,
    AccountStore,
    AuthError,
    FailureLimiter,
    Principal,
)
from voterolls.service.audit import AuditLog, AuditUnavailable
from voterolls.service.auth import SESSION_COOKIE, Credentials, SessionStore, csrf_ok, resolve
from voterolls.service.jobs import (
    DetectFn,
    IngestFn,
    JobManager,
    format_state,
    real_detect,
    real_ingest,
)
from voterolls.service.uploads import (
    DEFAULT_MAX_UPLOAD_BYTES,
    UploadRejected,
    human_size,
    is_archive,
    receive,
)
from voterolls.store import WorkspacePaths

log = get_logger(__name__)
HERE = Path(__file__).parent
HOME = {"state": None, "analyst": "/analyst", "auditor": "/auditor", "admin": "/admin"}

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: The model and pair pages carry Splink's bundled Vega inline; Vega compiles its expressions
#: (eval).  They still load nothing: no connect-src, no external script, image or style.
CHART_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "script-src 'unsafe-inline' 'unsafe-eval'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
CHART_PAGE = re.compile(r"^/(model|states/[A-Za-z]{2}/pairs/[0-9a-f]{16})$")
#: The report is one self-contained file with inline CSS and SVG; it still loads nothing.
REPORT_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


#: The answer while the audit log cannot take entries (no server path in it).
AUDIT_DOWN = ("The service cannot write its audit log, so it does nothing and serves no data until an "
              "administrator repairs the log (voterolls audit repair).")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class LoginRequired(Exception):
    """A page was asked for without a session: send the browser to the login form."""


@dataclass
class Service:
    workspace: Path
    accounts: AccountStore
    sessions: SessionStore
    audit: AuditLog
    jobs: JobManager
    detect: DetectFn
    max_upload_bytes: int
    secure_cookies: bool | None
    templates: Environment
    auth_limiter: FailureLimiter

    def record(self, p: Principal | None, action: str, target: str = "", status: str | int = "") -> None:
        """Append an entry, durable on return; 503 (nothing done, nothing served) if it cannot be written."""
        try:
            self.audit.append(actor=p.name if p else "anonymous", role=p.role if p else "-",
                              action=action, target=target, status=status)
        except AuditUnavailable as exc:
            log.error("audit log unavailable: %s", exc)
            raise ApiError(503, AUDIT_DOWN) from None


# ---------------------------------------------------------------- middleware
class AuditMiddleware:
    """Appends one entry per request once its status is known (method, route, status; never a query)."""

    def __init__(self, app, service_getter: Callable[[], Service]) -> None:
        self.app = app
        self.service = service_getter

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        svc = self.service()
        try:
            await run_in_threadpool(svc.audit.check)
        except AuditUnavailable as exc:
            log.error("refusing %s %s: %s", scope["method"], scope["path"], exc)
            return await _refuse_unaudited(scope, receive, send)
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for k, v in _security_headers(scope).items():
                    if k.lower().encode() not in names:
                        headers.append((k.lower().encode(), v.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            st = scope.get("state", {})
            p: Principal | None = st.get("principal")
            route = scope.get("route")
            action = f"{scope['method']} {getattr(route, 'path', None) or scope['path']}"
            target = scope["path"]
            try:
                await run_in_threadpool(svc.audit.append, actor=p.name if p else "anonymous",
                                        role=p.role if p else "-", action=action, target=target,
                                        status=status["code"])
            except AuditUnavailable as exc:  # the answer has gone; the route's own entry was write-ahead
                log.error("audit entry for an answered request not written: %s", exc)


async def _refuse_unaudited(scope, receive, send) -> None:  # noqa: ANN001
    """503 in the service's error shape, with the security headers, before any route runs."""
    headers = {**_security_headers(scope), "Retry-After": "60"}
    resp = JSONResponse({"error": AUDIT_DOWN}, status_code=503, headers=headers)
    await resp(scope, receive, send)


def _security_headers(scope) -> dict[str, str]:
    path = scope.get("path", "")
    tls = {"Strict-Transport-Security": "max-age=31536000"} if scope.get("scheme") == "https" else {}
    return {
        **tls,
        "Content-Security-Policy": REPORT_CSP if path == "/report" else CHART_CSP if CHART_PAGE.match(path) else CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store" if not path.startswith("/static/") else "private, max-age=300",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


# ---------------------------------------------------------------- the app
def create_app(
    workspace: Path | str,
    *,
    ingest: IngestFn | None = None,
    detect: DetectFn | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    secure_cookies: bool | None = None,
    keep_uploads: bool = False,
    max_parallel_ingests: int = 2,
    auth_limiter: FailureLimiter | None = None,
) -> FastAPI:
    """Build the service for ``workspace``.

    ``ingest`` and ``detect`` default to the real pipeline
    (``voterolls.ingest.pipeline.ingest``, ``voterolls.formats.detect_format``);
    tests pass fakes.  At most ``max_parallel_ingests`` ingests run at once
    (one per state at most).  ``secure_cookies=None`` marks the session cookie Secure
    whenever the request came over https.  ``auth_limiter`` bounds failed
    authentications per client address (default: ``FailureLimiter()``, 100 per
    60 s).
    """
    workspace = Path(workspace)
    paths = WorkspacePaths(workspace)
    paths.service_dir.mkdir(parents=True, exist_ok=True)
    accounts = AccountStore(paths.accounts)
    audit = AuditLog(paths.audit_log)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.globals.update(version=__version__, role_labels=ROLE_LABELS, human=human_size)
    env.filters["pct"] = lambda v: "" if v is None else f"{100 * float(v):.0f}%"
    env.filters["num"] = privacy_label  # "1,234", "<10", or "withheld to protect a small cell"
    env.filters["tojson_safe"] = lambda v: json.dumps(v)
    svc = Service(
        workspace=workspace,
        accounts=accounts,
        sessions=SessionStore(accounts),
        audit=audit,
        jobs=JobManager(workspace, ingest or real_ingest,
                        on_event=lambda **kw: audit.append(**kw), keep_uploads=keep_uploads,
                        max_parallel=max_parallel_ingests),
        detect=detect or real_detect,
        max_upload_bytes=int(max_upload_bytes),
        secure_cookies=secure_cookies,
        templates=env,
        auth_limiter=auth_limiter or FailureLimiter(),
    )
    app = FastAPI(title="voterolls intake", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = svc
    app.add_middleware(AuditMiddleware, service_getter=lambda: svc)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _add_handlers(app, svc)
    _add_routes(app, svc)
    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def _add_handlers(app: FastAPI, svc: Service) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        if _wants_html(request):
            html = svc.templates.get_template("error.html").render(
                status=exc.status, message=exc.message, principal=_principal(request))
            return HTMLResponse(html, status_code=exc.status, headers=exc.headers)
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired):
        resp = RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code)
        if message is None:  # starlette's own (form parsing, ...): its detail is a fixed text, not input
            message = str(exc.detail) if isinstance(exc.detail, str) else "The request could not be handled."
        return await _api_error(request, ApiError(exc.status_code, message, dict(exc.headers or {})))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return await _api_error(request, ApiError(422, _validation_message(exc)))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return await _api_error(request, ApiError(
            500, f"The service stopped on an internal error ({type(exc).__name__}); "
                 "the administrator can see the server log."))


def _validation_message(exc: RequestValidationError) -> str:
    """One sentence naming the parameter and what it must be, never the value sent."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("query", "path", "body", "header", "cookie")]
    name = loc[-1] if loc else "a parameter"
    kind = str(first.get("type", ""))
    what = {"int_parsing": "a whole number", "int_type": "a whole number", "float_parsing": "a number",
            "bool_parsing": "true or false", "missing": "given"}.get(kind, "valid")
    if kind == "missing":
        return f"The parameter '{name}' is required."
    return f"The parameter '{name}' must be {what}."


def _principal(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def _client(request: Request) -> str:
    """The caller's address as the ASGI server reports it (behind a proxy: what it forwards)."""
    return request.client.host if request.client else "unknown"


def _too_many_failures(wait: float) -> tuple[str, dict[str, str]]:
    """The 429 message and headers once a client address has used up its failed attempts."""
    secs = FailureLimiter.retry_after(wait)
    msg = (f"Too many failed sign-in attempts from your address; try again in {secs} "
           f"second{'s' if secs != 1 else ''}.")
    return msg, {"Retry-After": str(secs)}


def _credentials(request: Request, svc: Service) -> Credentials:
    """Resolve the caller; a presented bearer token is an attempt the failure limiter counts."""
    attempt = request.headers.get("authorization") is not None
    client = _client(request)
    if attempt:
        wait = svc.auth_limiter.begin(client)
        if wait:  # refused before any check: a flood costs no accounts-file reads
            msg, headers = _too_many_failures(wait)
            raise ApiError(429, msg, headers)
    failed = False
    try:
        creds = resolve(request.headers, request.cookies, svc.accounts, svc.sessions)
        failed = creds.error is not None
    finally:
        if attempt:
            svc.auth_limiter.end(client, failed=failed)
    request.state.principal = creds.principal
    request.state.creds = creds
    return creds


def _require(
    request: Request,
    svc: Service,
    roles: tuple[str, ...],
    state: str | None = None,
    *,
    page: bool = False,
) -> Principal:
    """The one authorisation gate: 401 unknown caller, 403 wrong role or other state."""
    creds = _credentials(request, svc)
    if creds.principal is None:
        if creds.error:  # a token was presented and is bad: never silently fall back
            raise ApiError(401, f"Not authenticated: {creds.error}.", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if page:
            raise LoginRequired()
        raise ApiError(401, "Not authenticated: send 'Authorization: Bearer <token>'.", {"WWW-Authenticate": "Bearer"})
    p = creds.principal
    if p.role not in roles:
        raise ApiError(403, f"Your role ({ROLE_LABELS[p.role]}) may not use this.")
    if state is not None and p.role == "state" and p.state != state:
        raise ApiError(403, f"Your account uploads for {p.state}; it cannot see {state if state in JURISDICTIONS else 'that state'}.")
    return p


def _caller(*roles: str, page: bool = False) -> Any:
    """The authorisation gate (:func:`_require`) as a route dependency: a parameter annotated
    with the result is the signed-in caller, checked for ``roles`` and, on a route with a
    ``{state}`` in its path, for that state; an API answers 401 / 403, a page (``page=True``)
    sends an unknown caller to sign in."""

    def caller(request: Request) -> Principal:
        state = request.path_params.get("state")
        svc: Service = request.app.state.service
        return _require(request, svc, roles, state.upper() if state else None, page=page)

    return Annotated[Principal, Depends(caller)]


AnyAccount = _caller(*ROLES)
StateUploader = _caller("state")
StatePage = _caller("state", page=True)
AnalystApi = _caller("analyst")
AnalystPage = _caller("analyst", page=True)
AuditorApi = _caller("auditor")
AuditorPage = _caller("auditor", page=True)
AdminApi = _caller("admin")
AdminPage = _caller("admin", page=True)
ReaderPage = _caller("state", "analyst", page=True)  # the model view and the national report


def _check_csrf(request: Request, presented: str | None = None) -> None:
    creds: Credentials = request.state.creds
    if creds.via != "session":
        return
    token = request.headers.get("x-csrf-token") or presented
    if not csrf_ok(creds.session, token):
        raise ApiError(403, "The form has expired; reload the page and try again.")


def _state(code: str) -> str:
    code = code.upper()
    if code not in JURISDICTIONS:
        raise ApiError(404, "Unknown state code.")
    return code


def _page(svc: Service, request: Request, name: str, **ctx) -> HTMLResponse:
    creds: Credentials | None = getattr(request.state, "creds", None)
    html = svc.templates.get_template(name).render(
        principal=_principal(request),
        csrf=creds.session.csrf if creds and creds.session else "",
        **ctx,
    )
    return HTMLResponse(html)


def _home(p: Principal) -> str:
    return f"/states/{p.state}" if p.role == "state" else HOME[p.role]


# ---------------------------------------------------------------- routes
def _add_routes(app: FastAPI, svc: Service) -> None:
    """One router per area; authentication is each route's dependency (``AnyAccount``, ``StateUploader``, ...)."""
    for area in (_public_routes, _upload_routes, _state_data_routes, _oversight_routes, _admin_routes, _page_routes):
        router = APIRouter()
        area(router, svc)
        app.include_router(router)


def _public_routes(router: APIRouter, svc: Service) -> None:
    """Sign-in and out, the health check, who am I: no role needed (``me``: any account)."""
    @router.get("/healthz")
    def healthz():
        return {"ok": True}

    @router.get("/", response_class=HTMLResponse)
    def root(request: Request):
        creds = _credentials(request, svc)
        if creds.principal is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse(_home(creds.principal), status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = ""):
        return _page(svc, request, "login.html", error=None, next=_safe_next(next))

    @router.post("/login")
    async def login(request: Request):
        form = await request.form(max_files=0, max_fields=4, max_part_size=4096)
        token = str(form.get("token", "")).strip()
        nxt = _safe_next(str(form.get("next", "")))
        client = _client(request)
        wait = svc.auth_limiter.begin(client)
        if wait:
            msg, headers = _too_many_failures(wait)
            html = svc.templates.get_template("login.html").render(principal=None, csrf="", error=msg, next=nxt)
            return HTMLResponse(html, status_code=429, headers=headers)
        failed = False
        try:
            try:
                p = svc.accounts.authenticate(token)
            except AuthError as exc:
                failed = True
                request.state.principal = None
                reason = {"token expired": "That token has expired; ask your administrator for a new one.",
                          "token revoked": "That token has been revoked."}.get(str(exc), "That token is not valid.")
                html = svc.templates.get_template("login.html").render(principal=None, csrf="", error=reason, next=nxt)
                return HTMLResponse(html, status_code=401)
        finally:
            svc.auth_limiter.end(client, failed=failed)
        request.state.principal = p
        sid, _ = svc.sessions.create(p)
        dest = nxt if nxt and _may_visit(p, nxt) else _home(p)
        resp = RedirectResponse(dest, status_code=303)
        secure = svc.secure_cookies if svc.secure_cookies is not None else request.url.scheme == "https"
        resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict", secure=secure, path="/")
        return resp

    @router.post("/logout")
    async def logout(request: Request):
        creds = _credentials(request, svc)
        if creds.via == "session":
            form = await request.form(max_files=0, max_fields=2, max_part_size=256)
            if csrf_ok(creds.session, str(form.get("csrf", ""))):
                svc.sessions.drop(request.cookies.get(SESSION_COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @router.get("/api/me")
    def me(request: Request, p: AnyAccount):
        return {"name": p.name, "role": p.role, "state": p.state}


def _upload_routes(router: APIRouter, svc: Service) -> None:
    """A state's uploads: submit its files, follow its submissions and their ingest jobs."""
    @router.post("/api/states/{state}/submissions", status_code=202)
    async def upload(request: Request, p: StateUploader, state: str):
        state = _state(state)
        header_csrf = request.headers.get("x-csrf-token")
        if header_csrf is not None:
            _check_csrf(request)
        sid = svc.jobs.new_id()
        folder = svc.jobs.folder(state, sid)
        try:
            form_csrf = header_csrf is None and request.state.creds.via == "session"
            got = await receive(request, folder, svc.max_upload_bytes, require_field="csrf" if form_csrf else None)
            if header_csrf is None:
                _check_csrf(request, got.fields.get("csrf"))
            paths = [f.path for f in got.files]
            chosen = request.query_params.get("format")
            options = _delivery_options(request, got.fields)
            # a sealed-only delivery (tokens and encodings) is checked now; plaintext mixed in is refused
            sealed = await run_in_threadpool(
                svcsealed.classify_submission, Path(svc.workspace), state, got.files, folder
            )
            try:
                if sealed:
                    fmt = svcsealed.SEALED_FORMAT
                elif chosen:
                    fmt = _known_format(chosen)
                elif any(is_archive(f.head) for f in got.files):
                    fmt = None  # unpacked and detected by the ingest, which refuses another state's layout
                else:
                    fmt = await run_in_threadpool(svc.detect, paths)
            except ImportError:
                fmt = None  # no format registry yet: ingest detects (and says) itself
            except UserError as exc:
                if await run_in_threadpool(_history_only, state, paths):
                    fmt = None  # history sent apart from its registrations: read with the state's layout
                else:
                    why = str(exc).replace(str(folder) + "/", "").replace("pass --format", "add ?format=NAME to the upload URL")
                    raise UploadRejected(422, f"The service could not recognise this file as a voter file: {why}") from None
            if fmt is not None:
                owner = format_state(fmt)
                if owner is not None and owner != state:
                    from voterolls.formats.inspect import wrong_state_message  # ingest's sentence

                    raise UploadRejected(422, wrong_state_message(
                        fmt, owner, state, remedy=f"your account uploads for {state}, so {owner}'s files are not accepted here"))
        except (UploadRejected, ApiError) as exc:
            svc.jobs.discard(state, sid)
            if isinstance(exc, ApiError):
                raise
            raise ApiError(exc.status, exc.message) from None
        except BaseException:
            svc.jobs.discard(state, sid)
            raise
        earlier = _same_as(svc, state, got.files)
        try:  # write-ahead: no entry, no ingest
            confirmed = f", confirmed: {', '.join(sorted(options))}" if options else ""  # the state's explicit say-so
            svc.record(p, "upload received", f"{state}/{sid}",
                       f"{_n(len(got.files), 'file')}, {sum(f.size for f in got.files)} bytes{confirmed}")
        except ApiError:
            svc.jobs.discard(state, sid)
            raise
        rec = svc.jobs.submit(state=state, sid=sid, account=p.name, files=got.files, fmt=fmt, options=options)
        body = {
            "submission": sid,
            "status": rec["status"],
            "format": fmt,
            "files": rec["files"],
            "job_url": f"/api/states/{state}/jobs/{sid}",
            "page_url": f"/states/{state}",
        }
        if earlier:
            body["note"] = (f"Identical to submission {earlier}: the ingest recognises the files by "
                            "SHA-256 and keeps one snapshot.")
        if _prefers_redirect(request):
            return RedirectResponse(f"/states/{state}?job={sid}", status_code=303)
        return JSONResponse(body, status_code=202)

    @router.get("/api/states/{state}/submissions")
    def submissions(request: Request, p: StateUploader, state: str):
        state = _state(state)
        recs = svc.jobs.list(state)
        svc.record(p, "read submissions", state, _n(len(recs), "submission"))
        return {"state": state, "submissions": recs}

    @router.get("/api/states/{state}/jobs/{sid}")
    def job(request: Request, p: StateUploader, state: str, sid: str):
        state = _state(state)
        rec = svc.jobs.get(state, sid)
        if rec is None:
            raise ApiError(404, "No such submission for this state.")
        svc.record(p, "read submission", f"{state}/{sid}", rec["status"])
        return rec


def _state_data_routes(router: APIRouter, svc: Service) -> None:
    """What a state reads of its own data: quarantine counts, its matches, its lists, an external list matched."""
    @router.get("/api/states/{state}/quarantine")
    def quarantine(request: Request, p: StateUploader, state: str):
        state = _state(state)
        out = _quarantine_summary(svc, state)
        svc.record(p, "read quarantine summary", state, "counts only")
        return out

    @router.get("/api/states/{state}/matches")
    def matches(request: Request, p: StateUploader, state: str, limit: int = 500):
        state = _state(state)
        out = wsdata.state_matches(svc.workspace, state, limit=max(1, min(limit, 5000)))
        svc.record(p, "read own matches", state, f"{len(out['rows'])} of {out['total']} pairs")
        return {"state": state, **out}

    @router.get("/api/states/{state}/lists/{name}.csv")
    def list_download(request: Request, p: StateUploader, state: str, name: str):
        state = _state(state)
        got = svclists.list_csv(svc.workspace, state, name)
        if got is None:
            svc.record(p, "download list", f"{state}/{name}.csv", "not available")
            raise ApiError(404, "No such list for this state (yet).")
        body, rows = got
        svc.record(p, "download list", f"{state}/{name}.csv", _n(rows, "row"))
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{state}_{name}.csv"'})

    @router.post("/api/states/{state}/lists/external")
    async def external_list_match(request: Request, p: StateUploader, state: str):
        """Match an external list the state supplies (death records, ...) against its own registrations.

        Streamed to a temporary directory outside the workspace (bounded by
        ``svclists.MAX_EXTERNAL_BYTES`` and the service's upload cap), read
        through the mapping engine (``?format=`` a shipped layout, or a
        ``.toml`` mapping uploaded beside the list), matched with the trained
        model, answered as CSV and deleted: the service keeps neither the list
        nor the matches.  Rows carry this state's own registration, the
        evidence and the external record's id and line, nothing else of it.
        """
        import shutil
        import tempfile

        state = _state(state)
        target = f"{state}/external_matches.csv"
        header_csrf = request.headers.get("x-csrf-token")
        if header_csrf is not None:
            _check_csrf(request)
        note = svclists.external_unavailable(svc.workspace)
        if note:
            svc.record(p, "match external list", target, "not available")
            raise ApiError(409, note)
        scratch = Path(tempfile.mkdtemp(prefix="vr-external-"))
        folder = scratch / "upload"
        try:
            try:
                form_csrf = header_csrf is None and request.state.creds.via == "session"
                limit = min(svc.max_upload_bytes, svclists.MAX_EXTERNAL_BYTES)
                got = await receive(request, folder, limit, require_field="csrf" if form_csrf else None, archives=False)
                if header_csrf is None:
                    _check_csrf(request, got.fields.get("csrf"))
            except UploadRejected as exc:
                svc.record(p, "match external list", target, f"rejected ({exc.status})")
                raise ApiError(exc.status, exc.message) from None
            mappings = [f.path for f in got.files if f.name.lower().endswith(".toml")]
            lists_in = [f.path for f in got.files if not f.name.lower().endswith(".toml")]
            chosen = request.query_params.get("format") or got.fields.get("format") or None
            try:
                if len(mappings) > 1:
                    raise UserError("upload at most one mapping (.toml) file with the list")
                if not lists_in:
                    raise UserError("no external list in the upload, only a mapping file")
                fmt = str(mappings[0]) if mappings else (_known_format(chosen) if chosen else None)
                body, doc = await run_in_threadpool(
                    svclists.match_external_upload, svc.workspace, state, lists_in, fmt, scratch)
            except svclists.ExternalBusy:
                svc.record(p, "match external list", target, "refused (429)")
                raise ApiError(429, "A list for this state is already being matched; try again when it is done.",
                               {"Retry-After": "30"}) from None
            except UserError as exc:
                why = str(exc).replace(str(folder) + "/", "").replace(str(scratch), "the upload")
                why = why.replace("pass --format", "add ?format=NAME or a mapping .toml file to the upload")
                svc.record(p, "match external list", target, "refused (422)")
                raise ApiError(422, f"The external list could not be matched: {why}") from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        src = doc["source"]
        svc.record(p, "match external list", target,
                   f"{_n(doc['rows'], 'row')}; {src.get('rows_read', 0)} read, {src.get('loaded', 0)} loaded, "
                   f"{src.get('quarantined', 0)} quarantined")
        headers = {
            "Content-Disposition": f'attachment; filename="{state}_external_matches.csv"',
            "X-List-Rows": str(doc["rows"]),
            "X-Rows-Read": str(src.get("rows_read", 0)),
            "X-Rows-Loaded": str(src.get("loaded", 0)),
            "X-Rows-Quarantined": str(src.get("quarantined", 0)),
            "X-Expected-Different-People-At-Review": f"{doc['expected_false_positives_at_review']:.2f}",
        }
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


def _oversight_routes(router: APIRouter, svc: Service) -> None:
    """The analyst's aggregates and the auditor's log (API)."""
    @router.get("/api/aggregates")
    def aggregates(request: Request, p: AnalystApi):
        out = wsdata.aggregates(svc.workspace)
        svc.record(p, "read aggregates", "all states", "suppressed counts")
        return out

    @router.get("/api/audit")
    def audit_entries(request: Request, p: AuditorApi, limit: int = 200):
        rows = svc.audit.tail(max(1, min(limit, 5000)))
        svc.record(p, "read audit log", "audit.log", f"{len(rows)} entries")
        return {"entries": rows}

    @router.get("/api/audit/verify")
    def audit_verify(request: Request, p: AuditorApi):
        res = svc.audit.verify()
        svc.record(p, "verify audit log", "audit.log", "ok" if res.ok else f"broken at {res.bad_seq}")
        return {"ok": res.ok, "entries": res.entries, "bad_seq": res.bad_seq, "message": res.message,
                "head_seq": res.head_seq, "head_hash": res.head_hash}


def _admin_routes(router: APIRouter, svc: Service) -> None:
    """Accounts and tokens, through the API and the admin page."""
    @router.get("/api/accounts")
    def list_accounts(request: Request, p: AdminApi):
        rows = [a.public() for a in svc.accounts.list()]
        svc.record(p, "list accounts", "accounts", _n(len(rows), "account"))
        return {"accounts": rows}

    @router.post("/api/accounts", status_code=201)
    async def create_account(request: Request, p: AdminApi):
        _check_csrf(request)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Send JSON: {\"name\": ..., \"role\": ..., \"state\": ...}.") from None
        acct, token = _create(svc, p, body if isinstance(body, dict) else {})
        return JSONResponse({"account": acct.public(), "token": token,
                             "note": "Shown once: store it in a password manager."}, status_code=201)

    @router.post("/api/accounts/{name}/revoke")
    def revoke_account(request: Request, p: AdminApi, name: str):
        _check_csrf(request)
        acct = _revoke(svc, p, name)
        return {"account": acct.public()}

    @router.post("/api/accounts/{name}/tokens", status_code=201)
    def new_token(request: Request, p: AdminApi, name: str):
        _check_csrf(request)
        svc.record(p, "issue token", f"account {name}", "ok")  # write-ahead
        try:
            token = svc.accounts.issue_token(name)
        except UserError as exc:
            svc.record(p, "issue token", f"account {name}", "refused (404)")
            raise ApiError(404, str(exc)) from None
        return JSONResponse({"name": name, "token": token, "note": "Shown once."}, status_code=201)

    @router.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, p: AdminPage):
        rows = [a.public() for a in svc.accounts.list()]
        svc.record(p, "view accounts", "accounts", _n(len(rows), "account"))
        return _page(svc, request, "admin.html", accounts=rows,
                     roles=ROLES, states=JURISDICTIONS, new_token=None, error=None)

    @router.post("/admin/accounts", response_class=HTMLResponse)
    async def admin_create(request: Request, p: AdminPage):
        form = await request.form(max_files=0, max_fields=8, max_part_size=1024)
        _check_csrf(request, str(form.get("csrf", "")))
        body = {k: str(v) for k, v in form.items() if k in ("name", "role", "state", "expires_days")}
        new_token, error = None, None
        try:
            acct, token = _create(svc, p, body)
            new_token = {"name": acct.name, "token": token}
        except ApiError as exc:
            error = exc.message
        resp = _page(svc, request, "admin.html", accounts=[a.public() for a in svc.accounts.list()],
                     roles=ROLES, states=JURISDICTIONS, new_token=new_token, error=error)
        resp.status_code = 201 if new_token else 400
        return resp

    @router.post("/admin/accounts/{name}/revoke")
    async def admin_revoke(request: Request, p: AdminPage, name: str):
        form = await request.form(max_files=0, max_fields=2, max_part_size=256)
        _check_csrf(request, str(form.get("csrf", "")))
        _revoke(svc, p, name)
        return RedirectResponse("/admin", status_code=303)


def _page_routes(router: APIRouter, svc: Service) -> None:
    """The HTML pages each role lands on, the model and pair views and the national report."""
    report_cache: dict[str, Any] = {"key": None, "html": None}
    report_lock = threading.Lock()

    @router.get("/states/{state}", response_class=HTMLResponse)
    def state_page(request: Request, p: StatePage, state: str, job: str = ""):
        state = _state(state)
        recs = svc.jobs.list(state)
        active = [r for r in recs if r["status"] in ("queued", "ingesting")]
        m = wsdata.state_matches(svc.workspace, state, limit=200)
        lists = svclists.state_lists(svc.workspace, state)
        svc.record(p, "view state page", state, f"{_n(len(recs), 'submission')}, {_n(len(m['rows']), 'pair')}, "
                   f"{_n(len(lists['lists']), 'list')}")
        return _page(svc, request, "state.html", state=state, submissions=recs[:25], active=active,
                     matches=m, lists=lists, quarantine=_quarantine_summary(svc, state),
                     stale=wsdata.stale_products(svc.workspace),
                     max_upload=svc.max_upload_bytes, highlight=job)

    @router.get("/states/{state}/pairs/{ref}", response_class=HTMLResponse)
    def pair_view(request: Request, p: StatePage, state: str, ref: str):
        """Splink's waterfall for one of the state's own pairs (no record values on it)."""
        from voterolls.report.model_page import pair_page

        state = _state(state)
        model = WorkspacePaths(Path(svc.workspace)).link.model
        found = (
            wsdata.state_matches(svc.workspace, state, limit=1, pair_ref=ref)["rows"]
            if re.fullmatch(r"[0-9a-f]{16}", ref) and model.is_file()
            else []
        )
        if not found:  # not a pair of this state's (or no model): nothing to show, nothing said
            svc.record(p, "open pair", f"{state}/pairs/{ref[:16]}", "not found")
            raise ApiError(404, f"No such pair among {state}'s matches.")
        svc.record(p, "open pair", f"{state}/pairs/{ref}", "waterfall")
        return HTMLResponse(pair_page(model, found[0], state))

    @router.get("/analyst", response_class=HTMLResponse)
    def analyst_page(request: Request, p: AnalystPage):
        agg = wsdata.aggregates(svc.workspace)
        svc.record(p, "view aggregates", "all states", "suppressed counts")
        return _page(svc, request, "analyst.html", agg=agg, stale=wsdata.stale_products(svc.workspace))

    @router.get("/auditor", response_class=HTMLResponse)
    def auditor_page(request: Request, p: AuditorPage, limit: int = 200, all: int = 0):
        res = svc.audit.verify()
        rows = svc.audit.tail(max(1, min(limit, 2000)))
        hidden = 0
        if not all:  # page assets (style sheet, script) are logged too; hide them unless asked
            kept = [e for e in rows if not e["action"].startswith("GET /static/")]
            hidden, rows = len(rows) - len(kept), kept
        svc.record(p, "view audit log", "audit.log", f"{len(rows)} entries")
        return _page(svc, request, "auditor.html", verify=res, entries=rows, hidden=hidden, show_all=bool(all))

    @router.get("/model", response_class=HTMLResponse)
    def model_view(request: Request, p: ReaderPage):
        """Splink's charts and the m/u table of the trained model: parameters, no voter data."""
        from voterolls.report.model_page import model_page

        model = WorkspacePaths(Path(svc.workspace)).link.model
        if not model.is_file():
            svc.record(p, "view model", "linkage model", "not available")
            raise ApiError(404, "Linkage has not been run yet: there is no model to show.")
        svc.record(p, "view model", "linkage model", "parameters only")
        return HTMLResponse(model_page(model))

    @router.get("/report")
    def report_page(request: Request, p: ReaderPage):
        with report_lock:
            key = _report_key(svc.workspace)
            if report_cache["key"] == key and report_cache["html"] is not None:
                html = report_cache["html"]
            else:
                html, ok = _render_report(svc)
                report_cache.update(key=key if ok else None, html=html if ok else None)
        svc.record(p, "view report", "national report", "aggregates")
        return HTMLResponse(html)


def _create(svc: Service, p: Principal, body: dict):
    """Create an account; its audit entry is written first (write-ahead), a refusal gets a second one."""
    try:
        days = body.get("expires_days")
        days = int(days) if days not in (None, "") else 90
    except ValueError:
        raise ApiError(400, "expires_days must be a whole number of days.") from None
    name, role = str(body.get("name", "")), str(body.get("role", ""))
    state = str(body.get("state") or "") or None
    target = f"account {name}"
    svc.record(p, "create account", target, f"role {role} {state or ''}".strip())
    try:
        acct, token = svc.accounts.create(name, role, state, expires_days=days if days > 0 else None)
    except (UserError, ValueError) as exc:
        svc.record(p, "create account", target, "refused (400)")
        raise ApiError(400, str(exc)) from None
    return acct, token


def _revoke(svc: Service, p: Principal, name: str):
    svc.record(p, "revoke account", f"account {name}", "ok")  # write-ahead
    try:
        acct = svc.accounts.revoke(name)
    except UserError as exc:
        svc.record(p, "revoke account", f"account {name}", "refused (404)")
        raise ApiError(404, str(exc)) from None
    svc.sessions.drop_account(name)
    return acct


#: Form fields / query parameters a state sets to confirm a delivery the guards would refuse
#: (``allow_shrink``) or to make it a whole-state replacement (``replace_state``).
DELIVERY_FLAGS = ("allow_shrink", "replace_state")


def _delivery_options(request: Request, fields: dict[str, str]) -> dict[str, bool]:
    """The delivery flags the uploader set explicitly (a ticked box or ``?allow_shrink=1``)."""
    out = {}
    for name in DELIVERY_FLAGS:
        value = fields.get(name, request.query_params.get(name, ""))
        if str(value).strip().lower() in ("1", "yes", "true", "on"):
            out[name] = True
    return out


def _history_only(state: str, paths: list) -> bool:
    try:
        from voterolls.ingest.pipeline import history_only_format
    except ImportError:
        return False
    return history_only_format(state, paths) is not None


def _known_format(name: str) -> str:
    """A format the uploader named (for a file that fits several layouts); UserError if unknown."""
    from voterolls.formats import get_format

    return get_format(name).name


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _same_as(svc: Service, state: str, files) -> str | None:
    hashes = sorted(f.sha256 for f in files)
    for rec in svc.jobs.list(state):
        if rec["status"] == "done" and sorted(f["sha256"] for f in rec["files"]) == hashes:
            return rec["id"]
    return None


def _quarantine_summary(svc: Service, state: str) -> dict:
    """The latest finished submission's quarantine counts (field, reason, rows): no row content."""
    for rec in svc.jobs.list(state):
        if rec["status"] == "done" and rec.get("result"):
            res = rec["result"]
            q = res.get("quarantine") if isinstance(res, dict) else None
            return {"submission": rec["id"], "quarantine": q if q is not None else {},
                    "counts": {k: v for k, v in res.items() if isinstance(v, int | float)}}
    return {"submission": None, "quarantine": {}, "counts": {}}


def _prefers_redirect(request: Request) -> bool:
    """A plain HTML form post (no script) gets sent back to the page instead of JSON."""
    creds: Credentials = request.state.creds
    accept = request.headers.get("accept", "")
    return creds.via == "session" and "text/html" in accept and request.headers.get("x-csrf-token") is None


def _safe_next(nxt: str) -> str:
    return nxt if nxt.startswith("/") and not nxt.startswith("//") and "\\" not in nxt else ""


def _may_visit(p: Principal, path: str) -> bool:
    if p.role == "state":
        return path == f"/states/{p.state}" or path == "/report"
    return path in ({"analyst": ("/analyst", "/report"), "auditor": ("/auditor",), "admin": ("/admin",)}[p.role])


def _report_key(workspace: Path) -> str:
    """Changes whenever a snapshot, the linkage, the estimates or the request tracker change.

    Snapshot folders are named by unique ids, so listing them is enough; the
    catalog file itself is rewritten on every open and cannot be the key.
    """
    parts = sorted(str(p.relative_to(workspace)) for p in workspace.glob("states/*/*") if p.is_dir())
    for pattern in ("link/*", "estimates/*", "requests/*"):
        for f in sorted(workspace.glob(pattern)):
            if f.is_file():
                st = f.stat()
                parts.append(f"{f.relative_to(workspace)}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _render_report(svc: Service) -> tuple[str, bool]:
    """The national report from ``voterolls.report`` (aggregates only), or a page saying why not."""
    def missing(reason: str) -> tuple[str, bool]:
        return svc.templates.get_template("report_missing.html").render(principal=None, csrf="", reason=reason), False

    from voterolls.report import gather, render

    try:
        data = gather(svc.workspace)
        if WorkspacePaths(Path(svc.workspace)).link.model.is_file():
            data.model_page = "/model"  # Splink's charts, served beside the report
        html = render(data)
    except UserError as exc:
        return missing(str(exc))
    except Exception as exc:  # a bug in a stage should not take the service down
        log.exception("report rendering failed")
        return missing(f"the report could not be built ({type(exc).__name__}; see the server log)")
    # A slim bar back to the service; the report itself stays byte-for-byte what `voterolls report` writes.
    bar = ('<div style="background:#17233b;padding:6px 16px;font:14px system-ui,sans-serif">'
           '<a href="/" style="color:#dbe6ff;text-decoration:none">&larr; voterolls intake</a></div>')
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, html, count=1), True
