"""Vendored public reference tables (see PROVENANCE.md), loaded lazily and cached."""

from __future__ import annotations

from functools import cache
from importlib import resources

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["daily_births", "first_names", "surnames"]


def _read(name: str) -> pa.Table:
    with resources.as_file(resources.files(__package__) / name) as path:
        return pq.read_table(path)


@cache
def surnames() -> pa.Table:
    """Census 2010 surnames: name, count, pctwhite, pctblack, pctapi, pctaian, pct2prace, pcthispanic."""
    return _read("surnames_2010.parquet")


@cache
def first_names() -> pa.Table:
    """Census 2020 first names: name, count, pctmale and the race/ethnicity percentages."""
    return _read("first_names_2020.parquet")


@cache
def daily_births() -> pa.Table:
    """US births per calendar day (1969-1988, 2000-2014): date, births."""
    return _read("daily_births.parquet")
