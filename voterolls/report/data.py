"""Gather the report's aggregates from a workspace into a :class:`ReportData`.

This is the one module that reads inputs; rendering never touches the
workspace.  Each section is gathered on its own and degrades to
``Section(missing=<why>)`` when its input does not exist yet (linkage not
run, no estimates, no request tracker), so a report can be made at any stage
of the pipeline and says plainly what it cannot show.

Everything is computed in DuckDB SQL as grouped aggregates: no row values
leave the database, only counts and shares per state / field / bin, and
every count passes through small-cell suppression (``suppress``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
from pydantic import ValidationError

from voterolls.errors import UserError
from voterolls.log import get_logger
from voterolls.privacy import WITHHELD, is_small, merge_bins, merge_small, protect
from voterolls.report.model import (
    Availability,
    CalibrationBand,
    CodeCount,
    Count,
    Coverage,
    Estimate,
    Estimates,
    FieldAvailability,
    FieldCell,
    Freshness,
    Headline,
    HistogramSeries,
    LinkCalibration,
    MatchDistribution,
    Protections,
    Purge,
    ReportData,
    Section,
    StateCoverage,
    Uniformity,
    UniformityRow,
)
from voterolls.report.suppress import (
    SMALL_CELL,
    suppress,
    suppress_one,
    suppression_source,
)
from voterolls.schema import JURISDICTIONS, REGISTRATION_SCHEMA, VOCABULARIES, VOTE_HISTORY_SCHEMA
from voterolls.sql import literal
from voterolls.stats.result import CalibrationBand as StatsCalibrationBand
from voterolls.stats.result import (
    CalibrationCheck,
    CalibrationTotal,
    CrosscheckPurge,
    DoubleVotes,
    DuplicateScope,
    EstimatesResult,
    Figure,
    National,
    RestsOn,
    load_estimates,
)
from voterolls.stats.result import Coverage as StatsCoverage
from voterolls.store import WorkspacePaths

log = get_logger(__name__)

# --------------------------------------------------------------------------
# Policy: what each state's law allows (voterolls.policy, or its vendored CSV)
# --------------------------------------------------------------------------

_POLICY_KEYS = (
    "dob_disclosure",
    "party_on_file",
    "vote_history_public",
    "phone_public",
    "email_public",
    "ssn4_public",
    "dl_public",
    "response_to_2017_commission",
)


def _norm(value: Any) -> str:
    """Policy values as lower-case words: yes / no / full / year / none / unknown."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    value = getattr(value, "value", value)  # enums
    text = str(value).strip().lower()
    return {"true": "yes", "false": "no", "": "unknown"}.get(text, text)


def load_policies() -> tuple[dict[str, dict[str, str]], str]:
    """Per state: the policy values as the draft writes them (``unknown`` kept), and their source."""
    from voterolls.policy import get_policy

    out: dict[str, dict[str, str]] = {}
    for st in JURISDICTIONS:
        p = get_policy(st)
        out[st] = {k: _norm(p.raw[k] if k in p.raw else getattr(p, k, None)) for k in _POLICY_KEYS}
        out[st].update({f"{k}_conf": str(p.confidence[k]) for k in _POLICY_KEYS if k in p.confidence})
    return out, "voterolls.policy (sourced draft, not legal advice; unknown = most restrictive)"


# --------------------------------------------------------------------------
# Workspace access
# --------------------------------------------------------------------------


def open_workspace(workspace: Path) -> tuple[duckdb.DuckDBPyConnection | None, str | None]:
    """A connection with the ``registrations`` / ``vote_history`` views, or why not."""
    from voterolls.store import Workspace

    try:
        return Workspace(workspace, create=False).connect(), None
    except Exception as exc:
        return None, f"the workspace could not be opened ({type(exc).__name__}: {exc})"


def _has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    try:
        con.execute(f"SELECT * FROM {name} LIMIT 0")
        return True
    except duckdb.Error:
        return False


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> set[str]:
    try:
        return {c[0] for c in con.execute(f"SELECT * FROM {name} LIMIT 0").description}
    except duckdb.Error:
        return set()


# --------------------------------------------------------------------------
# Per-field definitions shared by the uniformity and availability sections
# --------------------------------------------------------------------------

_TODAY = "current_date"
_NAME_RE = r"[A-Z][A-Z ''\-\.]*"  # '' = a quote inside the SQL literal

#: field -> SQL predicate true when a non-null value is plausible.
PLAUSIBLE: dict[str, str] = {
    "county": "length(trim(county)) > 0",
    "last_name": f"regexp_full_match(last_name, '{_NAME_RE}')",
    "first_name": f"regexp_full_match(first_name, '{_NAME_RE}')",
    "middle_name": f"regexp_full_match(middle_name, '{_NAME_RE}')",
    "name_suffix": "name_suffix IN ('JR','SR','II','III','IV','V','VI','VII','VIII','IX','X')",
    "dob": f"dob BETWEEN DATE '1900-01-01' AND {_TODAY} - INTERVAL 16 YEAR",
    "birth_year": f"birth_year BETWEEN 1900 AND year({_TODAY}) - 16",
    "dob_granularity": "dob_granularity IN ('full','year','none')",
    "gender": "gender IN ('M','F','X','U')",
    "party": "party IN (" + ",".join(f"'{v}'" for v in VOCABULARIES["party"]) + ")",
    "status": "status IN (" + ",".join(f"'{v}'" for v in VOCABULARIES["status"]) + ")",
    "status_reason": "length(trim(status_reason)) > 0",
    "race": "race IN (" + ",".join(f"'{v}'" for v in VOCABULARIES["race"]) + ")",
    "uocava": "uocava IN (" + ",".join(f"'{v}'" for v in VOCABULARIES["uocava"]) + ")",
    "registration_date": f"registration_date BETWEEN DATE '1900-01-01' AND {_TODAY}",
    "residence_address": "length(trim(residence_address)) > 2",
    "residence_city": "length(trim(residence_city)) > 1",
    "residence_zip5": "regexp_full_match(residence_zip5, '[0-9]{5}') AND residence_zip5 <> '00000'",
    "phone": "regexp_full_match(phone, '[2-9][0-9]{9}')",
    "email": "regexp_full_match(email, '[^@ ]+@[^@ ]+\\.[^@ ]+')",
    "ssn4_token": "length(ssn4_token) >= 16",
    "dl_token": "length(dl_token) >= 16",
    "dob_token": "length(dob_token) >= 16",
    "name_clk": "length(name_clk) >= 16",
}

#: mapped field -> the state's original code beside it.
CODE_PAIRS = {
    "gender": "gender_code",
    "party": "party_code",
    "status": "status_code",
    "race": "race_code",
}

