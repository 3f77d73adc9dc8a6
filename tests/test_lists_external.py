"""External-list matching: a death list in a user mapping layout, matched with the trained model.

A small synthetic nation (two full-DOB states and NC, birth year only) is written as native files,
ingested and linked; a death-record extract is built from the *truth* (true
names and dates of a few hundred people registered in Ohio, with typos, plus
people who are not on Ohio's list) in a layout described by a mapping TOML,
and matched through ``build_lists``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from death_extract import COLUMNS, MAPPING

from voterolls.lists import ACTIONS, ActionPolicy, build_lists

STATE = "OH"
DECEASED = 150
NOT_REGISTERED = 100

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from voterolls.ingest.pipeline import IngestRequest, ingest
    from voterolls.link.run import LinkRequest, link_registrations
    from voterolls.store import Workspace
    from voterolls.synth import generate_nation, write_nation
    from voterolls.synth.mess import apply_typos

    base = tmp_path_factory.mktemp("external")
    nation = generate_nation(8000, 7).restrict(["OH", "NY", "NC"])
    manifest = write_nation(nation, base / "synth")
    ws = Workspace(base / "ws")
    for st, info in manifest["states"].items():
        ingest(IngestRequest.of(ws, st, [base / "synth" / f for f in info["files"]], format=info["format"]))
    con = ws.connect(read_only=False)
    link_registrations(con, LinkRequest(base / "ws" / "link", u_max_pairs=1e5, em_max_pairs=2e5, seed=3, blocking_analysis=False))
    loaded = con.sql(f"SELECT state_voter_id, residence_zip5 FROM registrations WHERE state = '{STATE}'").to_arrow_table()
    con.close()

    # Who is on Ohio's list (as loaded: protected voters are excluded by law).
    records = nation.truth["records"]
    oh = records.filter(pc.equal(records["state"], STATE))
    on_list = oh.filter(pc.is_in(oh["state_voter_id"], value_set=loaded["state_voter_id"]))
    rng = np.random.default_rng(5)
    oh_people = np.unique(on_list["person_id"].to_numpy())
    dead = rng.choice(oh_people, DECEASED, replace=False)
    others = np.setdiff1d(records["person_id"].to_numpy(), np.unique(oh["person_id"].to_numpy()))
    strangers = rng.choice(others, NOT_REGISTERED, replace=False)
    ids = np.concatenate([dead, strangers])
    everyone = nation.truth["persons"]
    persons = everyone.take(pc.index_in(pa.array(ids), value_set=everyone["person_id"]))
    assert persons["person_id"].to_numpy().tolist() == ids.tolist()

    n = len(ids)
    last = apply_typos(persons["last_name"].combine_chunks(), rng.random(n) < 0.15, rng)
    first = apply_typos(persons["first_name"].combine_chunks(), rng.random(n) < 0.15, rng)
    # residence ZIP from the person's Ohio registration for most of the dead; blank otherwise
    zip_of = dict(zip(on_list["person_id"].to_pylist(), (
        dict(zip(loaded["state_voter_id"].to_pylist(), loaded["residence_zip5"].to_pylist(), strict=True)).get(v)
        for v in on_list["state_voter_id"].to_pylist()), strict=True))
    path = base / "deaths.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for i in range(n):
            dob = persons["dob"][i].as_py()
            pid = int(ids[i])
            zip5 = zip_of.get(pid) if i < DECEASED and rng.random() < 0.7 else ""
            w.writerow([f"D{100000 + i}", last[i].as_py(), first[i].as_py(), persons["middle_name"][i].as_py() or "",
                        dob.strftime("%m/%d/%Y"), persons["sex"][i].as_py(), "03/14/2026", zip5 or ""])
        w.writerow(["a", "line", "a", "clerk", "garbled"])  # wrong field count: quarantined, not lost
    fmt = base / "death_extract.toml"
    fmt.write_text(MAPPING)
    cert_to_person = {f"D{100000 + i}": int(ids[i]) for i in range(n)}
    truth_pairs = {
        (vid, cert)
        for cert, pid in cert_to_person.items()
        if pid in set(dead.tolist())
        for vid in on_list.filter(pc.equal(on_list["person_id"], pid))["state_voter_id"].to_pylist()
    }
    out = base / "lists"
    policy = ActionPolicy(as_of=dt.date(2026, 9, 15), federal_election=dt.date(2026, 11, 3))  # inside the quiet period
    summaries = build_lists(ws, STATE, out, policy, [path], str(fmt))
    return {"out": out, "summaries": {s.name: s for s in summaries}, "truth": truth_pairs, "policy": policy}


def _rows(out: Path) -> list[dict]:
    rel = duckdb.sql(f"SELECT * FROM read_parquet('{out}/external_matches.parquet')")
    names = rel.columns
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def test_every_row_of_the_external_list_is_accounted_for(world) -> None:
    s = world["summaries"]["external_matches"]
    assert s.source["rows_read"] == DECEASED + NOT_REGISTERED + 1
    assert s.source["loaded"] == DECEASED + NOT_REGISTERED and s.source["quarantined"] == 1
    assert s.source["prior_method"].startswith("re-estimated")
    summary = json.loads((world["out"] / "summary.json").read_text())
    ext = next(x for x in summary["lists"] if x["name"] == "external_matches")
    assert ext["rows"] == s.rows > 0
    text = json.dumps(summary)
    assert "D100000" not in text  # counts only, never a record


def test_true_deceased_registrations_are_found_with_evidence(world) -> None:
    rows = _rows(world["out"])
    review = world["policy"].review_threshold
    found = {(r["this_state_voter_id"], r["external_id"]) for r in rows if r["match_probability"] >= review}
    truth = world["truth"]
    recall = len(found & truth) / len(truth)
    precision = len(found & truth) / max(len(found), 1)
    print(f"external death list: true pairs {len(truth)}, recall {recall:.3f}, precision {precision:.3f} at p >= {review}")
    assert recall >= 0.9
    assert precision >= 0.9
    for r in rows:
        # the comparisons that moved the weight, each with its signed weight, strongest first
        weights = [float(part.rsplit("(", 1)[1].rstrip(")")) for part in r["evidence"].split("; ")]
        assert weights and [abs(w) for w in weights] == sorted((abs(w) for w in weights), reverse=True)
        assert r["this_dob_granularity"] == "full" and r["other_dob_granularity"] in ("full", "none")
        assert r["external_line"] >= 2 and r["external_file"] == "deaths.csv"
    # the calibrated expectation of wrong rows at the review threshold is close to the count
    s = world["summaries"]["external_matches"]
    wrong = len(found - truth)
    assert wrong <= s.expected_false_positives_at_review + 3 * max(1.0, s.expected_false_positives_at_review) ** 0.5 + 2


def test_death_matches_are_reviewed_never_removed_or_held(world) -> None:
    rows = _rows(world["out"])
    acts = {r["recommended_action"] for r in rows}
    assert acts <= {"review", "no action (probable different person)"} and acts <= set(ACTIONS)
    assert not any("remov" in a for a in acts)
    notice = world["policy"].notice_threshold
    assert all(r["recommended_action"] == "review" for r in rows if r["match_probability"] >= notice)
    assert any(r["match_probability"] >= notice for r in rows)
    header = (world["out"] / "external_matches.csv").read_text().splitlines()[0]
    assert "match_probability" in header and "evidence" in header and "phone" not in header


def test_missing_model_is_a_user_error(world, tmp_path) -> None:
    from voterolls.errors import UserError
    from voterolls.lists.external import match_external
    from voterolls.store import WorkspacePaths

    class NoModel:
        path = tmp_path
        paths = WorkspacePaths(tmp_path)

    with pytest.raises(UserError, match="voterolls link"):
        match_external(duckdb.connect(), NoModel(), STATE, [tmp_path / "x.csv"], None, tmp_path, world["policy"])
