"""Honest statistics: expected coincidences, estimates with intervals, coverage.

``estimate(workspace)`` is the entry point the report and the lists stage
use; see docs/METHODS.md for the formulas.
"""

from __future__ import annotations


def estimate(workspace, **kwargs):  # noqa: ANN001, ANN201 - lazy import keeps `import voterolls` light
    """See :func:`voterolls.stats.api.estimate`."""
    from voterolls.stats.api import estimate as _estimate

    return _estimate(workspace, **kwargs)


__all__ = ["estimate"]
