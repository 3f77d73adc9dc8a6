"""The ``voterolls`` command line.

Each stage owns its commands in a ``commands`` module exposing
``register(app: typer.Typer) -> None``; this file only assembles them, so the
stages stay independent and the CLI stays one place to look.  A ``UserError``
anywhere becomes one sentence on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from voterolls.errors import UserError

app = typer.Typer(
    name="voterolls",
    help="Compile state voter lists within each state's law; link and report with honest uncertainty.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Compile state voter lists within each state's law; link and report with honest uncertainty."""


@app.command()
def version() -> None:
    """Print the voterolls version."""
    from voterolls import __version__

    typer.echo(__version__)


#: Modules that contribute commands, in the order data flows.
COMMAND_MODULES = (
    "voterolls.synth.commands",  # generate
    "voterolls.ingest.commands",  # ingest, diff, uniformity
    "voterolls.policy.commands",  # policy show/check, seal, requests
    "voterolls.link.commands",  # link, evaluate
    "voterolls.stats.commands",  # estimate
    "voterolls.lists.commands",  # lists
    "voterolls.report.commands",  # report
    "voterolls.service.commands",  # serve, audit
    "voterolls.pipeline",  # demo
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a stage not built yet
        if _exc.name != _name:
            raise
        continue
    _module.register(app)


def main() -> None:
    """Entry point that turns user mistakes into clear messages."""
    err = Console(stderr=True)
    try:
        app(standalone_mode=False)
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors (typer vendors click)
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
