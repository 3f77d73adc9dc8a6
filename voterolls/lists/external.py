"""Match an external list a state supplies (death records, ...) against its registrations.

A state must check its list against records it does not publish: death
records from its vital-statistics office, or another list its law names.
This module reads such a list through the same declarative mapping engine as
voter files (:func:`voterolls.formats.scan`: a shipped layout name or a user
mapping TOML), cleans it with the same SQL ingest uses
(:func:`voterolls.normalize.clean_dates`, :func:`~voterolls.normalize.normalize_registrations`)
and scores it against the state's registrations with the **trained linkage
model** (``W/link/model.json``) in Splink ``link_only`` mode.  There is no
second model: preparation (:func:`voterolls.link.prepare.prepare_input`),
the engine (:func:`voterolls.link.engines.make_engine`) and the probability
arithmetic (:mod:`voterolls.link.predict`) are the linkage package's own.

What differs from the national run, and why:

* **The prior.**  The model's m and u (how often matches / strangers agree)
  are properties of how records are written and are reused unchanged.  The
  prior - the probability that a random (registration, external record) pair
  is one person - is a property of the two lists (a death list of 300 against
  a state of 3,000 has a far higher base rate than two random registrations
  nationally), so it is re-estimated for this pair of lists, label-free, by the
  same fixed point the linkage uses (:func:`voterolls.link.prior_fixed_point`)
  over the pairs where both sides carry a full DOB, where the model is sharp.
  With too few such pairs the model's own prior is kept.  ``summary.json``
  says which.
* **The action.**  A death match is not residence-based: it never recommends
  a confirmation notice and is not held in the NVRA quiet period (removal
  for death is outside 8(c)(2)(A)'s bar, 8(c)(2)(B)(i)).  At or above the
  review threshold the row says "review": the death must be confirmed from
  the official record before anything happens.  Nothing says "remove".

The external list is never stored in the workspace; only the list file
(this state's own registrations, the external record's id and line number,
the probability and evidence) is written to ``out``.  Logs carry counts only.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from voterolls.errors import UserError, require_file
from voterolls.link.prepare import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from voterolls.link.splink_adapter import model_prior
from voterolls.lists.actions import ActionPolicy
from voterolls.lists.build import OWN_COLUMNS, ListSummary, summarise_list, write_list
from voterolls.lists.evidence import evidence_sql, levels_from_model
from voterolls.log import get_logger
from voterolls.sql import literal

log = get_logger(__name__)

LIST_NAME = "external_matches"

#: Pairs below this probability are not listed (the same floor as pairs.parquet).
MIN_PROBABILITY = 0.001
#: Re-estimate the prior only when the both-full-DOB pairs hold at least this
#: many expected matches; otherwise keep the model's prior.
MIN_EXPECTED_MATCHES = 5.0
#: Prefix of the synthetic voter id given to external records inside the
#: linkage input (they have no voter id; unique ids must not collide).
EXTERNAL_ID_PREFIX = "~external~"

#: Columns the linkage reads: the link stage's own list, so the two cannot drift.
_LINK_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


def read_external(
    con: duckdb.DuckDBPyConnection, paths: Sequence[Path], state: str, format: str | None, target: str
) -> dict[str, Any]:
    """Read, clean and normalise the external list into table ``target``; return counts.

    ``target`` gets the linkage columns plus ``external_id`` (the list's own
    record id, if its mapping names one as ``state_voter_id``),
    ``external_line`` and ``external_file`` (file name).  Every input row is
    loaded or quarantined (the scan's own reconciliation); the counts say so.
    """
    from voterolls.formats import scan
    from voterolls.normalize import clean_dates, normalize_registrations

    plist = [Path(p) for p in paths]
    for p in plist:
        require_file(p, "external list file")
    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    s = scan(con, plist, state=state, format=format)
    try:
        rel = clean_dates(s.registrations)
        rel = normalize_registrations(con, rel)
        rel.create_view("_vr_ext_norm", replace=True)
        names = {f.sha256: Path(f.path).name for f in s.files}
        con.register("_vr_ext_files", _files_table(names))
        cols = set(rel.columns)
        null_type = {"dob": "DATE", "birth_year": "SMALLINT"}
        sel = [
            f'n."{c}"' if c in cols else f"NULL::{null_type.get(c, 'VARCHAR')} AS {c}"
            for c in _LINK_COLUMNS
            if c != "state_voter_id"
        ]
        protected = "coalesce(TRY_CAST(n._protected AS BOOLEAN), false)" if "_protected" in cols else "false"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {target} AS
            SELECT {", ".join(sel)},
                   nullif(trim(CAST(n.state_voter_id AS VARCHAR)), '') AS external_id,
                   CAST(n.source_line AS BIGINT) AS external_line,
                   f.file_name AS external_file,
                   '{EXTERNAL_ID_PREFIX}' || CAST(row_number() OVER () AS VARCHAR) AS state_voter_id
            FROM _vr_ext_norm n LEFT JOIN _vr_ext_files f ON f.sha256 = n.source_file
            WHERE NOT {protected}"""
        )
    finally:
        report = s.finish()  # idempotent; also drops the reader's temporary copies on failure
        con.unregister("_vr_ext_files")
    loaded = int(con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0])
    rows_read = sum(int(f.rows_read) for f in report.files)
    quarantined = int(report.quarantine.num_rows)
    if loaded == 0:
        raise UserError("the external list has no readable record", file=plist[0])
    return {
        "format": s.format,
        "files": [Path(f.path).name for f in report.files],
        "rows_read": rows_read,
        "loaded": loaded,
        "quarantined": quarantined,
        "other_excluded": rows_read - loaded - quarantined,
    }


