"""The synthetic nation: realistic distributions, configured rates, determinism, native files."""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from voterolls import data
from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA, VOTE_HISTORY_SCHEMA
from voterolls.synth import SynthConfig, generate_nation
from voterolls.synth.writer import write_nation

PEOPLE = 40_000
SEED = 7


@pytest.fixture(scope="module")
def nation():
    return generate_nation(PEOPLE, SEED)


def _binom_ok(observed: int, n: int, p: float, sds: float = 5.0) -> bool:
    mean = n * p
    sd = max((n * p * (1 - p)) ** 0.5, 1.0)
    return abs(observed - mean) <= sds * sd


# --- shape -------------------------------------------------------------------


def test_registrations_have_schema_columns_and_full_values(nation):
    regs = nation.registrations
    assert regs.column_names == [f.name for f in REGISTRATION_SCHEMA] + ["protected"]
    for f in REGISTRATION_SCHEMA:
        assert regs.schema.field(f.name).type == f.type, f.name
    assert "person_id" not in regs.column_names
    for col in (
        "state",
        "state_voter_id",
        "last_name",
        "first_name",
        "dob",
        "birth_year",
        "gender",
    ):
        assert regs[col].null_count == 0, col
    assert pc.all(pc.equal(regs["dob_granularity"], "full")).as_py()
    assert pc.all(pc.equal(pc.year(regs["dob"]), regs["birth_year"].cast(pa.int64()))).as_py()
    # names upper case; ZIP five digits; ids unique within a state
    assert pc.all(pc.equal(regs["last_name"], pc.utf8_upper(regs["last_name"]))).as_py()
    assert pc.all(pc.match_substring_regex(regs["residence_zip5"], r"^\d{5}$")).as_py()
    keys = pc.binary_join_element_wise(regs["state"], regs["state_voter_id"], "|")
    assert len(pc.unique(keys)) == regs.num_rows
    assert nation.vote_history.schema == VOTE_HISTORY_SCHEMA


def test_all_51_jurisdictions_present(nation):
    assert nation.states() == list(JURISDICTIONS)


def test_state_shares_follow_census_population(nation):
    from voterolls.synth.geography import state_population

    pop = state_population()
    total = sum(pop.values())
    cur = nation.truth["persons"]
    counts = dict(
        zip(
            *np.unique(cur["state"].to_numpy(zero_copy_only=False), return_counts=True), strict=True
        )
    )
    for st in ("CA", "TX", "FL", "NY", "WY"):
        assert _binom_ok(counts[st], cur.num_rows, pop[st] / total), st


def test_state_plausible_voter_ids(nation):
    regs = nation.registrations

    def ids(st):
        return regs.filter(pc.equal(regs["state"], st))["state_voter_id"]

    assert pc.all(pc.match_substring_regex(ids("NC"), r"^[A-Z]{2}\d{6}$")).as_py()
    assert pc.all(pc.match_substring_regex(ids("OH"), r"^OH\d{10}$")).as_py()
    assert pc.all(pc.match_substring_regex(ids("NY"), r"^NY\d{18}$")).as_py()


# --- realism -------------------------------------------------------------------


def test_top_surname_shares_match_census(nation):
    sn = data.surnames()
    sn = sn.filter(pc.invert(pc.equal(sn["name"], "ALL OTHER NAMES")))
    total = pc.sum(sn["count"]).as_py()
    persons = nation.truth["persons"]
    names, counts = np.unique(
        persons["last_name"].to_numpy(zero_copy_only=False), return_counts=True
    )
    observed = dict(zip(names, counts, strict=True))
    for row in sn.slice(0, 10).to_pylist():
        assert _binom_ok(
            int(observed.get(row["name"], 0)), persons.num_rows, row["count"] / total
        ), row["name"]


def test_first_names_follow_sex(nation):
    persons = nation.truth["persons"]
    women = persons.filter(pc.equal(persons["sex"], "F"))
    top = pc.value_counts(women["first_name"]).to_pylist()
    top = {d["values"] for d in sorted(top, key=lambda d: -d["counts"])[:20]}
    assert not top & {"JAMES", "JOHN", "ROBERT", "MICHAEL", "DAVID"}


def test_first_names_correlate_with_surname_race(nation):
    persons = nation.truth["persons"]
    hispanic_first = {"JOSE", "MARIA", "JUAN", "CARLOS", "LUIS", "JESUS", "ANA", "ROSA"}
    is_h = pc.is_in(persons["first_name"], value_set=pa.array(sorted(hispanic_first)))
    overall = pc.mean(is_h.cast(pa.float64())).as_py()
    garcia = pc.is_in(
        persons["last_name"], value_set=pa.array(["GARCIA", "RODRIGUEZ", "HERNANDEZ", "LOPEZ"])
    )
    among = pc.mean(pc.filter(is_h, garcia).cast(pa.float64())).as_py()
    assert among > 4 * overall


