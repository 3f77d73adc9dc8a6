"""Recording noise: what happens between a person and the record a clerk keeps.

Nicknames, one-character typos, dropped or abbreviated middle names, swapped
day and month, placeholder and first-of-month birthdays.  These are what make
exact-match rules (Crosscheck) miss true duplicates and what a probabilistic
matcher must tolerate.  Every function takes whole arrays and a boolean mask
of records to touch, and works on the masked subset in bulk.

Strings are edited as a padded ``uint8`` matrix (one row per name) built
straight from the Arrow buffers, so a typo at a random position in 20,000
names is a handful of numpy operations rather than 20,000 Python calls.
Names from the Census tables are ASCII, which this relies on.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.synth.population import NameTables

_LETTERS = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)


def to_matrix(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(n x width) uint8 matrix, zero padded, and the byte length of each string."""
    arr = pc.fill_null(arr, "") if arr.null_count else arr
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data = arr.buffers()[2]
    buf = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    lens = np.diff(offsets).astype(np.int64)
    width = int(lens.max()) + 1 if n else 1
    cols = np.arange(width)
    inside = cols[None, :] < lens[:, None]
    pos = np.where(inside, offsets[:-1, None] + cols[None, :], 0)
    mat = np.where(inside, buf[pos] if buf.size else 0, 0).astype(np.uint8)
    return mat, lens


def from_matrix(mat: np.ndarray, lens: np.ndarray) -> pa.Array:
    """Inverse of :func:`to_matrix`: the first ``lens[i]`` bytes of each row."""
    n, width = mat.shape
    inside = np.arange(width)[None, :] < lens[:, None]
    data = mat[inside].tobytes()
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )


