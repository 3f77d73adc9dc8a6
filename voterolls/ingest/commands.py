"""CLI: ``ingest``, ``ingest-dir``, ``diff``, ``uniformity``.

Everything printed is a count, a code, a share or a file name: never a
name, date of birth or address (the summary tables are built from the
manifest and the uniformity report, which hold no values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from voterolls.errors import UserError
from voterolls.store import Workspace, workspace_option_default

_out = Console()
if not _out.is_terminal:  # piped / captured: do not squeeze tables into 80 columns
    _out = Console(width=200)
_err = Console(stderr=True)

WorkspaceOpt = Annotated[
    Path,
    typer.Option("--workspace", "-w", help="workspace directory (default $VOTEROLLS_WORKSPACE or ./workspace)"),
]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )


def _run_ingest(ws: Workspace, state: str, files: list[Path], **kw: Any) -> Any:
    from voterolls.ingest.pipeline import IngestRequest, ingest

    with _progress() as prog:
        task = prog.add_task(f"{state}: hashing", total=None)

        def report(phase: str, done: int, total: int | None) -> None:
            prog.update(task, description=f"{state}: {phase}", completed=done, total=total)

        return ingest(IngestRequest.of(ws, state, files, progress=report, **kw))


def _summary_table(results: list[Any]) -> Table:
    t = Table(title="ingest summary (counts only)")
    for col in ("state", "snapshot", "status", "format", "read", "loaded", "quarantined", "protected excl.", "history loaded", "history withheld", "seconds"):
        t.add_column(col, justify="right" if col not in ("state", "snapshot", "status", "format") else "left")
    for r in results:
        t.add_row(
            r.state, r.snapshot_id, r.status, str(r.format), f"{r.rows_read:,}", f"{r.loaded:,}", f"{r.quarantined:,}",
            f"{r.protected_excluded:,}", f"{r.vote_history_loaded:,}", f"{r.vote_history_withheld:,}", f"{r.elapsed_s:.1f}",
        )  # fmt: skip
    return t


def _override(basis: str | None, allow: list[str] | None) -> Any:
    if basis is None:
        if allow:
            raise UserError("--allow needs --override-policy BASIS (the legal basis)", field="override-policy")
        return None
    from voterolls.policy import Override

    return Override(fields=frozenset(allow or []), legal_basis=basis)


def _find_sealed(sealed_dir: Path, state: str) -> Path | None:
    for name in (f"{state}_sealed.csv", f"{state}.sealed.csv", f"{state}.csv", f"{state.lower()}_sealed.csv"):
        p = sealed_dir / name
        if p.is_file():
            return p
    return None


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest_command(
        state: Annotated[str, typer.Argument(help="USPS code of the state the files come from")],
        files: Annotated[
            list[Path], typer.Argument(help="the state's native file(s): registrations, history, ...; .zip / .gz read as sent")
        ],
        format: Annotated[str | None, typer.Option("--format", "-f", help="format name or mapping .toml (default: detect)")] = None,
        workspace: WorkspaceOpt = None,  # type: ignore[assignment]
        sealed: Annotated[Path | None, typer.Option("--sealed", help="sealed sidecar CSV made by `voterolls seal`")] = None,
        override_policy: Annotated[
            str | None, typer.Option("--override-policy", help="legal basis for allowing --allow fields this run (logged)")
        ] = None,
        allow: Annotated[list[str] | None, typer.Option("--allow", help="field the override allows (dob, birth_year, phone, email, party, vote_history)")] = None,
        memory_limit: Annotated[str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 2GB")] = None,
        scope: Annotated[
            str | None,
            typer.Option("--scope", help="the part of the state these files cover: state, county:CODE or range:A-B (default: from each file)"),
        ] = None,
        replace_state: Annotated[
            bool, typer.Option("--replace-state", help="these files are the whole state: keep nothing of its earlier parts")
        ] = False,
        allow_shrink: Annotated[
            bool,
            typer.Option("--allow-shrink", help="accept a delivery that shrinks a scope by more than 10%, drops vote history or holds an empty file"),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    ) -> None:
        """Ingest a delivery of one state's files: each file replaces only its scope (a county, a range, the state).

        Idempotent (the same files again change nothing) and atomic (a failed or
        killed ingest leaves the previous snapshot).
        """
        from voterolls.ingest.delivery import DeliveryOptions

        ws = Workspace(workspace or workspace_option_default())
        delivery = DeliveryOptions(scope=scope, replace_state=replace_state, allow_shrink=allow_shrink)
        r = _run_ingest(
            ws, state, files, format=format, sealed=sealed, override=_override(override_policy, allow),
            memory_limit=memory_limit, delivery=delivery,
        )  # fmt: skip
        if as_json:
            typer.echo(json.dumps(r.to_dict(), indent=2, default=str))
            return
        _out.print(_summary_table([r]))
        if r.status == "unchanged":
            _out.print(f"{r.state}: same files as snapshot {r.snapshot_id}; nothing changed.")

    @app.command("ingest-dir")
    def ingest_dir_command(
        directory: Annotated[Path, typer.Argument(help="a `voterolls generate` output directory (has manifest.json)")],
        workspace: WorkspaceOpt = None,  # type: ignore[assignment]
        sealed_dir: Annotated[Path | None, typer.Option("--sealed-dir", help="directory of sealed sidecars XX_sealed.csv")] = None,
        states: Annotated[list[str] | None, typer.Option("--state", help="only these states (repeatable)")] = None,
        memory_limit: Annotated[str | None, typer.Option("--memory-limit")] = None,
    ) -> None:
        """Ingest every state of a generated directory, using its manifest.json."""
        results = ingest_directory(
            directory, Workspace(workspace or workspace_option_default()), sealed_dir=sealed_dir, states=states, memory_limit=memory_limit, progress=True
        )
        _out.print(_summary_table(results))

    @app.command("diff")
    def diff_command(
        state: Annotated[str, typer.Argument(help="USPS code")],
        workspace: WorkspaceOpt = None,  # type: ignore[assignment]
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Added / removed / changed registrations between a state's last two snapshots, per scope (counts only)."""
        from voterolls.ingest.diff import diff_snapshots

        d = diff_snapshots(Workspace(workspace or workspace_option_default(), create=False), state)
        if as_json:
            typer.echo(json.dumps(d.to_dict(), indent=2))
            return
        t = Table(title=f"{d.state}: {d.old_snapshot} -> {d.new_snapshot}")
        t.add_column("measure")
        t.add_column("count", justify="right")
        for k in ("old_rows", "new_rows", "added", "removed", "changed", "unchanged", "duplicate_ids_old", "duplicate_ids_new", "vote_history_old", "vote_history_new"):
            t.add_row(k.replace("_", " "), f"{getattr(d, k):,}")
        _out.print(t)
        if d.scopes:
            sc = Table(title="per scope (a delivery replaces only the scopes it brings)")
            for col in ("scope", "replaced", "registrations before", "after", "added", "removed", "changed", "history before", "after "):
                sc.add_column(col, justify="left" if col in ("scope", "replaced") else "right")
            for e in d.scopes:
                sc.add_row(
                    e["scope"], "yes" if e["replaced"] else "no", f"{e['old_rows']:,}", f"{e['new_rows']:,}", f"{e['added']:,}",
                    f"{e['removed']:,}", f"{e['changed']:,}", f"{e['vote_history_old']:,}", f"{e['vote_history_new']:,}",
                )  # fmt: skip
            _out.print(sc)
        if d.changed_fields:
            f = Table(title="changed fields (registrations whose value changed)")
            f.add_column("field")
            f.add_column("registrations", justify="right")
            for k, v in d.changed_fields.items():
                f.add_row(k, f"{v:,}")
            _out.print(f)

    @app.command("uniformity")
    def uniformity_command(
        state: Annotated[str | None, typer.Argument(help="USPS code (default: every state)")] = None,
        workspace: WorkspaceOpt = None,  # type: ignore[assignment]
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Per state and field: present, non-null share, plausible share, unmapped codes."""
        ws = Workspace(workspace or workspace_option_default(), create=False)
        con = ws.connect()
        where = ""
        params: list[Any] = []
        if state:
            from voterolls.store import check_state

            where = "WHERE state = ?"
            params.append(check_state(state))
        rows = con.execute(
            "SELECT state, dataset, field, present, policy, rows, non_null_share, plausible_share, repaired, nulled, "
            f"flagged, withheld_values, unmapped, unmapped_codes FROM uniformity {where} ORDER BY state, dataset DESC, field",
            params,
        ).fetchall()
        if not rows:
            raise UserError("no uniformity report: ingest a state first" + (f" ({state})" if state else ""), file=ws.path)
        cols = ["state", "dataset", "field", "present", "policy", "rows", "non_null_share", "plausible_share", "repaired", "nulled", "flagged", "withheld_values", "unmapped", "unmapped_codes"]
        if as_json:
            typer.echo(json.dumps([dict(zip(cols, r, strict=True)) for r in rows], indent=2, default=str))
            return
        t = Table(title="uniformity (shares of stored rows)")
        for c in ("state", "dataset", "field", "present", "policy", "non-null", "plausible", "repaired", "nulled", "flagged", "withheld", "unmapped"):
            t.add_column(c, justify="right" if c not in ("state", "dataset", "field", "policy") else "left")

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.1f}%"

        for r in rows:
            d = dict(zip(cols, r, strict=True))
            unm = "" if d["unmapped"] is None else f"{d['unmapped']:,}"
            if d["unmapped_codes"]:
                unm += " " + ", ".join(f"{k}:{v}" for k, v in json.loads(d["unmapped_codes"]).items())
            t.add_row(
                d["state"], d["dataset"], d["field"], "yes" if d["present"] else "no", d["policy"], pct(d["non_null_share"]),
                pct(d["plausible_share"]), f"{d['repaired']:,}", f"{d['nulled']:,}", f"{d['flagged']:,}", f"{d['withheld_values']:,}", unm,
            )  # fmt: skip
        _out.print(t)


def ingest_directory(
    directory: Path,
    ws: Workspace,
    *,
    sealed_dir: Path | None = None,
    states: list[str] | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
) -> list[Any]:
    """Ingest every state listed in ``directory/manifest.json`` (a ``voterolls generate`` output).

    A generated directory holds each state whole (a synthetic nation, not a
    state's delivery): each state's files replace all of its earlier parts,
    and the delivery guards (shrink, empty file) do not apply - a small
    generated nation can leave a state with few or no voters.
    """
    from voterolls.ingest.delivery import DeliveryOptions
    from voterolls.ingest.pipeline import IngestRequest, ingest

    manifest_path = Path(directory) / "manifest.json"
    if not manifest_path.is_file():
        raise UserError("not a generated directory: manifest.json missing", file=manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["states"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError("manifest.json has no 'states' mapping", file=manifest_path) from None
    wanted = {s.upper() for s in states} if states else None
    results = []
    for st in sorted(entries):
        if wanted is not None and st not in wanted:
            continue
        entry = entries[st]
        files = [Path(directory) / f for f in entry.get("files", [])]
        if not files:
            raise UserError(f"manifest lists no files for {st}", file=manifest_path, field="states")
        sealed = _find_sealed(Path(sealed_dir), st) if sealed_dir is not None else None
        kw = {
            "format": entry.get("format"), "sealed": sealed, "memory_limit": memory_limit,
            "delivery": DeliveryOptions(replace_state=True, allow_shrink=True),
        }  # fmt: skip
        if progress:
            results.append(_run_ingest(ws, st, files, **kw))
        else:
            results.append(ingest(IngestRequest.of(ws, st, files, **kw)))
    return results
