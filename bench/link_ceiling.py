"""Linkage quality against its ceiling: voterolls vs an oracle Fellegi-Sunter model, by DOB class and N.

For each size N (registrations ~ people x 1.03) one synthetic nation is
generated (``voterolls.synth.generate_nation``) and made as dense in
birthdays as the nation (see "Density"), then linked twice by
``voterolls.link.run.link_registrations`` - on public fields only, and with
every state sending a sealed DOB token (no SSN4) - and each run is scored
four ways on **the same candidate pairs and comparison vectors**:

* ``voterolls``: the model as trained without labels;
* ``oracle``: the same comparison vectors and term-frequency adjustments,
  with the generator's truth in place of what training estimates: m of every
  level = its share among the true duplicate pairs that were compared, and
  the prior = true duplicate pairs / C(N, 2).  u stays the random-sample
  estimate (a random pair is a non-match with probability 1 - 1e-7, so that
  *is* the true u up to the sampling noise of 3 million pairs).  Under the
  model's conditional-independence assumption this is the Bayes-optimal
  scorer of those vectors;
* ``oracle_prior``: voterolls' m with the true prior, and ``oracle_m``: the
  true m with voterolls' prior - which of the two separates voterolls from
  the oracle.

A pair's oracle weight is voterolls' weight plus sum_k log2(m_oracle / m_voterolls)
at the level it reached, plus the change in prior log-odds: Splink's weight is
log2 prior odds + sum_k log2(m_k / u_k) (+ a term-frequency term that does not
involve m), so this is exactly rescoring with the other m and prior.

Scores are ``voterolls.link.evaluate.evaluate``'s: cross-state duplicates,
F1 at p >= 0.5 (where a calibrated model minimises expected errors) and at
0.9 (the default threshold), by DOB class (full / year on a side / none on a
side), and calibration by class (expected vs observed true pairs per
probability bin, over every written pair).  Pairs never compared are misses
for every scorer alike.

Density.  What limits linkage on public fields is how many strangers share a
name and birthday.  The nation has ~200M registrations over ~75 birth years,
~7,300 per calendar date.  A generated nation of N registrations spreads over
the same 75 years, so it is 200M / N times too sparse.  Here every person's
true birth year is folded into a window of ``Y`` years (``Y`` = 75 N / 200M,
at least 1) by the same shift on every one of their registrations, so
recording errors (a year slip, transposed day and month) keep their
structure; density relative to the nation is reported per run (1.0 = as
dense as the nation).  This is done in this script on the generated tables
(``fold_birth_years``); the statistics work may add such an option to the
generator itself.

    .venv/bin/python bench/link_ceiling.py --people 100000 1000000
    .venv/bin/python bench/link_ceiling.py --table          # re-render from the JSON
    .venv/bin/python bench/link_ceiling.py --table --write-docs

Results: ``bench/results/link_ceiling.json`` (one row per size and variant);
``--write-docs`` puts the tables between markers in docs/LINKAGE.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PeakRSS  # noqa: E402
from bench.synthetic_registrations import load_nation_registrations  # noqa: E402
from voterolls.link.engines.duckdb import ConnectionQueries  # noqa: E402
from voterolls.link.evaluate import GRANULARITY_CLASSES, evaluate  # noqa: E402
from voterolls.link.run import LinkRequest, link_registrations  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "link_ceiling.json"
DOCS = ROOT / "docs" / "LINKAGE.md"
SCALE_DOCS = ROOT / "docs" / "SCALE.md"
MARK = "<!-- bench/link_ceiling.py:tables:{} -->"
PROJECTION_MARK = "<!-- bench/link_ceiling.py:projection:{} -->"
NATION_REGISTRATIONS = 200e6
NATION_BIRTH_YEARS = 75
BASE_YEAR = 1972  # a leap year: a folded 29 February stays a date
SCORERS = ("voterolls", "oracle", "oracle_prior", "oracle_m", "recalibrated")


def fold_birth_years(nation, years: int):
    """Fold every person's true birth year into ``years`` years from 1972, same shift on each registration.

    The shift is computed from the true DOB (``identifiers.dob``) and applied
    to the recorded ``dob`` / ``birth_year`` of the same registration, so a
    recorded error stays the same error.  Placeholder dates (1900-01-01 and
    earlier) are left alone.
    """
    con = duckdb.connect()
    con.register("ids", nation.identifiers)
    con.register("regs", nation.registrations)
    shift = (
        f"({BASE_YEAR} + (year(i.dob) - {BASE_YEAR}) % {years} "
        f"+ CASE WHEN (year(i.dob) - {BASE_YEAR}) % {years} < 0 THEN {years} ELSE 0 END) - year(i.dob)"
    )
    regs = con.sql(
        f"""SELECT r.* REPLACE (
                CASE WHEN r.dob > DATE '1900-01-01' AND i.dob IS NOT NULL
                     THEN CAST(r.dob + to_years(CAST({shift} AS INTEGER)) AS DATE) ELSE r.dob END AS dob,
                CASE WHEN r.birth_year > 1900 AND i.dob IS NOT NULL
                     THEN CAST(r.birth_year + {shift} AS {nation.registrations.schema.field('birth_year').type})
                     ELSE r.birth_year END AS birth_year)
            FROM regs r LEFT JOIN ids i USING (state, state_voter_id)"""
    ).to_arrow_table()
    ids = con.sql(
        f"SELECT i.* REPLACE (CAST(i.dob + to_years(CAST({shift} AS INTEGER)) AS DATE) AS dob) FROM ids i"
    ).to_arrow_table()
    nation.registrations = regs.cast(nation.registrations.schema)
    nation.identifiers = ids.cast(nation.identifiers.schema)
    return nation


def _levels(model: dict) -> dict[str, list[tuple[int, float]]]:
    """comparison -> [(gamma, m)] for its non-null levels (gamma = n - 1 - position)."""
    out = {}
    for comp in model["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        n = len(levels)
        out[comp["output_column_name"]] = [
            (n - 1 - i, float(lv.get("m_probability") or 0.0) or 1e-300) for i, lv in enumerate(levels)
        ]
    return out


def _truth_view(con: duckdb.DuckDBPyConnection, truth: Path) -> None:
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _truth AS SELECT DISTINCT
                least(state_l || ':' || state_voter_id_l, state_r || ':' || state_voter_id_r) AS a,
                greatest(state_l || ':' || state_voter_id_l, state_r || ':' || state_voter_id_r) AS b
            FROM read_parquet('{truth}')"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _truth_in AS SELECT * FROM _truth
           WHERE a IN (SELECT state || ':' || state_voter_id FROM registrations)
             AND b IN (SELECT state || ':' || state_voter_id FROM registrations)"""
    )


