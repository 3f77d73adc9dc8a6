"""``voterolls link`` and ``voterolls evaluate``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import duckdb
import typer

from voterolls.errors import UserError
from voterolls.link.blocking import DEFAULT_BLOCK_CAP
from voterolls.link.engines import ENGINES
from voterolls.link.settings import DEFAULT_MIN_PROBABILITY, DEFAULT_SEED, DEFAULT_THRESHOLD

_WS_HELP = "workspace directory (default: $VOTEROLLS_WORKSPACE or ./workspace)"


@contextmanager
def _memory_limit_named(limit: str | None) -> Iterator[None]:
    """DuckDB running out of memory, anywhere in the link (Splink wraps it in its own
    exception), becomes one sentence naming the limit and how to raise it."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - re-raised unless DuckDB's OOM is in its chain
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, duckdb.OutOfMemoryException):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise UserError(
            f"linkage ran out of memory under DuckDB's limit of {limit}; raise --memory-limit "
            "(or VOTEROLLS_LINK_MEMORY_LIMIT) and link again"
        ) from None


def _workspace(path: Path | None):
    from voterolls.store import Workspace, workspace_option_default

    return Workspace(path or workspace_option_default(), create=False)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def link_command(
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help=_WS_HELP)] = None,
    engine: Annotated[
        str, typer.Option("--engine", help=f"where Splink runs: {' | '.join(ENGINES)}")
    ] = "duckdb",
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold", help="match probability at which pairs are linked into one person"
        ),
    ] = DEFAULT_THRESHOLD,
    model: Annotated[
        Path | None, typer.Option("--model", help="use this saved model JSON instead of training")
    ] = None,
    min_probability: Annotated[
        float,
        typer.Option("--min-probability", help="pairs below this probability are not written"),
    ] = DEFAULT_MIN_PROBABILITY,
    seed: Annotated[int, typer.Option("--seed", help="seed for training samples")] = DEFAULT_SEED,
    block_cap: Annotated[
        int, typer.Option("--block-cap", help="largest block a capped blocking key may form")
    ] = DEFAULT_BLOCK_CAP,
    threads: Annotated[
        int | None, typer.Option("--threads", help="worker threads (default: all cores)")
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            "--memory-limit",
            help="DuckDB memory limit, e.g. 8GB (spills to W/link/_work beyond it; default $VOTEROLLS_LINK_MEMORY_LIMIT, else 40% of RAM)",
        ),
    ] = None,
    shuffle_partitions: Annotated[
        int | None,
        typer.Option(
            "--shuffle-partitions",
            help="Spark shuffle partitions (default: $VOTEROLLS_SPARK_SHUFFLE_PARTITIONS, "
            "else one per 100,000 registrations, at least 2 per core)",
        ),
    ] = None,
    sealed_only: Annotated[
        bool,
        typer.Option(
            "--sealed-only",
            help="link sealed-only deliveries (keyed tokens and Bloom-filter name encodings; "
            "no plaintext); every state in the workspace must be one",
        ),
    ] = False,
) -> None:
    """Link registrations across and within states; write pairs, clusters and the model.

    Writes W/link/model.json, pairs.parquet, clusters.parquet and
    link_report.json.  Prints counts and timings only.
    """
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from voterolls.link.engines.duckdb import default_memory_limit
    from voterolls.link.run import LinkRequest, link_registrations

    if engine not in ENGINES:
        raise UserError(
            f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}", field="engine"
        )
    if block_cap < 2:
        raise UserError("--block-cap must be at least 2", field="block_cap")
    ws = _workspace(workspace)
    if not ws.states():
        raise UserError(
            "the workspace holds no registrations; run `voterolls ingest` first", file=ws.path
        )
    _check_sealed(ws, sealed_only)
    console = Console(stderr=True)
    # Preparing the keys and recalibrating run on this connection, not the engine's:
    # it gets the same limit so the whole command stays inside it (spilling to W/tmp).
    limit = memory_limit or default_memory_limit()
    con = ws.connect(read_only=False, memory_limit=limit)
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("linking", total=None)
            with _memory_limit_named(limit):
                result = link_registrations(
                    con,
                    LinkRequest(
                        ws.paths.link.dir,
                        engine=engine,
                        threshold=threshold,
                        model=model,
                        min_probability=min_probability,
                        seed=seed,
                        block_cap=block_cap,
                        threads=threads,
                        memory_limit=memory_limit,
                        shuffle_partitions=shuffle_partitions,
                        sealed_only=sealed_only,
                        step=lambda msg: progress.update(task, description=msg),
                    ),
                )
    finally:
        con.close()
    ws.record_built_from(ws.paths.link.dir)  # freshness: which snapshots these pairs come from
    r = result
    typer.echo(
        f"linked {r.registrations:,} registrations on {r.engine}: {r.candidate_pairs:,} candidate pairs "
        f"({r.comparisons_per_record:.2f} per registration), {r.pairs_written:,} written "
        f"(p >= {r.min_probability}), {r.pairs_at_threshold:,} at p >= {r.threshold} "
        f"({r.cross_state_pairs_at_threshold:,} cross-state), {r.clusters:,} persons; "
        f"{'sealed-only; ' if sealed_only else ''}{'trained' if r.trained else f'model from {model}, prior re-estimated'}; {r.seconds['total']:.1f}s -> {ws.path / 'link'}"
    )