def test_birthdays_show_weekend_dip(nation):
    dob = nation.truth["persons"]["dob"].cast(pa.int32()).to_numpy()
    dow = np.bincount((dob + 3) % 7, minlength=7)  # Monday = 0
    weekday_min = dow[:5].min()
    assert dow[5] < weekday_min and dow[6] < weekday_min
    assert dow[5:].sum() / dow.sum() < 0.27  # uniform would be 2/7 = 0.286


def test_adult_age_range(nation):
    dob = nation.truth["persons"]["dob"]
    election = np.datetime64("2024-11-05")
    ages = (election - dob.to_numpy(zero_copy_only=False).astype("datetime64[D]")).astype(
        int
    ) / 365.25
    assert ages.min() >= 17.99 and ages.max() < 97
    assert 40 < np.median(ages) < 55


def test_men_carry_suffixes_at_realistic_rate(nation):
    persons = nation.truth["persons"]
    men = persons.filter(pc.equal(persons["sex"], "M"))
    women = persons.filter(pc.equal(persons["sex"], "F"))
    share = 1 - men["name_suffix"].null_count / men.num_rows
    assert 0.015 < share < 0.035
    assert women["name_suffix"].null_count == women.num_rows


def test_middle_names_missing_and_initials(nation):
    mid = nation.registrations["middle_name"]
    missing = mid.null_count / len(mid)
    initials = pc.sum(pc.equal(pc.utf8_length(mid), 1)).as_py() / len(mid)
    assert 0.15 < missing < 0.25
    assert 0.10 < initials < 0.20


# --- configured rates ----------------------------------------------------------


def test_duplicate_counts_match_configured_rates(nation):
    cfg = nation.config
    records = nation.truth["records"]
    kinds = dict(
        zip(
            *np.unique(records["record_kind"].to_numpy(zero_copy_only=False), return_counts=True),
            strict=True,
        )
    )
    assert kinds["current"] == PEOPLE
    assert _binom_ok(kinds["stale_cross_state"], PEOPLE, cfg.stale_cross_state_rate)
    assert _binom_ok(kinds["in_state_duplicate"], PEOPLE, cfg.in_state_duplicate_rate)
    pairs = nation.truth["duplicate_pairs"]
    pk = pc.value_counts(pairs["kind"]).to_pylist()
    pk = {d["values"]: d["counts"] for d in pk}
    assert pk["in_state"] == kinds["in_state_duplicate"]
    assert pk["cross_state"] >= kinds["stale_cross_state"]
    # every pair really is one person, on two different registrations, l < r
    recs = {(r["state"], r["state_voter_id"]): r["person_id"] for r in records.to_pylist()}
    for p in pairs.slice(0, 200).to_pylist():
        left, right = (p["state_l"], p["state_voter_id_l"]), (p["state_r"], p["state_voter_id_r"])
        assert left < right and recs[left] == recs[right] == p["person_id"]
        assert (p["kind"] == "in_state") == (p["state_l"] == p["state_r"])


def test_stale_registrations_are_in_another_state_and_older(nation):
    regs = nation.registrations.append_column("kind", nation.truth["records"]["record_kind"])
    regs = regs.append_column("person_id", nation.truth["records"]["person_id"])
    cur = regs.filter(pc.equal(regs["kind"], "current"))
    stale = regs.filter(pc.equal(regs["kind"], "stale_cross_state"))
    joined = stale.join(cur, "person_id", right_suffix="_cur")
    assert pc.all(pc.not_equal(joined["state"], joined["state_cur"])).as_py()
    older = pc.less_equal(joined["registration_date"], joined["registration_date_cur"])
    assert pc.mean(older.cast(pa.int8())).as_py() > 0.97
    inactive = pc.mean(pc.equal(stale["status"], "inactive").cast(pa.int8())).as_py()
    assert abs(inactive - nation.config.stale_inactive_rate) < 0.08


def test_young_people_move_more_and_vote_less(nation):
    rec = nation.truth["records"]
    persons = nation.truth["persons"]
    birth_year = pc.year(persons["dob"]).to_numpy()
    kind = rec["record_kind"].to_numpy(zero_copy_only=False)
    pid = rec["person_id"].to_numpy()
    stale_years = birth_year[pid[kind == "stale_cross_state"]]
    assert np.median(stale_years) > np.median(birth_year) + 3
    cur = kind == "current"
    voted = rec["voted"].to_numpy(zero_copy_only=False)[cur]
    young = birth_year[pid[cur]] >= 2000
    old = birth_year[pid[cur]] <= 1959
    assert voted[young].mean() + 0.1 < voted[old].mean()


