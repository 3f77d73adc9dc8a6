"""List maintenance in the service: a state's own lists only, limited to both states' policies, audited.

A real workspace (NC publishes birth year only, OH full DOB) is made with the
real ingest from small native files; linkage output is planted by hand
(pairs.parquet in the contract's columns), so no model has to be trained.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from death_extract import COLUMNS, MAPPING
from fastapi.testclient import TestClient
from service_fakes import FakeIngest, bearer, fake_detect

from voterolls.service.accounts import AccountStore
from voterolls.service.app import create_app

#: The exact columns of each list a state downloads (docs/PRIVACY.md, "What a state sees of
#: another state's registration"): its own registration in full; of the other state's
#: registration only where, when and whether it is live; never its voter id, name, address or DOB.
OWN = [f"this_{c}" for c in (
    "state_voter_id", "county", "last_name", "first_name", "middle_name", "name_suffix", "birth_year", "dob",
    "residence_address", "residence_city", "residence_zip5", "registration_date", "status")]
LIST_COLUMNS = {
    "cross_state_movers": ["pair_ref", *OWN, "match_probability", "evidence", "this_dob_granularity",
                           "other_dob_granularity", "other_state", "other_registration_date", "other_status",
                           "which_is_newer", "recommended_action"],
    "in_state_duplicates": ["pair_ref", *OWN, "match_probability", "evidence", "this_dob_granularity",
                            "other_dob_granularity", "other_voter_id", "other_county", "other_registration_date",
                            "other_status", "recommended_action"],
}
ALLOWED_COLUMNS = set(LIST_COLUMNS["cross_state_movers"]) | set(LIST_COLUMNS["in_state_duplicates"])  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from voterolls.formats.sample import national_sample
    from voterolls.ingest.pipeline import IngestRequest, ingest
    from voterolls.store import Workspace
    from voterolls.synth.native import write_native

    base = tmp_path_factory.mktemp("svclists")
    w = base / "ws"
    ws = Workspace(w)
    for state, seed in (("NC", 1), ("OH", 2)):
        regs, hist = national_sample(state, 40, seed=seed)
        ingest(IngestRequest.of(ws, state, write_native(state, regs, hist, base / state)))
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
        assert list(rows[0]) == LIST_COLUMNS[name]
        for row in rows:
            assert row["this_dob"] == ""  # NC publishes birth year only: not in its own workspace either
            if name == "cross_state_movers":
                # nothing of OH's record beyond where, when and whether live: no DOB, no year, no id
                assert env["oh"][1].isoformat() not in r.text
                assert row["other_state"] == "OH" and row["other_registration_date"]
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


# ------------------------------------------------------------------ external lists (death records)
#: Columns an external-match CSV may carry: this state's own registration, the match, the external
#: record's id / line / file.  Nothing else of the external record.
EXTERNAL_COLUMNS = {
    *(c for c in ALLOWED_COLUMNS if c.startswith("this_")),
    "match_probability", "evidence", "this_dob_granularity", "other_dob_granularity",
    "external_id", "external_line", "external_file", "recommended_action",
}  # fmt: skip

DEATH_DATE = "03/14/2026"


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    """A small linked nation (OH full DOB, NC birth year) and a death extract built from its truth."""
    import numpy as np
    import pyarrow.compute as pc

    from voterolls.ingest.pipeline import IngestRequest, ingest
    from voterolls.link.run import LinkRequest, link_registrations
    from voterolls.store import Workspace
    from voterolls.synth import generate_nation, write_nation
    from voterolls.synth.mess import apply_typos

    base = tmp_path_factory.mktemp("svcext")
    nation = generate_nation(4000, 11).restrict(["OH", "NC"])
    manifest = write_nation(nation, base / "synth")
    w = base / "ws"
    ws = Workspace(w)
    for st, info in manifest["states"].items():
        ingest(IngestRequest.of(ws, st, [base / "synth" / f for f in info["files"]], format=info["format"]))
    con = ws.connect(read_only=False)
    link_registrations(con, LinkRequest(w / "link", u_max_pairs=1e5, em_max_pairs=2e5, seed=3, blocking_analysis=False))
    loaded = set(con.sql("SELECT state_voter_id FROM registrations WHERE state = 'OH'").fetchnumpy()["state_voter_id"].tolist())
    con.close()
    recs = nation.truth["records"]
    oh = recs.filter(pc.equal(recs["state"], "OH"))
    on_list = oh.filter(pc.is_in(oh["state_voter_id"], value_set=pa.array(sorted(loaded))))
    rng = np.random.default_rng(4)
    dead = rng.choice(np.unique(on_list["person_id"].to_numpy()), 40, replace=False)
    strangers = rng.choice(np.setdiff1d(recs["person_id"].to_numpy(), oh["person_id"].to_numpy()), 20, replace=False)
    ids = np.concatenate([dead, strangers])
    everyone = nation.truth["persons"]
    persons = everyone.take(pc.index_in(pa.array(ids), value_set=everyone["person_id"]))
    first = apply_typos(persons["first_name"].combine_chunks(), rng.random(len(ids)) < 0.15, rng)
    out = io.StringIO()
    wr = csv.writer(out, lineterminator="\n")
    wr.writerow(COLUMNS)
    for i in range(len(ids)):  # no middle name, no ZIP: those columns are blank
        wr.writerow([f"D{500000 + i}", persons["last_name"][i].as_py(), first[i].as_py(), "",
                     persons["dob"][i].as_py().strftime("%m/%d/%Y"), persons["sex"][i].as_py(), DEATH_DATE, ""])
    wr.writerow(["a", "garbled", "line"])  # wrong field count: quarantined, not lost
    truth = {
        (vid, f"D{500000 + i}")
        for i, pid in enumerate(ids[:40].tolist())
        for vid in on_list.filter(pc.equal(on_list["person_id"], pid))["state_voter_id"].to_pylist()
    }
    store = AccountStore(w / "service" / "accounts.json")
    tokens = {name: store.create(name, role, st)[1] for name, role, st in (
        ("oh-upload", "state", "OH"), ("nc-upload", "state", "NC"), ("analyst", "analyst", None),
        ("admin", "admin", None))}  # fmt: skip
    app = create_app(w, ingest=FakeIngest(), detect=fake_detect)
    return {"client": TestClient(app), "tokens": tokens, "w": w, "csv": out.getvalue().encode(), "truth": truth,
            "svc": app.state.service, "base": base}


def _post_external(client, token: str | None, body: bytes, *, state: str = "OH", mapping: bool = True, **kw):
    files = [("files", ("deaths.csv", body, "text/csv"))]
    if mapping:
        files.append(("files", ("death_extract.toml", MAPPING.encode(), "application/toml")))
    headers = bearer(token) if token else {}
    return client.post(f"/api/states/{state}/lists/external", files=files, headers=headers, **kw)


def test_external_list_upload_is_matched_with_evidence_and_nothing_is_kept(ext, tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the service's scratch goes
    r = _post_external(ext["client"], ext["tokens"]["oh-upload"], ext["csv"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    assert (r.headers["x-rows-read"], r.headers["x-rows-loaded"], r.headers["x-rows-quarantined"]) == ("61", "60", "1")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert int(r.headers["x-list-rows"]) == len(rows) > 0
    assert set(rows[0]) == EXTERNAL_COLUMNS, set(rows[0]) ^ EXTERNAL_COLUMNS
    review = 0.5
    found = {(x["this_state_voter_id"], x["external_id"]) for x in rows if float(x["match_probability"]) >= review}
    truth = ext["truth"]
    assert len(found & truth) / len(truth) >= 0.9, (len(found & truth), len(truth))
    assert len(found - truth) <= 2
    for x in rows:
        # per-comparison weights, strongest first (docs/LIST_MAINTENANCE.md "evidence")
        weights = [float(part.rsplit("(", 1)[1].rstrip(")")) for part in x["evidence"].split("; ")]
        assert weights and [abs(w) for w in weights] == sorted((abs(w) for w in weights), reverse=True)
        assert x["this_dob_granularity"] == "full" and x["other_dob_granularity"] == "full"
        assert x["external_file"] == "deaths.csv" and int(x["external_line"]) >= 2
        assert x["recommended_action"] in ("review", "no action (probable different person)")
    assert "2026-03-14" not in r.text and DEATH_DATE not in r.text  # the external record's own fields stay out
    # nothing of the upload is kept: not in the scratch area, not in the workspace
    assert list(tmp_path.iterdir()) == []
    assert not [p for p in ext["w"].rglob("*") if "death" in p.name.lower() or "external" in p.name.lower()]
    entry = [e for e in ext["svc"].audit.tail(50) if e["action"] == "match external list"][-1]
    assert entry["actor"] == "oh-upload" and entry["target"] == "OH/external_matches.csv"
    assert entry["status"].startswith(f"{len(rows)} rows; 61 read, 60 loaded, 1 quarantined")
    assert "D500000" not in json.dumps(ext["svc"].audit.tail(50))


def test_external_list_only_for_the_states_own_account(ext) -> None:
    c = ext["client"]
    for who in ("nc-upload", "analyst", "admin"):
        r = _post_external(c, ext["tokens"][who], ext["csv"])
        assert r.status_code == 403, (who, r.status_code)
        assert "D500000" not in r.text
    r = _post_external(c, None, ext["csv"])
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    # NC's own account matches against NC's registrations only: the OH deaths are not NC's voters
    r = _post_external(c, ext["tokens"]["nc-upload"], ext["csv"], state="NC")
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    oh_ids = {vid for vid, _ in ext["truth"]}
    assert not oh_ids & {x["this_state_voter_id"] for x in rows}


def test_external_list_refusals_say_why(ext) -> None:
    c, tok = ext["client"], ext["tokens"]["oh-upload"]
    small = create_app(ext["w"], ingest=FakeIngest(), detect=fake_detect, max_upload_bytes=1024)
    r = _post_external(TestClient(small), tok, ext["csv"] * 4)
    assert r.status_code == 413 and "larger than" in r.json()["error"]
    r = c.post("/api/states/OH/lists/external?format=no_such_layout", headers=bearer(tok),
               files=[("files", ("deaths.csv", ext["csv"], "text/csv"))])
    assert r.status_code == 422 and "unknown format" in r.json()["error"]
    r = c.post("/api/states/OH/lists/external?format=../../etc/passwd.toml", headers=bearer(tok),
               files=[("files", ("deaths.csv", ext["csv"], "text/csv"))])
    assert r.status_code == 422
    r = c.post("/api/states/OH/lists/external", headers=bearer(tok),
               files=[("files", ("death_extract.toml", MAPPING.encode(), "application/toml"))])
    assert r.status_code == 422 and "no external list" in r.json()["error"]
    r = _post_external(c, tok, b"\x1f\x8b\x08\x00 not text")
    assert r.status_code == 415
    from voterolls.service import lists as svclists

    busy = svclists._lock(ext["w"], "OH:external")  # one match per state at a time
    assert busy.acquire(blocking=False)
    try:
        r = _post_external(c, tok, ext["csv"])
        assert r.status_code == 429 and r.headers["retry-after"]
    finally:
        busy.release()
    for resp in (r,):
        assert str(ext["w"]) not in resp.text


def test_external_list_form_needs_the_session_csrf_token(ext) -> None:
    c = TestClient(ext["client"].app)
    assert c.post("/login", data={"token": ext["tokens"]["oh-upload"]}, follow_redirects=False).status_code == 303
    r = _post_external(c, None, ext["csv"])  # session cookie, no CSRF field
    assert r.status_code == 403 and "expired" in r.json()["error"]
    page = c.get("/states/OH")
    assert 'action="/api/states/OH/lists/external"' in page.text
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = _post_external(c, None, ext["csv"], data={"csrf": csrf})
    assert r.status_code == 200, r.text


def test_external_list_before_linkage_is_409(env) -> None:
    r = _post_external(env["client"], env["tokens"]["nc-upload"], b"CERT_NO\nD1\n", state="NC")
    assert r.status_code == 409 and "Linkage" in r.json()["error"]
    assert _post_external(env["client"], env["tokens"]["oh-upload"], b"x\n", state="NC").status_code == 403