#: Rows of the availability heat map: label -> (column(s), policy key or None).
#: ``None`` column = no place in the national schema (requested in 2017, not
#: collected); policy key None = no restriction recorded in the policy table.
AVAILABILITY_ROWS: list[tuple[str, tuple[str, ...], str | None]] = [
    ("Name", ("last_name", "first_name"), None),
    ("Residence address", ("residence_address",), None),
    ("Full date of birth", ("dob",), "dob_full"),
    ("Birth year", ("birth_year",), "dob_year"),
    ("Gender", ("gender",), None),
    ("Race / ethnicity", ("race",), None),
    ("Party", ("party",), "party_on_file"),
    ("Status", ("status",), None),
    ("Status / cancellation reason", ("status_reason",), None),
    ("Vote history", ("__vote_history__",), "vote_history_public"),
    ("Military / overseas", ("uocava",), None),
    ("Phone", ("phone",), "phone_public"),
    ("Email", ("email",), "email_public"),
    ("SSN last four", ("ssn4_token",), "ssn4_public"),
    ("Driver's licence", ("dl_token",), "dl_public"),
    ("Felony convictions", (), None),
]

SEALED_COLUMNS = ("ssn4_token", "dl_token", "dob_token")

#: A field counts as "in the data" for a state when at least this share of
#: its rows carries a value.
SUPPLIED_SHARE = 0.01


def _non_null_by_state(
    con: duckdb.DuckDBPyConnection, cols: list[str]
) -> dict[str, dict[str, Any]]:
    """One grouped pass: rows, non-null and implausible counts per state and field."""
    parts = ["state", "count(*) AS __rows"]
    for c in cols:
        parts.append(f'count("{c}") AS "nn__{c}"')
        if c in PLAUSIBLE:
            parts.append(
                f'count_if("{c}" IS NOT NULL AND NOT coalesce({PLAUSIBLE[c]}, false)) AS "bad__{c}"'
            )
        if c in CODE_PAIRS and CODE_PAIRS[c] in cols:
            code = CODE_PAIRS[c]
            vocab = ",".join(f"'{v}'" for v in VOCABULARIES[c])
            parts.append(
                f'count_if("{code}" IS NOT NULL AND ("{c}" IS NULL OR "{c}" NOT IN ({vocab}))) AS "um__{c}"'
            )
    sql = f"SELECT {', '.join(parts)} FROM registrations GROUP BY state ORDER BY state"
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def _unmapped_codes(
    con: duckdb.DuckDBPyConnection, cols: set[str]
) -> dict[tuple[str, str], list[CodeCount]]:
    """The most frequent original codes that did not map, per state and field.

    A code seen on fewer than SMALL_CELL rows is never printed (it could be a
    stray value from a mis-parsed column), only counted among "other codes".
    """
    out: dict[tuple[str, str], list[CodeCount]] = {}
    for field, code in CODE_PAIRS.items():
        if field not in cols or code not in cols:
            continue
        vocab = ",".join(f"'{v}'" for v in VOCABULARIES[field])
        rows = con.execute(
            f"""
            SELECT state, "{code}" AS code, count(*) AS n FROM registrations
            WHERE "{code}" IS NOT NULL AND ("{field}" IS NULL OR "{field}" NOT IN ({vocab}))
            GROUP BY state, "{code}"
            QUALIFY row_number() OVER (PARTITION BY state ORDER BY n DESC, code) <= 8
            """
        ).fetchall()
        shown_counts = suppress([int(r[2]) for r in rows])
        for (state, value, _), shown in zip(rows, shown_counts, strict=True):
            if shown is None or len(str(value)) > 24:
                continue
            out.setdefault((state, field), []).append(CodeCount(code=str(value), count=shown))
    return out


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def _tracker_coverage(
    workspace: Path, con: duckdb.DuckDBPyConnection | None
) -> tuple[dict[str, Any] | None, str]:
    """``voterolls.requests.coverage`` for this workspace, and where its status came from."""
    from voterolls import requests as rq

    path = WorkspacePaths(workspace).tracker
    try:
        tracker = rq.Tracker.load(path)
        cov = rq.coverage(con, tracker=tracker)
    except Exception as exc:
        log.warning("request tracker could not be read (%s)", type(exc).__name__)
        return None, f"the request tracker could not be read ({type(exc).__name__})"
    if path.exists():
        source = "request tracker of this workspace (requests/tracker.json)"
    else:
        source = (
            "no tracker in this workspace: the shipped example, each state's response to the 2017 "
            "commission as of 6 July 2017 (AP/USA Today)"
        )
    return cov, source


def gather_coverage(
    workspace: Path,
    con: duckdb.DuckDBPyConnection | None,
    policies: dict[str, dict[str, str]],
    loaded: dict[str, int],
    snaps: dict[str, Any] | None = None,
) -> Section[Coverage]:
    cov, source = _tracker_coverage(workspace, con if loaded else None)
    by_state: dict[str, dict[str, Any]] = {}
    national: dict[str, Any] = {}
    note = None
    if cov is not None:
        by_state = {r["state"]: r for r in cov["states"]}
        national = cov.get("national", {})
        note = cov.get("registrants_note")
    else:  # no tracker module: the 2017 snapshot column of the policy table
        by_state = {
            st: {"status": p.get("response_to_2017_commission")} for st, p in policies.items()
        }
        source = f"{source}; status from the policy table's 2017 response column"
    published = _protected_loaded(loaded)
    shown = {st: None for st in JURISDICTIONS} | published
    total_w = sum(int(r.get("registrants") or 0) for r in by_state.values())
    states: list[StateCoverage] = []
    for st in JURISDICTIONS:
        t = by_state.get(st, {})
        status = _norm(t.get("status"))
        if status not in ("complied", "partial", "refused", "pending"):
            status = "unknown"
        w = t.get("registrants")
        states.append(
            StateCoverage(
                state=st,
                status=status,  # type: ignore[arg-type]
                registrations_loaded=shown[st],
                has_data=bool(loaded.get(st)),
                registrants=int(w) if w else None,
                registrant_share=(int(w) / total_w) if w and total_w else None,
                allowed_field_share=t.get("allowed_share"),
                delivered_field_share=t.get("delivered_share") if loaded.get(st) else None,
                date_responded=t.get("date_responded"),
                snapshot_date=_date_of((snaps or {}).get(st, {}).get("created_at")),
                note=t.get("notes") or None,
            )
        )
    with_data = [s for s in states if s.has_data]
    share_with_data = national.get("registrants_share_delivered")
    if share_with_data is None and total_w:
        share_with_data = sum(s.registrants or 0 for s in with_data) / total_w
    return Section[Coverage](
        data=Coverage(
            states=states,
            status_source=source,
            registrations_loaded=published[""] if loaded else None,
            states_with_data=len(with_data),
            share_registrants_with_data=share_with_data if total_w else None,
            share_registrants_responding=national.get("registrants_share_responding"),
            allowed_field_share=national.get("allowed_field_share"),
            delivered_field_share=national.get("delivered_field_share"),
            registrants_note=note,
        )
    )


def _date_of(v: Any) -> str | None:
    if v is None:
        return None
    return v.date().isoformat() if hasattr(v, "date") else str(v)[:10]