def _files_table(names: dict[str, str]):
    import pyarrow as pa

    return pa.table({"sha256": list(names), "file_name": list(names.values())})


def _settings_for(model: dict[str, Any], dialect: str, source: str) -> dict[str, Any]:
    """The saved model as Splink settings for this engine, switched to ``link_only``."""
    import json

    from voterolls.link.settings import settings_creator, transfer_parameters

    if model.get("sql_dialect") == dialect:
        settings = json.loads(json.dumps(model))
    else:
        settings = transfer_parameters(model, settings_creator().create_settings_dict(dialect), source=source)
    settings["link_type"] = "link_only"
    return settings


def score_against_registrations(
    con: duckdb.DuckDBPyConnection,
    registrations: str,
    external: str,
    model_path: Path,
    out: Path,
    *,
    engine: str = "duckdb",
    min_probability: float = MIN_PROBABILITY,
) -> dict[str, Any]:
    """Score every candidate (registration, external record) pair with the saved model.

    ``registrations`` and ``external`` are relations in ``con`` with the
    linkage columns (``state_voter_id`` unique in each; the external ids carry
    :data:`EXTERNAL_ID_PREFIX`).  Writes Parquet ``out`` with
    ``this_id, external_key, match_probability, match_weight,
    this_dob_granularity, other_dob_granularity`` and one ``gamma_<comparison>``
    per comparison.  Returns the prior used and counts.

    This is the adapter the linkage package does not (yet) expose as one call:
    "score two tables with a saved model".
    """
    from splink import Linker

    from voterolls.link import log2_odds, prior_fixed_point
    from voterolls.link.blocking import DEFAULT_BLOCK_CAP
    from voterolls.link.comparisons import COMPARISON_NAMES
    from voterolls.link.engines import make_engine
    from voterolls.link.predict import probability_expr, weight_expr
    from voterolls.link.prepare import prepare_input
    from voterolls.link.settings import load_model

    model = load_model(model_path)
    cols = ", ".join(f'"{c}"' for c in _LINK_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _vr_ext_union AS SELECT {cols} FROM {registrations} "
        f"UNION ALL SELECT {cols} FROM {external}"
    )
    # One preparation over both lists, so capped blocking keys are refined
    # identically on both sides (a key refined on one side only never joins).
    prepare_input(con, "_vr_ext_union", "_vr_ext_input", block_cap=DEFAULT_BLOCK_CAP)
    work = Path(tempfile.mkdtemp(prefix="vr-external-", dir=out.parent if out.parent.exists() else None))
    try:
        reg_pq, ext_pq = work / "registrations.parquet", work / "external.parquet"
        is_ext = f"starts_with(state_voter_id, '{EXTERNAL_ID_PREFIX}')"
        con.execute(f"COPY (SELECT * FROM _vr_ext_input WHERE NOT {is_ext}) TO {literal(reg_pq)} (FORMAT PARQUET)")
        con.execute(f"COPY (SELECT * FROM _vr_ext_input WHERE {is_ext}) TO {literal(ext_pq)} (FORMAT PARQUET)")
        n_reg, n_reg_full = con.execute(f"SELECT count(*), count(dob) FROM _vr_ext_input WHERE NOT {is_ext}").fetchall()[0]
        n_ext, n_ext_full = con.execute(f"SELECT count(*), count(dob) FROM _vr_ext_input WHERE {is_ext}").fetchall()[0]
        con.execute("DROP TABLE IF EXISTS _vr_ext_input")
        con.execute("DROP TABLE IF EXISTS _vr_ext_union")

        eng = make_engine(engine, work / "engine")
        try:
            sdf_reg = eng.register_input(reg_pq, "vr_registrations")
            sdf_ext = eng.register_input(ext_pq, "vr_external")
            settings = _settings_for(model, eng.SQL_DIALECT, str(model_path))
            linker = Linker([sdf_reg, sdf_ext], settings, log_level=logging.ERROR)
            df = linker.inference.predict(warning_mode="never")
            scoring_prior = model_prior(linker)
            table = df.physical_name
            candidates = int(eng.scalar(f"SELECT count(*) FROM {table}"))
            prior, method = scoring_prior, "model prior (too few full-DOB pairs to re-estimate)"
            if n_reg_full and n_ext_full:
                full_pairs = float(n_reg_full) * float(n_ext_full)
                lam, _it = prior_fixed_point(eng, table, "gamma_dob >= 0", full_pairs, log2_odds(scoring_prior), scoring_prior)
                if lam * full_pairs >= MIN_EXPECTED_MATCHES:
                    # P(both full | match) ~ P(both full): the prior carries over unchanged.
                    prior, method = lam, "re-estimated on pairs with a full DOB on both sides"
            shift = log2_odds(prior) - log2_odds(scoring_prior)
            ext_left = "unique_id_l LIKE '%" + EXTERNAL_ID_PREFIX + "%'"

            def side(col: str, this: bool) -> str:
                a, b = (f"{col}_r", f"{col}_l") if this else (f"{col}_l", f"{col}_r")
                return f"CASE WHEN {ext_left} THEN {a} ELSE {b} END"

            columns = [
                f"{side('state_voter_id', True)} AS this_id",
                f"{side('state_voter_id', False)} AS external_key",
                f"{probability_expr(shift)} AS match_probability",
                f"{weight_expr(shift)} AS match_weight",
                f"{side('dob_granularity', True)} AS this_dob_granularity",
                f"{side('dob_granularity', False)} AS other_dob_granularity",
            ] + [f"gamma_{c}" for c in COMPARISON_NAMES]
            where = f"{weight_expr(shift)} >= {log2_odds(min_probability)!r}" if min_probability > 0 else None
            glob = eng.export(df, work / "scored.parquet", columns=columns, where=where)
            con.execute(f"COPY (SELECT * FROM read_parquet({literal(glob)})) TO {literal(out)} (FORMAT PARQUET)")
        finally:
            eng.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "registrations": int(n_reg),
        "external_records": int(n_ext),
        "candidate_pairs": candidates,
        "model_prior": scoring_prior,
        "prior": prior,
        "prior_method": method,
    }


