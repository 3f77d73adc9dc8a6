"""CLI for state law in code: ``policy show|check``, ``seal``, ``seal-key``, ``requests``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from voterolls.errors import UserError

_out = Console()
_err = Console(stderr=True)


# --------------------------------------------------------------------------
# policy
# --------------------------------------------------------------------------

policy_app = typer.Typer(help="Each state's disclosure law as data.", no_args_is_help=True)


def _state(code: str) -> str:
    from voterolls.schema import JURISDICTIONS

    code = code.strip().upper()
    if code not in JURISDICTIONS:
        raise UserError(
            f"unknown state code {code[:8]!r} (expected one of the 50 states + DC)", field="STATE"
        )
    return code


@policy_app.command("show")
def policy_show(
    state: Annotated[str, typer.Argument(help="USPS code, e.g. NC")],
) -> None:
    """Show a state's disclosure policy with each value's confidence and sources."""
    from voterolls.policy import POLICY_FIELDS, get_policy

    p = get_policy(_state(state))
    t = Table(title=f"{p.state} disclosure policy (draft, not legal advice)")
    t.add_column("field")
    t.add_column("as written")
    t.add_column("enforced as")
    t.add_column("confidence")
    for name in POLICY_FIELDS:
        raw = p.raw.get(name, "")
        value = getattr(p, name)
        shown = value if isinstance(value, str) else ("yes" if value else "no")
        style = "yellow" if raw == "unknown" else ""
        t.add_row(name, raw, shown, p.confidence_of(name), style=style)
    _out.print(t)
    from voterolls.policy.model import source_descriptions

    described = source_descriptions()
    _out.print("[bold]sources[/] (voterolls/policy/state_policy_sources.md):")
    for key in p.sources or ("(none)",):
        desc = described.get(key, "not described in the sources file")
        _out.print(f"  {key}: {desc[:200]}", highlight=False, markup=False)
    _out.print(f"[bold]notes:[/] {p.notes}", highlight=False)
    _out.print("Unknown values (yellow) are enforced as the most restrictive choice.")


@policy_app.command("check")
def policy_check(
    state: Annotated[str, typer.Argument(help="USPS code")],
    file: Annotated[Path, typer.Argument(help="a state file (only its header / layout is read)")],
    format: Annotated[
        str | None, typer.Option("--format", help="native format name (default: detect)")
    ] = None,
) -> None:
    """List which columns of FILE the state's law does not allow, and what ingest does with them."""
    from voterolls.policy import get_policy
    from voterolls.policy.check import GOVERNED, check_file

    p = get_policy(_state(state))
    basis, checks = check_file(file, p, format)
    t = Table(title=f"{file.name} under {p.state} policy ({basis})")
    for c in ("column", "national field", "allowed", "ingest will"):
        t.add_column(c)
    bad = 0
    shown = [
        c for c in checks if not c.allowed or c.field in GOVERNED or c.action.startswith("not read")
    ]
    for c in shown:
        bad += not c.allowed
        t.add_row(c.column, c.field or "", "yes" if c.allowed else "[red]no[/]", c.action)
    _out.print(t)
    _out.print(
        f"{bad} column(s) not allowed; {len(checks) - len(shown)} other column(s) not governed by the "
        "disclosure policy (names, address, status ... pass through)."
    )


# --------------------------------------------------------------------------
# seal
# --------------------------------------------------------------------------


