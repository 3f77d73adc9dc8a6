"""Movers list on a synthetic nation, through the real pipeline, scored against the truth.

generate_nation -> write_nation (native files of every state) -> each state
seals its own identifiers with the consortium key (``voterolls seal``, as
``voterolls demo`` does; ``VOTEROLLS_LISTS_SYNTH_SEALED=0`` for public files
only) -> ingest (every state, with its sealed sidecar) -> link_registrations ->
build_lists for the state with the most true stale registrations.  Measured:

* recall: the share of that state's true stale registrations (truth
  ``record_kind = stale_cross_state`` in the state, whose person has a newer
  registration in another state, and which was loaded) that appear on its
  movers list at or above the review threshold, matched to a registration of
  the same person;
* false-positive share at the notice threshold: rows at or above it whose other
  registration is a different person, against the model's own expectation
  ``sum(1 - p) / rows``.

Slow (the real ingest of 51 states' native files, then training): marked
``slow``.  Set ``VOTEROLLS_LISTS_SYNTH_DIR`` to keep (and reuse) the built
workspace between runs (one directory per seed / sealing choice), and
``VOTEROLLS_LISTS_SYNTH_SEED`` / ``..._PEOPLE`` to measure other nations.  The figures are printed and quoted in
docs/LIST_MAINTENANCE.md.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from voterolls.lists import ActionPolicy, build_lists
from voterolls.lists.build import pair_key, pair_ref_sql

PEOPLE = int(os.environ.get("VOTEROLLS_LISTS_SYNTH_PEOPLE", "30000"))
SEED = int(os.environ.get("VOTEROLLS_LISTS_SYNTH_SEED", "2026"))
#: "1" (default): every state seals its identifiers with the consortium key, as
#: `voterolls demo` does; "0": public files only (no sealed sidecars).
SEALED = os.environ.get("VOTEROLLS_LISTS_SYNTH_SEALED", "1") != "0"
#: Stress test: a keying-error rate per record in the DOB and SSN4 *each state holds*
#: before it seals them (the generator's internal file carries the true values, so
#: tokens of one person always agree; real agencies key errors into both).
ID_ERRORS = float(os.environ.get("VOTEROLLS_LISTS_SYNTH_ID_ERRORS", "0"))
RECALL_TARGET = 0.95
#: Key for synthetic sealing (tests only; never a real key).
SYNTH_KEY = b"voterolls-lists-synthetic-test-key-not-secret-0123456789"


def _build(base: Path) -> None:
    from voterolls.ingest.pipeline import IngestRequest, ingest
    from voterolls.link.run import LinkRequest, link_registrations
    from voterolls.store import Workspace
    from voterolls.synth import generate_nation, write_nation

    if (base / "ws" / "link" / "pairs.parquet").is_file():
        return
    nation = generate_nation(PEOPLE, SEED)
    manifest = write_nation(nation, base / "synth", overwrite=True)
    pq.write_table(nation.registrations.select(["state", "state_voter_id", "registration_date"]),
                   base / "synth" / "truth" / "registration_dates.parquet")
    ws = Workspace(base / "ws")
    for st, info in manifest["states"].items():
        sealed = None
        if SEALED:  # the state's own step (`voterolls seal`), before it sends its file
            from voterolls.seal import seal_file

            sealed = base / "sealed" / f"{st}_sealed.csv"
            sealed.parent.mkdir(parents=True, exist_ok=True)
            held = base / "synth" / "internal" / f"{st}_identifiers.csv"
            if ID_ERRORS:
                held = _with_keying_errors(held, base / "internal_keyed" / held.name, ID_ERRORS, SEED)
            seal_file(held, sealed, SYNTH_KEY)
        ingest(IngestRequest.of(ws, st, [base / "synth" / f for f in info["files"]], format=info["format"], sealed=sealed))
    con = ws.connect(read_only=False)
    try:
        link_registrations(con, LinkRequest(base / "ws" / "link", blocking_analysis=False))
    finally:
        con.close()


def _with_keying_errors(src: Path, dst: Path, rate: float, seed: int) -> Path:
    """A copy of a state's identifiers file with ``rate`` of DOBs one day off and of SSN4s one digit off."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = ("state_voter_id", "dob", "ssn4", "dl_number")
    t = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in cols}))
    rng = np.random.default_rng([seed, sum(src.name.encode())])
    n = t.num_rows
    dob = np.array(t["dob"].to_pylist(), dtype="datetime64[D]")
    dob = np.where(rng.random(n) < rate, dob + 1, dob)
    ssn = np.array([int(x) if x else -1 for x in t["ssn4"].to_pylist()])
    ssn = np.where((rng.random(n) < rate) & (ssn >= 0), (ssn + 1) % 10000, ssn)
    t = t.set_column(1, "dob", pa.array([None if np.isnat(d) else str(d) for d in dob], pa.string()))
    t = t.set_column(2, "ssn4", pa.array([None if x < 0 else f"{x:04d}" for x in ssn], pa.string()))
    dst.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(t, dst)
    return dst


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from voterolls.store import Workspace

    keep = os.environ.get("VOTEROLLS_LISTS_SYNTH_DIR")
    base = Path(keep) if keep else tmp_path_factory.mktemp("lists_synth")
    base.mkdir(parents=True, exist_ok=True)
    _build(base)
    ws = Workspace(base / "ws", create=False)
    truth = base / "synth" / "truth"
    con = ws.connect()
    try:
        state = con.execute(
            f"SELECT state FROM ({_stale_sql(truth)}) GROUP BY state ORDER BY count(*) DESC, state LIMIT 1"
        ).fetchall()[0][0]
    finally:
        con.close()
    policy = ActionPolicy(as_of=dt.date(2026, 1, 15), federal_election=dt.date(2026, 11, 3))
    out = base / "lists" / state
    summaries = {s.name: s for s in build_lists(ws, state, out, policy)}
    con = ws.connect()
    try:
        con.execute(f"CREATE TABLE tr AS SELECT * FROM read_parquet('{truth}/records.parquet')")
        # a list names the other registration by pair reference only: the operator resolves it
        key = pair_key(Path(ws.path) / "link")
        con.execute(f"CREATE TABLE pr AS SELECT {pair_ref_sql(key)} AS pair_ref, * "
                    f"FROM read_parquet('{ws.path}/link/pairs.parquet')")
        con.execute(f"CREATE TABLE movers AS SELECT m.*, (a.person_id = b.person_id) AS same_person "
                    f"FROM read_parquet('{out}/cross_state_movers.parquet') m "
                    f"JOIN pr ON pr.pair_ref = m.pair_ref "
                    f"JOIN tr a ON a.state = '{state}' AND a.state_voter_id = m.this_state_voter_id "
                    f"JOIN tr b ON b.state = m.other_state AND b.state_voter_id = "
                    f"CASE WHEN pr.state_l = m.other_state THEN pr.state_voter_id_l ELSE pr.state_voter_id_r END")
        con.execute(f"CREATE TABLE stale AS SELECT * FROM ({_stale_sql(truth)}) WHERE state = ?", [state])
        con.execute("CREATE TABLE hit AS SELECT DISTINCT m.this_state_voter_id AS state_voter_id FROM movers m "
                    "WHERE m.same_person AND m.match_probability >= ?", [policy.review_threshold])
        stale_n, found, stale_dob, found_dob = con.execute(
            "SELECT count(*), count(h.state_voter_id), count(*) FILTER (WHERE other_has_dob), "
            "count(h.state_voter_id) FILTER (WHERE other_has_dob) "
            "FROM stale s LEFT JOIN hit h USING (state_voter_id)").fetchall()[0]
        n_notice, fp_notice, exp_notice = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT same_person), coalesce(sum(1 - match_probability), 0) "
            "FROM movers WHERE match_probability >= ?", [policy.notice_threshold]).fetchall()[0]
        n_review, fp_review, exp_review = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE NOT same_person), coalesce(sum(1 - match_probability), 0) "
            "FROM movers WHERE match_probability >= ?", [policy.review_threshold]).fetchall()[0]
        regs = con.execute("SELECT count(*) FROM registrations").fetchall()[0][0]
        sealed_hits = con.execute(
            "SELECT count(DISTINCT this_state_voter_id) FROM movers WHERE same_person AND match_probability >= ? "
            "AND evidence LIKE '%sealed%token exact%'", [policy.review_threshold]).fetchall()[0][0]
        misses = con.execute(
            "SELECT s.state_voter_id, max(m.match_probability) FROM stale s LEFT JOIN movers m "
            "ON m.this_state_voter_id = s.state_voter_id AND m.same_person "
            "LEFT JOIN hit h ON h.state_voter_id = s.state_voter_id WHERE h.state_voter_id IS NULL GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    m = {
        "people": PEOPLE, "seed": SEED, "sealed": SEALED, "id_errors": ID_ERRORS, "registrations": int(regs), "state": state,
        "true_stale": int(stale_n), "found_at_review": int(found),
        "recall_at_review": found / stale_n if stale_n else None,
        "true_stale_other_has_dob": int(stale_dob), "found_other_has_dob": int(found_dob),
        "recall_at_review_other_has_dob": found_dob / stale_dob if stale_dob else None,
        "rows_at_notice": int(n_notice), "false_at_notice": int(fp_notice), "expected_false_at_notice": float(exp_notice),
        "rows_at_review": int(n_review), "false_at_review": int(fp_review), "expected_false_at_review": float(exp_review),
        "found_with_sealed_token_evidence": int(sealed_hits),
        "missed_best_probability": sorted((p for _, p in misses), key=lambda p: -1 if p is None else p),
        "summary": {k: v.by_action for k, v in summaries.items()},
    }  # fmt: skip
    print("\nlists synthetic measurement:", json.dumps(m, indent=1, default=str))
    return m


