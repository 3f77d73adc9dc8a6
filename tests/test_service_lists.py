"""List maintenance in the service: a state's own lists only, limited to both states' policies, audited.

A real workspace (NC publishes birth year only, OH full DOB) is made with the
real ingest from small native files; linkage output is planted by hand
(pairs.parquet in the contract's columns), so no model has to be trained.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app
from voterolls.service.testing import FakeIngest, bearer, fake_detect

#: Every column a list may carry (own registration, match, the other record as both policies allow).
ALLOWED_COLUMNS = {
    *(f"this_{c}" for c in (
        "state_voter_id", "county", "last_name", "first_name", "middle_name", "name_suffix", "birth_year", "dob",
        "residence_address", "residence_city", "residence_zip5", "registration_date", "status")),
    "match_probability", "evidence", "this_dob_granularity", "other_dob_granularity",
    "other_state", "other_state_voter_id", "other_county", "other_last_name", "other_first_name",
    "other_middle_name", "other_name_suffix", "other_birth_year", "other_dob", "other_residence_city",
    "other_residence_zip5", "other_registration_date", "other_status", "which_is_newer", "recommended_action",
}  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from voterolls.formats import write_native
    from voterolls.formats.sample import national_sample
    from voterolls.ingest.pipeline import ingest
    from voterolls.store import Workspace

    base = tmp_path_factory.mktemp("svclists")
    w = base / "ws"
    ws = Workspace(w)
    for state, seed in (("NC", 1), ("OH", 2)):
        regs, hist = national_sample(state, 40, seed=seed)
        ingest(ws, state, write_native(state, regs, hist, base / state))
    con = ws.connect()
    nc_old = con.execute(
        "SELECT state_voter_id, registration_date FROM registrations WHERE state = 'NC' AND registration_date IS NOT NULL "
        "ORDER BY registration_date LIMIT 2").fetchall()
    oh_new = con.execute(
        "SELECT state_voter_id, dob FROM registrations WHERE state = 'OH' AND dob IS NOT NULL "
        "ORDER BY registration_date DESC LIMIT 1").fetchall()[0]
    con.close()
    (nc1, _), (nc2, _) = nc_old
    pairs = pa.table({
        "state_l": ["NC", "NC"], "state_voter_id_l": [nc1, nc1], "state_r": ["OH", "NC"],
        "state_voter_id_r": [oh_new[0], nc2], "match_probability": [0.99, 0.7], "match_weight": [9.0, 1.2],
        "dob_granularity_l": ["year", "year"], "dob_granularity_r": ["full", "year"],
        "gamma_first_name": [5, 3], "gamma_birth_year": [1, 1],
    })  # fmt: skip
    (w / "link").mkdir()
    pq.write_table(pairs, w / "link" / "pairs.parquet")
    store = AccountStore(w / "service" / "accounts.json")
    tokens = {name: store.create(name, role, st)[1] for name, role, st in (
        ("nc-upload", "state", "NC"), ("oh-upload", "state", "OH"), ("analyst", "analyst", None),
        ("auditor", "auditor", None))}  # fmt: skip
    app = create_app(w, ingest=FakeIngest(), detect=fake_detect)
    return {"client": TestClient(app), "tokens": tokens, "w": w, "nc1": nc1, "nc2": nc2, "oh": oh_new, "svc": app.state.service}


def _get(env, path: str, who: str | None):
    headers = bearer(env["tokens"][who]) if who else {}
    return env["client"].get(path, headers=headers, follow_redirects=False)


def test_only_the_states_own_account_gets_its_lists(env) -> None:
    url = "/api/states/NC/lists/cross_state_movers.csv"
    assert _get(env, url, "oh-upload").status_code == 403
    assert _get(env, url, "analyst").status_code == 403
    assert _get(env, url, "auditor").status_code == 403
    assert _get(env, url, None).status_code == 401
    for who in ("oh-upload", "analyst"):
        r = _get(env, url, who)
        assert env["nc1"] not in r.text and env["oh"][0] not in r.text
    r = _get(env, url, "nc-upload")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["this_state_voter_id"], x["other_state"]) for x in rows] == [(env["nc1"], "OH")]
    assert rows[0]["recommended_action"] in ("send confirmation notice", "hold: NVRA 90-day quiet period")
    dup = _get(env, "/api/states/NC/lists/in_state_duplicates.csv", "nc-upload")
    assert dup.status_code == 200 and env["nc2"] in dup.text
    assert _get(env, "/api/states/NC/lists/external_matches.csv", "nc-upload").status_code == 404
    assert _get(env, "/api/states/NC/lists/..%2Fsummary.csv", "nc-upload").status_code == 404


def test_no_field_beyond_both_states_policies(env) -> None:
    for name in ("cross_state_movers", "in_state_duplicates"):
        r = _get(env, f"/api/states/NC/lists/{name}.csv", "nc-upload")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        cols = set(rows[0])
        assert cols <= ALLOWED_COLUMNS, cols - ALLOWED_COLUMNS
        assert not any(k in c for c in cols for k in ("phone", "email", "party", "ssn", "token", "other_residence_address"))
        for row in rows:
            assert row["this_dob"] == ""  # NC publishes birth year only: not in its own workspace either
            if name == "cross_state_movers":
                # OH's full DOB is cut to the year NC may see
                assert row["other_dob"] == "" and row["other_birth_year"] == str(env["oh"][1].year)
                assert env["oh"][1].isoformat() not in r.text
    # OH's view of the same pair: NC's record at year level (NC's policy), nothing else of NC's
    r = _get(env, "/api/states/OH/lists/cross_state_movers.csv", "oh-upload")
    assert r.status_code == 200 and env["nc1"] not in r.text  # OH's registration is newer: NC's list, not OH's


def test_state_page_shows_own_list_summaries_and_downloads_are_audited(env) -> None:
    page = _get(env, "/states/NC", "nc-upload")
    assert page.status_code == 200
    assert "List maintenance" in page.text and "/api/states/NC/lists/cross_state_movers.csv" in page.text
    assert "remove" not in page.text.split('id="list-maintenance"')[1].split("</section>")[0].lower().replace("removal", "")
    other = _get(env, "/states/NC", "oh-upload")
    assert other.status_code == 403 and "cross_state_movers" not in other.text
    _get(env, "/api/states/NC/lists/cross_state_movers.csv", "nc-upload")
    _get(env, "/api/states/NC/lists/cross_state_movers.csv", "oh-upload")
    entries = env["svc"].audit.tail(200)
    downloads = [e for e in entries if e["action"] == "download list"]
    assert downloads and downloads[0]["actor"] == "nc-upload" and downloads[0]["target"] == "NC/cross_state_movers.csv"
    refused = [e for e in entries if e["actor"] == "oh-upload" and "/states/NC/lists/" in e["target"]]
    assert refused and all(str(e["status"]) == "403" for e in refused)
    assert env["svc"].audit.verify().ok
    # the lists were built by voterolls.lists.build_lists into the workspace, once per set of inputs
    summary = env["w"] / "lists" / "NC" / "summary.json"
    assert summary.is_file()
    before = summary.stat().st_mtime_ns
    _get(env, "/states/NC", "nc-upload")
    assert summary.stat().st_mtime_ns == before


def test_lists_absent_before_linkage(tmp_path: Path) -> None:
    from voterolls.service.lists import state_lists

    out = state_lists(tmp_path, "NC")
    assert out["available"] is False and "Linkage" in out["note"]
