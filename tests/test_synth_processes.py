"""The alternative data-generating processes of ``SynthConfig`` (docs/SYNTH.md)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow.compute as pc
import pytest

from voterolls.schema import LIVE_STATUSES
from voterolls.synth import SynthConfig, generate_nation
from voterolls.synth.config import NATIONAL_PEOPLE, namesake_people
from voterolls.synth.population import _fold_map, name_tables


def test_default_options_leave_the_nation_unchanged():
    a = generate_nation(3000, 2)
    b = generate_nation(3000, 2, SynthConfig(mover_turnout_ratio=1.0, namesake_density="sample"))
    assert a.registrations.equals(b.registrations) and a.vote_history.equals(b.vote_history)


def test_fold_map_reaches_the_requested_name_concentration():
    p = np.diff(name_tables().surname_cdf, prepend=0.0)
    p = p / p.sum()
    for factor in (10.0, 100.0):
        m = _fold_map(p, factor)
        folded = np.bincount(m, weights=p, minlength=p.size)
        ratio = float((folded**2).sum() / (p**2).sum())
        assert factor <= ratio < 1.5 * factor


def test_namesake_density_option_and_validation():
    assert namesake_people("national", 10) == NATIONAL_PEOPLE
    assert namesake_people(5e6, 10) == 5e6
    with pytest.raises(ValueError, match="namesake_density"):
        SynthConfig(namesake_density="dense")
    with pytest.raises(ValueError, match="vote_error_mechanism"):
        SynthConfig(vote_error_mechanism="sometimes")
    sparse = generate_nation(20_000, 1)
    dense = generate_nation(20_000, 1, SynthConfig(namesake_density="national"))

    def pairs_per_person(n) -> float:
        con = duckdb.connect()
        con.register("r", n.registrations)
        return con.execute(
            "SELECT sum(c * (c - 1) / 2) / 20000 FROM "
            "(SELECT count(*) c FROM r GROUP BY first_name, last_name, birth_year)"
        ).fetchall()[0][0]

    # a 200-million-person file has a few name + birth-year namesakes per person; a
    # 20,000-person sample drawn from the same tables almost none
    assert pairs_per_person(sparse) < 0.05 < 1.0 < pairs_per_person(dense)


@pytest.fixture(scope="module")
def kept():
    cfg = SynthConfig(
        cancelled_kept_rate=0.4,
        denied_kept_rate=0.5,
        in_state_duplicate_rate=0.03,
        late_registration_rate=0.05,
        vote_error_mechanism="false_mark",
        vote_record_error_rate=0.03,
        mover_turnout_ratio=0.3,
        stale_cross_state_rate=0.1,
    )
    return generate_nation(30_000, 3, cfg)


def test_cancelled_and_denied_records_are_kept_and_never_live_duplicates(kept):
    con = duckdb.connect()
    con.register("r", kept.registrations)
    con.register("t", kept.truth["records"])
    con.register("p", kept.truth["duplicate_pairs"])
    con.register("dv", kept.truth["double_votes"])
    by = dict(
        con.execute(
            "SELECT r.status || '/' || t.record_kind, count(*) FROM r JOIN t USING (state, state_voter_id) "
            "GROUP BY 1"
        ).fetchall()
    )
    assert by["cancelled/stale_cross_state"] > 0 and by["denied/in_state_duplicate"] > 0
    assert not any(k.startswith(("cancelled/current", "denied/current")) for k in by)
    assert by["denied/in_state_duplicate"] + by["cancelled/in_state_duplicate"] > 0
    # a pair is live exactly when both records are registrations
    live = ", ".join(f"'{s}'" for s in LIVE_STATUSES)
    bad = con.execute(
        f"""SELECT count(*) FROM p
            JOIN r a ON a.state = p.state_l AND a.state_voter_id = p.state_voter_id_l
            JOIN r b ON b.state = p.state_r AND b.state_voter_id = p.state_voter_id_r
            WHERE p.live <> (a.status IN ({live}) AND b.status IN ({live}))"""
    ).fetchall()[0][0]
    assert bad == 0 and 0 < pc.sum(pc.invert(kept.truth["duplicate_pairs"]["live"])).as_py()
    # nobody double-votes on a cancelled or denied record
    on_dead = con.execute(
        f"""SELECT count(*) FROM dv JOIN r ON (r.state = dv.state_l AND r.state_voter_id = dv.state_voter_id_l)
              OR (r.state = dv.state_r AND r.state_voter_id = dv.state_voter_id_r)
            WHERE r.status NOT IN ({live})"""
    ).fetchall()[0][0]
    assert on_dead == 0


def test_late_registrations_never_voted_and_false_marks_keep_the_real_vote(kept):
    con = duckdb.connect()
    con.register("r", kept.registrations)
    con.register("t", kept.truth["records"])
    con.register("e", kept.truth["vote_record_errors"])
    con.register("v", kept.vote_history)
    late, late_cast = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE t.voted) FROM r JOIN t USING (state, state_voter_id) "
        "WHERE r.registration_date > DATE '2024-11-05'"
    ).fetchall()[0]
    assert late > 500 and late_cast == 0
    # false_mark: the real voter keeps the mark, the credited record gains one
    n_err, kept_mark, credited = con.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM v WHERE v.state = e.state
                                   AND v.state_voter_id = e.true_state_voter_id)),
                  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM v WHERE v.state = e.state
                                   AND v.state_voter_id = e.state_voter_id))
           FROM e"""
    ).fetchall()[0]
    assert n_err > 100 and kept_mark == n_err and credited == n_err
    wrong = generate_nation(30_000, 3, SynthConfig(vote_record_error_rate=0.03))
    con.register("e2", wrong.truth["vote_record_errors"])
    con.register("v2", wrong.vote_history)
    lost = con.execute(
        """SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM v2 WHERE v2.state = e2.state
                                   AND v2.state_voter_id = e2.true_state_voter_id)) FROM e2"""
    ).fetchall()[0][0]
    assert lost == wrong.truth["vote_record_errors"].num_rows > 100


def test_movers_vote_less_when_asked(kept):
    con = duckdb.connect()
    con.register("t", kept.truth["records"])
    mover, other = con.execute(
        """WITH m AS (SELECT DISTINCT person_id FROM t WHERE record_kind = 'stale_cross_state')
           SELECT avg(voted::INT) FILTER (WHERE person_id IN (SELECT * FROM m)),
                  avg(voted::INT) FILTER (WHERE person_id NOT IN (SELECT * FROM m))
           FROM t WHERE record_kind = 'current'"""
    ).fetchall()[0]
    assert mover < 0.5 * other


@pytest.mark.slow
def test_cli_generate_passes_the_namesake_density(tmp_path):
    import json

    from typer.testing import CliRunner

    from voterolls.cli import app
    from voterolls.errors import UserError

    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "generate",
            "--people",
            "300",
            "--out",
            str(tmp_path / "d"),
            "--namesake-density",
            "dense",
        ],
    )
    assert isinstance(res.exception, UserError) and "--namesake-density" in str(res.exception)
    res = runner.invoke(
        app,
        [
            "generate",
            "--people",
            "300",
            "--out",
            str(tmp_path / "o"),
            "--namesake-density",
            "national",
        ],
    )
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "o" / "truth" / "config.json").read_text())
    assert cfg["namesake_density"] == "national"