def seal_command(
    in_path: Annotated[
        Path, typer.Argument(metavar="IN", help="the state's internal identifiers CSV")
    ],
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="sealed sidecar CSV to write")],
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="consortium key file (else $VOTEROLLS_SEAL_KEY)"),
    ] = None,
    clk: Annotated[
        bool, typer.Option("--clk", help="add name_clk Bloom-filter encodings of the names")
    ] = False,
    clk_harden: Annotated[str, typer.Option("--clk-harden", help="none | xor_fold")] = "none",
    format: Annotated[
        str | None,
        typer.Option("--format", help="seal columns of a native file of this format in place"),
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            "--columns", help="with --format: native columns to seal, e.g. BIRTH_DATE=dob,SSN4"
        ),
    ] = None,
    sealed_only: Annotated[
        bool,
        typer.Option(
            "--sealed-only",
            help="IN is the state's native registrations file; OUT a directory holding only "
            "keyed tokens and name encodings (no plaintext name or date)",
        ),
    ] = False,
    state: Annotated[
        str | None, typer.Option("--state", help="with --sealed-only: USPS code of the state")
    ] = None,
    also: Annotated[
        list[Path] | None,
        typer.Option("--with", help="with --sealed-only: another file of the delivery (vote history)"),
    ] = None,
    identifiers: Annotated[
        Path | None,
        typer.Option(
            "--identifiers",
            help="with --sealed-only: internal identifiers CSV whose SSN4 / licence are sealed too",
        ),
    ] = None,
) -> None:
    """Seal identifiers into keyed tokens (run by the state, before sending).

    Default: IN is the state's identifiers CSV (state_voter_id plus any of dob,
    ssn4, dl_number, first_name, last_name) and OUT the sidecar
    state_voter_id,dob_token,ssn4_token,dl_token[,name_clk] (docs/PRIVACY.md).
    With --format and --columns, the named columns of a native file are sealed
    in place and the file keeps its native format.
    """
    from voterolls.seal import load_key, seal_file, seal_native

    if sealed_only:
        _seal_sealed_only(in_path, out_path, key_file, format, columns, state, also, identifiers)
        return
    if state or also or identifiers:
        raise UserError("--state, --with and --identifiers go with --sealed-only", field="--sealed-only")
    if clk_harden not in ("none", "xor_fold"):
        raise UserError("--clk-harden must be none or xor_fold", field="--clk-harden")
    if (format is None) != (columns is None):
        raise UserError("--format and --columns go together", field="--columns")
    key = load_key(key_file)
    if format is not None:
        cols = [c.strip() for c in (columns or "").split(",") if c.strip()]
        report = seal_native(in_path, out_path, key, format=format, columns=cols)
    else:
        report = seal_file(in_path, out_path, key, clk=clk, harden=clk_harden)  # type: ignore[arg-type]
    rate = f", {report.tokens_per_second:,.0f} tokens/s" if report.tokens_total >= 10_000 else ""
    _out.print(f"sealed {report.rows:,} rows -> {out_path} ({report.tokens_total:,} tokens{rate})")
    for f, n in sorted(report.invalid.items()):
        _err.print(
            f"warning: {n:,} {f} value(s) could not be normalised and were left empty "
            f"(first at line {report.first_invalid_line[f]})"
        )
    if report.ignored_columns:
        _err.print(f"note: columns not sealed and not copied: {', '.join(report.ignored_columns)}")


def _seal_sealed_only(
    in_path: Path,
    out_path: Path,
    key_file: Path | None,
    format: str | None,
    columns: str | None,
    state: str | None,
    also: list[Path] | None,
    identifiers: Path | None,
) -> None:
    from voterolls.policy.sealed_only import SealedOnlyRequest, require_encoder, seal_sealed_only
    from voterolls.seal import load_key

    if columns is not None:
        raise UserError("--columns does not go with --sealed-only", field="--columns")
    if not state:
        raise UserError("--sealed-only needs --state (the USPS code of the state)", field="--state")
    require_encoder()
    req = SealedOnlyRequest(
        files=(in_path, *(also or [])),
        state=state.strip().upper(),
        out_dir=out_path,
        key=load_key(key_file),
        format=format,
        identifiers=identifiers,
    )
    r = seal_sealed_only(req)
    typer.echo(
        f"sealed-only delivery for {req.state}: {r.sealed:,} registrations, "
        f"{r.vote_history:,} vote-history rows, {r.quarantined:,} rows quarantined -> {out_path} "
        "(tokens and name encodings only)"
    )


def seal_key_command(
    path: Annotated[
        Path, typer.Argument(help="where to write the new key (mode 0600; never overwritten)")
    ],
) -> None:
    """Create a new random consortium sealing key."""
    from voterolls.seal import write_new_key

    write_new_key(path)
    _out.print(
        f"new key written to {path}; share it only with the contributing states, never the compiler"
    )


# --------------------------------------------------------------------------
# requests
# --------------------------------------------------------------------------

requests_app = typer.Typer(help="Request tracker: requested vs allowed vs delivered, per state.")

_WS_HELP = "ingested workspace (delivered fields are read from it)"
_TRACKER_HELP = "tracker file (default: WORKSPACE/requests/tracker.json)"


def _tracker_path(workspace: Path | None, tracker: Path | None) -> Path | None:
    """``--tracker``, else the workspace's tracker; None when neither was given."""
    if tracker is not None:
        return tracker
    if workspace is None:
        return None
    from voterolls.store import WorkspacePaths

    return WorkspacePaths(workspace).tracker


def _tracker_to_write(workspace: Path | None, tracker: Path | None) -> Path:
    from voterolls.store import workspace_option_default

    return _tracker_path(workspace or workspace_option_default(), tracker)