def apply_typos(names: pa.Array, mask: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """One-character edit in each masked name: substitute, delete, insert or transpose.

    Deletion needs >= 3 characters and transposition >= 2 (shorter names get a
    substitution), so a typo never empties a name.
    """
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return names
    sub = names.take(pa.array(idx))
    mat, lens = to_matrix(sub)
    m = idx.size
    mat = np.concatenate([mat, np.zeros((m, 1), np.uint8)], axis=1)  # room for insertion
    width = mat.shape[1]
    kind = rng.integers(0, 4, size=m)  # 0 sub, 1 del, 2 ins, 3 transpose
    kind = np.where((kind == 1) & (lens < 3), 0, kind)
    kind = np.where((kind == 3) & (lens < 2), 0, kind)
    kind = np.where(lens == 0, -1, kind)
    pos = (rng.random(m) * np.maximum(lens, 1)).astype(np.int64)
    letter = _LETTERS[rng.integers(0, 26, size=m)]
    rows = np.arange(m)
    cols = np.arange(width)[None, :]

    # substitution: a different letter at pos
    s = kind == 0
    same = mat[rows[s], pos[s]] == letter[s]
    letter[s] = np.where(same, _LETTERS[(letter[s] - 65 + 1) % 26], letter[s])
    mat[rows[s], pos[s]] = letter[s]
    # deletion: shift left from pos
    d = kind == 1
    if d.any():
        src = np.where(cols >= pos[d, None], np.minimum(cols + 1, width - 1), cols)
        mat[d] = np.take_along_axis(mat[d], src, axis=1)
        lens = np.where(d, lens - 1, lens)
    # insertion: shift right from pos, put letter at pos
    i = kind == 2
    if i.any():
        src = np.where(cols > pos[i, None], cols - 1, cols)
        shifted = np.take_along_axis(mat[i], src, axis=1)
        shifted[np.arange(i.sum()), pos[i]] = letter[i]
        mat[i] = shifted
        lens = np.where(i, lens + 1, lens)
    # transposition of pos and pos+1 (pos < len-1)
    t = kind == 3
    if t.any():
        p = np.minimum(pos[t], lens[t] - 2)
        r = rows[t]
        a, b = mat[r, p].copy(), mat[r, p + 1].copy()
        mat[r, p], mat[r, p + 1] = b, a
    edited = from_matrix(mat, lens)
    return _scatter(names, idx, edited)


def apply_nicknames(
    first_idx: np.ndarray,
    names: pa.Array,
    mask: np.ndarray,
    rng: np.random.Generator,
    t: NameTables,
) -> tuple[pa.Array, np.ndarray]:
    """Replace masked first names that have a nickname by one (ROBERT -> BOB).

    Returns the new names and the mask of records actually changed (names
    without a nickname in the table stay as they are).
    """
    has = mask & (t.nick_counts[first_idx] > 0)
    idx = np.flatnonzero(has)
    if idx.size == 0:
        return names, has
    g = first_idx[idx]
    pos = np.searchsorted(t.nick_key, g + rng.random(idx.size), side="right")
    pos = np.clip(pos, t.nick_offsets[g], t.nick_offsets[g] + t.nick_counts[g] - 1)
    return _scatter(names, idx, t.nick_values.take(pa.array(pos))), has


def render_middle(
    middle: pa.Array, rng: np.random.Generator, missing_rate: float, initial_rate: float
) -> pa.Array:
    """Middle name as recorded: omitted, initial only, or in full."""
    n = len(middle)
    u = rng.random(n)
    initial = pc.utf8_slice_codeunits(middle, 0, 1)
    out = pc.if_else(pa.array(u < missing_rate + initial_rate), initial, middle)
    return pc.if_else(pa.array(u < missing_rate), pa.nulls(n, pa.string()), out)


def _scatter(base: pa.Array, idx: np.ndarray, values: pa.Array) -> pa.Array:
    """``base`` with positions ``idx`` replaced by ``values`` (vectorised)."""
    if isinstance(base, pa.ChunkedArray):
        base = base.combine_chunks()
    n = len(base)
    src = np.arange(n)
    src[idx] = n + np.arange(idx.size)
    return pa.concat_arrays([base.cast(pa.string()), values.cast(pa.string())]).take(pa.array(src))


# ---------------------------------------------------------------------------
# Dates of birth as recorded.
# ---------------------------------------------------------------------------


def split_date(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month 1-12, day 1-31) of int days since 1970."""
    d = days.astype("datetime64[D]")
    y = d.astype("datetime64[Y]")
    m = d.astype("datetime64[M]")
    return (
        y.astype(np.int64) + 1970,
        (m - y.astype("datetime64[M]")).astype(np.int64) + 1,
        (d - m.astype("datetime64[D]")).astype(np.int64) + 1,
    )


def make_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    ym = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]")
    return (ym.astype("datetime64[D]") + (day - 1)).astype(np.int64)


PLACEHOLDER_DOB = int(np.datetime64("1900-01-01", "D").astype(np.int64))


def apply_dob_errors(
    dob: np.ndarray,
    rng: np.random.Generator,
    transposition_rate: float,
    placeholder_rate: float,
    first_of_month_rate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """DOBs as a clerk recorded them, and an error code per record.

    Codes: 0 none, 1 day/month transposed, 2 placeholder 1900-01-01,
    3 first of month.  Transposition is only drawn where it changes a valid
    date (day <= 12 and day != month).
    """
    n = dob.size
    y, m, d = split_date(dob)
    u = rng.random(n)
    code = np.zeros(n, dtype=np.int8)
    can_swap = (d <= 12) & (d != m)
    code[can_swap & (u < transposition_rate)] = 1
    v = rng.random(n)
    code[(code == 0) & (v < placeholder_rate)] = 2
    code[
        (code == 0)
        & (d != 1)
        & (v >= placeholder_rate)
        & (v < placeholder_rate + first_of_month_rate)
    ] = 3
    out = dob.copy()
    sw = code == 1
    out[sw] = make_date(y[sw], d[sw], m[sw])
    out[code == 2] = PLACEHOLDER_DOB
    fm = code == 3
    out[fm] = make_date(y[fm], m[fm], np.ones(fm.sum(), dtype=np.int64))
    return out, code