def oracle_pairs(
    con, pairs: Path, model: dict, prior_vr: float, n: int, out_dir: Path, scorers=SCORERS
) -> dict:
    """Write the rescored pairs files (of the three, those in ``scorers``); return the true m per
    level and the true prior."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _p AS SELECT p.*, (t.a IS NOT NULL) AS is_true
            FROM read_parquet('{pairs}') p LEFT JOIN _truth_in t
              ON t.a = least(p.state_l || ':' || p.state_voter_id_l, p.state_r || ':' || p.state_voter_id_r)
             AND t.b = greatest(p.state_l || ':' || p.state_voter_id_l, p.state_r || ':' || p.state_voter_id_r)"""
    )
    true_pairs = int(con.execute("SELECT count(*) FROM _truth_in").fetchall()[0][0])
    prior_true = true_pairs / (n * (n - 1) / 2)
    m_true: dict[str, dict[int, float]] = {}
    delta_terms = []
    for comp, levels in _levels(model).items():
        g = f"gamma_{comp}"
        counts = dict(
            con.execute(f"SELECT {g}, count(*) FROM _p WHERE is_true AND {g} >= 0 GROUP BY 1").fetchall()
        )
        total = sum(counts.values())
        if not total:
            continue
        # add-half smoothing: a level no compared true pair reached is rare, not impossible
        m_true[comp] = {
            gam: (counts.get(gam, 0) + 0.5) / (total + 0.5 * len(levels)) for gam, _m in levels
        }
        case = " ".join(
            f"WHEN {g} = {gam} THEN {math.log2(m_true[comp][gam]) - math.log2(m):.12g}"
            for gam, m in levels
        )
        delta_terms.append(f"(CASE {case} ELSE 0 END)")
    dm = " + ".join(delta_terms) or "0"

    def lo(p: float) -> float:
        return math.log2(p / (1 - p))

    dprior = lo(prior_true) - lo(prior_vr)
    files = {}
    for name, extra in (("oracle", f"{dm} + {dprior!r}"), ("oracle_prior", f"{dprior!r}"), ("oracle_m", dm)):
        if name not in scorers:
            continue
        path = out_dir / f"{name}.parquet"
        w = f"(match_weight + {extra})"
        con.execute(
            f"""COPY (SELECT * EXCLUDE (is_true, match_weight, match_probability),
                       {w} AS match_weight,
                       1.0 / (1.0 + pow(2.0, -greatest(least({w}, 1000), -1000))) AS match_probability
                FROM _p) TO '{path}' (FORMAT PARQUET)"""
        )
        files[name] = path
    m_vr = {c: dict(v) for c, v in _levels(model).items()}
    gaps = sorted(
        (
            {"comparison": c, "gamma": gam, "m_voterolls": round(m_vr[c][gam], 5), "m_true": round(mt, 5),
             "log2_ratio": round(math.log2(m_vr[c][gam] / mt), 3)}
            for c, lv in m_true.items() for gam, mt in lv.items()
        ),
        key=lambda r: -abs(r["log2_ratio"]),
    )
    return {"files": files, "prior_true": prior_true, "true_pairs": true_pairs, "m_gaps": gaps[:12]}


