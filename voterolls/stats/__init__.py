"""Honest statistics: expected coincidences, estimates with intervals, coverage.

``estimate(workspace)`` is the entry point; it returns one typed
:class:`voterolls.stats.result.EstimatesResult`, written to
``W/estimates/estimates.json`` by ``write_estimates`` and read back by
``load_estimates`` (the report and the service read figures only through
that type).  See docs/METHODS.md for the formulas.
"""

from __future__ import annotations


def estimate(workspace, **kwargs):  # noqa: ANN001, ANN201 - lazy import keeps `import voterolls` light
    """See :func:`voterolls.stats.api.estimate`."""
    from voterolls.stats.api import estimate as _estimate

    return _estimate(workspace, **kwargs)


__all__ = ["estimate"]
