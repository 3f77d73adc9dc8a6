"""Sealed-only linkage: no plaintext name or date in the workspace, accuracy close to plaintext.

One synthetic nation (eight states, native formats of several kinds) is
linked twice: from plaintext deliveries (`ingest-dir` + `link`) and from
sealed-only deliveries (`seal --sealed-only` at the state, `ingest-sealed` +
`link --sealed-only` at the compiler).  The commands a user runs go through
the installed `voterolls` script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sealed_vs_plain import (  # noqa: E402
    ingest_generated_sealed,
    plaintext_hits,
    plaintext_values,
    seal_generated,
)

pytest.importorskip("clkhash")

VOTEROLLS = Path(sys.executable).parent / "voterolls"
STATES = ["CA", "FL", "GA", "NC", "NY", "OH", "PA", "TX"]
CLI_STATE = "NC"  # sealed through the CLI; the others in-process (same code)
KEY = b"0123456789abcdef0123456789abcdef-test-key"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sealed_only")]


def run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VOTEROLLS_WORKSPACE", None)
    return subprocess.run(
        [str(VOTEROLLS), *map(str, args)], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def nation(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nation") / "gen"
    r = run("generate", "-n", "12000", "--seed", "11", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("key") / "consortium.key"
    p.write_bytes(KEY)
    return p


@pytest.fixture(scope="module")
def deliveries(nation, key_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deliveries")
    manifest = json.loads((nation / "manifest.json").read_text())
    files = [nation / f for f in manifest["states"][CLI_STATE]["files"]]
    reg = files[0]  # the readers sort out which file is which
    extra = [x for f in files[1:] for x in ("--with", f)]
    r = run(
        "seal", reg, out / CLI_STATE, "--sealed-only", "--state", CLI_STATE,
        "--key-file", key_file, *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"sealed-only delivery for {CLI_STATE}:" in r.stdout
    assert "tokens and name encodings only" in r.stdout
    seal_generated(nation, out, KEY, [s for s in STATES if s != CLI_STATE])
    return out


@pytest.fixture(scope="module")
def sealed_ws(deliveries, tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("sealed") / "ws"
    r = run("ingest-sealed", CLI_STATE, deliveries / CLI_STATE, "--workspace", ws)
    assert r.returncode == 0, r.stderr
    assert f"{CLI_STATE}: sealed-only delivery ingested:" in r.stdout
    rest = deliveries.parent / "rest"
    rest.mkdir()
    for d in deliveries.iterdir():
        if d.name != CLI_STATE:
            shutil.copytree(d, rest / d.name)
    ingest_generated_sealed(ws, rest)
    r = run("link", "--sealed-only", "--workspace", ws)
    assert r.returncode == 0, r.stderr
    assert "sealed-only; trained" in r.stdout
    return ws


@pytest.fixture(scope="module")
def plain_ws(nation, tmp_path_factory) -> Path:
    from voterolls.ingest.commands import ingest_directory
    from voterolls.store import Workspace

    ws = tmp_path_factory.mktemp("plain") / "ws"
    from voterolls.link.run import link_registrations

    w = Workspace(ws)
    ingest_directory(nation, w, states=STATES)
    con = w.connect(read_only=False)
    try:
        link_registrations(con, ws / "link", blocking_analysis=False)
    finally:
        con.close()
    return ws


def _evaluate(ws: Path, nation: Path) -> dict:
    from voterolls.link.evaluate import evaluate
    from voterolls.store import Workspace

    con = Workspace(ws).connect(read_only=False)
    try:
        return evaluate(con, nation, ws / "link" / "pairs.parquet", threshold=0.9)
    finally:
        con.close()


def test_no_plaintext_name_or_date_anywhere_in_the_sealed_workspace(
    nation, deliveries, sealed_ws, plain_ws
):
    values = plaintext_values(nation)
    assert all(len(v) > 100 for v in values.values())
    assert plaintext_hits(sealed_ws, values) == {"first_name": [], "last_name": [], "dob": []}
    assert plaintext_hits(deliveries, values) == {"first_name": [], "last_name": [], "dob": []}
    # The scan finds plaintext where there is some: the plaintext workspace of the same nation.
    plain = plaintext_hits(plain_ws, values)
    assert plain["first_name"] and plain["last_name"] and plain["dob"]


def test_sealed_f1_is_close_to_plaintext_in_every_dob_class(nation, sealed_ws, plain_ws):
    sealed, plain = _evaluate(sealed_ws, nation), _evaluate(plain_ws, nation)
    report = {}
    for c in ("full", "year", "none", "all"):
        s, p = sealed["model"][c], plain["model"][c]
        assert s["true_pairs"] == p["true_pairs"]
        report[c] = (p["true_pairs"], p["f1"], s["f1"])
        if p["true_pairs"] >= 20:
            assert s["f1"] >= p["f1"] - 0.03, (c, report)
    print("sealed vs plaintext F1 (true pairs, plain, sealed):", report)
    assert report["all"][0] >= 50


def test_sealed_pairs_have_the_plaintext_columns(sealed_ws, plain_ws):
    s = pq.read_schema(sealed_ws / "link" / "pairs.parquet")
    p = pq.read_schema(plain_ws / "link" / "pairs.parquet")
    assert s.names == p.names


def test_plain_link_refuses_a_sealed_workspace_and_vice_versa(sealed_ws, plain_ws):
    r = run("link", "--workspace", sealed_ws)
    assert r.returncode == 2
    assert "link with `voterolls link --sealed-only`" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("link", "--sealed-only", "--workspace", plain_ws)
    assert r.returncode == 2
    assert "--sealed-only needs every state sealed-only" in r.stderr


def test_a_delivery_with_a_plaintext_column_is_refused(deliveries, tmp_path):
    bad = tmp_path / "OH"
    shutil.copytree(deliveries / "OH", bad)
    t = pq.read_table(bad / "registrations.parquet")
    t = t.append_column("first_name", pa.array(["X"] * t.num_rows))
    pq.write_table(t, bad / "registrations.parquet")
    r = run("ingest-sealed", "OH", bad, "--workspace", tmp_path / "ws")
    assert r.returncode == 2
    assert "first_name are not part of a sealed-only delivery and may be plaintext" in r.stderr
    assert "registrations.parquet" in r.stderr


def test_a_token_column_holding_plaintext_is_refused(deliveries, tmp_path):
    bad = tmp_path / "OH"
    shutil.copytree(deliveries / "OH", bad)
    t = pq.read_table(bad / "registrations.parquet")
    i = t.column_names.index("dob_token")
    t = t.set_column(i, "dob_token", pa.array(["1970-01-01"] * t.num_rows))
    pq.write_table(t, bad / "registrations.parquet")
    r = run("ingest-sealed", "OH", bad, "--workspace", tmp_path / "ws")
    assert r.returncode == 2
    assert "value(s) of dob_token are not 64 lower-case hex digit tokens" in r.stderr
    assert "1970" not in r.stderr


def test_seal_sealed_only_needs_a_state(nation, key_file, tmp_path):
    r = run(
        "seal",
        nation / "states" / "CA" / "CA_voters.csv",
        tmp_path / "out",
        "--sealed-only",
        "--key-file",
        key_file,
    )
    assert r.returncode == 2
    assert "--sealed-only needs --state" in r.stderr


def test_encodings_are_keyed_per_field_and_similar_for_typos():
    from voterolls.policy.sealed_only import dice, encode_names

    names = pa.array(["CATHERINE", "KATHERINE", "CATHERINE", "ZHANG", None])
    first = encode_names(names, KEY, "first_name").to_pylist()
    assert first[0] == first[2] and first[4] is None
    assert dice(first[0], first[1]) >= 0.65
    assert dice(first[0], first[3]) < 0.3
    last = encode_names(names, KEY, "last_name").to_pylist()
    assert last[0] != first[0]  # another field, another key
    other = encode_names(names, b"another-consortium-key-of-32-bytes!!", "first_name").to_pylist()
    assert other[0] != first[0]


def test_dice_sql_equals_the_coefficient():
    from voterolls.link.sealed import dice_sql
    from voterolls.policy.sealed_only import dice, encode_names

    a, b = encode_names(pa.array(["JONATHAN", "JONATHON"]), KEY, "first_name").to_pylist()
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT from_base64(?) AS first_name_bf_l, from_base64(?) AS first_name_bf_r",
        [a, b],
    )
    con.execute(
        "CREATE TABLE u AS SELECT *, bit_count(CAST(first_name_bf_l AS BIT)) AS first_name_bf_n_l, "
        "bit_count(CAST(first_name_bf_r AS BIT)) AS first_name_bf_n_r FROM t"
    )
    got = con.execute(f"SELECT {dice_sql('first_name')} FROM u").fetchall()[0][0]
    assert got == pytest.approx(dice(a, b))


def test_identifiers_add_ssn4_and_licence_tokens(nation, tmp_path):
    import csv

    from voterolls.policy.sealed_only import SealedOnlyRequest, hmac_token, seal_sealed_only

    manifest = json.loads((nation / "manifest.json").read_text())
    files = tuple(nation / f for f in manifest["states"]["OH"]["files"])
    ids = nation / "internal" / "OH_identifiers.csv"
    seal_sealed_only(
        SealedOnlyRequest(
            files=files, state="OH", out_dir=tmp_path / "OH", key=KEY, identifiers=ids
        )
    )
    t = pq.read_table(tmp_path / "OH" / "registrations.parquet").to_pydict()
    with open(ids, newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["ssn4"])
    i = t["state_voter_id"].index(row["state_voter_id"])
    assert t["ssn4_token"][i] == hmac_token(row["ssn4"], KEY, "ssn4")
    assert t["dl_token"][i] is not None


# --------------------------------------------------------------------------
# estimates on a sealed-only workspace (the coincidence model on token frequencies)
# --------------------------------------------------------------------------


def _estimates(ws: Path) -> dict:
    r = run("estimate", "--workspace", ws)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert f"wrote {ws / 'estimates' / 'estimates.json'}" in r.stdout.replace("\n", "")
    return json.loads((ws / "estimates" / "estimates.json").read_text())


def _rule_pairs(ws: Path, cross: bool) -> dict[str, int]:
    """Pairs of live registrations agreeing on first + last + DOB (both full) or first + last +
    birth year (a side year-only), counted straight from the plaintext workspace's data."""
    from voterolls.schema import live_status_sql
    from voterolls.store import Workspace

    con = Workspace(ws).connect()
    try:
        where = (
            "a.state < b.state"
            if cross
            else "a.state = b.state AND a.state_voter_id < b.state_voter_id"
        )
        live = live_status_sql("coalesce(status, 'unknown')")
        full, year = con.execute(
            f"""
            WITH r AS (SELECT * FROM registrations WHERE {live} AND first_name IS NOT NULL
                       AND last_name IS NOT NULL AND birth_year IS NOT NULL
                       AND dob_granularity IN ('full', 'year'))
            SELECT count(*) FILTER (WHERE a.dob_granularity = 'full' AND b.dob_granularity = 'full'
                                      AND a.dob IS NOT NULL AND b.dob IS NOT NULL AND a.dob = b.dob),
                   count(*) FILTER (WHERE NOT (a.dob_granularity = 'full' AND b.dob_granularity = 'full'
                                      AND a.dob IS NOT NULL AND b.dob IS NOT NULL))
            FROM r a JOIN r b ON a.first_name = b.first_name AND a.last_name = b.last_name
                             AND a.birth_year = b.birth_year AND {where}
            """
        ).fetchall()[0]
    finally:
        con.close()
    return {"full": full, "year": year}


