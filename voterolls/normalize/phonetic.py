"""Phonetic codes in SQL, shared by linkage blocking and the state side of sealed-only deliveries.

The compiler's blocking keys and the keyed blocking keys a state seals must
code a surname identically, so the code lives here, below both.
"""

from __future__ import annotations

__all__ = ["soundex_sql"]


def soundex_sql(col: str, *, letters_only: bool = False) -> str:
    """American Soundex of ``col`` as a DuckDB expression (DuckDB has no built-in).

    Letters map to digit classes, H and W vanish without separating, vowels
    separate; runs of one digit collapse; the first letter is kept and the
    code is padded to four characters.  Only used to build blocking keys, so
    edge cases (a name starting with H or W) only shift a block boundary.
    ``letters_only``: ``col`` already holds only the letters A-Z (saves a regex).
    """
    letters = col if letters_only else f"regexp_replace(upper({col}), '[^A-Z]', '', 'g')"
    coded = f"translate({letters}, 'AEIOUYBFPVCGJKQSXZDTLMNRHW', '000000111122222222334556')"
    # collapse runs of one digit with a single regex pass per digit class
    collapsed = coded
    for d in "0123456":
        collapsed = f"regexp_replace({collapsed}, '{d}{d}+', '{d}', 'g')"
    tail = f"replace(substr({collapsed}, 2), '0', '')"
    return (
        f"CASE WHEN {letters} = '' THEN NULL ELSE "
        f"substr({letters}, 1, 1) || rpad(substr({tail}, 1, 3), 3, '0') END"
    )