@requests_app.callback(invoke_without_command=True)
def requests_root(
    ctx: typer.Context,
    workspace: Annotated[Path | None, typer.Option("--workspace", help=_WS_HELP)] = None,
    tracker: Annotated[Path | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
) -> None:
    """Print the 51-row tracker with coverage (same as `requests show`)."""
    if ctx.invoked_subcommand is None:
        requests_show(workspace=workspace, tracker=tracker, state=None)


@requests_app.command("show")
def requests_show(
    workspace: Annotated[Path | None, typer.Option("--workspace", help=_WS_HELP)] = None,
    tracker: Annotated[Path | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
    state: Annotated[str | None, typer.Option("--state", help="one state, field by field")] = None,
) -> None:
    """Per state: status, fields requested / allowed / delivered, registrants; national coverage."""
    from voterolls import requests as rq

    con = rq.open_workspace(workspace) if workspace is not None else None
    tr = rq.Tracker.load(_tracker_path(workspace, tracker))
    cov = rq.coverage(con, tracker=tr)
    if state:
        _print_state(rq, cov, _state(state))
        return
    t = Table(title=f"Request tracker: {tr.request.title} ({tr.request.sent})")
    for c, j in (
        ("state", "left"),
        ("status", "left"),
        ("responded / as of", "left"),
        ("allowed", "right"),
        ("delivered", "right"),
        ("weight", "right"),
    ):
        t.add_column(c, justify=j)
    n_req = len(cov["requested_fields"])
    for row in cov["states"]:
        delivered = "" if row["delivered"] is None else f"{len(row['delivered'])}/{n_req}"
        t.add_row(
            row["state"],
            row["status"],
            row["date_responded"] or (f"as of {row['as_of']}" if row["as_of"] else ""),
            f"{len(row['allowed'])}/{n_req}",
            delivered,
            f"{row['registrants']:,}" if row["registrants"] is not None else "n/a",
        )
    _out.print(t)
    n = cov["national"]
    counts = ", ".join(f"{k} {v}" for k, v in n["status_counts"].items())
    _out.print(f"Status: {counts}")
    _out.print(
        f"Share of the national weight in states that complied or partly complied: "
        f"{n['registrants_share_responding']:.1%} of {n['registrants_total']:,}"
    )
    _out.print(f"Requested fields the law allows (weighted): {n['allowed_field_share']:.1%}")
    if n["delivered_field_share"] is not None:
        _out.print(
            f"Share of the national weight with data delivered: {n['registrants_share_delivered']:.1%}; "
            f"requested fields delivered (weighted): {n['delivered_field_share']:.1%}"
        )
    _out.print(
        "A field counts when allowed / delivered in full (year-only DOB and sealed tokens are shown "
        "per state, not counted). Weight: " + cov["registrants_note"] + ".",
        highlight=False,
    )


def _print_state(rq, cov: dict, state: str) -> None:
    row = next(r for r in cov["states"] if r["state"] == state)
    t = Table(title=f"{state}: {row['status']} ({row['date_responded'] or 'no date'})")
    for c in ("requested field", "law allows", "delivered"):
        t.add_column(c)
    for f in cov["requested_fields"]:
        allowed = row["allowed_detail"][f]
        delivered = "" if row["delivered_detail"] is None else row["delivered_detail"].get(f, "no")
        t.add_row(f, allowed, delivered)
    _out.print(t)
    if row["notes"]:
        _out.print(f"notes: {row['notes']}", highlight=False)


@requests_app.command("set")
def requests_set(
    state: Annotated[str, typer.Argument(help="USPS code")],
    status: Annotated[
        str | None, typer.Option("--status", help="complied | partial | refused | pending")
    ] = None,
    responded: Annotated[
        str | None, typer.Option("--responded", help="response date YYYY-MM-DD")
    ] = None,
    notes: Annotated[str | None, typer.Option("--notes")] = None,
    workspace: Annotated[Path | None, typer.Option("--workspace", help=_WS_HELP)] = None,
    tracker: Annotated[Path | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
) -> None:
    """Record a state's response (status, date, notes) in the tracker file."""
    from voterolls import requests as rq

    path = _tracker_to_write(workspace, tracker)
    tr = rq.Tracker.load(path if path.exists() else None)
    tr.set(_state(state), status=status, date_responded=responded, notes=notes)
    tr.save(path)
    _out.print(f"{state.upper()} updated in {path}")


@requests_app.command("import")
def requests_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV with state,status[,date_responded,notes]")],
    workspace: Annotated[Path | None, typer.Option("--workspace", help=_WS_HELP)] = None,
    tracker: Annotated[Path | None, typer.Option("--tracker", help=_TRACKER_HELP)] = None,
) -> None:
    """Import state responses from a CSV into the tracker file."""
    from voterolls import requests as rq

    path = _tracker_to_write(workspace, tracker)
    tr = rq.Tracker.load(path if path.exists() else None)
    n = tr.import_csv(csv_file)
    tr.save(path)
    _out.print(f"{n} state response(s) imported into {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
    app.command("seal")(seal_command)
    app.command("seal-key")(seal_key_command)
    app.add_typer(requests_app, name="requests")
