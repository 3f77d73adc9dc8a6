"""Issue 18, bullet 1: a printed "<10" always stands for 1..9, and no small cell
can be recovered from the printed figures (row, column and grand totals)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from voterolls.privacy import (
    WITHHELD,
    WITHHELD_LABEL,
    label,
    merge_bins,
    merge_small,
    protect,
)

VALUES = st.sampled_from([0, 0, 1, 2, 3, 5, 8, 9, 10, 11, 14, 25, 60, 300])


def _table_figures(nr: int, nc: int):
    figs = {f"row{r}": [(r, c) for c in range(nc)] for r in range(nr)}
    figs |= {f"col{c}": [(r, c) for r in range(nr)] for c in range(nc)}
    figs["total"] = [(r, c) for r in range(nr) for c in range(nc)]
    return figs


def _consistent_values(cells, figs, out):
    """Every assignment of the hidden cells a reader cannot rule out (brute force).

    The reader knows: a "<10" cell or total is 1..9, a withheld total is at
    least 10, a printed total is exact.
    """
    hidden = [k for k, v in out.cells.items() if v is None]
    grid = np.array(list(itertools.product(range(1, 10), repeat=len(hidden))), dtype=np.int64)
    ok = np.ones(len(grid), dtype=bool)
    col = {k: i for i, k in enumerate(hidden)}
    for f, ks in figs.items():
        known = sum(out.cells[k] for k in ks if out.cells[k] is not None)
        s = known + sum(grid[:, col[k]] for k in ks if k in col) if any(k in col for k in ks) else np.full(len(grid), known)
        v = out.figures[f]
        if v == WITHHELD:
            ok &= s >= 10
        elif v is None:
            ok &= (s >= 1) & (s <= 9)
        else:
            ok &= s == v
    return hidden, grid[ok]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.integers(1, 3), st.integers(1, 4), st.data())
def test_no_false_small_label_and_no_small_cell_recoverable(nr, nc, data):
    counts = {(r, c): data.draw(VALUES) for r in range(nr) for c in range(nc)}
    n_small = sum(1 for v in counts.values() if 1 <= v <= 9)
    assume(n_small <= 4)
    figs = _table_figures(nr, nc)
    out = protect(counts, figs)
    # a printed "<10" stands for 1..9, a withheld figure for 10 or more; no large cell is hidden
    for k, v in out.cells.items():
        assert (v is None) == (1 <= counts[k] <= 9)
        assert v is None or v == counts[k]
    for f, v in out.figures.items():
        true = sum(counts[k] for k in figs[f])
        if v is None:
            assert 1 <= true <= 9
        elif v == WITHHELD:
            assert true >= 10
            assert label(v) == WITHHELD_LABEL
        else:
            assert v == true
    if n_small:
        hidden, possible = _consistent_values(counts, figs, out)
        assert len(possible) >= 1  # the truth is among them
        for i, k in enumerate(hidden):
            assert len(set(possible[:, i].tolist())) >= 2, f"cell {k} recoverable from {out}"


def test_labels_read_for_what_they_are():
    assert label(None) == "<10"
    assert label(WITHHELD) == "withheld to protect a small cell"
    assert label(2389) == "2,389"


def test_merge_small_combines_a_small_category_with_its_smallest_neighbour():
    # CA: 3 full-DOB registrations, 2,386 year-only, 0 none -> "full + year" 2,389, never "<10" of 2,389
    assert merge_small([3, 2386, 0]) == [[0, 1], [2]]
    assert merge_small([3, 4, 500]) == [[0, 1, 2]]  # 7 is still small: then merged again
    assert merge_small([3, 5, 500, 40]) == [[0, 1, 3], [2]]
    assert merge_small([3, 2]) == [[0, 1]]  # all small: one "<10" group


@given(st.lists(st.lists(st.integers(0, 40), min_size=8, max_size=8), min_size=1, max_size=3))
def test_merged_bins_leave_no_small_cell_in_a_series_that_can_have_none(rows):
    ranges = merge_bins(rows, breaks=[4])
    assert ranges[0][0] == 0 and ranges[-1][1] == 7
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert not any(lo < 4 <= hi for lo, hi in ranges)  # never across the published cut
    for r in rows:
        if sum(r[:4]) >= 10 and sum(r[4:]) >= 10:
            for lo, hi in ranges:
                assert not 1 <= sum(r[lo : hi + 1]) <= 9
