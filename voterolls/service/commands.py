"""CLI: ``voterolls serve``, ``voterolls accounts create|list|revoke|token``, ``voterolls audit verify|repair``.

Account commands run on the server itself, by someone who can read the
workspace: that filesystem access is the root of trust that creates the
first administrator.  They append to the same audit log the service writes,
write-ahead: the entry is fsynced before the account file changes, and a log
that cannot take it (a torn last entry, a full disk) refuses the command
with nothing changed.  A refused or failed action gets a second entry saying so.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import typer

from voterolls.errors import UserError
from voterolls.extras import require_extra

WORKSPACE = typer.Option(Path("workspace"), "--workspace", "-w", envvar="VOTEROLLS_WORKSPACE",
                         help="Workspace directory (accounts, uploads and the audit log live in W/service/).")


def _cli_actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except Exception:  # no user name in a container
        return f"cli:uid{os.getuid()}"


def _paths(workspace: Path):  # noqa: ANN202
    from voterolls.store import WorkspacePaths

    return WorkspacePaths(Path(workspace))


def _audit(workspace: Path):
    from voterolls.service.audit import AuditLog

    return AuditLog(_paths(workspace).audit_log)


def _audited(workspace: Path, action: str, target: str, status: str, act):  # noqa: ANN001, ANN202
    """Write the entry for ``action`` (durable), then ``act()``; a refusal gets its own entry."""
    log = _audit(workspace)
    log.append(actor=_cli_actor(), role="operator", action=action, target=target, status=status)
    try:
        return act()
    except UserError:
        log.append(actor=_cli_actor(), role="operator", action=action, target=target, status="refused")
        raise


def _parse_size(text: str) -> int:
    t = text.strip().upper().replace(" ", "")
    for suffix, mult in (("TIB", 1024**4), ("GIB", 1024**3), ("MIB", 1024**2), ("KIB", 1024),
                         ("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3), ("B", 1)):
        if t.endswith(suffix):
            t, m = t[: -len(suffix)], mult
            break
    else:
        m = 1
    try:
        n = int(float(t) * m)
    except ValueError:
        raise UserError(f"cannot read the size {text!r}; write e.g. 2GiB or 500MB", field="--max-upload") from None
    if n <= 0:
        raise UserError("the upload limit must be positive", field="--max-upload")
    return n


def register(app: typer.Typer) -> None:
    accounts = typer.Typer(help="Service accounts: create, list, revoke, issue a new token.", no_args_is_help=True)
    audit = typer.Typer(help="The service's tamper-evident audit log.", no_args_is_help=True)
    app.add_typer(accounts, name="accounts")
    app.add_typer(audit, name="audit")

    @app.command()
    def serve(
        workspace: Path = WORKSPACE,
        host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but localhost needs TLS."),
        port: int = typer.Option(8000, help="Port to listen on."),
        max_upload: str = typer.Option("2GiB", "--max-upload", help="Largest upload accepted (per submission)."),
        ssl_certfile: Path | None = typer.Option(None, help="TLS certificate (PEM)."),
        ssl_keyfile: Path | None = typer.Option(None, help="TLS private key (PEM)."),
        max_parallel_ingests: int = typer.Option(2, "--max-parallel-ingests", min=1,
                                                 help="Ingests of different states running at once."),
        insecure_http: bool = typer.Option(False, "--insecure-http",
                                           help="Allow plain HTTP on a non-local address (e.g. behind a TLS proxy)."),
        auth_failures: int | None = typer.Option(
            None, "--auth-failures", min=1,
            help="Failed sign-ins allowed per client address per window, then 429 (default 100)."),
        auth_window: float | None = typer.Option(
            None, "--auth-window", min=1.0, help="Window for --auth-failures, in seconds (default 60)."),
    ) -> None:
        """Run the intake service: state uploads, aggregates, report, audit log."""
        require_extra("service", "voterolls serve")
        import uvicorn

        from voterolls.service.accounts import FailureLimiter
        from voterolls.service.app import create_app

        local = host in ("127.0.0.1", "localhost", "::1")
        tls = ssl_certfile is not None and ssl_keyfile is not None
        if (ssl_certfile is None) != (ssl_keyfile is None):
            raise UserError("give both --ssl-certfile and --ssl-keyfile, or neither")
        if not local and not tls and not insecure_http:
            raise UserError(
                f"refusing to serve voter files over plain HTTP on {host}: give --ssl-certfile and "
                "--ssl-keyfile, or --insecure-http if a TLS proxy sits in front")
        max_upload_bytes = _parse_size(max_upload)
        _audit(workspace).check()  # a torn last entry: refuse in one sentence naming the repair
        if not (_paths(workspace).accounts).exists():
            typer.echo("No accounts yet: create the first administrator with\n"
                       f"  voterolls accounts create admin --role admin --workspace {workspace}", err=True)
        application = create_app(workspace, max_upload_bytes=max_upload_bytes, secure_cookies=tls or None,
                                 max_parallel_ingests=max_parallel_ingests,
                                 auth_limiter=FailureLimiter(
                                     **({"max_failures": auth_failures} if auth_failures else {}),
                                     **({"window_s": auth_window} if auth_window else {})))
        _audit(workspace).append(actor=_cli_actor(), role="operator", action="serve start",
                                 target=f"{host}:{port}", status="tls" if tls else "http")
        scheme = "https" if tls else "http"
        typer.echo(f"voterolls intake on {scheme}://{host}:{port}/  (workspace {workspace})")
        uvicorn.run(application, host=host, port=port, log_level="warning",
                    ssl_certfile=str(ssl_certfile) if tls else None, ssl_keyfile=str(ssl_keyfile) if tls else None,
                    server_header=False)

    @accounts.command("create")
    def accounts_create(
        name: str = typer.Argument(..., help="Account name, e.g. nc-upload."),
        role: str = typer.Option(..., "--role", help="state | analyst | auditor | admin"),
        state: str | None = typer.Option(None, "--state", help="The one state a state uploader sends (e.g. NC)."),
        expires_days: int = typer.Option(90, "--expires-days", help="Token lifetime in days; 0 = never."),
        workspace: Path = WORKSPACE,
    ) -> None:
        """Create an account and print its token (once)."""
        from voterolls.service.accounts import AccountStore

        acct, token = _audited(
            workspace, "create account", f"account {name}", f"role {role} {state or ''}".strip(),
            lambda: AccountStore(_paths(workspace).accounts).create(
                name, role, state, expires_days=expires_days or None))
        typer.echo(f"created {acct.name} ({acct.role}{' ' + acct.state if acct.state else ''})")
        typer.echo("token (shown once; hand it over in person or via a password manager, never by email):")
        typer.echo(token)

    @accounts.command("list")
    def accounts_list(workspace: Path = WORKSPACE) -> None:
        """List accounts (no tokens or hashes)."""
        from voterolls.service.accounts import AccountStore

        _audit(workspace).append(actor=_cli_actor(), role="operator", action="list accounts", target="accounts",
                                 status="names and roles")
        rows = [a.public() for a in AccountStore(_paths(workspace).accounts).list()]
        if not rows:
            typer.echo("no accounts")
            return
        typer.echo(f"{'name':<24} {'role':<8} {'state':<5} {'tokens':>6}  {'expires':<10}  status")
        for r in rows:
            typer.echo(f"{r['name']:<24} {r['role']:<8} {r['state'] or '':<5} {r['live_tokens']:>6}  "
                       f"{(r['expires'] or '')[:10]:<10}  {'revoked ' + r['revoked'][:10] if r['revoked'] else 'active'}")

    @accounts.command("revoke")
    def accounts_revoke(name: str, workspace: Path = WORKSPACE) -> None:
        """Revoke an account and every token it has (a running service sees it at once)."""
        from voterolls.service.accounts import AccountStore

        _audited(workspace, "revoke account", f"account {name}", "ok",
                 lambda: AccountStore(_paths(workspace).accounts).revoke(name))
        typer.echo(f"revoked {name}")

    @accounts.command("token")
    def accounts_token(
        name: str,
        expires_days: int = typer.Option(90, "--expires-days"),
        workspace: Path = WORKSPACE,
    ) -> None:
        """Issue a new token for an account (rotation); print it once."""
        from voterolls.service.accounts import AccountStore

        token = _audited(workspace, "issue token", f"account {name}", "ok",
                         lambda: AccountStore(_paths(workspace).accounts).issue_token(
                             name, expires_days=expires_days or None))
        typer.echo(token)

    @audit.command("verify")
    def audit_verify(
        workspace: Path = WORKSPACE,
        anchor: str | None = typer.Option(None, "--anchor", help="SEQ:HASH of a head you recorded earlier."),
    ) -> None:
        """Check the audit log's hash chain; name the first edited, removed or reordered entry."""
        from voterolls.service.audit import verify

        anc = None
        if anchor:
            seq, _, h = anchor.partition(":")
            if not seq.isdigit() or len(h) != 64:
                raise UserError("write the anchor as SEQ:HASH (the 64-hex hash `audit verify` printed)", field="--anchor")
            anc = (int(seq), h.lower())
        res = verify(_paths(workspace).audit_log, anchor=anc)
        typer.echo(res.message, err=not res.ok)
        if not res.ok:
            raise typer.Exit(1)

    @audit.command("repair")
    def audit_repair(workspace: Path = WORKSPACE) -> None:
        """Cut a torn last entry (a crash mid-write): keep a copy, truncate, append a repair entry."""
        from voterolls.service.audit import repair, torn_tail, verify

        log = _paths(workspace).audit_log
        if not log.exists():
            raise UserError(f"{log}: no audit log here (is --workspace right?)")
        if torn_tail(log) is None:
            res = verify(log)
            if not res.ok:
                raise UserError(f"{res.message}; repair only cuts a torn last entry, so restore the log from a backup")
            typer.echo(f"nothing to repair: {res.message}")
            return
        entry, copy = repair(log, actor=_cli_actor())
        typer.echo(f"repaired {log}: {entry['status']}; repair entry seq {entry['seq']}")
        typer.echo(f"`voterolls audit verify --workspace {workspace}` now shows it; the copy {copy} may be archived")