def recalibrated_pairs(con, pairs: Path, model: dict, out_dir: Path) -> tuple[Path, dict]:
    """voterolls' pairs with the truth-free recalibration applied, exactly as ``voterolls link`` does.

    The link ran with ``recalibrate=False`` so that the oracle rescoring (which
    adds m differences to voterolls' weights) stays exact; here the same maps
    (voterolls.link.calibration.fit_maps) are fitted on the written pairs and applied.
    """
    from voterolls.link.calibration import bayes_factors, exact_m, fit_maps, masked_map_sql
    from voterolls.link.prepare import prepare_input

    prepare_input(con, "registrations", "_cal_input")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _cal_pairs AS SELECT * FROM read_parquet('{pairs}')")
    levels = {
        comp["output_column_name"]: [
            (lv.get("m_probability"), lv.get("u_probability"))
            for lv in comp["comparison_levels"] if not lv.get("is_null_level")
        ]
        for comp in model["comparisons"]
    }
    maps = fit_maps(
        ConnectionQueries(con), "_cal_pairs", "_cal_input", bayes_factors(levels), dob_exact_m=exact_m(levels),
        left_id="p.state_l || ':' || p.state_voter_id_l", right_id="p.state_r || ':' || p.state_voter_id_r",
    )
    path = out_dir / "recalibrated.parquet"
    w = masked_map_sql(maps, "match_weight")
    con.execute(
        f"""COPY (SELECT * EXCLUDE (match_weight, match_probability), {w} AS match_weight,
                   1.0 / (1.0 + pow(2.0, -greatest(least({w}, 1000), -1000))) AS match_probability
            FROM _cal_pairs) TO '{path}' (FORMAT PARQUET)"""
    )
    con.execute("DROP TABLE IF EXISTS _cal_input")
    return path, maps


