"""Request tracker: 51 rows, allowed vs delivered, coverage arithmetic, persistence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from voterolls.cli import app
from voterolls.errors import UserError
from voterolls.policy import get_policy
from voterolls.requests import (
    Tracker,
    allowed_detail,
    coverage,
    coverage_table,
    delivered_fields,
    registrant_weights,
)
from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA, REQUESTED_2017_FIELDS, conform


def test_example_2017_has_51_states_matching_ap_counts() -> None:
    tr = Tracker.example_2017()
    assert sorted(tr.responses) == sorted(JURISDICTIONS)
    statuses = [r.status for r in tr.responses.values()]
    # AP/USA Today snapshot of 6 Jul 2017: 20 states + DC refused, 26 partial, 4 no response.
    assert statuses.count("refused") == 21
    assert statuses.count("partial") == 26
    assert statuses.count("pending") == 4
    assert statuses.count("complied") == 0
    assert tr.request.fields == REQUESTED_2017_FIELDS


def test_weights_cover_51_states_with_documented_measure() -> None:
    weights, note = registrant_weights()
    assert sorted(weights) == sorted(JURISDICTIONS)
    assert all(v > 0 for v in weights.values())
    assert sum(weights.values()) == 331_449_281  # 2020 Census resident population, 50 states + DC
    assert "proxy" in note


def test_allowed_detail_follows_policy() -> None:
    nc = allowed_detail(get_policy("NC"))
    assert set(nc) == set(REQUESTED_2017_FIELDS)
    assert nc["dob"] == "year only" and nc["phone"] == "yes" and nc["email"] == "unknown"
    assert nc["ssn4"] == "no (token only)"
    oh = allowed_detail(get_policy("OH"))
    assert oh["dob"] == "yes" and oh["party"].startswith("no")
    assert set(allowed_detail(get_policy("ZZ")).values()) == {"unknown"}


def test_coverage_arithmetic_without_workspace() -> None:
    cov = coverage()
    states = cov["states"]
    assert len(states) == 51
    weights, _ = registrant_weights()
    total = sum(weights.values())
    responding = sum(weights[r["state"]] for r in states if r["status"] in ("complied", "partial"))
    n = cov["national"]
    assert n["registrants_total"] == total
    assert n["registrants_share_responding"] == pytest.approx(responding / total)
    expected = sum(weights[r["state"]] * len(r["allowed"]) / 14 for r in states) / total
    assert n["allowed_field_share"] == pytest.approx(expected)
    assert n["delivered_field_share"] is None and n["registrants_share_delivered"] is None
    nc = next(r for r in states if r["state"] == "NC")
    # NC allows name, address, party, vote history, status, phone in full: 6 of 14.
    assert sorted(nc["allowed"]) == sorted(
        ["full_name", "address", "party", "vote_history_since_2006", "status", "phone"]
    )
    assert nc["allowed_share"] == pytest.approx(6 / 14)
    table = coverage_table()
    assert table.num_rows == 51 and table.column("n_requested").to_pylist() == [14] * 51


def _workspace_con() -> duckdb.DuckDBPyConnection:
    """A tiny in-memory stand-in for Workspace.connect(): two states delivered."""
    rows = pa.table(
        {
            "state": ["NC", "NC", "OH"],
            "state_voter_id": ["1", "2", "9"],
            "first_name": ["ANN", "BOB", "CY"],
            "last_name": ["LEE", "RAY", "ODE"],
            "residence_address": ["1 MAIN ST", None, "9 ELM ST"],
            "birth_year": pa.array([1961, 1984, 1970], pa.int16()),
            "dob": [None, None, dt.date(1970, 5, 5)],
            "dob_granularity": ["year", "year", "full"],
            "party": ["DEM", "UNA", "NPR"],
            "status": ["active", "inactive", "active"],
            "phone": ["9195550100", None, None],
            "ssn4_token": [None, None, "ab" * 32],
        }
    )
    con = duckdb.connect()
    con.register("_reg", conform(rows, REGISTRATION_SCHEMA))
    con.execute("CREATE VIEW registrations AS SELECT * FROM _reg")
    con.execute(
        "CREATE VIEW vote_history AS SELECT * FROM (VALUES ('NC', '1', DATE '2016-11-08'), "
        "('OH', '9', DATE '2004-11-02')) t(state, state_voter_id, election_date)"
    )
    return con


def test_delivered_fields_from_registrations_view() -> None:
    t = delivered_fields(_workspace_con())
    got = {(r["state"], r["field"]): r["delivered"] for r in t.to_pylist()}
    assert got[("NC", "full_name")] == "yes" and got[("NC", "address")] == "yes"
    assert got[("NC", "dob")] == "year only" and got[("OH", "dob")] == "yes"
    assert got[("NC", "party")] == "yes" and got[("OH", "party")] == "no"  # NPR is not a party
    assert got[("NC", "phone")] == "yes" and got[("NC", "email")] == "no"
    assert got[("OH", "ssn4")] == "sealed" and got[("NC", "ssn4")] == "no"
    assert got[("NC", "vote_history_since_2006")] == "yes"
    assert got[("OH", "vote_history_since_2006")] == "no"  # only a 2004 vote
    assert got[("NC", "felony_convictions")] == "no"
    nc_rows = [r for r in t.to_pylist() if r["state"] == "NC"]
    assert len(nc_rows) == 14 and all(r["rows"] == 2 for r in nc_rows)
    addr = next(r for r in nc_rows if r["field"] == "address")
    assert addr["non_null"] == 1


def test_coverage_with_workspace() -> None:
    cov = coverage(_workspace_con())
    weights, _ = registrant_weights()
    total = sum(weights.values())
    n = cov["national"]
    assert n["registrants_share_delivered"] == pytest.approx(
        (weights["NC"] + weights["OH"]) / total
    )
    nc = next(r for r in cov["states"] if r["state"] == "NC")
    # yes: full_name, address, party, vote_history, status, phone -> 6 of 14
    assert len(nc["delivered"]) == 6
    oh = next(r for r in cov["states"] if r["state"] == "OH")
    # yes: full_name, address, dob, status -> 4 of 14 (ssn4 sealed is listed, not counted)
    assert sorted(oh["delivered"]) == ["address", "dob", "full_name", "status"]
    ak = next(r for r in cov["states"] if r["state"] == "AK")
    assert ak["delivered"] == [] and ak["delivered_share"] == 0
    expected = (weights["NC"] * 6 / 14 + weights["OH"] * 4 / 14) / total
    assert n["delivered_field_share"] == pytest.approx(expected)


def test_tracker_set_save_load_and_import(tmp_path: Path) -> None:
    tr = Tracker.example_2017()
    tr.set("nc", status="complied", date_responded="2017-07-10", notes="sent public file")
    path = tr.save(tmp_path / "requests" / "tracker.json")
    back = Tracker.load(path)
    assert (
        back.response("NC").status == "complied"
        and back.response("NC").date_responded == "2017-07-10"
    )
    with pytest.raises(UserError):
        back.set("NC", status="maybe")
    with pytest.raises(UserError):
        back.set("NC", date_responded="July 10")
    csv_path = tmp_path / "resp.csv"
    csv_path.write_text(
        "state,status,date_responded,notes\nOH,refused,2017-07-03,\nwa,complied,,ok\n"
    )
    assert back.import_csv(csv_path) == 2
    assert back.response("OH").status == "refused" and back.response("WA").status == "complied"
    csv_path.write_text("state,status\nZZ,refused\n")
    with pytest.raises(UserError, match="line 2"):
        back.import_csv(csv_path)


def test_cli_requests_table_and_set(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["requests"])
    assert res.exit_code == 0, res.output
    for s in ("AK", "NC", "WY"):
        assert s in res.output
    assert "Requested fields the law allows" in res.output
    tracker = tmp_path / "t.json"
    res = runner.invoke(
        app, ["requests", "set", "NC", "--status", "complied", "--tracker", str(tracker)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["requests", "show", "--tracker", str(tracker), "--state", "NC"])
    assert res.exit_code == 0 and "complied" in res.output
