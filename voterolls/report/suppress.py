"""Small-cell suppression for every count the report publishes.

Primary suppression (which counts are too small to print) is the project's
rule and lives in one place, :mod:`voterolls.privacy`: this module only calls
it, so the report can never drift from the threshold the rest of the system
uses.  A count of 1 to 9 people is never printed; zero is a structural zero
(nobody) and is shown.

What stays here is report-specific: *secondary* (complementary) suppression.
The report publishes groups of cells together with their totals (states with
the national total, histogram bins with series and column totals), so one
hidden cell could be recovered by subtraction.  Where a group hides exactly
one non-zero cell, the next smallest non-zero cell is hidden too (a hidden
zero would not protect it: a reader who knows the rule knows the partner of
a small cell is zero or at least the threshold); :func:`protect_table` repeats
that across overlapping groups and, where no partner exists, hides the total.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from voterolls.privacy import DEFAULT_THRESHOLD, suppress_small_cells

#: Counts from 1 to SMALL_CELL - 1 are suppressed (the project threshold, not a copy).
SMALL_CELL = DEFAULT_THRESHOLD

_SOURCE = "voterolls.privacy.suppress_small_cells"


def suppression_source() -> str:
    """Which implementation applies the rule (quoted in the methods section)."""
    return _SOURCE


def suppress(values: Sequence[int | None], threshold: int = SMALL_CELL) -> list[int | None]:
    """Counts with every small cell replaced by None (shown as "<10"): the privacy rule."""
    counts = pa.array([None if v is None else int(v) for v in values], pa.int64())
    out = suppress_small_cells(pa.table({"n": counts}), ["n"], threshold)
    return out.column("n").to_pylist()


def suppress_one(value: int | None, threshold: int = SMALL_CELL) -> int | None:
    return suppress([value], threshold)[0]


def suppress_group(values: Sequence[int | None], threshold: int = SMALL_CELL) -> list[int | None]:
    """Suppress small cells of a group whose total is also published.

    If exactly one non-zero cell is hidden, the smallest other non-zero cell
    goes too; with none left, the smallest other cell (a zero) goes, so the
    group never shows all but one of its parts.
    """
    raw = list(values)
    out = suppress(raw, threshold)
    hidden = [i for i, (a, b) in enumerate(zip(raw, out, strict=True)) if a and b is None]
    if len(hidden) == 1:
        shown = [(v == 0, v, i) for i, v in enumerate(out) if v is not None]
        if shown:
            _, _, i = min(shown)  # non-zero first, then the smallest
            out[i] = None
    return out


Cell = tuple[int, int]


def protect_table(
    counts: Sequence[Sequence[int]],
    groups: Sequence[tuple[Sequence[Cell], Cell | str]],
    threshold: int = SMALL_CELL,
) -> tuple[list[list[int | None]], set[str]]:
    """Primary and complementary suppression for a table published with its margins.

    ``counts`` is a matrix of counts; each group is ``(cells, total)`` where
    ``total`` is either a cell of the matrix (a column total drawn as a bar,
    say) or the name of a figure published outside it (e.g. "pairs >= 0.5").
    Small cells are suppressed first; then, until nothing changes, a group
    whose total is published and that hides exactly one non-zero cell hides
    its next smallest non-zero cell too, so no hidden cell can be recovered
    by subtraction.  If no such cell exists, the total itself must go: a
    matrix total is hidden, a named total is returned for the caller to hide.
    """
    shown = [suppress(list(row), threshold) for row in counts]
    hide_names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for cells, total in groups:
            if isinstance(total, str):
                if total in hide_names:
                    continue
            elif shown[total[0]][total[1]] is None:
                continue
            hidden = [(r, c) for r, c in cells if shown[r][c] is None and counts[r][c] > 0]
            if len(hidden) != 1:
                continue
            cands = [
                (counts[r][c], r, c)
                for r, c in cells
                if shown[r][c] is not None and counts[r][c] > 0
            ]
            if cands:
                _, r, c = min(cands)
                shown[r][c] = None
            elif isinstance(total, str):
                hide_names.add(total)
            else:
                shown[total[0]][total[1]] = None
            changed = True
    return shown, hide_names
