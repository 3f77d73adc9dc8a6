"""Optional dependency groups (``pip install 'voterolls[NAME]'``).

The core install is what the DuckDB path needs: generate, seal, ingest, link,
estimate, lists, report (``make demo``).  The intake service, the Spark
engine and the sealed-only name encoder (clkhash) are extras; a command that needs a missing one stops with one sentence
naming the install command instead of an ImportError traceback.
"""

from __future__ import annotations

import importlib

from voterolls.errors import UserError

__all__ = ["EXTRAS", "require_extra"]

#: Import names each extra provides (pyproject.toml's [project.optional-dependencies]).
EXTRAS: dict[str, tuple[str, ...]] = {
    "service": ("fastapi", "uvicorn", "python_multipart"),
    "spark": ("pyspark",),
    "sealed": ("clkhash",),
}


def require_extra(extra: str, purpose: str) -> None:
    """Raise a :class:`UserError` naming ``pip install 'voterolls[extra]'`` if ``extra`` is missing."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)  # imported next by the caller anyway
        except ImportError:
            missing.append(module)
    if missing:
        raise UserError(
            f"{purpose} needs the optional '{extra}' dependencies ({', '.join(missing)} not installed): "
            f"pip install 'voterolls[{extra}]'"
        )
