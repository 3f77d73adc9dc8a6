"""``voterolls report``: write the self-contained offline HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

from voterolls.errors import UserError


def _default_workspace() -> Path:
    from voterolls.store import workspace_option_default

    return workspace_option_default()


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write."),
        workspace: Path | None = typer.Option(
            None,
            "--workspace",
            "-w",
            help="Workspace directory [default: $VOTEROLLS_WORKSPACE or ./workspace].",
        ),
        title: str | None = typer.Option(None, "--title", help="Report title."),
        json_out: Path | None = typer.Option(
            None,
            "--json",
            help="Also write the report's aggregate data model as JSON (for review).",
        ),
    ) -> None:
        """Write the offline HTML report (aggregates only; counts under 10 suppressed).

        Sections: coverage, field availability, uniformity, match probabilities,
        estimates with intervals, methods and caveats.
        """
        from voterolls.report.data import gather
        from voterolls.report.render import write_report

        if workspace is None:
            workspace = _default_workspace()
        if workspace is None:
            workspace = _default_workspace()
        if not workspace.is_dir():
            raise UserError(
                "workspace directory not found; run `voterolls ingest` first or pass --workspace",
                file=workspace,
            )
        if out.exists() and out.is_dir():
            raise UserError("--out is a directory; give a file name such as report.html", file=out)
        data = gather(workspace, title=title)
        from voterolls.store import WorkspacePaths

        model_json = WorkspacePaths(workspace).link.model
        model_out = None
        if model_json.is_file():
            from voterolls.report.model_page import model_page, model_page_path

            model_out = model_page_path(out)
            data.model_page = model_out.name
        write_report(data, out)
        if model_out is not None:
            model_out.write_text(model_page(model_json), encoding="utf-8")
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(data.model_dump_json(indent=2), encoding="utf-8")
        missing = [
            name
            for name, sec in (
                ("coverage", data.coverage),
                ("fields", data.fields),
                ("uniformity", data.uniformity),
                ("matches", data.matches),
                ("estimates", data.estimates),
            )
            if not sec.available
        ]
        for f in data.freshness:
            if f.message:
                typer.echo(f"warning: {f.message}", err=True)
        msg = f"wrote {out}" + (f" and {model_out.name}" if model_out is not None else "")
        if missing:
            msg += f" (not available: {', '.join(missing)})"
        typer.echo(msg)
