"""Derive the compact reference tables vendored in voterolls/data from ../shared/data.

Run once by a maintainer (``python scripts/derive_reference_tables.py ../shared/data``);
the package never reads ../shared at run time.  See voterolls/data/PROVENANCE.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "voterolls" / "data"


def _pct(table: pa.Table, col: str) -> pa.Array:
    return pc.cast(pc.round(table[col], 1), pa.float32())


def main(src: Path) -> None:
    sur = pq.read_table(src / "census_surnames_2010.parquet")
    out = pa.table(
        {
            "name": sur["name"],
            "count": pc.cast(sur["count"], pa.int32()),
            **{c: _pct(sur, c) for c in ("pctwhite", "pctblack", "pctapi", "pctaian", "pct2prace", "pcthispanic")},
        }
    )
    pq.write_table(out, OUT / "surnames_2010.parquet", compression="zstd", compression_level=19)

    first = pq.read_table(src / "census_first_names_2020.parquet")
    out = pa.table(
        {
            "name": first["name"],
            "count": pc.cast(first["count"], pa.int32()),
            "pctmale": _pct(first, "pctmale"),
            **{c: _pct(first, c) for c in ("pctwhite", "pctblack", "pctapi", "pctaian", "pct2prace", "pcthispanic")},
        }
    )
    pq.write_table(out, OUT / "first_names_2020.parquet", compression="zstd", compression_level=19)

    births = pacsv.read_csv(src / "us_daily_births_1969_1988_2000_2014.csv")
    out = pa.table({"date": pc.cast(births["date"], pa.date32()), "births": pc.cast(births["births"], pa.int32())})
    pq.write_table(out, OUT / "daily_births.parquet", compression="zstd", compression_level=19)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
