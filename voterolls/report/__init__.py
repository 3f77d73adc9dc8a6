"""The offline HTML report: gather aggregates (``data``), draw SVG (``charts``), render (``render``).

The public names are loaded on first use (PEP 562), not on import: the CLI
imports ``voterolls.report.commands`` to list the ``report`` command, and that
must not pull in pydantic models, Jinja and DuckDB just to print ``--help``.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voterolls.report.data import gather
    from voterolls.report.model import ReportData
    from voterolls.report.render import render, write_report

__all__ = ["ReportData", "gather", "render", "write_report"]

_HOME = {
    "gather": "voterolls.report.data",
    "ReportData": "voterolls.report.model",
    "render": "voterolls.report.render",
    "write_report": "voterolls.report.render",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


class _ReportPackage(types.ModuleType):
    """Keeps ``voterolls.report.render`` the *function*, as the former eager import did.

    Importing the submodule ``voterolls.report.render`` makes Python set the
    package attribute of that name to the module; ``from voterolls.report
    import render`` must still give the function.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _ReportPackage
