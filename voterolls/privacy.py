"""Small-cell suppression for every published aggregate.

A count of 1 to 9 people in a cell (a county x age band x party, a state's
"possible double voters" in one precinct, ...) can single out a person when
combined with public knowledge, so published tables never show it.  This is
the usual statistical-disclosure rule (threshold 10, as in many official
statistics and in CMS's cell-size policy); see docs/PRIVACY.md.

:func:`suppress_small_cells` replaces each count in ``1 .. threshold-1`` by
NULL and adds a boolean ``<column>_suppressed`` flag beside it, so a reader
sees "suppressed", never a misleading 0.  Zero is published by default (a
true zero rarely discloses, and hiding it would hide coverage gaps); pass
``suppress_zero=True`` to treat it as small too.

Complementary protection (a small cell published beside its total) never hides
a large cell under the same flag: see :func:`protect`, :func:`merge_small` and
:func:`merge_bins` below, and docs/PRIVACY.md section 4.

:func:`small_cell_mask` is the rule itself (which counts are small); every
caller, the report's included, goes through it, so the threshold and the
treatment of zero live here and nowhere else.

Vectorised: primary suppression is Arrow compute.  The complementary step works
on the few figures of a published table (numpy), never on rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # a DuckDB relation is accepted; duckdb itself is not needed here
    import duckdb

DEFAULT_THRESHOLD = 10
#: Hidden cells linked by published sums are checked by exact enumeration up to this many.
_EXACT_CELLS = 5


def small_cell_mask(
    counts: pa.Array | pa.ChunkedArray,
    threshold: int = DEFAULT_THRESHOLD,
    *,
    suppress_zero: bool = False,
) -> pa.Array | pa.ChunkedArray:
    """The small-cell rule: True where a count must not be published (never null).

    A count is small when ``lo <= count < threshold`` with ``lo`` 1, or 0 with
    ``suppress_zero``; a missing count is not small (there is nothing to hide).
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    lo = 0 if suppress_zero else 1
    small = pc.and_(pc.greater_equal(counts, lo), pc.less(counts, threshold))
    return pc.fill_null(small, False)