def _check_sealed(ws, sealed_only: bool) -> None:  # noqa: ANN001 - Workspace
    """Sealed-only and plaintext deliveries are linked by different models: refuse a mix."""
    from voterolls.ingest.sealed_only import sealed_states

    sealed = set(sealed_states(ws))
    plain = [s for s in ws.states() if s not in sealed]
    if sealed_only and plain:
        raise UserError(
            f"--sealed-only needs every state sealed-only, but {', '.join(plain[:5])}"
            f"{' ...' if len(plain) > 5 else ''} delivered plaintext",
            file=ws.path,
        )
    if not sealed_only and sealed:
        raise UserError(
            f"{', '.join(sorted(sealed)[:5])}{' ...' if len(sealed) > 5 else ''} delivered sealed-only "
            "data (no plaintext names or dates); link with `voterolls link --sealed-only`",
            file=ws.path,
        )


def evaluate_command(
    truth: Annotated[
        Path, typer.Option("--truth", "-t", help="a `voterolls generate` output directory")
    ],
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help=_WS_HELP)] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold", help="probability for a predicted pair (default: the one `link` used)"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="JSON output (default: W/link/evaluation.json)"),
    ] = None,
) -> None:
    """Precision, recall and F1 for cross-state duplicates against the synthetic truth, by DOB granularity."""
    import json

    from rich.console import Console
    from rich.table import Table

    from voterolls.link.evaluate import GRANULARITY_CLASSES, evaluate, write_json

    ws = _workspace(workspace)
    link = ws.paths.link
    if threshold is None:
        rep = link.report
        threshold = DEFAULT_THRESHOLD
        if rep.is_file():
            threshold = float(
                json.loads(rep.read_text(encoding="utf-8")).get("threshold", DEFAULT_THRESHOLD)
            )
    if not 0 < threshold < 1:
        raise UserError("--threshold must be strictly between 0 and 1", field="threshold")
    con = ws.connect(read_only=False)
    try:
        res = evaluate(con, truth, link.pairs, threshold=threshold)
    finally:
        con.close()
    path = write_json(res, out or link.dir / "evaluation.json")

    console = Console()
    labels = {"full": "full", "year": "year", "none": "none", "all": "all"}
    t = Table(
        title=f"Cross-state duplicate registrations (p >= {threshold})",
        caption="DOB: full on both sides / a birth year only on a side / no DOB on a side. "
        "CC = Crosscheck rule (exact first + last + DOB). scored = share of true pairs scored at all.",
    )
    for col in ("DOB", "true pairs", "P", "R", "F1", "CC P", "CC R", "scored"):
        t.add_column(col, justify="left" if col == "DOB" else "right")
    for c in (*GRANULARITY_CLASSES, "all"):
        m, x = res["model"][c], res["crosscheck"][c]
        t.add_row(
            labels[c],
            f"{m['true_pairs']:,}",
            _fmt(m["precision"]),
            _fmt(m["recall"]),
            _fmt(m["f1"]),
            _fmt(x["precision"]),
            _fmt(x["recall"]),
            _fmt(res["scored_recall"][c]),
        )
    console.print(t)
    cal = Table(title="Calibration (all written pairs)")
    for col in ("probability", "pairs", "expected true", "observed true"):
        cal.add_column(col, justify="right")
    for row in res["calibration"]:
        cal.add_row(
            row["bin"],
            f"{row['pairs']:,}",
            f"{row['expected_true']:,.1f}",
            f"{row['observed_true']:,}",
        )
    console.print(cal)
    typer.echo(f"-> {path}")


def register(app: typer.Typer) -> None:
    app.command("link")(link_command)
    app.command("evaluate")(evaluate_command)
