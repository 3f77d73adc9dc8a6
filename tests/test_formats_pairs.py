"""Every pair (a file of state A, the layout of state B != A): refused or detected as A, never loaded as B.

The files of state A are its sample as each shipped layout of A publishes it
(header or not, history files included).  Detection must name a layout of
A; scanning them with B's layout named explicitly must be a ``UserError``
(exit 2 at the command line), never a load of mis-mapped rows.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from voterolls.errors import UserError
from voterolls.formats import formats, scan, write_native
from voterolls.formats.detect import detect
from voterolls.formats.sample import national_sample

FULL = SimpleNamespace(
    state="XX", dob_disclosure="full", phone_public=True, email_public=True, party_on_file=True, vote_history_public=True
)

STATE_LAYOUTS = sorted(n for n, f in formats().items() if f.state)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    out = {}
    for name in STATE_LAYOUTS:
        state = formats()[name].state
        regs, vh = national_sample(state, 25)
        pol = SimpleNamespace(**{**vars(FULL), "state": state})
        out[name] = write_native(state, regs, vh, tmp_path_factory.mktemp(name), policy=pol, format=name)
    return out


@pytest.mark.parametrize("name", STATE_LAYOUTS)
def test_file_of_a_is_detected_as_a_and_refused_by_every_other_state(samples: dict[str, list[Path]], name: str) -> None:
    state = formats()[name].state
    files = samples[name]
    assert detect(files).state == state
    loaded_as = []
    for other in STATE_LAYOUTS:
        if formats()[other].state == state:
            continue
        try:
            s = scan(duckdb.connect(), files, state=state, format=other)
        except UserError:
            continue
        s.finish()
        loaded_as.append(other)
    assert loaded_as == []