def _keep(con, tmpd: Path, dest: Path) -> None:
    """Copy what a run scored (synthetic data only) to ``dest`` for offline analysis."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY registrations TO '{dest / 'registrations.parquet'}' (FORMAT PARQUET)")
    for f in ("link/pairs.parquet", "link/model.json", "duplicate_pairs.parquet"):
        shutil.copy(tmpd / f, dest / Path(f).name)


def _class_summary(ev: dict) -> dict:
    out = {}
    for c in (*GRANULARITY_CLASSES, "all"):
        s = ev["model"][c]
        out[c] = {k: s.get(k) for k in ("precision", "recall", "f1", "tp", "fp", "fn")}
    return out


def _calibration(ev: dict) -> dict:
    """Per class, mid-range bins (0.1-0.9): expected / observed true pairs."""
    out = {}
    for c, rows in ev["calibration_by_granularity"].items():
        out[c] = [
            {"bin": r["bin"], "pairs": r["pairs"], "expected": r["expected_true"], "observed": r["observed_true"],
             "ratio": round(r["expected_true"] / r["observed_true"], 3) if r["observed_true"] else None}
            for r in rows if r["bin"] in ("0.1-0.5", "0.5-0.9")
        ]
    return out


def _window(registrations: float) -> int:
    """Birth-year window that makes ``registrations`` as dense in birthdays as the nation."""
    return max(1, round(NATION_BIRTH_YEARS * registrations / NATION_REGISTRATIONS))


def _one_nation(con, tmpd: Path, people: int, seed: int, years: int | None, variant: str, config) -> tuple[int, int]:
    """The whole nation in memory (``generate_nation``): registrations table, truth file; (registrations, window)."""
    from voterolls.synth.nation import generate_nation

    nation = generate_nation(people, seed, config)
    n_regs = nation.registrations.num_rows
    y = years or _window(n_regs)
    fold_birth_years(nation, y)
    states = nation.states() if variant == "sealed_dob" else None
    load_nation_registrations(con, nation, token_states=states)
    if variant == "sealed_dob":  # DOB tokens only: the question is what sealing the DOB buys
        con.execute("UPDATE registrations SET ssn4_token = NULL").fetchall()
    pq.write_table(nation.truth["duplicate_pairs"], tmpd / "duplicate_pairs.parquet")
    return n_regs, y


def _nation_in_chunks(
    con, tmpd: Path, people: int, seed: int, years: int | None, variant: str, config, chunk_people: int,
    memory_limit: str | None,
) -> tuple[int, int]:
    """The nation in chunks of people written to Parquet (bench/nation_chunks.py: bounded memory);
    ``registrations`` is a view over them.  (registrations as generated, window)."""
    from bench.nation_chunks import NationChunksRequest, write_nation_chunks

    out = write_nation_chunks(
        NationChunksRequest(people, seed, chunk_people, tmpd / "nation", variant, config, memory_limit),
        fold_birth_years,
        lambda expected: years or _window(expected),
    )
    con.execute(f"CREATE VIEW registrations AS SELECT * FROM read_parquet('{out.registrations}')")
    out.duplicate_pairs.rename(tmpd / "duplicate_pairs.parquet")
    return out.generated_registrations, out.birth_year_window


def run_size(
    people: int, seed: int, years: int | None, variant: str, mechanism: str | None = None,
    chunk_people: int | None = None, memory_limit: str | None = None, scorers: tuple[str, ...] = SCORERS,
    extra_thresholds: tuple[float, ...] = (0.9,), keep: Path | None = None, full_link: bool = False,
) -> dict:
    """One nation of ``people``, linked and scored; ``mechanism``: an alternative data-generating
    process of bench/validate_estimates.py (its SynthConfig options), recorded as ``variant/mechanism``.
    ``chunk_people``: generate in chunks of that many people (bench/nation_chunks.py) when
    ``people`` is larger; ``memory_limit``: DuckDB's limit for this process's connection and the
    link engine (both spill to the temporary directory beyond it); ``scorers``: which of
    :data:`SCORERS` to score (each is two passes of ``evaluate`` over every candidate pair: at
    10M the diagnostic ones cost more than the link); ``extra_thresholds``: F1 beside p >= 0.5
    (which calibration and the projection read), () to save one pass per scorer; ``keep``: a
    directory to copy the registrations, truth, pairs and model to (for analysis); ``full_link``:
    also link the same registrations as ``voterolls link`` does (its defaults: blocking analysis,
    recalibration, default minimum probability) and record its time and peak memory (not scored).

    Memory: ``link_rss_mib`` is the process tree's RSS sampled during the scored link call only
    (``start_mib`` = what the process held when it began, e.g. the generated nation;
    bench.common.PeakRSS), ``process_peak_rss_mib`` the whole run's ``ru_maxrss``."""
    from voterolls.synth import SynthConfig

    t0 = time.perf_counter()
    config = None
    if mechanism:
        from bench.validate_estimates import KEPT_RECORDS, MECHANISMS

        config = SynthConfig(**KEPT_RECORDS, **MECHANISMS[mechanism][0])
    chunked = bool(chunk_people) and people > chunk_people
    with tempfile.TemporaryDirectory(dir=os.environ.get("VOTEROLLS_BENCH_TMP")) as tmp:
        tmpd = Path(tmp)
        con = duckdb.connect()
        if memory_limit:
            os.environ["VOTEROLLS_LINK_MEMORY_LIMIT"] = memory_limit
            con.execute(f"SET memory_limit='{memory_limit}'")
            con.execute(f"SET temp_directory='{tmpd / 'duckdb_tmp'}'")
        if chunked:
            n_regs, y = _nation_in_chunks(con, tmpd, people, seed, years, variant, config, chunk_people, memory_limit)
        else:
            n_regs, y = _one_nation(con, tmpd, people, seed, years, variant, config)
        density = (n_regs / y) / (NATION_REGISTRATIONS / NATION_BIRTH_YEARS)
        gen_s = time.perf_counter() - t0
        load = [round(x, 2) for x in os.getloadavg()]
        with PeakRSS() as link_rss:
            res = link_registrations(
                con, LinkRequest(tmpd / "link", min_probability=0.0, blocking_analysis=False, recalibrate=False)
            )
        load_after = [round(x, 2) for x in os.getloadavg()]
        full = _full_link(con, tmpd) if full_link else None
        model = json.loads((tmpd / "link" / "model.json").read_text())
        _truth_view(con, tmpd / "duplicate_pairs.parquet")
        orc = oracle_pairs(
            con, tmpd / "link" / "pairs.parquet", model, res.prior, res.registrations, tmpd, scorers
        )
        recal_path, recal_fit = None, None
        if "recalibrated" in scorers:
            recal_path, recal_fit = recalibrated_pairs(con, tmpd / "link" / "pairs.parquet", model, tmpd)
        if keep is not None:
            _keep(con, tmpd, keep / f"{people}_{variant}{'_' + mechanism if mechanism else ''}")
        scored: dict[str, dict] = {}
        files = {"voterolls": tmpd / "link" / "pairs.parquet", "recalibrated": recal_path} | orc["files"]
        for name in scorers:
            ev = {t: evaluate(con, tmpd, files[name], threshold=t) for t in (0.5, *extra_thresholds)}
            scored[name] = {f"f1_at_{t}": _class_summary(e) for t, e in ev.items()} | {
                "calibration_mid": _calibration(ev[0.5]),
                "scored_recall": ev[0.5]["scored_recall"],
            }
    return {
        "people": people,
        "seed": seed,
        "variant": f"{variant}/{mechanism}" if mechanism else variant,
        "registrations": res.registrations,
        "birth_year_window": y,
        "density_vs_nation": round(density, 4),
        "candidate_pairs": res.candidate_pairs,
        "link_seconds": res.seconds.get("total"),
        "link_cpu_seconds": res.cpu_seconds.get("total"),
        "generate_seconds": round(gen_s, 1),
        "generated_in_chunks_of": chunk_people if chunked else None,
        "memory_limit": memory_limit,
        "load_before": load,
        "load_after": load_after,
        "link_rss_mib": link_rss.as_dict(),
        "process_peak_rss_mib": _max_rss_mib(),
        "full_link": full,
        "em_rules": res.training["em_rules"],
        "prior_voterolls": res.prior,
        "prior_true": orc["prior_true"],
        "true_pairs_in_workspace": orc["true_pairs"],
        "m_gaps": orc["m_gaps"],
        "m_stranger_corrected": res.training.get("m_stranger_corrected"),
        "recalibration": recal_fit,
        "scores": scored,
    }


