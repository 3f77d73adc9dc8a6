"""Optional extras: a missing one stops a command with one sentence naming the install command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from voterolls.errors import UserError
from voterolls.extras import EXTRAS, require_extra

ROOT = Path(__file__).resolve().parent.parent
VOTEROLLS = Path(sys.executable).with_name("voterolls")

# A sitecustomize that makes the service extra look uninstalled (as on a core-only install).
HIDE_SERVICE = """
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fastapi", "uvicorn", "python_multipart"):
            raise ModuleNotFoundError(name, name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def test_require_extra_names_the_pip_command(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr("importlib.import_module", missing)
    with pytest.raises(UserError) as err:
        require_extra("service", "voterolls serve")
    assert "pip install 'voterolls[service]'" in str(err.value)
    assert "\n" not in str(err.value)


def test_every_extra_is_declared_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    for extra in EXTRAS:
        assert f"\n{extra} = [" in text, extra


def test_serve_without_the_service_extra_is_one_sentence(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HIDE_SERVICE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    res = subprocess.run(
        [str(VOTEROLLS), "serve", "--workspace", str(tmp_path / "w")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "pip install 'voterolls[service]'" in res.stderr
    assert "Traceback" not in res.stderr


def _requirement_name(req: str) -> str:
    """``"Foo_Bar[x]>=1; python_version<'4'"`` -> ``"foo-bar"`` (the name pip resolves)."""
    import re

    return re.split(r"[<>=!~\[;( ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared_requirements() -> dict[str, set[str]]:
    """pyproject's requirement names by group ("core" and each extra)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {group: {_requirement_name(r) for r in reqs} for group, reqs in groups.items()}


def _installed_closure(names: set[str]) -> set[str]:
    """``names`` and what they require (extras' requirements left out), as pip would install."""
    from importlib.metadata import PackageNotFoundError, requires

    closure, todo = set(names), list(names)
    while todo:
        try:
            reqs = requires(todo.pop()) or []
        except PackageNotFoundError:  # a requirement for another platform / Python
            continue
        for req in reqs:
            name = _requirement_name(req)
            if "extra ==" not in req and name not in closure:
                closure.add(name)
                todo.append(name)
    return closure


def _third_party_imports(*roots: str) -> dict[str, set[str]]:
    """Top-level modules imported under ``roots`` that are neither stdlib nor ours -> the
    distributions that provide them (normalised names)."""
    import ast
    from importlib.metadata import packages_distributions

    found = set()
    for root in roots:
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    local = {"voterolls", "tests", "bench"} | {p.stem for d in ("tests", "bench") for p in (ROOT / d).glob("*.py")}
    dists = packages_distributions()
    return {
        m: {_requirement_name(d) for d in dists.get(m, [m])}
        for m in found
        if m not in sys.stdlib_module_names and m not in local
    }


def test_a_fresh_install_from_pyproject_gives_every_import():
    """`pip install -e '.[test]'` alone (what `make test` runs) provides every third-party import
    of the package, the tests and bench/: each comes from a declared distribution or one it needs."""
    reachable = _installed_closure(set().union(*_declared_requirements().values()))
    imports = _third_party_imports("voterolls", "tests", "bench")
    missing = {m: d for m, d in imports.items() if not d & reachable}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_core_dependencies_cover_the_core_modules():
    """Outside the service, the Spark engine and the sealed-only encoder, voterolls/ imports only what the core install
    brings: `pip install voterolls` (and `make demo`) runs generate, ingest, link, estimate,
    lists and report."""
    core = _installed_closure(_declared_requirements()["core"])
    optional = {"fastapi", "starlette", "uvicorn", "python_multipart", "pyspark", "clkhash"}
    imports = _third_party_imports("voterolls")
    missing = {m: d for m, d in imports.items() if m not in optional and not d & core}
    assert not missing, f"core modules import distributions outside the core dependencies: {missing}"