def _law(policy: dict[str, str], key: str | None) -> tuple[str, str]:
    """(allowed | withheld | unknown | not_applicable, short label) for a policy key.

    The label carries the draft's confidence in the value, because the policy
    table is a sourced draft and a reader must see how sure each cell is.
    """
    law, label = _law_value(policy, key)
    pkey = "dob_disclosure" if key in ("dob_full", "dob_year") else key
    conf = policy.get(f"{pkey}_conf") if pkey else None
    if conf and conf != "n/a":
        label += f" (confidence {conf})"
    return law, label


def _law_value(policy: dict[str, str], key: str | None) -> tuple[str, str]:
    if key is None:
        return "allowed", "no restriction recorded"
    if key in ("dob_full", "dob_year"):
        d = policy.get("dob_disclosure", "unknown")
        if d == "unknown":
            return "unknown", "DOB disclosure unknown"
        if key == "dob_full":
            return (
                ("allowed", "full DOB public")
                if d == "full"
                else ("withheld", f"DOB disclosure: {d}")
            )
        return (
            ("allowed", f"DOB disclosure: {d}")
            if d in ("full", "year")
            else ("withheld", "no DOB disclosed")
        )
    v = policy.get(key, "unknown")
    if key == "party_on_file" and v == "no":
        return "not_applicable", "no party registration"
    if v == "yes":
        return "allowed", f"{key.replace('_', ' ')}: yes"
    if v == "no":
        return "withheld", f"{key.replace('_', ' ')}: no"
    return "unknown", f"{key.replace('_', ' ')}: unknown"


def gather_fields(
    con: duckdb.DuckDBPyConnection | None,
    policies: dict[str, dict[str, str]],
    policy_source: str,
    stats: dict[str, dict[str, Any]],
    history: dict[str, int],
) -> Section[FieldAvailability]:
    cells: list[FieldCell] = []
    for label, cols, key in AVAILABILITY_ROWS:
        for st in JURISDICTIONS:
            pol = policies.get(st, {})
            law, law_label = _law(pol, key)
            s = stats.get(st)
            share: float | None = None
            if s is not None and cols:
                n = s["__rows"] or 0
                if cols == ("__vote_history__",):
                    share = 1.0 if history.get(st, 0) > 0 else 0.0
                else:
                    have = [s.get(f"nn__{c}") for c in cols if f"nn__{c}" in s]
                    share = (min(have) / n) if have and n else 0.0
            avail: Availability
            if not cols:
                avail = "not_collected"
                law_label = "not requested from states by this system"
            elif s is None:
                avail = {
                    "allowed": "allowed_no_data",
                    "withheld": "withheld",
                    "unknown": "unknown_law",
                    "not_applicable": "not_applicable",
                }[law]  # type: ignore[assignment]
            else:
                supplied = share is not None and share >= SUPPLIED_SHARE
                if cols[0] in SEALED_COLUMNS and supplied:
                    avail = "sealed"
                elif supplied and law in ("withheld", "unknown") and cols[0] not in SEALED_COLUMNS:
                    avail = "violation"
                elif supplied:
                    avail = "supplied"
                elif law == "allowed":
                    avail = "allowed_missing"
                else:
                    avail = {
                        "withheld": "withheld",
                        "unknown": "unknown_law",
                        "not_applicable": "not_applicable",
                    }[law]  # type: ignore[assignment]
            cells.append(
                FieldCell(
                    state=st, field=label, availability=avail, non_null_share=share, law=law_label
                )
            )
    return Section[FieldAvailability](
        data=FieldAvailability(
            fields=[r[0] for r in AVAILABILITY_ROWS],
            states=list(JURISDICTIONS),
            cells=cells,
            policy_source=policy_source,
        )
    )


def _protected_loaded(loaded: dict[str, int]) -> dict[str, Count]:
    """Per-state registration counts as published, and the national total (key "").

    A state with 1..9 registrations reads "<10"; because the national total
    is published beside the states, the total is withheld when it would give
    that state away (``voterolls.privacy.protect``; no other state is hidden).
    Every section prints these same numbers.
    """
    states = sorted(loaded)
    out = protect({s: int(loaded[s]) for s in states}, {"": states})
    return dict(out.cells) | {"": out.figures[""]}


def gather_uniformity(
    con: duckdb.DuckDBPyConnection,
    stats: dict[str, dict[str, Any]],
    cols: list[str],
    published: dict[str, int | None] | None = None,
) -> Section[Uniformity]:
    published = published or {}
    codes = _unmapped_codes(con, set(cols))
    fields = [c for c in cols if c in PLAUSIBLE and c != "dob_granularity"]
    fields = [c for c in PLAUSIBLE if c in fields]  # schema order
    keys = [(st, f) for st in sorted(stats) for f in fields]
    n_of = {st: int(stats[st]["__rows"] or 0) for st in stats}
    nn_of = {(st, f): int(stats[st].get(f"nn__{f}") or 0) for st, f in keys}
    # one suppression call per kind of count, not one per cell
    n_shown = dict(zip(sorted(stats), suppress([n_of[st] for st in sorted(stats)]), strict=True))
    nn_shown = dict(zip(keys, suppress([nn_of[k] for k in keys]), strict=True))
    um_raw = [stats[st].get(f"um__{f}") for st, f in keys]
    um_shown = dict(
        zip(keys, suppress([None if v is None else int(v) for v in um_raw]), strict=True)
    )
    rows: list[UniformityRow] = []
    for st, f in keys:
        n, nn = n_of[st], nn_of[(st, f)]
        bad = int(stats[st].get(f"bad__{f}") or 0)
        rows.append(
            UniformityRow(
                state=st,
                field=f,
                rows=published.get(st, n_shown[st]),
                # a share over fewer than SMALL_CELL rows is itself a small cell
                non_null_share=(nn / n) if n_shown[st] else None,
                plausible_share=((nn - bad) / nn) if n_shown[st] and nn_shown[(st, f)] else None,
                unmapped=um_shown[(st, f)] if stats[st].get(f"um__{f}") is not None else None,
                unmapped_codes=codes.get((st, f), []),
            )
        )
    return Section[Uniformity](
        data=Uniformity(
            rows=rows,
            source="computed by the report from the loaded registrations (national-schema checks)",
            fields=fields,
            states=sorted(stats),
        )
    )


#: Columns of the ingest stage's uniformity.parquet this report reads.
_INGEST_UNIFORMITY = {"state", "field", "rows", "non_null", "plausible"}