def _stale_sql(truth: Path) -> str:
    """True stale registrations that were loaded, as a subquery (needs the view ``registrations``).

    ``other_has_dob``: a newer registration of the person elsewhere carries a
    DOB (full or year); against a state that publishes none, only names and
    sex are evidence, which the model rightly keeps below the review threshold.
    """
    rec = (f"(SELECT r.*, d.registration_date AS rd FROM read_parquet('{truth}/records.parquet') r "
           f"JOIN read_parquet('{truth}/registration_dates.parquet') d USING (state, state_voter_id))")
    newer = (f"FROM {rec} o JOIN registrations go ON go.state = o.state AND go.state_voter_id = o.state_voter_id "
             "WHERE o.person_id = s.person_id AND o.state <> s.state AND o.rd > s.rd")
    return f"""
        SELECT s.state, s.state_voter_id, s.person_id,
               EXISTS (SELECT 1 {newer} AND go.dob_granularity <> 'none') AS other_has_dob
        FROM {rec} s
        JOIN registrations g ON g.state = s.state AND g.state_voter_id = s.state_voter_id
        WHERE s.record_kind = 'stale_cross_state' AND EXISTS (SELECT 1 {newer})
    """


@pytest.mark.slow
@pytest.mark.xfail(
    not SEALED,
    strict=False,  # public files only: met or not by the luck of the seed (0.928 for 2026, 0.956 for 7)
    reason=(
        "public files only (VOTEROLLS_LISTS_SYNTH_SEALED=0): recall 0.928 (90 of 97 true stale CA "
        "registrations; 30,000 people, seed 2026), 0.956 (86/90, seed 7).  The misses pair with a newer "
        "registration in a state that publishes no DOB, where names alone stay below the review threshold "
        "(most are below the linkage's pair floor), plus an unresolved nickname and a surname typo + "
        "nickname.  With the sealed DOB / SSN4 tokens every state sends in `voterolls demo` (the default "
        "here) the target is met: 97/97, 90/90, 98/98 (seeds 2026, 7, 31; docs/LIST_MAINTENANCE.md)"
    ),
)
def test_movers_list_recovers_true_stale_registrations(measured) -> None:
    assert measured["true_stale"] >= 30, "too few true stale registrations to measure recall"
    assert measured["recall_at_review"] >= RECALL_TARGET, measured


