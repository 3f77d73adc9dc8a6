"""``estimate(workspace)``: every estimate with its interval and the coverage it rests on.

Used by ``voterolls estimate``, the report and the lists stage.  The result
is JSON-ready and is written to ``W/estimates/estimates.json``.  It holds
counts and rates only, never a name, a date of birth or an id.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from voterolls.errors import UserError
from voterolls.stats import coverage as cov
from voterolls.stats import estimators as es

WORDING = (
    "A match on name and date of birth is not evidence that anyone voted twice or registered "
    "improperly: different people share names and birthdays (the birthday problem), and vote "
    "records contain clerical errors."
)


def per_pair_estimates(
    tab: pa.Table, kappa: tuple[float, ...], cross: bool, cls_pairs: tuple[str, ...] | None = None
) -> dict:
    """Rule-net estimate per state pair (cross) or per state (in-state), for heterogeneity."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in tab.to_pylist():
        if (r["state_l"] != r["state_r"]) == cross:
            groups.setdefault((r["state_l"], r["state_r"]), []).append(r)
    out: dict = {}
    for (a, b), rows in groups.items():
        rn = es.rule_net(rows, cross=cross, cls_pairs=cls_pairs, kappa=kappa)
        out[(a, b) if cross else a] = max((rn["full"] + rn["year"]).estimate, 0.0)
    return out


def estimate_connection(
    con: duckdb.DuckDBPyConnection,
    *,
    pairs: pa.Table | str | None = None,
    error_rate: float | None = None,
    election: str | None = None,
    tracker: Any = None,
) -> dict:
    """Estimates from any connection with ``registrations`` / ``vote_history`` views."""
    from voterolls.stats.sealed import install_sealed_view

    # a sealed-only workspace: value-free surrogates and the token-frequency DOB model
    token_model = install_sealed_view(con)
    res = es.estimate_tables(
        con, pairs=pairs, error_rate=error_rate, election=election, model=token_model
    )
    coverage = cov.summarise(con, res["vote_history_states"], tracker=tracker)
    weights, _ = cov.registrant_weights()
    import pyarrow as _pa

    tab = _pa.Table.from_pylist(res["coincidence_table"])
    kx = (
        res["year_model_calibration"]["cross_state"]["kappa"],
        res["year_model_calibration"]["cross_state"]["rel_se"],
    )
    kw = (
        res["year_model_calibration"]["in_state"]["kappa"],
        res["year_model_calibration"]["in_state"]["rel_se"],
    )
    # a state without any DOB cannot contribute a rule match or a comparable pair:
    # for these figures it counts as not covered
    covered = sorted(coverage["states_with_full_dob"] + coverage["states_with_birth_year_only"])
    rests = {
        "states": covered,
        "registrant_share": cov.share_of(covered, weights),
        "states_missing": coverage["states_missing"],
        "states_without_dob": coverage["states_without_dob"],
        "states_birth_year_only": coverage["states_with_birth_year_only"],
    }
    for scope, cross, kap in (("cross_state", True, kx), ("in_state", False, kw)):
        entry = res["duplicate_registrations"][scope]
        head = entry[entry["headline"]]
        se = head["se"]
        if cross:
            nat = cov.extrapolate_cross(
                head["estimate"], se * se, per_pair_estimates(tab, kap, True), covered, weights
            )
        else:
            nat = cov.extrapolate_in_state(
                head["estimate"], se * se, per_pair_estimates(tab, kap, False), covered, weights
            )
        entry["rests_on"] = rests
        entry["national"] = nat
    dv = res["double_votes"]
    vs = res["vote_history_states"]
    dv["rests_on"] = {
        "states": vs,
        "registrant_share": coverage["registrant_share_vote_history"],
        "states_without_public_vote_history": coverage["vote_history_states_missing"],
        "states_missing": coverage["states_missing"],
    }
    if dv.get("headline"):
        h = dv["headline"]
        per = per_pair_estimates(tab, kx, True, cls_pairs=("11",))
        per = {k: v for k, v in per.items() if k[0] in vs and k[1] in vs}
        vs_dob = [s for s in vs if s in covered]
        dv["rests_on"]["states"] = vs_dob
        dv["rests_on"]["registrant_share"] = cov.share_of(vs_dob, weights)
        dv["rests_on"]["states_without_dob"] = coverage["states_without_dob"]
        dv["national"] = cov.extrapolate_cross(h["estimate"], h["se"] ** 2, per, vs_dob, weights)
    res["coverage"] = coverage
    res["wording"] = WORDING
    res["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return res


def estimate(
    workspace: str | Path,
    *,
    error_rate: float | None = None,
    election: str | None = None,
    write: bool = True,
) -> dict:
    """Estimates for an ingested (and ideally linked) workspace; writes ``W/estimates/estimates.json``.

    ``error_rate``: the vote-record error as an override; ``None`` learns it from
    the data (:mod:`voterolls.stats.vote_error`), falling back to the default.
    """
    w = Path(workspace)
    if not w.exists():
        raise UserError("workspace not found", file=w)
    if error_rate is not None and not 0.0 <= error_rate < 0.5:
        raise UserError("the vote-record error rate must be in [0, 0.5)", field="--error-rate")
    if election is not None:
        try:
            election = date.fromisoformat(election).isoformat()
        except ValueError:
            raise UserError("the election must be a date YYYY-MM-DD", field="--election") from None
    from voterolls.store import Workspace

    ws = Workspace(w)
    con = ws.connect()
    pairs_path = ws.paths.link.pairs
    tracker = None
    tracker_path = ws.paths.tracker
    if tracker_path.exists():
        from voterolls.requests import Tracker

        tracker = Tracker.load(tracker_path)
    res = estimate_connection(
        con,
        pairs=str(pairs_path) if pairs_path.exists() else None,
        error_rate=error_rate,
        election=election,
        tracker=tracker,
    )
    res["workspace"] = str(w)
    res["linkage_used"] = pairs_path.exists()
    if write and res.get("linkage_calibration"):
        # beside link/link_report.json: the calibration of the linkage probabilities,
        # checked without truth on the exact stratum (voterolls.stats.calibration)
        cal = ws.paths.link.calibration
        tmp = cal.with_name(cal.name + ".partial")
        tmp.write_text(json.dumps(res["linkage_calibration"], indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, cal)
        add_to_link_report(ws.paths.link.report, res["linkage_calibration"])
    if write:
        out = ws.paths.estimates
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, out)
    return res


def add_to_link_report(path: Path, calibration: dict) -> None:
    """Put the calibration check into ``link_report.json`` as its ``calibration`` block.

    The linkage stage writes that report; the check needs the estimate stage's
    birthday model, so it is added afterwards, keeping every other key, through a
    temporary file and a rename (a reader never sees half a report).  A re-run of
    ``link`` rewrites the report without the block (and removes calibration.json),
    so a stale check is never shown beside new probabilities.
    """
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no (readable) link report: calibration.json alone carries the check
    if not isinstance(rep, dict):
        return
    rep["calibration"] = calibration
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