def gather_uniformity_ingest(
    con: duckdb.DuckDBPyConnection, published: dict[str, int | None] | None = None
) -> Section[Uniformity] | None:
    """The uniformity section from the ingest stage's per-snapshot ``uniformity.parquet``.

    Preferred over the report's own checks: ingest knows each layout's code
    map, what normalisation repaired and what the law withheld.  None when the
    workspace has no such table (older snapshots, or ingest not yet run).
    """
    published = published or {}
    if not _has_relation(con, "uniformity"):
        return None
    cols = _columns(con, "uniformity")
    if not _INGEST_UNIFORMITY <= cols:
        return None
    opt = [
        c
        for c in (
            "dataset",
            "present",
            "policy",
            "repaired",
            "nulled",
            "withheld_values",
            "unmapped",
            "unmapped_codes",
        )
        if c in cols
    ]
    rows = con.execute(
        f"SELECT state, field, rows, non_null, plausible, {', '.join(opt) if opt else 'NULL'} "
        "FROM uniformity ORDER BY state"
    ).fetchall()
    if not rows:
        return None
    names = ["state", "field", "rows", "non_null", "plausible", *(opt or ["_"])]
    recs = [dict(zip(names, r, strict=True)) for r in rows]
    recs = [r for r in recs if r["field"] not in ("state_voter_id", "dob_granularity")]

    def sup(key: str) -> list[int | None]:
        return suppress([None if r.get(key) is None else int(r[key]) for r in recs])

    n_s, nn_s, um_s, rep_s, nul_s, wh_s = (
        sup(k) for k in ("rows", "non_null", "unmapped", "repaired", "nulled", "withheld_values")
    )
    out: list[UniformityRow] = []
    for i, r in enumerate(recs):
        n, nn, pl = int(r["rows"] or 0), int(r["non_null"] or 0), int(r["plausible"] or 0)
        codes: list[CodeCount] = []
        raw_codes = r.get("unmapped_codes")
        if raw_codes:
            try:
                parsed = json.loads(raw_codes) if isinstance(raw_codes, str) else dict(raw_codes)
            except (ValueError, TypeError):
                parsed = {}
            items = [(str(k), int(v)) for k, v in parsed.items() if isinstance(v, int | float)]
            for (code, _), shown in zip(items, suppress([v for _, v in items]), strict=True):
                if shown is not None and len(code) <= 24:
                    codes.append(CodeCount(code=code, count=shown))
        dataset = str(r.get("dataset") or "registrations")
        out.append(
            UniformityRow(
                state=str(r["state"]),
                field=str(r["field"]) if dataset == "registrations" else f"history.{r['field']}",
                dataset=dataset,
                rows=published.get(str(r["state"]), n_s[i])
                if dataset == "registrations"
                else n_s[i],
                non_null_share=(nn / n) if n_s[i] else None,
                plausible_share=(min(pl, nn) / nn) if n_s[i] and nn_s[i] else None,
                unmapped=um_s[i],
                unmapped_codes=codes,
                present=r.get("present"),
                policy=r.get("policy"),
                repaired=rep_s[i],
                nulled=nul_s[i],
                withheld_values=wh_s[i],
            )
        )
    order = {
        f: i
        for i, f in enumerate(
            [*REGISTRATION_SCHEMA.names, *(f"history.{n}" for n in VOTE_HISTORY_SCHEMA.names)]
        )
    }
    out.sort(
        key=lambda r: (
            r.state,
            r.dataset != "registrations",
            order.get(r.field, len(order)),
            r.field,
        )
    )
    fields: list[str] = []
    for r in out:
        if r.dataset == "registrations" and r.field not in fields:
            fields.append(r.field)
    fields.sort(key=lambda f: order.get(f, len(order)))
    return Section[Uniformity](
        data=Uniformity(
            rows=out,
            source="the ingest stage's uniformity report of each current snapshot (uniformity.parquet)",
            fields=fields,
            states=sorted({r.state for r in out}),
        )
    )


def gather_matches(workspace: Path, bins: int = 20) -> Section[MatchDistribution]:
    path = WorkspacePaths(workspace).link.pairs
    if not path.exists():
        return Section[MatchDistribution](
            missing="linkage has not been run on this workspace (no link/pairs.parquet); run `voterolls link`"
        )
    con = duckdb.connect()
    try:
        cols = {  # raises on an unreadable file: the section then says so
            d[0]
            for d in con.execute(
                f"SELECT * FROM read_parquet({literal(path)}) LIMIT 0"
            ).description
        }
        if "match_probability" not in cols:
            return Section[MatchDistribution](
                missing="link/pairs.parquet has no match_probability column"
            )
        has_gran = {"dob_granularity_l", "dob_granularity_r"} <= cols
        combo = (
            "CASE WHEN dob_granularity_l = 'full' AND dob_granularity_r = 'full' THEN 'Both full DOB' "
            "WHEN 'none' IN (dob_granularity_l, dob_granularity_r) OR dob_granularity_l IS NULL "
            "OR dob_granularity_r IS NULL THEN 'At least one without DOB' "
            "WHEN dob_granularity_l = 'full' OR dob_granularity_r = 'full' THEN 'Full DOB vs birth year' "
            "ELSE 'Both birth year only' END"
            if has_gran
            else "'All pairs'"
        )
        same_state = "state_l = state_r" if {"state_l", "state_r"} <= cols else "NULL"
        src = f"read_parquet({literal(path)})"
        hist = con.execute(
            f"""
            SELECT {combo} AS combo,
                   least(greatest(floor(match_probability * {bins}), 0), {bins - 1})::INT AS b,
                   count(*) AS n
            FROM {src} WHERE match_probability IS NOT NULL GROUP BY ALL
            """
        ).fetchall()
        tot = con.execute(
            f"""
            SELECT count(*), count_if(match_probability >= 0.5), count_if(match_probability >= 0.9),
                   sum(match_probability), count_if({same_state}), count_if(NOT ({same_state}))
            FROM {src}
            """
        ).fetchone()
    finally:
        con.close()
    assert tot is not None
    total, half, p09, expected, in_state, cross = tot
    order = [
        "Both full DOB",
        "Full DOB vs birth year",
        "Both birth year only",
        "At least one without DOB",
    ]
    per: dict[str, list[int]] = {}
    for c, b, n in hist:
        per.setdefault(c, [0] * bins)[int(b)] = int(n)
    rep = _link_report(workspace)
    published = publish_histogram(
        per,
        [c for c in order if c in per] if has_gran and len(per) > 1 else [],
        bins,
    )
    if same_state != "NULL":
        cross_n, in_n, split_note = _publish_split(int(cross or 0), int(in_state or 0))
    else:
        cross_n = in_n = split_note = None
    total_shown = published.total
    return Section[MatchDistribution](
        data=MatchDistribution(
            **rep,
            bin_edges=published.edges,
            series=published.series,
            total_pairs=total_shown,
            pairs_at_least_half=published.half,
            pairs_at_least_09=published.p09,
            expected_true_matches=(
                float(expected)
                if expected is not None and isinstance(total_shown, int)
                else None
            ),
            cross_state_pairs=cross_n,
            in_state_pairs=in_n,
            split_note=split_note,
        )
    )


class PublishedHistogram(NamedTuple):
    edges: list[float]
    series: list[HistogramSeries]
    total: Count
    half: Count
    p09: Count


