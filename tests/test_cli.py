"""The CLI assembly: every stage's command is listed, and only the needed stage is imported."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from voterolls import cli


def _registered_by(module_name: str) -> list[str]:
    """Top-level command names ``module_name`` registers (imports it: test-side only)."""
    stage = typer.Typer()
    importlib.import_module(module_name).register(stage)
    return list(typer.main.get_group(stage).commands)


def _fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (a clean sys.modules); it prints one JSON value."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_command_home_names_the_module_of_every_command():
    seen: dict[str, str] = {}
    for module_name in cli.COMMAND_MODULES:
        for name in _registered_by(module_name):
            assert name not in seen, f"{name} registered by {seen.get(name)} and {module_name}"
            seen[name] = module_name
    assert seen == cli.COMMAND_HOME


def test_help_lists_every_command_with_its_help():
    res = CliRunner().invoke(cli.app, ["--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name in ["version", *cli.COMMAND_HOME]:
        assert f" {name} " in res.output, name
    # the real help text of a lazily loaded command, not a placeholder
    assert "Write the offline HTML report" in res.output
    # plain commands first, command groups (policy, requests, ...) after them, as before
    assert res.output.index(" demo ") < res.output.index(" policy ")


def test_one_command_imports_only_its_stage():
    got = _fresh(
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from voterolls.cli import app\n"
        "r = CliRunner().invoke(app, ['report', '--help'])\n"
        "print(json.dumps({'code': r.exit_code, 'text': r.output, 'mods': sorted(sys.modules)}))"
    )
    assert got["code"] == 0 and "--out" in got["text"]
    mods = set(got["mods"])
    assert "voterolls.report.commands" in mods
    for heavy in (
        "splink",
        "voterolls.link.commands",
        "voterolls.synth.nation",
        "voterolls.report.data",
    ):
        assert heavy not in mods, heavy


def test_report_package_is_lazy_and_keeps_its_names():
    got = _fresh(
        "import json, sys\n"
        "import voterolls.report.commands\n"
        "light = 'voterolls.report.data' not in sys.modules and 'jinja2' not in sys.modules\n"
        "import voterolls.report.render\n"  # the submodule must not shadow the function
        "from voterolls.report import ReportData, gather, render, write_report\n"
        "print(json.dumps({'light': light, 'render': callable(render) and render.__module__,\n"
        "                  'names': [gather.__name__, ReportData.__name__, write_report.__name__]}))"
    )
    assert got["light"] is True
    assert got["render"] == "voterolls.report.render"
    assert got["names"] == ["gather", "ReportData", "write_report"]


def test_unknown_command_is_a_usage_error_not_a_traceback():
    res = CliRunner().invoke(cli.app, ["no-such-command"])
    assert res.exit_code == 2 and "No such command" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


@pytest.mark.slow
def test_the_demo_runs_end_to_end_through_the_installed_command(tmp_path) -> None:  # noqa: ANN001
    """README's first command runs ``voterolls demo``: every stage in turn, invoked by the
    demo through the root command group.  Run as a user runs it (a new process, the console
    script), on a small nation."""
    from pathlib import Path

    exe = Path(sys.executable).with_name("voterolls")
    out = tmp_path / "demo"
    res = subprocess.run(
        [str(exe), "demo", "--people", "1500", "--seed", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = out / "report.html"
    assert report.exists() and report.stat().st_size > 10_000
    for step in ("generate", "ingest-dir", "link", "evaluate", "estimate", "lists", "report"):
        assert f"voterolls {step}" in res.stdout, step
    assert list((out / "lists" / "NC").iterdir())
    assert (out / "lists" / "NC" / "cross_state_movers.xlsx").is_file()  # the list an office opens
    # the demo nation has the namesake density of a national file (issue 18), not a tiny pool's
    import json

    config = json.loads((out / "synthetic" / "truth" / "config.json").read_text())
    assert config["namesake_density"] == "national"


# --- one set of option rules for every command (issue 22) -----------------------------------

VOTEROLLS = Path(sys.executable).with_name("voterolls")
ROOT = Path(__file__).resolve().parent.parent


def _voterolls(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it, with this tree's code."""
    full_env = {k: v for k, v in os.environ.items() if k != "VOTEROLLS_WORKSPACE"}
    full_env.update(PYTHONPATH=str(ROOT), COLUMNS="200", **env)
    return subprocess.run([str(VOTEROLLS), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_every_workspace_option_reads_the_environment_variable():
    root = typer.main.get_command(cli.app)
    ctx = typer.Context(root)
    missing = []

    def walk(command, path):
        subs = getattr(command, "commands", None)
        group_has_it = any(p.name == "workspace" for p in command.params)
        for p in command.params:
            if p.name == "workspace" and p.envvar != cli.WORKSPACE_ENV:
                missing.append(path)
        for name, sub in (subs or {}).items():
            if not group_has_it:  # a group's own --workspace reaches its subcommands
                walk(sub, f"{path} {name}")

    for name in root.list_commands(ctx):
        walk(root.get_command(ctx, name), name)
    assert missing == []


@pytest.mark.parametrize("args", [["estimate"], ["lists", "NC"], ["link"], ["report"], ["diff", "NC"]])
def test_commands_use_the_workspace_from_the_environment(tmp_path, args):
    elsewhere = tmp_path / "elsewhere"
    res = _voterolls(args, cwd=tmp_path, VOTEROLLS_WORKSPACE=str(elsewhere))
    assert res.returncode == 2, res.stderr
    assert str(elsewhere) in res.stderr  # not ./workspace
    assert "Traceback" not in res.stderr


def test_a_group_option_may_come_before_the_subcommand(tmp_path):
    w = tmp_path / "W"
    res = _voterolls(["requests", "--workspace", str(w), "set", "NC", "--status", "complied"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (w / "requests" / "tracker.json").is_file()
    assert not (tmp_path / "workspace").exists()  # the option was not silently dropped
    show = _voterolls(["requests", "--workspace", str(w), "show", "--state", "NC"], cwd=tmp_path)
    assert show.returncode == 0 and "NC: complied" in show.stdout
    env = _voterolls(["requests", "show", "--state", "NC"], cwd=tmp_path, VOTEROLLS_WORKSPACE=str(w))
    assert env.returncode == 0 and "NC: complied" in env.stdout
    # the option given to the subcommand itself wins over the group's
    other = tmp_path / "other"
    res = _voterolls(["requests", "--workspace", str(w), "set", "OH", "--status", "refused",
                      "--workspace", str(other)], cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0 and (other / "requests" / "tracker.json").is_file()


def test_help_prints_percent_signs_once(tmp_path):
    res = _voterolls(["link", "--help"], cwd=tmp_path)
    assert res.returncode == 0
    assert "40% of RAM" in res.stdout and "%%" not in res.stdout