def test_estimate_on_a_sealed_workspace_counts_what_the_plaintext_data_hold(sealed_ws, plain_ws):
    sealed, plain = _estimates(sealed_ws), _estimates(plain_ws)
    assert sealed["dob_model"]["source"].startswith("token frequencies (sealed-only)")
    assert sealed["coverage"]["states_with_full_dob"] == plain["coverage"]["states_with_full_dob"]
    assert (
        sealed["coverage"]["states_with_birth_year_only"]
        == plain["coverage"]["states_with_birth_year_only"]
    )
    assert sealed["coverage"]["states_with_full_dob"], "the nation has full-DOB states"
    p_s = sealed["dob_model"]["p_same_dob_two_random_people"]
    p_p = plain["dob_model"]["p_same_dob_two_random_people"]
    assert p_s == pytest.approx(p_p, rel=0.1)
    for scope, cross in (("cross_state", True), ("in_state", False)):
        data = _rule_pairs(plain_ws, cross)
        assert data["full"] > 10 and (data["year"] > 10 or not cross), (scope, data)  # substance
        s = sealed["duplicate_registrations"][scope]["rule_net_of_coincidences"]["by_level"]
        p = plain["duplicate_registrations"][scope]["rule_net_of_coincidences"]["by_level"]
        for level in ("full", "year"):
            # the rule's raw count is the data's, sealed or not
            assert s[level]["raw_rule_count"] == data[level] == p[level]["raw_rule_count"], (
                scope,
                level,
            )
            # expected coincidences from token frequencies agree with the value-based model
            assert s[level]["expected_coincidences"] == pytest.approx(
                p[level]["expected_coincidences"], rel=0.25, abs=0.5
            ), (scope, level)
            assert s[level]["estimate"] == pytest.approx(p[level]["estimate"], rel=0.05, abs=1.0)
    # linkage-based figures exist on both and agree closely (same pairs, same model)
    hs = sealed["duplicate_registrations"]["cross_state"]
    hp = plain["duplicate_registrations"]["cross_state"]
    assert hs["headline"] == hp["headline"]
    assert hs[hs["headline"]]["estimate"] == pytest.approx(hp[hp["headline"]]["estimate"], rel=0.05)