def publish_histogram(per: dict[str, list[int]], labels: list[str], bins: int) -> PublishedHistogram:
    """The match-probability histogram as published: no small cell, no false label.

    ``per`` holds fine-bin counts per DOB series.  A series with 1..9 pairs in
    all is merged with the smallest other series ("A + B"); adjacent bins are
    merged (never across p = 0.5 or 0.9, which are published figures) until no
    series has 1..9 pairs in a bin; whatever small cell is left is printed
    "<10" and the totals that would give it away are withheld
    (``voterolls.privacy``).  The service's analyst page draws the same bars.
    """
    half_from, p09_from = bins // 2, int(round(0.9 * bins))
    all_counts = [sum(per[c][i] for c in per) for i in range(bins)]
    if labels:
        groups = merge_small([sum(per[c]) for c in labels])
        names = [" + ".join(labels[i] for i in g) for g in groups]
        rows = [[sum(per[labels[i]][b] for i in g) for b in range(bins)] for g in groups]
    else:
        names, rows = [], []
    ranges = merge_bins(rows or [all_counts], breaks=[half_from, p09_from])
    merged = [[sum(r[lo : hi + 1]) for lo, hi in ranges] for r in (rows or [all_counts])]
    cells = {(r, j): merged[r][j] for r in range(len(merged)) for j in range(len(ranges))}
    everything = list(cells)
    figures: dict[str, list[tuple[int, int]]] = {
        "total": everything,
        "half": [(r, j) for r, j in everything if ranges[j][0] >= half_from],
        "p09": [(r, j) for r, j in everything if ranges[j][0] >= p09_from],
    }
    if rows:
        for j in range(len(ranges)):  # each all-pairs bar is the total of its column
            figures[f"bin{j}"] = [(r, j) for r in range(len(rows))]
        for r in range(len(rows)):
            figures[f"series{r}"] = [(r, j) for j in range(len(ranges))]
    out = protect(cells, figures)
    if rows:
        top = [out.figures[f"bin{j}"] for j in range(len(ranges))]
    else:
        top = [out.cells[(0, j)] for j in range(len(ranges))]
    series = [HistogramSeries(label="All scored pairs", counts=top, total=out.figures["total"])]
    for r, name in enumerate(names):
        series.append(
            HistogramSeries(
                label=name,
                counts=[out.cells[(r, j)] for j in range(len(ranges))],
                total=out.figures[f"series{r}"],
            )
        )
    edges = [ranges[0][0] / bins] + [(hi + 1) / bins for _, hi in ranges]
    return PublishedHistogram(edges, series, out.figures["total"], out.figures["half"], out.figures["p09"])


def _publish_split(cross: int, in_state: int) -> tuple[Count, Count, str | None]:
    """Cross- and in-state pairs: published only when neither is small.

    Their sum is the published total, so a lone small side could be recovered;
    rather than hide the large side under a false label, the split is merged
    away (not shown) and the note says why.
    """
    if is_small(cross) or is_small(in_state):
        return None, None, (
            f"the split into cross-state and in-state pairs is not shown: one of them has fewer than "
            f"{SMALL_CELL} pairs, and the other could be subtracted from the total"
        )
    return cross, in_state, None


def _link_report(workspace: Path) -> dict[str, Any]:
    """Counts from ``link/link_report.json`` (the linkage stage's summary), suppressed."""
    path = WorkspacePaths(workspace).link.report
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(rep, dict):
        return {}
    cand, clusters, multi = suppress(
        [
            _as_int(rep.get("candidate_pairs")),
            _as_int(rep.get("clusters")),
            _as_int(rep.get("registrations_in_multi_clusters")),
        ]
    )
    return {
        "candidate_pairs": cand,
        "clusters": clusters,
        "registrations_in_multi_clusters": multi,
        "min_probability": _num(rep.get("min_probability")),
        "mass_below_min": _num(rep.get("probability_mass_below_min")),
        "threshold": _num(rep.get("threshold")),
        "engine": str(rep["engine"]) if rep.get("engine") else None,
        "calibration": link_calibration(rep.get("calibration")),
    }


def _ratio(model: float | None, linkage: float | None) -> float | None:
    return round(model / linkage, 4) if model is not None and linkage else None


def _calibration_reading(ratio: float | None) -> str:
    """One sentence on the total: does linkage's sum of probabilities match the birthday model?"""
    if ratio is None:
        return "Linkage gives these pairs no probability, so the check cannot be read."
    if ratio > 1.1:
        return (
            f"Over all bands the birthday model expects {ratio:.2f} times as many same-person pairs "
            "as linkage's probabilities add up to: linkage looks under-confident on this stratum."
        )
    if ratio < 0.9:
        return (
            f"Over all bands the birthday model expects {ratio:.2f} times as many same-person pairs "
            "as linkage's probabilities add up to: linkage looks over-confident on this stratum."
        )
    return (
        f"Over all bands the two agree within 10% (ratio {ratio:.2f}): linkage looks calibrated on "
        "this stratum; single bands are approximate (see Methods)."
    )


def link_calibration(cal: Any) -> LinkCalibration | None:
    """The calibration block of link_report.json as published (small band counts hidden).

    The block is the estimate stage's :class:`~voterolls.stats.result.CalibrationCheck`.
    A band's pair count goes through :func:`voterolls.privacy.protect` with the total
    as its published sum; where the count is hidden, the band's expected figures are
    hidden too (both are bounded by the count).
    """
    if cal is None:
        return None
    try:
        check = CalibrationCheck.model_validate(cal)
    except ValidationError:
        log.warning("link_report.json: the calibration block is not the shape the estimate stage writes")
        return None
    if not check.bands:
        return None
    cells = {i: b.pairs for i, b in enumerate(check.bands)}
    pub = protect(cells, {"total": list(cells)})

    def band(b: StatsCalibrationBand, pairs: Count, lo: float, hi: float) -> CalibrationBand:
        if not isinstance(pairs, int):
            return CalibrationBand(p_from=lo, p_to=hi, pairs=pairs)
        model = _num(b.expected_by_birthday_model)
        linkage = _num(b.expected_by_linkage)
        return CalibrationBand(
            p_from=lo, p_to=hi, pairs=pairs, expected_by_birthday_model=model,
            expected_by_linkage=linkage, ratio=_ratio(model, linkage),
        )

    rows = [
        band(b, pub.cells[i], _num(b.p_from) or 0.0, _num(b.p_to) or 1.0)
        for i, b in enumerate(check.bands)
    ]
    tot = check.total or CalibrationTotal()
    total = band(tot, pub.figures["total"], rows[0].p_from, rows[-1].p_to)
    ratio = _num(tot.ratio_model_to_linkage)
    if total.pairs is None:  # fewer than 10 exact pairs in all
        reading = "Too few exact pairs to publish the check without singling out a small cell."
    else:
        # a ratio of two totals cannot be solved for a hidden band's figures, so the total's
        # ratio (the firm figure of the check) is shown even where its pair count is withheld
        total = total.model_copy(update={"ratio": ratio})
        reading = _calibration_reading(ratio)
        if total.pairs == WITHHELD:
            reading += (
                " The total pair count and expected figures are withheld: with the other bands"
                " they would reveal a band of fewer than 10 pairs."
            )
    return LinkCalibration(bands=rows, total=total, reading=reading)