def test_recording_noise_rates(nation):
    cfg = nation.config
    rec = nation.truth["records"]
    m = rec.num_rows
    typos = m - rec["typo_field"].null_count
    assert _binom_ok(typos, m, cfg.typo_rate)
    nick = pc.sum(rec["nickname"]).as_py()
    assert _binom_ok(nick, m, cfg.nickname_rate)
    errs = dict(
        zip(
            *np.unique(rec["dob_error"].to_numpy(zero_copy_only=False), return_counts=True),
            strict=True,
        )
    )
    assert _binom_ok(errs.get("placeholder", 0), m, cfg.placeholder_dob_rate)
    assert _binom_ok(errs.get("first_of_month", 0), m, cfg.first_of_month_rate * 30 / 31)
    regs = nation.registrations
    placeholder = pc.equal(regs["dob"], pa.scalar(datetime.date(1900, 1, 1), pa.date32()))
    assert pc.sum(placeholder).as_py() == errs.get("placeholder", 0)
    protected = pc.sum(regs["protected"]).as_py()
    assert _binom_ok(protected, m, cfg.protected_rate, sds=6)


def test_nicknames_come_from_the_nickname_table(nation):
    regs = nation.registrations.append_column("nickname", nation.truth["records"]["nickname"])
    regs = regs.append_column("person_id", nation.truth["records"]["person_id"])
    nick = regs.filter(regs["nickname"]).slice(0, 300)
    persons = nation.truth["persons"]
    true_first = persons["first_name"].take(nick["person_id"])
    assert pc.all(pc.not_equal(nick["first_name"], true_first)).as_py()
    import nicknames

    pairs = {(a.upper(), c.upper()) for a, _, c in nicknames.name_triplets()}
    # a typo may have hit the nickname afterwards, so allow a small share
    hits = sum(
        (t, n) in pairs
        for t, n in zip(true_first.to_pylist(), nick["first_name"].to_pylist(), strict=True)
    )
    assert hits / nick.num_rows > 0.95


def test_maiden_names_on_stale_registrations_of_women(nation):
    rec = nation.truth["records"]
    maiden = rec.filter(rec["maiden_name"])
    assert pc.all(pc.equal(maiden["record_kind"], "stale_cross_state")).as_py()
    persons = nation.truth["persons"]
    assert pc.all(pc.equal(persons["sex"].take(maiden["person_id"]), "F")).as_py()
    stale_women = pc.sum(
        pc.and_(
            pc.equal(rec["record_kind"], "stale_cross_state"),
            pc.equal(persons["sex"].take(rec["person_id"]), "F"),
        )
    ).as_py()
    assert _binom_ok(maiden.num_rows, stale_women, nation.config.marriage_surname_change_rate)


def test_turnout_errors_and_double_votes(nation):
    cfg = nation.config
    rec = nation.truth["records"]
    current = pc.equal(rec["record_kind"], "current")
    voted_current = pc.sum(pc.and_(current, rec["voted"])).as_py()
    assert _binom_ok(voted_current, PEOPLE, cfg.turnout)
    # stale / duplicate registrations vote only as part of a true double vote
    voted_other = pc.sum(pc.and_(pc.invert(current), rec["voted"])).as_py()
    assert voted_other == nation.truth["double_votes"].num_rows
    # ~1 double vote per 4,000 voters: Poisson tolerance
    expected = voted_current * cfg.double_vote_rate
    assert abs(nation.truth["double_votes"].num_rows - expected) <= 5 * max(expected, 1) ** 0.5
    errors = nation.truth["vote_record_errors"]
    assert _binom_ok(errors.num_rows, voted_current, cfg.vote_record_error_rate)
    # the credited registrant did not vote; the true voter did and lost the record
    hist_keys = set(
        pc.binary_join_element_wise(
            nation.vote_history["state"], nation.vote_history["state_voter_id"], "|"
        ).to_pylist()
    )
    for e in errors.slice(0, 50).to_pylist():
        assert f"{e['state']}|{e['state_voter_id']}" in hist_keys
        assert f"{e['state']}|{e['true_state_voter_id']}" not in hist_keys
    assert nation.vote_history.num_rows == int(pc.sum(rec["voted"]).as_py())
    methods = set(pc.unique(nation.vote_history["vote_method"]).to_pylist())
    assert methods == {"in_person", "early", "mail", "absentee"}


