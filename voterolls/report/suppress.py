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
        log.warning("privacy.suppress_small_cells failed (%s); using the local rule", type(exc).__name__)
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
    hidden = [i for i, (a, b) in enumerate(zip(values, out, strict=True)) if a is not None and b is None]
    if len(hidden) == 1:
        candidates = [(v, i) for i, v in enumerate(out) if v is not None and v > 0]
        if candidates:
            _, i = min(candidates)
            out[i] = None
    return out
