"""Synthetic national voter population with ground truth.

``generate_nation(people, seed)`` draws true people from public Census / NCHS
tables, gives them registrations in their states (plus stale and duplicate
ones, with realistic recording noise), simulates one general election and
keeps the truth apart.  ``write_nation(nation, out_dir)`` writes each state's
native files, the state-held identifiers and the truth.  See docs/SYNTH.md.
"""

from voterolls.synth.config import SynthConfig
from voterolls.synth.nation import RECORD_KINDS, Nation, generate_nation


def write_nation(nation: Nation, out_dir, **kwargs) -> dict:  # noqa: ANN001
    """Write ``nation`` under ``out_dir``; see :func:`voterolls.synth.writer.write_nation`.

    Imported lazily because it pulls in ``voterolls.formats`` (DuckDB).
    """
    from voterolls.synth.writer import write_nation as _write

    return _write(nation, out_dir, **kwargs)


__all__ = ["RECORD_KINDS", "Nation", "SynthConfig", "generate_nation", "write_nation"]