def rescore(keep_dir: Path, scorers=("voterolls", "oracle", "recalibrated"), thresholds=(0.5,)) -> dict:
    """Score a kept run (``--keep``) again without re-linking: its pairs, model, registrations and
    truth as linked, the recalibration (voterolls.link.calibration) and the oracle refitted with
    the code as it is now.  Returns the ``scores`` and ``recalibration`` of a results row."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE registrations AS SELECT * FROM read_parquet('{keep_dir / 'registrations.parquet'}')")
    model = json.loads((keep_dir / "model.json").read_text())
    n = int(con.execute("SELECT count(*) FROM registrations").fetchall()[0][0])
    prior = float(model["probability_two_random_records_match"])
    _truth_view(con, keep_dir / "duplicate_pairs.parquet")
    with tempfile.TemporaryDirectory(dir=os.environ.get("VOTEROLLS_BENCH_TMP")) as tmp:
        tmpd = Path(tmp)
        orc = oracle_pairs(con, keep_dir / "pairs.parquet", model, prior, n, tmpd, scorers)
        recal_path, recal_fit = None, None
        if "recalibrated" in scorers:
            recal_path, recal_fit = recalibrated_pairs(con, keep_dir / "pairs.parquet", model, tmpd)
        files = {"voterolls": keep_dir / "pairs.parquet", "recalibrated": recal_path} | orc["files"]
        scored = {}
        for name in scorers:
            ev = {t: evaluate(con, keep_dir, files[name], threshold=t) for t in thresholds}
            scored[name] = {f"f1_at_{t}": _class_summary(e) for t, e in ev.items()} | {
                "calibration_mid": _calibration(ev[0.5]), "scored_recall": ev[0.5]["scored_recall"]}
    return {"scores": scored, "recalibration": recal_fit}


def _kept_row_key(keep_dir: Path) -> tuple[int, str]:
    """(people, variant as in the results) of a ``--keep`` directory ``PEOPLE_VARIANT[_MECHANISM]``."""
    people, rest = keep_dir.name.split("_", 1)
    for v in ("sealed_dob", "public"):
        if rest == v or rest.startswith(v + "_"):
            mech = rest[len(v) + 1:]
            return int(people), f"{v}/{mech}" if mech else v
    raise SystemExit(f"not a kept run directory: {keep_dir}")


def rescore_rows(dirs: list[Path]) -> None:
    """Replace the ``recalibrated`` scores of the kept runs' rows by a rescoring with the code as it is
    (the link, its pairs and the other scorers are unchanged: the recalibration is fitted after the
    link); the row records when and at what load (``recalibrated_rescored``)."""
    import datetime

    runs = json.loads(RESULTS.read_text())["runs"]
    for d in dirs:
        key = _kept_row_key(d)
        (row,) = [r for r in runs if (r["people"], r["variant"]) == key]
        load = [round(x, 2) for x in os.getloadavg()]
        out = rescore(d, ("recalibrated",), (0.5, 0.9))
        row["scores"]["recalibrated"] = out["scores"]["recalibrated"]
        row["recalibration"] = out["recalibration"]
        row["recalibrated_rescored"] = {
            "utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"), "load_before": load,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
        _save([row])
        print(json.dumps({"people": key[0], "variant": key[1], "rescored": row["recalibrated_rescored"]}), flush=True)


def _max_rss_mib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _full_link(con, tmpd: Path) -> dict:
    """The same registrations linked as ``voterolls link`` links them (every default of LinkRequest:
    blocking analysis, recalibration of each DOB class, the default minimum probability):
    time, CPU, stages and peak RSS, with the load before and after."""
    load = [round(x, 2) for x in os.getloadavg()]
    with PeakRSS() as rss:
        res = link_registrations(con, LinkRequest(tmpd / "full_link"))
    return {
        "seconds": res.seconds.get("total"), "cpu_seconds": res.cpu_seconds.get("total"),
        "stages": res.seconds, "cpu_stages": res.cpu_seconds, "candidate_pairs": res.candidate_pairs,
        "pairs_written": res.pairs_written, "rss_mib": rss.as_dict(),
        "load_before": load, "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def _save(rows: list[dict], results: Path = RESULTS) -> None:
    old = json.loads(results.read_text()) if results.is_file() else {"runs": []}
    keep = [r for r in old["runs"] if (r["people"], r["variant"]) not in {(x["people"], x["variant"]) for x in rows}]
    results.write_text(json.dumps({"runs": sorted(keep + rows, key=lambda r: (r["variant"], r["people"]))}, indent=2) + "\n")


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _sessions(rules: list[str]) -> str:
    """EM blocking rules as column tuples, e.g. (dob, last_name): which model a row measured."""
    import re

    return "; ".join("(" + ", ".join(re.findall(r'l\."(\w+)"', q)) + ")" for q in rules)


def tables() -> str:
    runs = json.loads(RESULTS.read_text())["runs"]
    lines = []
    for t in ("0.5", "0.9"):
        lines += [
            f"F1 of cross-state duplicates at p >= {t}, by DOB class (full on both sides / year on a side / none on a side):",
            "",
            "| variant | registrations | density vs nation | class | voterolls | oracle | oracle prior only | oracle m only | voterolls recalibrated |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            for c in (*GRANULARITY_CLASSES, "all"):
                f = [r["scores"].get(s, {}).get(f"f1_at_{t}", {}).get(c, {}).get("f1") for s in SCORERS]
                lines.append(
                    f"| {r['variant']} | {r['registrations']:,} | {r['density_vs_nation']:.3f} | {c} | "
                    + " | ".join(_f(x) for x in f) + " |"
                )
        lines.append("")
    lines += [
        "Calibration, mid-range bins at p in [0.1, 0.5) and [0.5, 0.9): expected / observed true pairs (1.0 = calibrated):",
        "",
        "| variant | registrations | class | voterolls 0.1-0.5 | voterolls 0.5-0.9 | oracle 0.1-0.5 | oracle 0.5-0.9 | recalibrated 0.1-0.5 | recalibrated 0.5-0.9 |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for c in GRANULARITY_CLASSES:
            cells = []
            for s in ("voterolls", "oracle", "recalibrated"):
                bins = {b["bin"]: b for b in r["scores"].get(s, {}).get("calibration_mid", {}).get(c, [])}
                for b in ("0.1-0.5", "0.5-0.9"):
                    x = bins.get(b)
                    cells.append("-" if not x else f"{x['expected']:.0f}/{x['observed']} ({_f(x['ratio'])})")
            lines.append(f"| {r['variant']} | {r['registrations']:,} | {c} | " + " | ".join(cells) + " |")
    lines += ["", "Runs (command `.venv/bin/python bench/link_ceiling.py --people ...`):", ""]
    for r in runs:
        lines.append(
            f"* {r['variant']} {r['registrations']:,}: birth years folded into {r['birth_year_window']}, "
            f"{r['candidate_pairs']:,} candidate pairs, link {r['link_seconds']} s wall / "
            f"{r['link_cpu_seconds']} s CPU, load {r['load_before'][0]} -> {r['load_after'][0]}; "
            f"prior voterolls {r['prior_voterolls']:.3g} vs true {r['prior_true']:.3g}; "
            f"EM sessions {_sessions(r['em_rules'])}{_memory_note(r)}."
            + (f" Recalibrated column rescored on the kept run (`--rescore`) {rs['utc']} UTC, load "
               f"{rs['load_before'][0]} -> {rs['load_after'][0]}." if (rs := r.get("recalibrated_rescored")) else "")
        )
    return "\n".join(lines) + "\n"


def _memory_note(r: dict) -> str:
    """The link call's sampled peak RSS and the `voterolls link`-like run's figures, where recorded."""
    out = ""
    m = r.get("link_rss_mib")
    if m:
        out += (f"; link peak RSS {m['peak_mib'] / 1024:.1f} GiB (process held {m['start_mib'] / 1024:.1f} GiB "
                f"when it began), whole run {r['process_peak_rss_mib'] / 1024:.1f} GiB")
    if r.get("memory_limit"):
        out += f", DuckDB memory limit {r['memory_limit']}"
    if r.get("generated_in_chunks_of"):
        out += f", nation generated in chunks of {r['generated_in_chunks_of']:,} people"
    f = r.get("full_link")
    if f:
        out += (f"; as `voterolls link` links (blocking analysis, recalibration): {f['seconds']} s wall / "
                f"{f['cpu_seconds']} s CPU, peak RSS {f['rss_mib']['peak_mib'] / 1024:.1f} GiB, "
                f"load {f['load_before'][0]} -> {f['load_after'][0]}")
    return out


def _fit_log_density(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares F1 = a + b * log10(density) over the measured sizes (None with < 2 densities)."""
    xs = [math.log10(d) for d, _ in points]
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(f for _, f in points) / len(points)
    b = sum((x - mx) * (f - my) for x, (_, f) in zip(xs, points, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - b * mx, b


def projection() -> str:
    """Each class's F1 at p >= 0.5 projected to the nation's density (200M registrations).

    Method: F1 against log10(birthday density relative to the nation) is
    fitted by least squares through the measured sizes of one variant and
    scorer and read at density 1.  Stated as a projection: it assumes the
    decline stays log-linear beyond the largest measured density.
    """
    runs = json.loads(RESULTS.read_text())["runs"]
    lines = []
    for variant in sorted({r["variant"] for r in runs}):
        rs = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["registrations"])
        if len(rs) >= 2:
            densities = sorted({round(r["density_vs_nation"], 3) for r in rs})
            lines.append(
                f"* `{variant}` rests on {len(rs)} measured sizes ("
                + ", ".join(f"{r['registrations']:,} at density {r['density_vs_nation']:.3f}" for r in rs)
                + f"): {len(densities)} distinct densities."
            )
    lines += [
        "",
        "| variant | class | scorer | measured F1 (density) | F1 per x10 density | projected F1 at 200M (density 1) |",
        "|---|---|---|---|---:|---:|",
    ]
    for variant in sorted({r["variant"] for r in runs}):
        rs = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["density_vs_nation"])
        if len(rs) < 2:  # one density (e.g. an alternative process at one size): nothing to project
            continue
        for c in (*GRANULARITY_CLASSES, "all"):
            for scorer in ("voterolls", "oracle"):
                pts = [(r["density_vs_nation"], r["scores"][scorer]["f1_at_0.5"][c]["f1"]) for r in rs]
                pts = [(d, f) for d, f in pts if f is not None]
                fit = _fit_log_density(pts)
                measured = ", ".join(f"{f:.3f} ({d:.3f})" for d, f in pts)
                slope = "-" if fit is None else f"{fit[1]:+.3f}"
                proj = "-" if fit is None else f"{min(1.0, max(0.0, fit[0])):.3f}"
                lines.append(f"| {variant} | {c} | {scorer} | {measured} | {slope} | {proj} |")
    return "\n".join(lines) + "\n"