# --------------------------------------------------------------------------
# Estimates (voterolls.stats -> W/estimates/estimates.json, one typed result)
# --------------------------------------------------------------------------

_EST_LABELS = {
    "duplicate_registrations": "Estimated cross-state duplicate registrations (pairs held by one person)",
    "duplicate_registrations_in_state": "Estimated in-state duplicate registrations (pairs held by one person)",
    "double_votes": "Estimated double votes (one person recorded voting in two states in one election)",
    "coincidences_expected": "Expected coincidental first + last name + DOB agreements across states (birthday problem)",
    "crosscheck_flagged": "Cross-state pairs the Crosscheck rule (first + last name + DOB) flags",
    "crosscheck_flagged_in_state": "In-state pairs the Crosscheck rule flags",
    "coincidences_expected_in_state": "Expected coincidental agreements within states",
    "purge_ratio": "Legitimate votes blocked per double vote prevented, if flagged registrations were purged",
}


def _num(v: Any) -> float | None:
    """A finite number or None (a NaN or an infinity is not a figure to print)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v) if math.isfinite(float(v)) else None
    return None


def _kind(key: str) -> str:
    if key.startswith("crosscheck_flagged"):
        return "count"
    if key.startswith("coincidences"):
        return "expected"
    if key == "purge_ratio":
        return "ratio"
    return "estimate"


def _pair(v: tuple[float | None, float | None] | None) -> tuple[float | None, float | None]:
    return (_num(v[0]), _num(v[1])) if v is not None else (None, None)


def figure_estimate(key: str, fig: Figure | None, label: str | None = None) -> Estimate | None:
    """The report's view of one stats :class:`~voterolls.stats.result.Figure` (None: nothing to show)."""
    if fig is None:
        return None
    point = _num(fig.estimate)
    lo, hi = _pair(fig.ci95)
    if point is None and lo is None:
        return None
    lo_s, hi_s = _pair(fig.ci95_signed)
    return Estimate(
        key=key,
        label=label or _EST_LABELS.get(key, key.replace("_", " ").capitalize()),
        point=point,
        low=lo,
        high=hi,
        level=fig.level if lo is not None else None,
        kind=_kind(key),  # type: ignore[arg-type]
        note=fig.method,
        low_signed=lo_s,
        high_signed=hi_s,
        truncated_at_zero=fig.truncated_at_zero,
    )


def _count_est(key: str, value: float | None, note: str | None = None) -> Estimate | None:
    """An observed count (suppressed when small) as an Estimate without interval."""
    v = _num(value)
    if v is None:
        return None
    shown = suppress_one(int(round(v)))
    return Estimate(
        key=key,
        label=_EST_LABELS[key],
        point=shown,
        low=None,
        high=None,
        level=None,
        kind="count",
        note=note,
    )


def _attach_context(e: Estimate, rests: RestsOn | None, nat: National | None) -> None:
    """Copy what stats says about coverage and national scaling onto ``e``."""
    if rests is not None:
        e.rests_on_states = list(rests.states)
        e.rests_on_share = _num(rests.registrant_share)
        e.rests_on_year_only = [s for s in rests.states_birth_year_only if s in e.rests_on_states]
        e.excluded_no_dob = list(rests.states_without_dob)
    if nat is not None:
        e.national = _num(nat.national)
        e.national_low, e.national_high = _pair(nat.ci95)
        e.national_label = nat.label or None
        e.national_model = nat.model or nat.reason or None


def _duplicates(scope: DuplicateScope, suffix: str) -> dict[str, Estimate]:
    """The headline, the Crosscheck rule's count and its expected coincidences for one scope."""
    found: dict[str, Estimate] = {}
    head = scope.headline_figure()
    e = figure_estimate(f"duplicate_registrations{suffix}", head)
    if e is not None:
        note = [head.method] if head is not None and head.method else []
        if scope.note:
            note.append(scope.note)
        e.note = "; ".join(note) or None
        _attach_context(e, scope.rests_on, scope.national)
        found[f"duplicate_registrations{suffix}"] = e
    rule = scope.rule_net_of_coincidences
    if rule is not None:
        cc = _count_est(
            f"crosscheck_flagged{suffix}",
            rule.raw_rule_count,
            "pairs agreeing on first + last name + DOB (birth year where a state gives only the year)",
        )
        if cc is not None:
            found[f"crosscheck_flagged{suffix}"] = cc
        ex = _num(rule.expected_coincidences)
        if ex is not None:
            found[f"coincidences_expected{suffix}"] = Estimate(
                key=f"coincidences_expected{suffix}",
                label=_EST_LABELS[f"coincidences_expected{suffix}"],
                point=ex,
                kind="expected",
                level=None,
                note="expected number of the flagged pairs that are different people sharing name and birth date",
            )
    return found


def _double_votes(dv: DoubleVotes) -> dict[str, Any]:
    found: dict[str, Any] = {}
    e = figure_estimate("double_votes", dv.headline)
    if e is not None and e.point is not None:
        if dv.caveat:
            e.note = "; ".join(x for x in (e.note, dv.caveat) if x)
        _attach_context(e, dv.rests_on, dv.national)
        found["double_votes"] = e
        if dv.headline is not None and _num(dv.headline.per_voter) is not None:
            found["double_vote_rate"] = _num(dv.headline.per_voter)
    else:
        found["double_votes_missing"] = dv.note or "no double-vote estimate"
    if dv.votes_recorded_in_these_states is not None:
        found["votes_recorded"] = suppress_one(int(dv.votes_recorded_in_these_states))
    if dv.states is not None:
        found["vote_history_states"] = list(dv.states)
    return found


