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
from voterolls.formats import formats, scan
from voterolls.formats.detect import detect
from voterolls.formats.sample import national_sample
from voterolls.synth.native import write_native

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


# ---------------------------------------------------------------------------
# The same pairs on files the writer did not make: every hand-written fixture
# (tests/fixtures/formats: header drift corpus; tests/fixtures/layouts: each
# state's published layouts of several years, header-less ones included).
# ---------------------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"
HAND_WRITTEN = sorted(
    (d.name.upper(), f)
    for root in (FIXTURES / "formats", FIXTURES / "layouts")
    for d in root.iterdir()
    if d.is_dir()
    for f in d.iterdir()
    if f.is_file()
)


def _is_history(state: str, path: Path) -> bool:
    """A fixture that fits only its state's history layout (a history file given alone)."""
    from voterolls.formats.detect import match_layout

    for fmt in formats().values():
        if fmt.state != state:
            continue
        fits = {role: match_layout(lay, role, path)[0] for role, lay in fmt.layouts().items()}
        if fits.get("registrations") is not None:
            return False
        if any(m is not None for m in fits.values()):
            return True
    return False


@pytest.mark.parametrize(("state", "path"), HAND_WRITTEN, ids=[f"{s}-{p.name}" for s, p in HAND_WRITTEN])
def test_hand_written_file_of_a_is_detected_as_a_and_never_loaded_as_b(state: str, path: Path) -> None:
    from voterolls.formats.detect import classify

    if _is_history(state, path):
        # a history file alone names no registrations: refused with that reason, never read as another state's
        with pytest.raises(UserError, match="only vote-history files given"):
            detect([path])
    else:
        found = detect([path])
        assert found.state == state, f"{path.name} detected as {found.format}"
    for name, fmt in formats().items():
        if not fmt.state or fmt.state == state:
            continue
        try:
            classify(fmt, path, strict=True)
        except UserError:
            continue
        # fits B's layout in shape and names (a history file sharing B's column names): named
        # explicitly, the scan refuses it or (a history-only delivery) loads none of its rows
        try:
            s = scan(duckdb.connect(), [path], state=state, format=name)
        except UserError:
            continue
        regs = s.registrations.to_arrow_table().num_rows
        votes = s.vote_history.to_arrow_table().num_rows if s.vote_history is not None else 0
        rep = s.finish()
        assert (regs, votes) == (0, 0) and rep.quarantine.num_rows > 0, f"{path.name} loaded as {name}"
