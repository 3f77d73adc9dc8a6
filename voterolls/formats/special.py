"""Formats whose history is not a plain separate file get their own writer / reader hooks."""

from __future__ import annotations

from voterolls.formats import ny, oh, pa

WRITERS = {
    "oh_swvf": oh.write,
    "ny_statewide": ny.write,
    "pa_fve": pa.write,
}