def suppress_small_cells(
    table: pa.Table | duckdb.DuckDBPyRelation,
    count_columns: Sequence[str],
    threshold: int = DEFAULT_THRESHOLD,
    *,
    suppress_zero: bool = False,
) -> pa.Table:
    """Return ``table`` with small counts nulled and ``<col>_suppressed`` flags added.

    Row order is preserved.  ``threshold`` is the smallest count published.
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if not isinstance(table, pa.Table):  # a DuckDB relation
        table = table.to_arrow_table()
    missing = [c for c in count_columns if c not in table.column_names]
    if missing:
        raise ValueError(f"no such count column(s): {', '.join(missing)}")
    masks = {
        c: small_cell_mask(table.column(c), threshold, suppress_zero=suppress_zero)
        for c in count_columns
    }
    out = table
    for c, small in masks.items():
        col = table.column(c)
        hidden = pc.if_else(small, pa.scalar(None, col.type), col)
        out = out.set_column(out.column_names.index(c), c, hidden)
    for c, small in masks.items():
        out = out.append_column(f"{c}_suppressed", small)
    return out


def suppressed_count(table: pa.Table) -> int:
    """How many cells a suppressed table hides (sum of all ``*_suppressed`` flags)."""
    total = 0
    for name in table.column_names:
        if name.endswith("_suppressed"):
            total += int(pc.sum(table.column(name).cast(pa.int64())).as_py() or 0)
    return total


# --------------------------------------------------------------------------
# Published figures: labels, totals and merged categories (one rule for the
# report, the service and the CLI)
# --------------------------------------------------------------------------
#
# A published figure is in one of three states:
#   * a number;
#   * ``None``: a primary small cell, 1 to threshold-1 people / pairs, printed
#     "<10" (and never anything else: a "<10" always stands for 1..9);
#   * :data:`WITHHELD`: a figure of ten or more hidden only so that a small
#     cell cannot be recovered by subtraction, printed "withheld to protect a
#     small cell" and never drawn or written as "<10".
# Statistical agencies avoid hiding large interior cells: a small category is
# *merged* with a neighbour (:func:`merge_small`, :func:`merge_bins`), or the
# total that would give it away is withheld (:func:`protect`).  Interior cells
# of ten or more are never hidden here.

#: The model value of a figure withheld for complementarity (JSON-visible).
WITHHELD = "withheld"
#: How a withheld figure reads, everywhere it is printed.
WITHHELD_LABEL = "withheld to protect a small cell"


def small_label(threshold: int = DEFAULT_THRESHOLD) -> str:
    """How a primary small cell reads ("<10")."""
    return f"<{threshold}"


def is_small(n: int | None, threshold: int = DEFAULT_THRESHOLD) -> bool:
    """The small-cell rule on one count (:func:`small_cell_mask` on a one-cell array)."""
    return n is not None and bool(small_cell_mask(pa.array([n], pa.int64()), threshold)[0].as_py())


def shown(n: int | None, threshold: int = DEFAULT_THRESHOLD) -> int | None:
    """A single count as published: ``None`` ("<10") when small."""
    return None if is_small(n, threshold) else n


def label(value: int | float | str | None, threshold: int = DEFAULT_THRESHOLD) -> str:
    """The text of a published count: "1,234", "<10" or "withheld to protect a small cell"."""
    if value is None:
        return small_label(threshold)
    if value == WITHHELD:
        return WITHHELD_LABEL
    return f"{round(float(value)):,}"


def merge_small(
    counts: Sequence[int], threshold: int = DEFAULT_THRESHOLD
) -> list[list[int]]:
    """Groups of category indices to publish as one figure each, so none is small.

    A category with 1..threshold-1 is merged with the smallest other non-zero
    category of the same row (then the next, until the merged figure reaches
    the threshold).  Zeros stay on their own.  If the whole row is small, all
    non-zero categories form one group, which is then itself a "<10" cell.
    Indices in each group are ascending; groups are ordered by first index.
    """
    groups = [[i] for i, n in enumerate(counts) if n > 0]
    zeros = [[i] for i, n in enumerate(counts) if n <= 0]

    def size(g: list[int]) -> int:
        return sum(counts[i] for i in g)

    while len(groups) > 1:
        small = [g for g in groups if size(g) < threshold]
        if not small:
            break
        g = min(small, key=lambda g: (size(g), g[0]))
        rest = [h for h in groups if h is not g]
        partner = min(rest, key=lambda h: (size(h), h[0]))
        groups = [h for h in rest if h is not partner] + [sorted(g + partner)]
    return sorted(groups + zeros, key=lambda g: g[0])


def merge_bins(
    rows: Sequence[Sequence[int]],
    breaks: Sequence[int] = (),
    threshold: int = DEFAULT_THRESHOLD,
) -> list[tuple[int, int]]:
    """Adjacent histogram bins merged so that no row has a small cell.

    ``rows`` are series over the same bins; the result is ``(first, last)``
    bin ranges covering all bins.  A range is closed when every row whose
    total reaches the threshold has 0 or at least ``threshold`` in it; bins
    are never merged across an index in ``breaks`` (published cut-offs such as
    p >= 0.5 stay sums of whole ranges).  A leftover small tail is merged into
    the ranges before it (within the same segment between breaks).  Rows whose total is
    itself small cannot be helped by merging (their caller merges the rows).
    """
    if not rows:
        return []
    nb = len(rows[0])
    live = [r for r in rows if sum(r) >= threshold]
    cuts = sorted({b for b in breaks if 0 < b < nb})

    def ok(lo: int, hi: int) -> bool:
        return all(not is_small(sum(r[lo : hi + 1]), threshold) for r in live)

    out: list[tuple[int, int]] = []
    seg_starts = [0, *cuts]
    seg_ends = [*(c - 1 for c in cuts), nb - 1]
    for s0, s1 in zip(seg_starts, seg_ends, strict=True):
        lo = s0
        seg: list[tuple[int, int]] = []
        for hi in range(s0, s1 + 1):
            if ok(lo, hi):
                seg.append((lo, hi))
                lo = hi + 1
        if lo <= s1:  # a small tail: join it to the ranges before it until it is not small
            while seg and not ok(lo, s1):
                lo = seg.pop()[0]
            seg.append((lo, s1))
        out.extend(seg)
    return out


@dataclass(frozen=True)
class Protected:
    """The published value of every cell and every figure (total) of a table."""

    cells: dict
    figures: dict


def protect(
    cells: Mapping,
    figures: Mapping[str, Sequence],
    identities: Sequence[tuple[Sequence, Sequence]] = (),
    threshold: int = DEFAULT_THRESHOLD,
) -> Protected:
    """Primary suppression plus withheld totals, so no small cell can be recovered.

    ``cells`` maps a key to its count; ``figures`` maps a published total's name
    to the keys it sums.  ``identities`` are sums a reader knows to be equal
    (two breakdowns of one total).  Small cells and small totals read "<10"
    (``None``).  Then, while some small cell is determined exactly by the
    published totals (linear algebra over the hidden cells), the smallest
    published total containing it is withheld (:data:`WITHHELD`).  Interior
    cells are never hidden for complementarity; if withholding totals cannot
    protect a cell (an identity pins it), ``ValueError`` says so and the caller
    must merge categories instead.
    """
    import numpy as np

    keys = list(cells)
    out_cells = {k: shown(int(cells[k]), threshold) for k in keys}
    values = {f: sum(int(cells[k]) for k in ks) for f, ks in figures.items()}
    out_figs: dict = {f: shown(v, threshold) for f, v in values.items()}
    hidden = [k for k in keys if out_cells[k] is None]
    if not hidden:
        return Protected(out_cells, out_figs)
    index = {k: i for i, k in enumerate(hidden)}
    support = {f: [k for k in ks if k in index] for f, ks in figures.items()}
    ident_rows = []
    ident_pairs = [(list(a), list(b)) for a, b in identities]
    ident_offset = {
        (tuple(a), tuple(b)): sum(int(cells[k]) for k in b if k not in index)
        - sum(int(cells[k]) for k in a if k not in index)
        for a, b in ident_pairs
    }
    for a, b in identities:
        row = np.zeros(len(hidden))
        for k in a:
            if k in index:
                row[index[k]] += 1
        for k in b:
            if k in index:
                row[index[k]] -= 1
        ident_rows.append(row)

    def equations() -> list[tuple[list, int, int]]:
        """(hidden keys, low, high) for every sum a reader can read off the figures."""
        eqs = []
        for f, ks in support.items():
            if not ks:
                continue
            known = values[f] - sum(int(cells[k]) for k in ks)
            v = out_figs[f]
            if v == WITHHELD:  # a reader knows a withheld figure is at least the threshold
                eqs.append((ks, threshold - known, 10**15))
            elif v is None:
                eqs.append((ks, 1 - known, threshold - 1 - known))
            else:
                eqs.append((ks, v - known, v - known))
        return eqs

    def pinned_exactly() -> list:
        """Cells a reader can pin to one value, by enumeration per connected group.

        Each hidden cell is 1..threshold-1; each printed total fixes a sum, each
        "<10" total bounds one, each withheld total is at least the threshold.
        Groups of hidden cells linked by a sum are enumerated exactly when small
        (at most :data:`_EXACT_CELLS` cells); larger groups rely on the rank test.
        """
        eqs = equations()
        parent = {k: k for k in hidden}

        def root(k):
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for ks, _, _ in eqs:
            for k in ks[1:]:
                parent[root(k)] = root(ks[0])
        comps: dict = {}
        for k in hidden:
            comps.setdefault(root(k), []).append(k)
        found = []
        for comp in comps.values():
            if len(comp) > _EXACT_CELLS:
                continue
            pos = {k: i for i, k in enumerate(comp)}
            grid = np.array(
                list(itertools.product(range(1, threshold), repeat=len(comp))), dtype=np.int64
            )
            ok = np.ones(len(grid), dtype=bool)
            for ks, lo, hi in eqs:
                if ks[0] in pos:
                    total = grid[:, [pos[k] for k in ks]].sum(axis=1)
                    ok &= (total >= lo) & (total <= hi)
            for ia, ib in ident_pairs:
                la = [pos[k] for k in ia if k in pos]
                lb = [pos[k] for k in ib if k in pos]
                if la or lb:
                    sa = grid[:, la].sum(axis=1) if la else 0
                    sb = grid[:, lb].sum(axis=1) if lb else 0
                    ok &= (sa - sb) == ident_offset[(tuple(ia), tuple(ib))]
            live = grid[ok]
            for k, i in pos.items():
                if len(live) and np.unique(live[:, i]).size == 1:
                    found.append(k)
        return found

    def recoverable() -> list:
        rows = list(ident_rows)
        for f, ks in support.items():
            if out_figs[f] is not None and out_figs[f] != WITHHELD and ks:
                row = np.zeros(len(hidden))
                row[[index[k] for k in ks]] = 1
                rows.append(row)
        found = []
        if rows:
            a = np.vstack(rows)
            rank = np.linalg.matrix_rank(a)
            for k in hidden:
                e = np.zeros(len(hidden))
                e[index[k]] = 1
                if np.linalg.matrix_rank(np.vstack([a, e])) == rank:
                    found.append(k)
        return found + [k for k in pinned_exactly() if k not in found]

    def printed(f) -> bool:
        return out_figs[f] is not None and out_figs[f] != WITHHELD and bool(support[f])

    def linked(k) -> set:
        """Hidden cells tied to ``k`` through any figure (printed, "<10" or withheld)."""
        group, todo = {k}, [k]
        while todo:
            c = todo.pop()
            for ks in support.values():
                if c in ks:
                    for j in ks:
                        if j not in group:
                            group.add(j)
                            todo.append(j)
        return group

    while found := recoverable():
        k = found[0]
        # a printed total holding the cell; else one holding a cell it is tied to
        # (a "<10" total bounds it, and a printed total elsewhere may close the gap)
        cands = [f for f, ks in support.items() if k in ks and printed(f)]
        if not cands:
            group = linked(k)
            cands = [f for f, ks in support.items() if printed(f) and group & set(ks)]
        if not cands:
            raise ValueError(
                "a small cell is pinned by a published identity; merge its category instead"
            )
        f = min(cands, key=lambda f: (len(figures[f]), str(f)))
        out_figs[f] = WITHHELD
    return Protected(out_cells, out_figs)