def _purge(pg: CrosscheckPurge) -> dict[str, Any]:
    """The purge card and its ratio (legitimate votes blocked per double vote prevented)."""
    lo, hi = _pair(pg.ratio_range_from_ci)
    removed, used = suppress([pg.registrations_removed, pg.removed_registrations_used_to_vote])
    blocked_lo, blocked_hi = _pair(pg.legitimate_votes_blocked_ci95)
    purge = Purge(
        rule=pg.rule or None,
        registrations_removed=removed,
        removed_registrations_used_to_vote=used,
        double_votes_prevented=figure_estimate(
            "double_votes_prevented",
            pg.double_votes_prevented_estimate,
            "Double votes a purge could prevent (upper bound)",
        ),
        legitimate_votes_blocked=_num(pg.legitimate_votes_blocked_estimate),
        legitimate_votes_blocked_low=blocked_lo,
        legitimate_votes_blocked_high=blocked_hi,
        ratio=_num(pg.legitimate_votes_blocked_per_double_vote_prevented),
        ratio_low=lo,
        ratio_high=hi,
        basis=pg.double_votes_prevented_basis or None,
    )
    found: dict[str, Any] = {"purge": purge}
    if purge.ratio is not None:
        unbounded = lo is not None and hi is None  # double votes prevented could be 0
        found["purge_ratio"] = Estimate(
            key="purge_ratio",
            label=_EST_LABELS["purge_ratio"],
            point=purge.ratio,
            low=min(lo, hi) if lo is not None and hi is not None else lo,
            high=max(lo, hi) if lo is not None and hi is not None else None,
            level=0.95 if lo is not None else None,
            high_unbounded=unbounded,
            kind="ratio",
            note="range from the interval of double votes prevented"
            + ("; no upper bound, because the interval of double votes prevented reaches 0" if unbounded else ""),
        )
    return found


def _from_stats(result: EstimatesResult) -> dict[str, Any]:
    """Fields of :class:`Estimates` from the stats result."""
    found: dict[str, Any] = {"vote_history_states": list(result.vote_history_states)}
    dups = result.duplicate_registrations
    if dups is not None:
        for scope, suffix in ((dups.cross_state, ""), (dups.in_state, "_in_state")):
            if scope is not None:
                found |= _duplicates(scope, suffix)
    if result.double_votes is not None:
        found |= _double_votes(result.double_votes)
    if result.election:
        found["election"] = result.election
    if result.linkage_used is not None:
        found["linkage_used"] = result.linkage_used
    if result.crosscheck_purge is not None:
        found |= _purge(result.crosscheck_purge)
    return found


def _dob_classes_from_coverage(e: Estimate | None, c: StatsCoverage | None) -> None:
    """DOB classes from the ``coverage`` block where the estimate's ``rests_on`` names none."""
    if e is None or c is None:
        return
    if not e.rests_on_year_only:
        e.rests_on_year_only = [s for s in c.states_with_birth_year_only if s in e.rests_on_states]
    if not e.excluded_no_dob:
        e.excluded_no_dob = list(c.states_without_dob)


def _coverage_sentence(c: StatsCoverage) -> str | None:
    """One sentence from the ``coverage`` block stats writes beside its estimates."""
    parts = []
    states = c.states_covered
    if states is not None:
        share = _num(c.registrant_share_covered)
        txt = f"The estimates rest on {len(states)} state{'s' if len(states) != 1 else ''}"
        if states:
            txt += f" ({', '.join(states)})"
        if share is not None:
            txt += f", {share:.1%} of US registrants"
            if c.registrants_measure:
                txt += f" ({c.registrants_measure})"
        parts.append(txt)
    for states_of_class, label in (
        (c.states_with_birth_year_only, "birth year only"),
        (c.states_without_dob, "no date of birth"),
    ):
        if states_of_class:
            parts.append(f"{label}: {', '.join(states_of_class)}")
    if c.vote_history_states is not None:
        parts.append(f"vote history from: {', '.join(c.vote_history_states) or 'no state'}")
    return ("; ".join(parts) + ".") if parts else None


def _as_int(v: Any) -> int | None:
    n = _num(v)
    return int(n) if n is not None else None


def gather_estimates(workspace: Path) -> Section[Estimates]:
    path = WorkspacePaths(workspace).estimates
    if not path.exists():
        return Section[Estimates](
            missing="no estimates in this workspace (no estimates/estimates.json); run `voterolls estimate`"
        )
    try:
        result = load_estimates(path)
    except UserError as exc:
        return Section[Estimates](missing=f"estimates/estimates.json could not be read: {exc.message}")
    section = estimates_section(result)
    if section.data is not None and section.data.duplicate_registrations is not None:
        section.data.headline_block = gather_headline(workspace, section.data.duplicate_registrations)
    return section


#: The lists' review threshold: the probability at which a pair is put before a person.
REVIEW_THRESHOLD = 0.5


def gather_headline(workspace: Path, e: Estimate) -> Headline:
    """The reconciled headline: the covered-state estimate, the national figure and linkage.

    Linkage's cross-state pairs at the review threshold are counted over all
    loaded states and over pairs of two covered states (the estimate's
    scope); their summed probability is the number of true pairs linkage
    expects among them.  Counts pass the small-cell rule.
    """
    path = WorkspacePaths(workspace).link.pairs
    all_n = covered_n = None
    expected = None
    row = None
    if path.exists():
        covered = list(e.rests_on_states)
        con = duckdb.connect()
        try:
            row: tuple | None = con.execute(
                f"""
                SELECT count(*),
                       count(*) FILTER (WHERE list_contains($c, state_l) AND list_contains($c, state_r)),
                       coalesce(sum(match_probability) FILTER (
                           WHERE list_contains($c, state_l) AND list_contains($c, state_r)), 0)
                FROM read_parquet({literal(path)})
                WHERE state_l <> state_r AND match_probability >= $t
                """,
                {"c": covered, "t": REVIEW_THRESHOLD},
            ).fetchone()
        except duckdb.Error as exc:  # an unreadable pairs file costs the linkage column only
            log.warning("headline: link/pairs.parquet not readable (%s)", type(exc).__name__)
            row = None
        finally:
            con.close()
    if row is not None:
        all_n, covered_n, expected = suppress_one(int(row[0])), suppress_one(int(row[1])), float(row[2])
        if covered_n is None:
            expected = None  # a sum over fewer than 10 pairs is as revealing as their count
    return Headline(
        estimate=e,
        review_threshold=REVIEW_THRESHOLD,
        pairs_at_review=all_n,
        pairs_at_review_covered=covered_n,
        expected_true_covered=expected,
        relation=_relation_sentence(e, all_n, covered_n, expected),
    )


def _relation_sentence(e: Estimate, all_n: Count, covered_n: Count, expected: float | None) -> str:
    """How the three figures relate, in plain words."""
    from voterolls.report.charts import fmt_int, fmt_num

    n_cov = len(e.rests_on_states)
    parts = [
        f"The estimate counts pairs of registrations held by one person across the {n_cov} covered "
        "states (those that give a date of birth or a birth year)"
    ]
    if all_n is not None or covered_n is not None:
        parts.append(
            f"linkage scored {fmt_int(all_n)} cross-state pairs at match probability ≥ {REVIEW_THRESHOLD}, "
            f"{fmt_int(covered_n)} of them between two covered states"
            + (
                f", among which it expects {fmt_num(expected)} to be one person (the sum of their probabilities)"
                if expected is not None
                else ""
            )
            + "; pairs involving a state without a DOB are found by linkage but not counted by the estimate"
        )
    if e.national is not None:
        parts.append(
            "the national figure scales the covered-state estimate to every state under the model named beside it"
        )
    else:
        parts.append("no national figure is made without an explicit model")
    return "; ".join(parts) + "."


