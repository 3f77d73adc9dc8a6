"""`voterolls demo`: the whole job on a synthetic nation, as the documented commands.

The demo is literally the sequence a consortium would run, one CLI command per
stage, so what the README promises and what the commands do cannot drift
apart:

1. ``generate``   synthetic national population -> each state's native files + truth
2. ``seal-key``   the consortium's shared key (held by the states)
3. ``seal``       each state seals its own sensitive identifiers (state side)
4. ``ingest-dir`` every state's public file + sealed sidecar -> workspace (policy enforced)
5. ``link``       Splink model trained without labels, pairs and clusters
6. ``evaluate``   precision / recall against the synthetic truth (demo only)
7. ``estimate``   duplicates and double votes with intervals and coverage
8. ``lists``      one state's list-maintenance files
9. ``report``     the offline HTML report
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from voterolls.errors import UserError

console = Console()


def _run(app: typer.Typer, args: list[str]) -> None:
    """Run one voterolls command in-process; a non-zero exit stops the demo."""
    console.rule(f"[bold]voterolls {' '.join(args[:1])}")
    from voterolls.cli import run

    code = run(args, app)
    if code != 0:
        raise UserError(f"demo step `voterolls {args[0]}` failed with exit code {code}")


def run_demo(
    app: typer.Typer,
    people: int,
    seed: int,
    out: Path,
    lists_state: str = "NC",
    engine: str = "duckdb",
    namesake_density: str = "national",
) -> Path:
    """Run every stage in turn; ``namesake_density`` goes to ``generate`` (docs/SYNTH.md).

    The default, ``national``, folds the name pools so that a demo of a few
    thousand people has the name + birth-year namesakes per person of a
    200-million-person file: the coincidences, the review band and the imperfect
    precision a real national run shows, instead of the near-perfect matching a
    tiny name pool would give.
    """
    out.mkdir(parents=True, exist_ok=True)
    synthetic, sealed, workspace = out / "synthetic", out / "sealed", out / "workspace"
    key = out / "consortium.key"
    started = time.perf_counter()

    if not (synthetic / "manifest.json").exists():
        _run(
            app,
            ["generate", "--people", str(people), "--seed", str(seed), "--out", str(synthetic),
             "--namesake-density", namesake_density],
        )  # fmt: skip
    else:
        console.print(f"reusing synthetic data in {synthetic}")
    if not key.exists():
        _run(app, ["seal-key", str(key)])
    sealed.mkdir(exist_ok=True)
    internal = sorted((synthetic / "internal").glob("*_identifiers.csv"))
    console.rule(f"[bold]voterolls seal ({len(internal)} states, each on its own side)")
    for ids in internal:
        state = ids.name.split("_", 1)[0]
        target = sealed / f"{state}_sealed.csv"
        if not target.exists():
            from voterolls.cli import run

            if run(["seal", "--key-file", str(key), str(ids), str(target)], app) != 0:
                raise UserError(f"demo step `voterolls seal` failed for {state}")
    _run(app, ["ingest-dir", str(synthetic), "--workspace", str(workspace), "--sealed-dir", str(sealed)])
    _run(app, ["link", "--workspace", str(workspace), "--engine", engine])
    _run(app, ["evaluate", "--truth", str(synthetic), "--workspace", str(workspace)])
    _run(app, ["estimate", "--workspace", str(workspace)])
    _run(app, ["lists", lists_state, "--workspace", str(workspace), "--out", str(out / "lists" / lists_state)])
    report = out / "report.html"
    _run(app, ["report", "--workspace", str(workspace), "--out", str(report)])
    console.rule()
    console.print(f"demo finished in {time.perf_counter() - started:.0f} s; open {report}")
    return report


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        people: int = typer.Option(20000, help="size of the synthetic national population"),
        seed: int = typer.Option(1, help="random seed (same seed, same data)"),
        out: Path = typer.Option(Path("demo"), help="output directory"),
        lists_state: str = typer.Option("NC", help="state whose list-maintenance files the demo writes"),
        engine: str = typer.Option("duckdb", help="linkage engine: duckdb or spark"),
        namesake_density: str = typer.Option(
            "national",
            "--namesake-density",
            help="name + birth-year namesakes per person: 'national' (as in a 200-million-person "
            "file, the default), 'sample' (as drawn) or a number of people (docs/SYNTH.md)",
        ),
    ) -> None:
        """Run the whole pipeline on a synthetic nation and write an offline HTML report."""
        # the root app: ``app`` here may be the stage's own Typer (the CLI registers stages
        # lazily, one at a time), which knows no other command
        from voterolls.cli import app as root

        run_demo(root, people, seed, out, lists_state, engine, namesake_density)
