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

import functools
import importlib
import sys
from typing import Any

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from voterolls.errors import UserError

#: Modules that contribute commands, in the order data flows.
COMMAND_MODULES = (
    "voterolls.synth.commands",
    "voterolls.formats.commands",
    "voterolls.ingest.commands",
    "voterolls.ingest.sealed_only",
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
    "ingest-sealed": "voterolls.ingest.sealed_only",
    **dict.fromkeys(("policy", "seal", "seal-key", "requests"), "voterolls.policy.commands"),
    **dict.fromkeys(("link", "evaluate"), "voterolls.link.commands"),
    "estimate": "voterolls.stats.commands",
    "lists": "voterolls.lists.commands",
    "report": "voterolls.report.commands",
    **dict.fromkeys(("serve", "accounts", "audit"), "voterolls.service.commands"),
    "demo": "voterolls.pipeline",
}


#: Every ``--workspace`` option falls back to this environment variable.
WORKSPACE_ENV = "VOTEROLLS_WORKSPACE"


def consistent_options(command: Any) -> Any:
    """The same option rules for every command, whichever stage wrote it.

    * ``--workspace`` reads ``$VOTEROLLS_WORKSPACE`` when not given.
    * A command group's own options reach its subcommands, so they may be given
      before or after the subcommand name (``requests --workspace W show`` is
      ``requests show --workspace W``): the group passes the values it received
      on as its subcommands' defaults (an option given to the subcommand wins).

    Duck-typed: typer ships its own copy of click, so click's classes are not
    the ones to test against.
    """
    _workspace_from_env(command)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return command
    shared = {p.name for p in command.params if _is_option(p)}
    for sub in subcommands.values():
        if hasattr(sub, "commands") or "workspace" not in shared:
            consistent_options(sub)  # the group has no --workspace: each subcommand reads the env
    if shared:
        command.invoke = _passing_options_down(command, command.invoke, shared)
    return command


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _workspace_from_env(command: Any) -> None:
    for param in command.params:
        if _is_option(param) and param.name == "workspace" and not param.envvar:
            param.envvar = WORKSPACE_ENV
            param.show_envvar = True


def _given(ctx: Any, name: str) -> bool:
    """Whether the user gave option ``name`` (on the command line or through its env var)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _passing_options_down(group: Any, invoke: Any, shared: set[str]) -> Any:
    """``group.invoke`` that first makes the group's given options its subcommands' defaults."""

    @functools.wraps(invoke)
    def run(ctx: Any) -> Any:
        given = {k: v for k, v in ctx.params.items() if k in shared and _given(ctx, k)}
        if given:
            defaults = dict(ctx.default_map or {})
            for name, sub in group.commands.items():
                own = {k: v for k, v in given.items() if k in {p.name for p in sub.params}}
                if own:
                    defaults[name] = {**defaults.get(name, {}), **own}
            ctx.default_map = defaults
        return invoke(ctx)

    return run


class _StageCommands(TyperGroup):
    """The root command group: loads a stage's commands the first time they are needed."""

    def _load(self, module_name: str) -> None:
        loaded: set[str] = self.__dict__.setdefault("_loaded", set())
        if module_name in loaded:
            return
        loaded.add(module_name)
        module = importlib.import_module(module_name)
        stage = typer.Typer()
        module.register(stage)
        for name, command in typer.main.get_group(stage).commands.items():
            self.add_command(consistent_options(command), name)

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


def run(args: list[str] | None = None, command: typer.Typer | None = None) -> int:
    """Run one command line in this process and return its exit code.

    Click runs in standalone mode, so ``typer.Exit(code)``, usage errors and
    an interrupted run all end as ``SystemExit(code)``, turned here into the
    code itself.  (With ``standalone_mode=False`` click *returns* an exit code
    instead, indistinguishable from a command's return value, which is how
    ``audit verify``'s exit 1 used to reach the shell as 0.)  A ``UserError``
    propagates: the caller decides how to show it.
    """
    try:
        (command or app)(args, prog_name="voterolls")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    return 0


def main() -> None:
    """Entry point that turns user mistakes into clear messages and exit codes into the process's."""
    err = Console(stderr=True)
    try:
        code = run()
    except UserError as exc:
        # soft_wrap: one sentence stays one line however narrow the terminal (or a pipe's 80 columns)
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        code = exc.exit_code
    sys.exit(code)


if __name__ == "__main__":
    main()
