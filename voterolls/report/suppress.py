"""Small-cell suppression for every count the report publishes.

The rule lives in one place, :mod:`voterolls.privacy`: a count of 1 to 9 is
printed "<10" (``None`` in the model), a figure hidden only so that a small
cell cannot be recovered by subtraction is :data:`voterolls.privacy.WITHHELD`
and printed "withheld to protect a small cell", small categories are merged
with a neighbour (``merge_small``, ``merge_bins``) and totals withheld where
needed (``protect``).  This module only re-exports the threshold and keeps
the two one-line helpers the report's gatherers use for lone figures.
"""

from __future__ import annotations

from collections.abc import Sequence

from voterolls.privacy import DEFAULT_THRESHOLD, shown

#: Counts from 1 to SMALL_CELL - 1 are suppressed (the project threshold, not a copy).
SMALL_CELL = DEFAULT_THRESHOLD

_SOURCE = "voterolls.privacy"


def suppression_source() -> str:
    """Which implementation applies the rule (quoted in the methods section)."""
    return _SOURCE


def suppress(values: Sequence[int | None], threshold: int = SMALL_CELL) -> list[int | None]:
    """Counts with every small cell replaced by None (printed "<10"): no total published beside them."""
    return [shown(None if v is None else int(v), threshold) for v in values]


def suppress_one(value: int | None, threshold: int = SMALL_CELL) -> int | None:
    return shown(None if value is None else int(value), threshold)
