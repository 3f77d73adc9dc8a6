"""The ``voterolls`` command line.

Each stage owns its commands in a ``commands`` module exposing
``register(app: typer.Typer) -> None``; this file only assembles them, so the
stages stay independent and the CLI stays one place to look.  A ``UserError``
anywhere becomes one sentence on stderr and a non-zero exit.

Stage modules are imported lazily (:class:`_StageCommands`): running one
command imports only the module that registers it (``COMMAND_HOME``), so
``voterolls report`` does not pay for Splink; ``voterolls --help`` imports them
all, so it lists every command with its real help text.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
import typer.main
from rich.console import Console
from typer.core import TyperGroup

from voterolls.errors import UserError

#: Modules that contribute commands, in the order data flows.
COMMAND_MODULES = (
    "voterolls.synth.commands",
    "voterolls.formats.commands",
    "voterolls.ingest.commands",
    "voterolls.policy.commands",
    "voterolls.link.commands",
    "voterolls.stats.commands",
    "voterolls.lists.commands",
    "voterolls.report.commands",
    "voterolls.service.commands",
    "voterolls.pipeline",
)

#: Which module registers each top-level command (a shortcut only: a command
#: missing here still works, it just makes the CLI import every module first).
COMMAND_HOME = {
    "generate": "voterolls.synth.commands",
    "inspect": "voterolls.formats.commands",
    **dict.fromkeys(("ingest", "ingest-dir", "diff", "uniformity"), "voterolls.ingest.commands"),
    **dict.fromkeys(("policy", "seal", "seal-key", "requests"), "voterolls.policy.commands"),
    **dict.fromkeys(("link", "evaluate"), "voterolls.link.commands"),
    "estimate": "voterolls.stats.commands",
    "lists": "voterolls.lists.commands",
    "report": "voterolls.report.commands",
    **dict.fromkeys(("serve", "accounts", "audit"), "voterolls.service.commands"),
    "demo": "voterolls.pipeline",
}


class _StageCommands(TyperGroup):
    """The root command group: loads a stage's commands the first time they are needed."""

    def _load(self, module_name: str) -> None:
        loaded: set[str] = self.__dict__.setdefault("_loaded", set())
        if module_name in loaded:
            return
        loaded.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a stage not built yet
            if exc.name != module_name:
                raise
            return
        stage = typer.Typer()
        module.register(stage)
        for name, command in typer.main.get_group(stage).commands.items():
            self.add_command(command, name)

    def list_commands(self, ctx: Any) -> list[str]:
        """Every command: plain commands first, then command groups (as typer orders them)."""
        for module_name in COMMAND_MODULES:
            self._load(module_name)
        names = list(self.commands)
        plain = [n for n in names if not isinstance(self.commands[n], TyperGroup)]
        return plain + [n for n in names if n not in plain]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMAND_HOME:
            self._load(COMMAND_HOME[cmd_name])
        if cmd_name not in self.commands:
            self.list_commands(ctx)
        return self.commands.get(cmd_name)


app = typer.Typer(
    name="voterolls",
    cls=_StageCommands,
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
