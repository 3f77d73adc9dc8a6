"""CLI: ``inspect`` - what the readers make of a file, before it is ingested.

Prints names, counts and shares only; never a value of a record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        files: Annotated[list[Path], typer.Argument(help="one state's file(s): registrations and any history files")],
        state: Annotated[str | None, typer.Option("--state", help="the state the files should be (refused when the layout is another state's)")] = None,
        format: Annotated[str | None, typer.Option("--format", help="read with this layout (a shipped name or a mapping .toml) instead of detecting")] = None,  # noqa: A002
        as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    ) -> None:
        """Detected layout and confidence, column mapping, dialect, and per-field shares on a sample."""
        from voterolls.formats.inspect import inspect, render

        report = inspect(files, state=state, format=format)
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        else:
            for line in render(report):
                typer.echo(line)