def estimates_section(result: EstimatesResult) -> Section[Estimates]:
    """The estimates section from the stats result."""
    found = _from_stats(result)
    extra = {
        k: v
        for k, v in found.items()
        if k in ("crosscheck_flagged_in_state", "coincidences_expected_in_state")
    }
    for k in extra:
        found.pop(k)
    other = [e for e in extra.values() if isinstance(e, Estimate)]
    headline_keys = (
        "duplicate_registrations",
        "double_votes",
        "coincidences_expected",
        "crosscheck_flagged",
    )
    if not any(k in found for k in headline_keys):
        return Section[Estimates](
            missing="estimates/estimates.json holds no duplicate-registration or double-vote estimate"
        )
    _dob_classes_from_coverage(found.get("duplicate_registrations"), result.coverage)
    return Section[Estimates](
        data=Estimates(
            **found,
            other=other,
            coverage_note=_coverage_sentence(result.coverage) if result.coverage is not None else None,
            method_note=result.wording,
            generated_at=result.generated_at,
        )
    )


# --------------------------------------------------------------------------
# Protections (what is sealed / suppressed / excluded)
# --------------------------------------------------------------------------


def _snapshot_totals(con: duckdb.DuckDBPyConnection | None) -> dict[str, Any]:
    """Per current snapshot: loaded, quarantined, protected-excluded rows and the date (catalog copy)."""
    if con is None or not _has_relation(con, "snapshots") or not _has_relation(con, "current"):
        return {}
    cols = _columns(con, "snapshots")
    want = [
        c
        for c in ("quarantined", "protected_excluded", "created_at", "vote_history_withheld")
        if c in cols
    ]
    if not want:
        return {}
    rows = con.execute(
        f"SELECT s.state, {', '.join('s.' + c for c in want)} FROM snapshots s "
        "JOIN current c USING (snapshot_id)"
    ).fetchall()
    return {r[0]: dict(zip(want, r[1:], strict=True)) for r in rows}


def gather_protections(
    policies: dict[str, dict[str, str]],
    stats: dict[str, dict[str, Any]],
    snaps: dict[str, Any] | None = None,
) -> Protections:
    by = {"full": [], "year": [], "other": []}  # type: dict[str, list[str]]
    for st in JURISDICTIONS:
        d = policies.get(st, {}).get("dob_disclosure", "unknown")
        by[d if d in ("full", "year") else "other"].append(st)
    sealed_states = sorted(
        st for st, s in stats.items() if any((s.get(f"nn__{c}") or 0) > 0 for c in SEALED_COLUMNS)
    )
    return Protections(
        sealed_fields=[
            "SSN last four",
            "driver's licence number",
            "full date of birth (where matching is lawful but disclosure is not)",
        ],
        states_with_sealed_tokens=sealed_states,
        states_dob_full=by["full"],
        states_dob_year=by["year"],
        states_dob_none_or_unknown=by["other"],
        suppression_threshold=SMALL_CELL,
        suppression_source=suppression_source(),
        quarantined_rows=_total(snaps, "quarantined"),
        protected_excluded=_total(snaps, "protected_excluded"),
    )


def _total(snaps: dict[str, Any] | None, key: str) -> int | None:
    if not snaps:
        return None
    vals = [v.get(key) for v in snaps.values() if v.get(key) is not None]
    return suppress_one(int(sum(vals))) if vals else None


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def _safely(what: str, fn: Callable[[], Section[Any]]) -> Section[Any]:
    """Run one section's gatherer; a broken input costs that section, not the report."""
    try:
        return fn()
    except UserError as exc:
        return Section[Any](missing=f"{what} could not be read: {exc}")
    except (duckdb.Error, OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("report section %s failed (%s)", what, type(exc).__name__)
        return Section[Any](missing=f"{what} could not be read ({type(exc).__name__})")


def gather(
    workspace: Path | str,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    title: str | None = None,
) -> ReportData:
    """Everything the report shows, as aggregates.

    ``con`` lets tests pass a connection that already has ``registrations``
    and ``vote_history`` views; otherwise ``voterolls.store.Workspace`` opens
    it (and it is closed again here).
    """
    from voterolls import __version__

    workspace = Path(workspace)
    why: str | None = None
    own = con is None
    if con is None:
        con, why = open_workspace(workspace)
    try:
        policies, policy_source = load_policies()
        stats: dict[str, dict[str, Any]] = {}
        history: dict[str, int] = {}
        reg_cols: list[str] = []
        if con is not None and _has_relation(con, "registrations"):
            reg_cols = [c for c in _columns(con, "registrations") if c != "state"]
            skip = ("source_file", "source_line", "state_voter_id")
            stats = _non_null_by_state(con, [c for c in reg_cols if c not in skip])
            if _has_relation(con, "vote_history"):
                history = dict(
                    con.execute(
                        "SELECT state, count(*) FROM vote_history GROUP BY state"
                    ).fetchall()
                )
        elif con is not None:
            why = "the workspace has no registrations loaded yet; run `voterolls ingest`"
        loaded = {st: int(s["__rows"]) for st, s in stats.items()}
        published = _protected_loaded(loaded)
        snaps = _snapshot_totals(con)

        def uniformity() -> Section[Any]:
            if con is None or not stats:
                return Section[Uniformity](
                    missing=why or "no registrations are loaded in this workspace"
                )
            return gather_uniformity_ingest(con, published) or gather_uniformity(
                con, stats, reg_cols, published
            )

        data = ReportData(
            workspace_label=workspace.name or str(workspace),
            version=__version__,
            coverage=_safely(
                "coverage", lambda: gather_coverage(workspace, con, policies, loaded, snaps)
            ),
            fields=_safely(
                "field availability",
                lambda: gather_fields(con, policies, policy_source, stats, history),
            ),
            uniformity=_safely("uniformity", uniformity),
            matches=_safely("link/pairs.parquet", lambda: gather_matches(workspace)),
            estimates=_safely("estimates/estimates.json", lambda: gather_estimates(workspace)),
            protections=gather_protections(policies, stats, snaps),
        )
    finally:
        if own and con is not None:
            con.close()
    data.built_from, data.freshness = gather_freshness(workspace)
    if title:
        data.title = title
    return data


def gather_freshness(workspace: Path) -> tuple[dict[str, str], list[Freshness]]:
    """The snapshots the report is built from, and whether linkage / estimates match them."""
    from voterolls import freshness

    try:
        from voterolls.store import Workspace

        if not WorkspacePaths(workspace).catalog.exists():
            return {}, []
        ws = Workspace(workspace, create=False)
        current = ws.current()
        checks = freshness.existing(ws)
    except Exception as exc:  # an unreadable catalog costs the banner, not the report
        log.warning("freshness not checked (%s)", type(exc).__name__)
        return {}, []
    return current, [
        Freshness(
            product=c.product,
            stale=c.stale,
            recorded=c.recorded,
            message=c.message(),
            built_from=c.built_from,
        )
        for c in checks
    ]
