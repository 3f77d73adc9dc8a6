"""The package's public faces and shared helpers (issue 22): rules a newcomer can rely on.

The import layers themselves are checked by ``lint-imports`` (``make lint``,
contracts in pyproject.toml); these are the rules it does not express.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import voterolls

PACKAGE = Path(voterolls.__file__).parent


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def test_every_package_says_what_it_exports():
    packages = ["voterolls"] + [
        m.name for m in pkgutil.walk_packages(voterolls.__path__, "voterolls.") if m.ispkg
    ]
    for name in packages:
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], f"{name}.__all__ names what it does not have: {missing}"


def test_no_module_imports_another_modules_underscored_names():
    found = []
    for name, path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("voterolls"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__") and node.module != name:
                        found.append(f"{path.name}:{node.lineno} {node.module}.{a.name}")
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                found.append(f"{path.name}:{node.lineno} {aliases[node.value.id]}.{node.attr}")
    assert found == []


def test_sql_is_quoted_by_one_helper():
    """voterolls.sql quotes literals and identifiers; no module keeps its own copy."""
    copies = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for name, path in _modules()
        if name != "voterolls.sql"
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if """replace("'", "''")""" in line or "replace(chr(39)" in line
    ]
    assert copies == []


def test_no_test_or_bench_helpers_ship_in_the_package():
    names = {path.stem for _, path in _modules()}
    assert not names & {"testing", "toy", "synthetic", "bench", "conftest"}


def test_import_guards_only_for_real_extras():
    """Modules that always ship are imported plainly: an ImportError guard is kept only where an
    optional extra may be missing (voterolls.extras, the Spark engine)."""
    allowed = {"extras.py", "link/engines/spark.py",
               "service/app.py"}  # to go: the upload route's guard around format detection
    guarded = {
        str(path.relative_to(PACKAGE))
        for _, path in _modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ExceptHandler)
        and isinstance(node.type, ast.Name)
        and node.type.id in ("ImportError", "ModuleNotFoundError")
    }
    assert guarded <= allowed, guarded - allowed


def test_splinks_private_attributes_only_in_the_adapter():
    """voterolls.link.splink_adapter is the one module reading or writing Splink internals
    (the prior, trained m / u, the scoring pipeline); its test pins them."""
    private = ("_settings_obj", "_probability_two_random_records_match", "_db_api",
               "_m_probability", "_u_probability", "_retain_matching_columns")
    users = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for name, path in _modules()
        if name != "voterolls.link.splink_adapter"
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if any(f".{attr}" in line for attr in private)
    ]
    assert users == []


def test_workspace_paths_are_spelled_in_one_place():
    """voterolls.store (WorkspacePaths, LinkFiles) says where each product of a workspace lives;
    other modules ask it instead of joining "link" / "pairs.parquet" themselves."""
    import re

    spelled = re.compile(
        r'/ "(link|estimates|requests|lists|service|catalog\.duckdb)"'
        r'|/ "(pairs\.parquet|model\.json|link_report\.json|estimates\.json|tracker\.json|accounts\.json)"'
    )
    allowed = {"voterolls.store",
               "voterolls.pipeline",  # the demo's output folder, not a workspace
               "voterolls.link.run"}  # to go: the linkage run's own output directory (LinkFiles)
    hand_built = [
        f"{path.relative_to(PACKAGE)}:{i}"
        for name, path in _modules()
        if name not in allowed
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if spelled.search(line)
    ]
    assert hand_built == []
