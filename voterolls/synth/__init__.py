"""Synthetic national voter population with ground truth.

``generate_nation(people, seed)`` draws true people from public Census / NCHS
tables, gives them registrations in their states (plus stale and duplicate
ones, with realistic recording noise), simulates one general election and
keeps the truth apart.  ``write_nation(nation, out_dir)`` writes each state's
native files, the state-held identifiers and the truth.  See docs/SYNTH.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voterolls.synth.config import SynthConfig

if TYPE_CHECKING:
    from voterolls.synth.nation import RECORD_KINDS, Nation, generate_nation


def __getattr__(name: str) -> Any:
    if name in ("RECORD_KINDS", "Nation", "generate_nation"):
        from voterolls.synth import nation

        return getattr(nation, name)
    raise AttributeError(name)


def write_nation(nation: Nation, out_dir, **kwargs) -> dict:  # noqa: ANN001
    """Write ``nation`` under ``out_dir``; see :func:`voterolls.synth.writer.write_nation`.

    Imported lazily because it pulls in ``voterolls.formats`` (DuckDB).
    """
    from voterolls.synth.writer import write_nation as _write

    return _write(nation, out_dir, **kwargs)


__all__ = ["RECORD_KINDS", "Nation", "SynthConfig", "generate_nation", "write_nation"]
