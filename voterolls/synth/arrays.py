"""Small Arrow helpers: build string columns from integer codes without Python objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def pick(values: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    """``values[codes[i]]`` for every i, as an Arrow string array (a vectorised take)."""
    return pa.array(list(values), pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def const(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` ``n`` times."""
    return pick([value], np.zeros(n, dtype=np.int64))
