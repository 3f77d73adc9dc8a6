"""`voterolls policy show|check`: the policy as people read it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from voterolls.cli import app
from voterolls.policy import get_policy
from voterolls.policy.check import check_file

runner = CliRunner()


def test_policy_show_has_confidence_and_sources() -> None:
    res = runner.invoke(app, ["policy", "show", "nc"])
    assert res.exit_code == 0, res.output
    for text in ("dob_disclosure", "year", "medium", "REGGIE", "AP2017", "most restrictive"):
        assert text in res.output
    res = runner.invoke(app, ["policy", "show", "ZZ"])
    assert res.exit_code != 0 and "unknown state code" in str(res.exception)


def _header_file(tmp_path: Path) -> Path:
    p = tmp_path / "vendor.csv"
    p.write_text(
        "voter_id,first_name,last_name,date_of_birth,phone_num,email,party,ssn_last4,dl_token\n"
        "1,A,B,1980-01-01,5551234,a@b.c,DEM,1234,ff\n"
    )
    return p


def test_check_by_header_names(tmp_path: Path) -> None:
    basis, checks = check_file(_header_file(tmp_path), get_policy("NC"))
    assert basis == "header names"
    verdict = {c.column: c for c in checks}
    assert not verdict["date_of_birth"].allowed and "birth_year" in verdict["date_of_birth"].action
    assert verdict["phone_num"].allowed  # NC publishes phone
    assert not verdict["email"].allowed
    assert not verdict["ssn_last4"].allowed and "seal" in verdict["ssn_last4"].action
    assert verdict["dl_token"].allowed and verdict["dl_token"].basis == "token"
    assert verdict["first_name"].field is None  # not governed by the policy
    _, checks = check_file(_header_file(tmp_path), get_policy("OH"))
    assert {c.column for c in checks if not c.allowed} == {
        "phone_num",
        "email",
        "party",
        "ssn_last4",
    }


def test_check_cli_with_format(tmp_path: Path) -> None:
    from voterolls.formats import get_format

    names = get_format("nc_ncvoter_2022").registrations.names
    p = tmp_path / "ncvoter_Statewide.txt"
    p.write_text("\t".join(f'"{n}"' for n in names) + "\n")
    res = runner.invoke(app, ["policy", "check", "WI", str(p), "--format", "nc_ncvoter_2022"])
    assert res.exit_code == 0, res.output
    assert (
        "full_phone_number" in res.output
        and "party_cd" in res.output
        and "birth_year" in res.output
    )
    assert "3 column(s) not allowed" in res.output
    res = runner.invoke(app, ["policy", "check", "NC", str(p), "--format", "nc_ncvoter_2022"])
    assert "0 column(s) not allowed" in res.output