@pytest.mark.slow
def test_movers_list_recovers_stale_registrations_where_the_other_state_publishes_a_dob(measured) -> None:
    assert measured["true_stale_other_has_dob"] >= 30
    assert measured["recall_at_review_other_has_dob"] >= RECALL_TARGET, measured


@pytest.mark.slow
def test_false_positive_share_at_notice_is_what_the_model_expects(measured) -> None:
    n, fp, exp = measured["rows_at_notice"], measured["false_at_notice"], measured["expected_false_at_notice"]
    assert n > 0
    # Poisson slack around the calibrated expectation: at most exp + 3 sqrt(exp) + 2 wrong rows.
    assert fp <= exp + 3 * math.sqrt(exp) + 2, measured
    # the documented target: a few wrong notices per thousand rows (here: at most 1 %, plus the slack)
    assert fp / n <= 0.01 + (3 * math.sqrt(exp) + 2) / n, measured


@pytest.mark.slow
def test_false_positive_share_at_review_where_recall_is_measured_is_what_the_model_expects(measured) -> None:
    """The recall target is measured at the review threshold, so its wrong rows are checked there too."""
    n, fp, exp = measured["rows_at_review"], measured["false_at_review"], measured["expected_false_at_review"]
    assert n >= measured["found_at_review"] > 0
    assert fp <= exp + 3 * math.sqrt(exp) + 2, measured