def test_double_vote_rate_is_configurable():
    cfg = SynthConfig(double_vote_rate=1 / 200, stale_cross_state_rate=0.05)
    n = generate_nation(20_000, 3, cfg)
    dv = n.truth["double_votes"]
    voters = pc.sum(
        pc.and_(pc.equal(n.truth["records"]["record_kind"], "current"), n.truth["records"]["voted"])
    ).as_py()
    expected = voters / 200
    assert abs(dv.num_rows - expected) <= 5 * expected**0.5
    keys = set(
        pc.binary_join_element_wise(
            n.vote_history["state"], n.vote_history["state_voter_id"], "|"
        ).to_pylist()
    )
    # every ballot is exposed to clerical error, double voters' included: a double
    # vote's ballot is missing from the history only where an error credited it elsewhere
    err = n.truth["vote_record_errors"]
    moved = set(
        pc.binary_join_element_wise(err["state"], err["true_state_voter_id"], "|").to_pylist()
    )
    for d in dv.to_pylist():
        for side in ("l", "r"):
            key = f"{d['state_' + side]}|{d['state_voter_id_' + side]}"
            assert key in keys or key in moved


def test_identifiers_same_person_same_ssn4_and_dob(nation):
    ids = nation.identifiers
    rec = nation.truth["records"]
    assert ids.column_names == ["state", "state_voter_id", "dob", "ssn4", "dl_number"]
    assert pc.all(pc.equal(ids["state_voter_id"], rec["state_voter_id"])).as_py()
    t = pa.table(
        {
            "p": rec["person_id"],
            "ssn4": ids["ssn4"],
            "dob": ids["dob"],
            "dl": ids["dl_number"],
            "st": ids["state"],
        }
    )
    g = t.group_by("p").aggregate([("ssn4", "count_distinct"), ("dob", "count_distinct")])
    assert pc.max(g["ssn4_count_distinct"]).as_py() == 1
    assert pc.max(g["dob_count_distinct"]).as_py() == 1
    assert pc.all(pc.match_substring_regex(ids["ssn4"], r"^\d{4}$")).as_py()
    # licence numbers differ across states for the same person
    pairs = nation.truth["duplicate_pairs"].filter(
        pc.equal(nation.truth["duplicate_pairs"]["kind"], "cross_state")
    )
    key = pc.binary_join_element_wise(ids["state"], ids["state_voter_id"], "|")
    dl = dict(zip(key.to_pylist(), ids["dl_number"].to_pylist(), strict=True))
    diff = [
        dl[f"{p['state_l']}|{p['state_voter_id_l']}"]
        != dl[f"{p['state_r']}|{p['state_voter_id_r']}"]
        for p in pairs.slice(0, 100).to_pylist()
        if dl[f"{p['state_l']}|{p['state_voter_id_l']}"] is not None
    ]
    assert all(diff)


def test_config_validation():
    with pytest.raises(ValueError, match="typo_rate"):
        SynthConfig(typo_rate=1.5)
    assert json.loads(json.dumps(SynthConfig().to_dict()))["turnout"] == 0.65


# --- determinism ---------------------------------------------------------------


def test_same_seed_same_tables_other_seed_differs():
    a, b, c = generate_nation(5_000, 11), generate_nation(5_000, 11), generate_nation(5_000, 12)
    assert a.registrations.equals(b.registrations)
    assert a.vote_history.equals(b.vote_history)
    assert a.identifiers.equals(b.identifiers)
    for k in a.truth:
        assert a.truth[k].equals(b.truth[k]), k
    assert not a.registrations.equals(c.registrations)


WRITE_STATES = ("AK", "FL", "NC", "NY", "OH", "WA")
WRITE_PEOPLE = 2_000


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    nation = generate_nation(WRITE_PEOPLE, 5).restrict(WRITE_STATES)
    out = tmp_path_factory.mktemp("nation_a")
    manifest = write_nation(nation, out)
    return nation, out, manifest


def test_write_layout_and_manifest(written):
    nation, out, manifest = written
    assert set(manifest["states"]) == set(WRITE_STATES)
    assert manifest["seed"] == 5 and manifest["people"] == WRITE_PEOPLE
    assert manifest["registrations"] == nation.registrations.num_rows
    for st, entry in manifest["states"].items():
        assert entry["files"], st
        for f in entry["files"]:
            assert f.startswith(f"states/{st}/") and (out / f).is_file()
        lines = (out / "internal" / f"{st}_identifiers.csv").read_text().splitlines()
        assert lines[0] == "state_voter_id,dob,ssn4,dl_number"
        assert re.fullmatch(r"[^,]+,\d{4}-\d{2}-\d{2},\d{4},[A-Z0-9]*", lines[1])
    for name in ("records", "persons", "duplicate_pairs", "double_votes", "vote_record_errors"):
        assert pq.read_table(out / "truth" / f"{name}.parquet").equals(nation.truth[name]), name
    assert (
        json.loads((out / "truth" / "config.json").read_text())["typo_rate"]
        == nation.config.typo_rate
    )


