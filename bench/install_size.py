"""How much each install of voterolls puts on disk: core (what `make demo` installs) vs the extras.

Measured from the environment this runs in (which must have every extra installed, as `make
setup` leaves it): for each install, the distributions pip would bring (pyproject.toml's
requirements and, recursively, theirs) and the bytes of their installed files.  pip and
setuptools, in every virtual environment, are not counted.

    python bench/install_size.py
"""

from __future__ import annotations

import os
import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirement_name(req: str) -> str:
    """``"Foo_Bar[x]>=1; python_version<'4'"`` -> ``"foo-bar"``."""
    return re.split(r"[<>=!~\[;( ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def closure(names: set[str]) -> set[str]:
    """``names`` and everything they require (their extras left out), as pip installs them."""
    seen, todo = set(names), list(names)
    while todo:
        try:
            reqs = requires(todo.pop()) or []
        except PackageNotFoundError:
            continue
        for req in reqs:
            name = requirement_name(req)
            if "extra ==" not in req and name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def installed_bytes(names: set[str]) -> tuple[int, int]:
    """(distributions found, bytes of their files) in this environment."""
    found = total = 0
    for name in names:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        found += 1
        for f in dist.files or []:
            try:
                total += os.path.getsize(dist.locate_file(f))
            except OSError:
                pass
    return found, total


def main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    declared = project["optional-dependencies"]

    def extra(name: str) -> set[str]:  # "voterolls[service,spark]" inside an extra means those extras
        out = set()
        for req in declared[name]:
            own = re.fullmatch(r"voterolls\[(.+)\]", req.strip())
            out |= set().union(*(extra(e.strip()) for e in own[1].split(","))) if own else {requirement_name(req)}
        return out

    extras = {name: extra(name) for name in declared}
    rows = [("core (`pip install .`, `make demo`)", core)]
    rows += [(f"core + {name}", core | reqs) for name, reqs in extras.items()]
    print("| install | distributions | MiB on disk |\n|---|---:|---:|")
    for label, names in rows:
        n, size = installed_bytes(closure(names) - {"voterolls"})
        print(f"| {label} | {n} | {size / 2**20:,.0f} |")


if __name__ == "__main__":
    main()