def _replace_block(path: Path, mark: str, text: str) -> None:
    doc = path.read_text()
    begin, end = mark.format("begin"), mark.format("end")
    if begin in doc:
        head, rest = doc.split(begin, 1)
        tail = rest.split(end, 1)[1]
        doc = head + begin + "\n" + text + end + tail
    else:
        doc += f"\n{begin}\n{text}{end}\n"
    path.write_text(doc)


def write_docs(text: str) -> None:
    _replace_block(SCALE_DOCS, PROJECTION_MARK, projection())
    _replace_block(DOCS, MARK, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, nargs="*", default=[])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--years", type=int, default=None, help="birth-year window (default: national density)")
    ap.add_argument("--variants", nargs="*", default=["public", "sealed_dob"])
    ap.add_argument("--mechanism", default=None, help="an alternative data-generating process "
                    "(bench/validate_estimates.py MECHANISMS), e.g. movers")
    ap.add_argument("--chunk-people", type=int, default=None, help="generate a larger nation in chunks "
                    "of this many people (bench/nation_chunks.py), e.g. 2500000 for 10M on 24 GiB")
    ap.add_argument("--memory-limit", default=None, help="DuckDB memory limit of this process's "
                    "connection and of the link engine, e.g. 6GB (both spill beyond it)")
    ap.add_argument("--scorers", nargs="*", choices=SCORERS, default=list(SCORERS), help="scorers to "
                    "evaluate (default: all; the projection reads voterolls and oracle)")
    ap.add_argument("--no-f1-at-0.9", dest="no_f1_at_0_9", action="store_true",
                    help="score at p >= 0.5 only (one evaluate pass per scorer instead of two)")
    ap.add_argument("--keep", type=Path, default=None, help="copy each run's synthetic registrations, "
                    "truth, pairs and model under this directory")
    ap.add_argument("--rescore", type=Path, nargs="*", default=[], help="kept run directories (--keep) whose "
                    "rows' recalibrated scores to recompute with the current calibration code, without re-linking")
    ap.add_argument("--full-link", action="store_true", help="also time the link as `voterolls link` "
                    "runs it (blocking analysis, recalibration, default minimum probability; not scored)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON the rows are saved to (default "
                    "bench/results/link_ceiling.json, which --table and --write-docs read; another file "
                    "for a run that measures time and memory only)")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    if a.rescore:
        rescore_rows(a.rescore)
    for p in a.people:
        for v in a.variants:
            row = run_size(p, a.seed, a.years, v, a.mechanism, a.chunk_people, a.memory_limit, tuple(a.scorers),
                           () if a.no_f1_at_0_9 else (0.9,), a.keep, a.full_link)
            _save([row], a.results)
            print(json.dumps({k: row[k] for k in ("people", "variant", "registrations", "link_seconds",
                                                  "link_cpu_seconds", "link_rss_mib", "process_peak_rss_mib",
                                                  "load_before", "load_after", "full_link")}), flush=True)
    text = tables()
    print(text)
    print(projection())
    if a.write_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