def test_write_is_byte_identical_for_same_seed(written, tmp_path):
    nation, out, _ = written
    again = tmp_path / "b"
    write_nation(generate_nation(WRITE_PEOPLE, 5).restrict(WRITE_STATES), again)
    assert _digest(out) == _digest(again)
    other = tmp_path / "c"
    write_nation(generate_nation(WRITE_PEOPLE, 6).restrict(("NC",)), other)
    da, dc = _digest(out), _digest(other)
    assert da["states/NC/ncvoter_Statewide.txt"] != dc.get("states/NC/ncvoter_Statewide.txt")


def test_write_refuses_non_empty_directory(written):
    from voterolls.errors import UserError

    nation, out, _ = written
    with pytest.raises(UserError, match="not empty"):
        write_nation(nation, out)


def _layout_for(state: str, rel: str):
    from voterolls.formats import format_for_state

    fmt = format_for_state(state)
    name = Path(rel).name

    def literal(
        layout,
    ) -> int:  # most specific template first: {county}_H_{date} before {county}_{date}
        return -len(re.sub(r"\{[a-z_]+\}", "", layout.filename))

    for layout in sorted(fmt.layouts().values(), key=literal):
        pattern = re.escape(layout.filename)
        pattern = re.sub(r"\\\{[a-z_]+\\\}", ".+", pattern)
        if re.fullmatch(pattern, name):
            return layout
    raise AssertionError(f"no layout of {fmt.name} matches {name}")


def test_native_files_reread_with_documented_column_count(written):
    _, out, manifest = written
    checked = 0
    for st, entry in manifest["states"].items():
        for rel in entry["files"]:
            layout = _layout_for(st, rel)
            enc = {"utf-8": "utf-8", "latin-1": "latin-1", "utf-16": "utf-16"}[layout.encoding]
            text = (out / rel).read_bytes().decode(enc)
            rows_text = text.split(layout.line_terminator)
            assert rows_text[-1] == "", f"{rel} does not end with its line terminator"
            if layout.kind == "fixed":
                assert all(len(r) == layout.record_width for r in rows_text[:-1]), rel
                checked += 1
                continue
            quoting = csv.QUOTE_NONE if layout.quoting == "none" else csv.QUOTE_MINIMAL
            rows = list(
                csv.reader(
                    io.StringIO(text, newline=""), delimiter=layout.delimiter, quoting=quoting
                )
            )
            expected = len(layout.columns)
            for row in rows:
                if layout.wide_history is not None:  # one extra column per election (OH)
                    assert len(row) >= expected and len(row) == len(rows[0]), rel
                else:
                    assert len(row) == expected, (rel, len(row), expected)
            checked += 1
    assert checked >= len(WRITE_STATES)


@pytest.mark.slow
def test_write_all_51_states(tmp_path):
    nation = generate_nation(2_000, 9)
    manifest = write_nation(nation, tmp_path / "all")
    assert set(manifest["states"]) == set(JURISDICTIONS)
    assert len(list((tmp_path / "all" / "internal").glob("*_identifiers.csv"))) == 51


# --- command line --------------------------------------------------------------


def test_cli_rejects_bad_people_and_non_empty_out(tmp_path):
    from typer.testing import CliRunner

    from voterolls.cli import app
    from voterolls.errors import UserError

    runner = CliRunner()
    res = runner.invoke(app, ["generate", "--people", "0", "--out", str(tmp_path / "x")])
    assert isinstance(res.exception, UserError) and "people" in str(res.exception)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    res = runner.invoke(app, ["generate", "--people", "10", "--out", str(tmp_path / "busy")])
    assert isinstance(res.exception, UserError) and "not empty" in str(res.exception)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "x"


@pytest.mark.slow
def test_cli_generate_prints_counts_only(tmp_path):
    from typer.testing import CliRunner

    from voterolls.cli import app

    res = CliRunner().invoke(
        app, ["generate", "--people", "1100", "--seed", "4", "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 0, res.output
    assert "registrations" in res.output and "51 states" in res.output
    persons = pq.read_table(tmp_path / "o" / "truth" / "persons.parquet")
    for name in persons["last_name"].to_pylist()[:50]:
        assert name not in res.output