def test_lists_and_report_run_on_a_sealed_workspace(sealed_ws, tmp_path):
    _estimates(sealed_ws)
    r = run("lists", CLI_STATE, "--workspace", sealed_ws, "--out", tmp_path / "lists")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "lists" / "summary.json").read_text())
    assert summary
    r = run("report", "--workspace", sealed_ws, "--out", tmp_path / "report.html")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "report.html").is_file()


def test_estimate_refuses_a_workspace_mixing_sealed_and_plaintext_states(
    nation, sealed_ws, tmp_path
):
    mixed = tmp_path / "mixed"
    shutil.copytree(sealed_ws, mixed, ignore=shutil.ignore_patterns("link", "estimates"))
    r = run("ingest-dir", nation, "--workspace", mixed, "--state", "WY")
    assert r.returncode == 0, r.stderr
    r = run("estimate", "--workspace", mixed)
    assert r.returncode == 2
    assert "mixes sealed-only states" in r.stderr and "(WY)" in r.stderr
    assert "Traceback" not in r.stderr


def test_token_dob_model_recovers_q_and_p_far_of_a_known_distribution():
    """Uniform birthdays over five years, one placeholder year: q = 1/365 (or 1), p_far exact."""
    from datetime import date, timedelta

    from voterolls.stats.sealed import fit_token_dob_model

    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE d AS
        SELECT i, (DATE '1961-01-01' + INTERVAL (i % 365) DAY)::DATE AS day0, (i // 365) % 5 AS yo
        FROM range(0, 365 * 400) t(i)
        """
    )
    # surrogates as the view makes them: date:year-month:swapped:month-day (text stands in for tokens)
    con.execute(
        """
        CREATE TABLE regs AS
        WITH x AS (SELECT i, make_date(1961 + yo, month(day0), day(day0)) AS dob FROM d)
        SELECT 'F' || (i % 997) AS first_name, 'L' || (i // 997) AS last_name,
               year(dob) AS birth_year, 'full' AS dob_granularity,
               strftime(dob, '%Y-%m-%d') || ':' || strftime(dob, '%Y-%m') || ':' ||
               coalesce(CASE WHEN day(dob) <= 12 AND day(dob) <> month(dob)
                             THEN strftime(make_date(year(dob), day(dob), month(dob)), '%Y-%m-%d') END, '')
               || ':' || strftime(dob, '%m-%d') AS dob
        FROM x
        UNION ALL  -- a placeholder year: every record on 1 January
        SELECT 'P' || i, 'Q' || i, 1900, 'full', '1900-01-01:1900-01::01-01' FROM range(0, 2000) t(i)
        """
    )
    m = fit_token_dob_model(con, "regs")
    for y in range(1961, 1966):
        assert m.q(y) == pytest.approx(1 / 365, rel=0.03)
    assert m.q(1900) > 0.9
    days = [date(1961, 1, 1) + timedelta(k) for k in range(365)]
    months = [sum(1 for d in days if d.month == mo) / 365 for mo in range(1, 13)]
    swaps = sum(1 for d in days if d.day <= 12 and d.day != d.month) / 365 / 365
    # p_far pools the five uniform years and the placeholder year (where no pair is far)
    uniform_pairs = 5 * (365 * 80) * (365 * 80 - 1) / 2
    placeholder_pairs = 2000 * 1999 / 2
    expect = (
        (1 - sum(p * p for p in months) - swaps)
        * uniform_pairs
        / (uniform_pairs + placeholder_pairs)
    )
    assert m.p_far(45) == pytest.approx(expect, rel=0.01)


def test_a_full_dob_the_policy_withholds_is_sealed_not_dropped(nation, key_file, tmp_path):
    """GA publishes the birth year only; its seal with --identifiers carries the full date as a
    token (equality only), never in the clear, and the compiler compares it as a sidecar's."""
    import csv

    from voterolls.ingest.sealed_only import ingest_sealed
    from voterolls.link.sealed import prepare_sealed_input
    from voterolls.policy.model import get_policy
    from voterolls.policy.sealed_only import hmac_token
    from voterolls.store import Workspace

    assert get_policy("GA").dob_disclosure == "year"
    manifest = json.loads((nation / "manifest.json").read_text())
    files = [nation / f for f in manifest["states"]["GA"]["files"]]
    ids = nation / "internal" / "GA_identifiers.csv"
    extra = [x for f in files[1:] for x in ("--with", f)]
    r = run(
        "seal", files[0], tmp_path / "GA", "--sealed-only", "--state", "GA",
        "--key-file", key_file, "--identifiers", ids, *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    t = pq.read_table(tmp_path / "GA" / "registrations.parquet").to_pydict()
    with open(ids, newline="") as fh:
        dob = {row["state_voter_id"]: row["dob"] for row in csv.DictReader(fh) if row["dob"]}
    rows = [i for i, v in enumerate(t["state_voter_id"]) if v in dob]
    assert len(rows) > 100
    assert {t["dob_granularity"][i] for i in rows} == {"year"}  # what the law lets out
    assert all(
        t["dob_token"][i] == hmac_token(dob[t["state_voter_id"][i]], KEY, "dob") for i in rows
    )
    for c in ("dob_ym_token", "dob_md_token", "dob_swapped_token"):
        assert all(t[c][i] is None for i in rows), c
    values = plaintext_values(nation)
    assert plaintext_hits(tmp_path / "GA", values)["dob"] == []
    # the compiler: the date is compared as a sealed token, not as a public date
    ws = Workspace(tmp_path / "ws")
    ingest_sealed(ws, "GA", tmp_path / "GA")
    con = ws.connect(read_only=False)
    try:
        prepare_sealed_input(con)
        n, public, token = con.execute(
            "SELECT count(*), count(dob), count(dob_token) FROM link_input"
        ).fetchall()[0]
    finally:
        con.close()
    assert (public, token) == (0, len(rows)) and n >= len(rows)


def test_a_delivery_sealed_under_another_key_is_flagged_at_ingest(nation, sealed_ws, tmp_path):
    from voterolls.policy.sealed_only import key_id

    other = b"another-consortium-key-0123456789abcdef"
    assert key_id(other) != key_id(KEY) and len(key_id(KEY)) == 16
    manifest = json.loads((nation / "manifest.json").read_text())
    files = [nation / f for f in manifest["states"]["OH"]["files"]]
    key2 = tmp_path / "other.key"
    key2.write_bytes(other)
    extra = [x for f in files[1:] for x in ("--with", f)]
    r = run("seal", files[0], tmp_path / "OH", "--sealed-only", "--state", "OH",
            "--key-file", key2, *extra)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "OH" / "manifest.json").read_text())["key_id"] == key_id(other)
    ws = tmp_path / "ws"
    shutil.copytree(sealed_ws, ws, ignore=shutil.ignore_patterns("link", "estimates"))
    r = run("ingest-sealed", "OH", tmp_path / "OH", "--workspace", ws)
    assert r.returncode == 0, r.stderr
    others = ", ".join(s for s in STATES if s != "OH")
    assert f"note: OH was sealed under another key than {others};" in r.stderr
    assert other.decode() not in r.stderr + r.stdout and key_id(other) not in r.stderr


def test_a_native_full_dob_the_policy_withholds_is_sealed_as_a_token(nation, deliveries, tmp_path):
    """CA's file (full dates) sealed under NC's policy (birth year only): the date becomes the
    same dob_token CA's own delivery carries, with no year-month / month-day / swapped token."""
    from voterolls.policy.sealed_only import SealedOnlyRequest, seal_sealed_only

    info = json.loads((nation / "manifest.json").read_text())["states"]["CA"]
    req = SealedOnlyRequest(
        files=tuple(nation / f for f in info["files"]), state="NC", out_dir=tmp_path / "x",
        key=KEY, format=info["format"],
    )  # fmt: skip
    seal_sealed_only(req)
    got = pq.read_table(tmp_path / "x" / "registrations.parquet").to_pydict()
    ca = pq.read_table(deliveries / "CA" / "registrations.parquet").to_pydict()
    ca_tok = dict(zip(ca["state_voter_id"], ca["dob_token"], strict=True))
    rows = [i for i, t in enumerate(got["dob_token"]) if t is not None]
    assert len(rows) > 0.9 * len(got["dob_token"])
    assert {got["dob_granularity"][i] for i in rows} == {"year"}
    assert all(got["dob_token"][i] == ca_tok[got["state_voter_id"][i]] for i in rows)
    assert all(got[c][i] is None for i in rows for c in ("dob_ym_token", "dob_md_token"))
    assert plaintext_hits(tmp_path / "x", plaintext_values(nation))["dob"] == []
