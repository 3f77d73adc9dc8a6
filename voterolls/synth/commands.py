"""``voterolls generate``: write a synthetic nation (native state files + truth)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from voterolls.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        people: int = typer.Option(
            100_000, "--people", "-n", help="number of true persons to draw"
        ),
        seed: int = typer.Option(
            1, "--seed", help="random seed; the same seed gives byte-identical output"
        ),
        out: Path = typer.Option(
            ..., "--out", "-o", help="output directory (must be empty unless --force)"
        ),
        force: bool = typer.Option(False, "--force", help="replace a previous output in --out"),
        namesake_density: str = typer.Option(
            "sample",
            "--namesake-density",
            help="name + birth-year namesakes per person: 'sample' (as drawn), 'national' "
            "(as in a 200-million-person file) or a number of people (docs/SYNTH.md)",
        ),
    ) -> None:
        """Generate a synthetic national voter population with ground truth.

        Writes each state's native files, the state-held identifiers and the
        truth tables as described in docs/ARCHITECTURE.md.  Prints counts
        only, never a name or date of birth.
        """
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from voterolls.synth import generate_nation
        from voterolls.synth.writer import write_nation

        if people < 1:
            raise UserError("--people must be at least 1", field="people")
        if seed < 0:
            raise UserError("--seed must be a non-negative integer", field="seed")
        from voterolls.synth import SynthConfig

        density: str | float = namesake_density
        if namesake_density not in ("sample", "national"):
            try:
                density = float(namesake_density)
            except ValueError:
                density = namesake_density
        try:
            config = SynthConfig(namesake_density=density)
        except ValueError:
            raise UserError(
                "--namesake-density must be 'sample', 'national' or a number of people >= 1",
                field="namesake-density",
            ) from None
        console = Console(stderr=True)
        t0 = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("generating population", total=None)
            nation = generate_nation(people, seed, config)
            states = nation.states()
            progress.update(task, description="writing state files", total=len(states), completed=0)
            manifest = write_nation(
                nation, out, overwrite=force, progress=lambda _s: progress.advance(task)
            )
        c = manifest["truth_counts"]
        typer.echo(
            f"generated {manifest['people']:,} people, {manifest['registrations']:,} registrations in "
            f"{len(manifest['states'])} states, {manifest['vote_records']:,} vote records "
            f"({c['stale_cross_state']:,} stale cross-state, {c['in_state_duplicate']:,} in-state duplicates, "
            f"{c['double_votes']:,} double votes, {c['vote_record_errors']:,} vote-record errors) "
            f"in {time.perf_counter() - t0:.1f}s -> {out}"
        )
