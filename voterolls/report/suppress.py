"""Small-cell suppression for every count the report publishes.

The project's rule lives in ``voterolls.privacy.suppress_small_cells`` (the
policy engineer's module).  This adapter calls it when it is installed and
then applies the same rule locally as a belt-and-braces check, so the report
is safe whichever version of the privacy module is present: a count of 1 to 9
people is never printed.  Zero is a structural zero (nobody) and is shown.

Secondary suppression: when a group of cells is published together with its
total, one suppressed cell could be recovered by subtraction; so if exactly
one cell in such a group is suppressed, the next smallest non-zero cell is
suppressed too.
"""

from __future__ import annotations

from collections.abc import Sequence

from voterolls.log import get_logger

log = get_logger(__name__)

#: Counts from 1 to SMALL_CELL - 1 are suppressed.
SMALL_CELL = 10


def _privacy_rule() -> tuple[object | None, str]:
    try:
        from voterolls.privacy import suppress_small_cells
    except ImportError:
        return None, "report-local rule (voterolls.privacy not installed)"
    return suppress_small_cells, "voterolls.privacy.suppress_small_cells"


def suppression_source() -> str:
    """Which implementation applies the rule (quoted in the methods section)."""
    return _privacy_rule()[1]


def _local(values: Sequence[int | None], threshold: int) -> list[int | None]:
    return [None if v is None or 0 < v < threshold else int(v) for v in values]


def _via_privacy(
    values: Sequence[int | None], threshold: int, *, group: bool = False
) -> list[int | None] | None:
    """Ask ``voterolls.privacy.suppress_small_cells``; None if it is not installed or fails."""
    rule, _ = _privacy_rule()
    if rule is None:
        return None
    if not any(v is not None and 0 < v < threshold for v in values):
        # nothing small: the rule (primary and complementary) leaves every cell as it is
        return [None if v is None else int(v) for v in values]
    import pyarrow as pa

    table = pa.table(
        {
            "n": pa.array([None if v is None else int(v) for v in values], pa.int64()),
            "g": pa.array([0] * len(values), pa.int8()),
        }
    )
    try:
        out = rule(table, ["n"], threshold, group_by=["g"] if group else None)  # type: ignore[operator]
        shown = out.column("n").to_pylist()
    except Exception as exc:  # an incompatible version: the local rule still applies
        log.warning(
            "privacy.suppress_small_cells failed (%s); using the local rule", type(exc).__name__
        )
        return None
    if len(shown) != len(values):
        return None
    return [None if v is None else int(v) for v in shown]


def suppress(values: Sequence[int | None], threshold: int = SMALL_CELL) -> list[int | None]:
    """Counts with every small cell replaced by None (shown as "<10")."""
    vals = list(values)
    via = _via_privacy(vals, threshold)
    return _local(via if via is not None else vals, threshold)


def suppress_one(value: int | None, threshold: int = SMALL_CELL) -> int | None:
    return suppress([value], threshold)[0]


def suppress_group(values: Sequence[int | None], threshold: int = SMALL_CELL) -> list[int | None]:
    """Suppress small cells of a group whose total is also published."""
    via = _via_privacy(list(values), threshold, group=True)
    out = _local(via if via is not None else list(values), threshold)
    hidden = [
        i for i, (a, b) in enumerate(zip(values, out, strict=True)) if a is not None and b is None
    ]
    if len(hidden) == 1:
        candidates = [(v, i) for i, v in enumerate(out) if v is not None and v > 0]
        if candidates:
            _, i = min(candidates)
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