def match_external(
    con: duckdb.DuckDBPyConnection,
    workspace,
    state: str,
    paths: Sequence[Path],
    format: str | None,
    out: Path,
    policy: ActionPolicy,
) -> ListSummary:
    """Write ``external_matches.{csv,parquet}`` for ``state``; return its summary.

    ``con`` has the workspace's ``registrations`` view (it may hold scratch
    tables: it is in memory).  ``format``: a shipped layout name or a mapping
    TOML (``None``: detect).  Needs ``W/link/model.json`` (run ``voterolls
    link`` first).  One row per (registration, external record) pair scored at
    or above :data:`MIN_PROBABILITY`.
    """
    state = state.upper()
    model_path = workspace.paths.link.model
    if not model_path.is_file():
        raise UserError("no trained linkage model; run `voterolls link` first", file=model_path)
    if not paths:
        raise UserError("no external list file given")
    info = read_external(con, list(paths), state, format, "_vr_external")
    if not state.isalpha() or len(state) != 2:
        raise UserError(f"not a state code: {state!r}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW _vr_state_regs AS SELECT * FROM registrations WHERE state = {literal(state)}")
    scored = out / "_external_scored.parquet"
    try:
        scoring = score_against_registrations(con, "_vr_state_regs", "_vr_external", model_path, scored)
        pcols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(scored)})").fetchall()}
        ev = evidence_sql(levels_from_model(model_path), pcols, prefix="p.")
        own = ", ".join(f"t.{c} AS this_{c}" for c in OWN_COLUMNS)
        action = policy.action_sql("p.match_probability", residence_based=False)
        sql = f"""
            SELECT {own}, p.match_probability, {ev} AS evidence,
                   p.this_dob_granularity, p.other_dob_granularity,
                   e.external_id, e.external_line, e.external_file,
                   {action} AS recommended_action
            FROM read_parquet({literal(scored)}) p
            JOIN registrations t ON t.state = $state AND t.state_voter_id = p.this_id
            JOIN _vr_external e ON e.state_voter_id = p.external_key
        """
        files = write_list(con, sql, {"state": state}, out, LIST_NAME, policy)
        summary = summarise_list(con, LIST_NAME, policy, files, None)
    finally:
        scored.unlink(missing_ok=True)
        con.execute("DROP VIEW IF EXISTS _vr_state_regs")
    summary.source = {**info, **scoring}
    log.info(
        "external list for %s: read=%s loaded=%s quarantined=%s rows=%s prior_method=%s",
        state, info["rows_read"], info["loaded"], info["quarantined"], summary.rows, scoring["prior_method"],
    )
    return summary
