"""`voterolls lists`: per-state list-maintenance files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command("lists")
    def lists_command(
        state: str = typer.Argument(..., help="two-letter state code"),
        out: Path = typer.Option(Path("lists"), "--out", help="directory for the CSV / Parquet files"),
        workspace: Path = typer.Option(Path("workspace"), "--workspace", "-w"),
        notice_threshold: float = typer.Option(0.95, help="match probability at or above which a mover row recommends a confirmation notice"),
        review_threshold: float = typer.Option(0.50, help="match probability at or above which a row needs review"),
        federal_election: str = typer.Option(None, help="next federal election date YYYY-MM-DD (default: next November general)"),
        as_of: str = typer.Option(None, help="date the list is produced YYYY-MM-DD (default: today)"),
        external: list[Path] = typer.Option(None, "--external", help="an external list to match (e.g. death records)"),
        external_format: str = typer.Option(None, "--external-format", help="layout name or mapping TOML for the external list"),
    ) -> None:
        """Write cross-state movers, in-state duplicates and external-list matches for STATE.

        Every row is evidence for review with a recommended action that respects the NVRA:
        'send confirmation notice', 'review', 'no action', or a hold in the 90-day quiet period.
        Nothing here recommends removal.
        """
        from voterolls.errors import UserError
        from voterolls.lists import ActionPolicy, build_lists
        from voterolls.store import Workspace

        def _date(text: str | None, name: str) -> dt.date | None:
            if not text:
                return None
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise UserError(f"--{name} must be a date YYYY-MM-DD, got {text!r}") from None

        try:
            policy = ActionPolicy(
                notice_threshold=notice_threshold,
                review_threshold=review_threshold,
                as_of=_date(as_of, "as-of"),
                federal_election=_date(federal_election, "federal-election"),
            )
        except ValueError as exc:
            raise UserError(str(exc)) from None
        from voterolls.freshness import check, warn

        ws = Workspace(workspace, create=False)
        warn([check(ws, "linkage")])
        summaries = build_lists(ws, state, out, policy, external or None, external_format)
        table = Table(title=f"list maintenance for {state.upper()} (as of {policy.today}, election {policy.election})")
        for col in ("list", "rows", "notice", "review", "held", "no action", "expected false positives (notice)"):
            table.add_column(col, justify="right" if col != "list" else "left")
        for s in summaries:
            table.add_row(
                s.name,
                str(s.rows),
                str(s.by_action.get("send confirmation notice", 0)),
                str(s.by_action.get("review", 0)),
                str(s.by_action.get("hold: NVRA 90-day quiet period", 0)),
                str(s.by_action.get("no action (probable different person)", 0)),
                f"{s.expected_false_positives_at_notice:.1f}",
            )
        console = Console()
        console.print(table)
        if policy.hold_reason:
            console.print(f"[yellow]{policy.hold_reason}[/]")
        console.print(f"files in {out}")
