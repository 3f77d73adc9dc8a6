"""Damaged files through the whole ingest: law, normalisation, counts, and what lands on disk.

The reader tests prove every line is loaded or quarantined by ``scan``; this
proves the same survives ``voterolls.ingest.pipeline.ingest`` (policy,
protected voters, normalisation, the missing-id check, Parquet): for every
damaged file set either a ``UserError`` and no snapshot, or a snapshot whose
per-file counts add up to the physical record lines counted here, whose
Parquet row counts equal its manifest, and whose quarantine holds line
numbers and reasons only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from reliability_helpers import (
    FORMAT_STATE,
    check_no_echo,
    count_lines,
    fuzz_settings,
    native_bytes,
)
from test_reliability_readers import damage

from voterolls.errors import UserError
from voterolls.formats import get_format
from voterolls.ingest.pipeline import IngestRequest, ingest
from voterolls.store import Workspace

FORMATS = ["nc_ncvoter_2022", "fl_extract", "ny_statewide"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_files_through_ingest_reconcile(fmt: str) -> None:
    from test_reliability_readers import _apply, _roles

    originals = native_bytes(fmt, 12)
    roles = _roles(fmt)
    spec = get_format(fmt)
    state = FORMAT_STATE[fmt]

    @fuzz_settings(2)
    @given(damage)
    def run(dmg) -> None:
        which, line_ops, file_ops = dmg
        name, data = originals[which % len(originals)]
        role, header = roles.get(name, ("registrations", 1))
        bad, injected = _apply(data, spec.layouts()[role], header, line_ops, file_ops)
        with tempfile.TemporaryDirectory(prefix="vr_ing_") as d:
            paths = []
            for n, b in originals:
                p = Path(d) / n
                p.write_bytes(bad if n == name else b)
                paths.append(p)
            ws = Workspace(Path(d) / "ws")
            try:
                r = ingest(IngestRequest.of(ws, state, paths, format=fmt))
            except UserError as exc:
                check_no_echo(str(exc), injected)
                assert ws.current_snapshot(state) is None
                return
            snap_dir = ws.path / r.path if not Path(r.path).is_absolute() else Path(r.path)
            for f in r.files:
                lay = spec.layouts()[f.role]
                physical = count_lines((Path(d) / f.file_name).read_bytes(), lay.encoding == "utf-16")
                assert f.rows_read == physical - (1 if lay.header is True and physical else 0) or lay.header == "optional"
                if f.role == "registrations":
                    assert f.rows_read == f.loaded + f.quarantined + f.protected_excluded, f
                elif f.role == "history":
                    assert f.rows_read == f.vote_history_loaded + f.vote_history_withheld + f.quarantined, f
            assert r.rows_read == r.loaded + r.quarantined + r.protected_excluded
            assert pq.ParquetFile(snap_dir / "registrations.parquet").metadata.num_rows == r.loaded
            assert pq.ParquetFile(snap_dir / "vote_history.parquet").metadata.num_rows == r.vote_history_loaded
            q = pq.read_table(snap_dir / "quarantine.parquet")
            assert q.num_rows == sum(f.quarantined for f in r.files)
            assert set(q.column_names) <= {"state", "file", "sha256", "line", "field", "reason"}
            for reason in q["reason"].to_pylist():
                check_no_echo(reason or "", injected)

    run()


# ---------------------------------------------------------------------------
# a bad sealed sidecar (``ingest --sealed``)
# ---------------------------------------------------------------------------


@pytest.fixture
def nc_files(tmp_path: Path):
    from reliability_helpers import FULL

    from voterolls.formats.sample import national_sample
    from voterolls.synth.native import write_native

    regs, vh = national_sample("NC", 8)
    paths = write_native("NC", regs, vh, tmp_path / "nc", policy=FULL)
    return paths, regs["state_voter_id"].to_pylist()


@pytest.mark.parametrize("kind", ["binary", "latin-1", "utf-16"])
def test_sealed_sidecar_that_is_not_utf8_is_a_user_error(tmp_path: Path, nc_files, kind: str) -> None:
    paths, ids = nc_files
    text = f"state_voter_id,dob_token\n{ids[0]},caf\xe9\n"
    data = {"binary": b"\x00\x01\xff\xfe\x80", "latin-1": text.encode("latin-1"), "utf-16": text.encode("utf-16")}[kind]
    sealed = tmp_path / "NC_sealed.csv"
    sealed.write_bytes(data)
    with pytest.raises(UserError, match="NC_sealed.csv"):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", paths, sealed=sealed))
    assert Workspace(tmp_path / "ws").current_snapshot("NC") is None


@pytest.mark.parametrize(("column", "value"), [("dob_token", "1970-01-02"), ("ssn4_token", "1234"), ("dl_token", "D1234567")])
def test_sealed_sidecar_with_plaintext_is_refused(tmp_path: Path, nc_files, column: str, value: str) -> None:
    paths, ids = nc_files
    sealed = tmp_path / "NC_sealed.csv"
    sealed.write_text(f"state_voter_id,{column}\n{ids[0]},{value}\n{ids[1]},{'ab' * 32}\n")
    with pytest.raises(UserError, match=column):
        ingest(IngestRequest.of(tmp_path / "ws", "NC", paths, sealed=sealed))
    assert Workspace(tmp_path / "ws").current_snapshot("NC") is None


def test_sealed_sidecar_malformed_csv_is_a_user_error(tmp_path: Path, nc_files) -> None:
    paths, ids = nc_files
    for i, text in enumerate([
        "",
        f'state_voter_id,dob_token\n{ids[0]},"abc\n',
        f"state_voter_id,dob_token\n{ids[0]},a,b\n",
        f"state_voter_id,dob_token\n{ids[0]},{'a' * 64}\n{ids[0]},{'b' * 64}\n",
        f"voter,dob_token\n{ids[0]},{'a' * 64}\n",
        f"state_voter_id,ssn\n{ids[0]},{'a' * 64}\n",
    ]):  # fmt: skip
        sealed = tmp_path / f"s{i}.csv"
        sealed.write_text(text)
        with pytest.raises(UserError, match=sealed.name):
            ingest(IngestRequest.of(tmp_path / f"ws{i}", "NC", paths, sealed=sealed))
