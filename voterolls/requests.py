"""The request tracker: per state, what was requested, what the law allows, what was delivered.

It drives every coverage figure: a national number is only as good as the
share of registrants and of requested fields behind it, and this module says
what those shares are.

* **Requested**: every field of ``voterolls.schema.REQUESTED_2017_FIELDS`` (the
  2017 commission letter), whether or not any state supplies it.
* **Allowed**: derived from the state's disclosure policy
  (:func:`allowed_detail`); unknown counts as not allowed.
* **Delivered**: derived from an ingested workspace by
  :func:`delivered_fields`, which only needs a DuckDB connection with a
  ``registrations`` view (and optionally ``vote_history``), so it works on
  ``voterolls.store.Workspace(...).connect()`` or on a small in-memory table.
* **Status** (complied / partial / refused / pending), dates and notes: kept in
  a tracker file (``W/requests/tracker.json``).  The shipped example is the
  2017 response snapshot of 6 Jul 2017 (AP/USA Today via Colorlines, key
  AP2017), in ``voterolls/policy/requests_2017.csv``.

State weights come from ``voterolls/data/state_population_2020.csv`` (a proxy); see
PROVENANCE.md there: at present a documented proxy (Census 2020 resident
population), not registrant counts.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from voterolls.errors import UserError
from voterolls.policy import StatePolicy, get_policy
from voterolls.schema import JURISDICTIONS, REQUESTED_2017_FIELDS

STATUSES = ("complied", "partial", "refused", "pending")

#: Statuses that count as "responded with data" for the registrant share.
RESPONDING = ("complied", "partial")


@dataclass(frozen=True)
class Request:
    """One request sent to every state."""

    request_id: str
    title: str
    sent: str  # ISO date the letters are dated
    fields: tuple[str, ...]
    snapshot_as_of: str = ""
    source: str = ""


REQUEST_2017 = Request(
    request_id="pacei-2017",
    title="Presidential Advisory Commission on Election Integrity voter-roll request",
    sent="2017-06-28",
    fields=REQUESTED_2017_FIELDS,
    snapshot_as_of="2017-07-06",
    source="LETTER (fields); AP2017 (responses as of 6 Jul 2017)",
)


@dataclass
class StateResponse:
    state: str
    status: str = "pending"
    date_responded: str | None = None
    notes: str = ""
    source: str = ""
    as_of: str | None = None


def _check_status(status: str, where: str | Path | None = None, line: int | None = None) -> str:
    s = (status or "").strip().lower()
    if s not in STATUSES:
        raise UserError(
            f"status must be one of {', '.join(STATUSES)}", file=where, line=line, field="status"
        )
    return s


def _check_date(
    value: str | None, where: str | Path | None = None, line: int | None = None
) -> str | None:
    if value is None or not str(value).strip():
        return None
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise UserError(
            "dates must be YYYY-MM-DD", file=where, line=line, field="date_responded"
        ) from None


def _snapshot_rows() -> list[dict[str, str]]:
    text = (resources.files("voterolls.policy") / "requests_2017.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@dataclass
class Tracker:
    """Responses of every state to one request; persisted as JSON."""

    request: Request = REQUEST_2017
    responses: dict[str, StateResponse] = field(default_factory=dict)

    @classmethod
    def example_2017(cls) -> Tracker:
        responses = {}
        for r in _snapshot_rows():
            responses[r["state"]] = StateResponse(
                state=r["state"],
                status=_check_status(r["status"]),
                date_responded=r["date_responded"] or None,
                notes=r["notes"],
                source=r["source"],
                as_of=r["as_of"] or None,
            )
        return cls(REQUEST_2017, responses)

    @classmethod
    def load(cls, path: str | Path | None) -> Tracker:
        """The tracker in ``path``; the shipped 2017 example when ``path`` is None or absent."""
        if path is None or not Path(path).exists():
            return cls.example_2017()
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            req = data["request"]
            request = Request(**{**req, "fields": tuple(req["fields"])})
            responses = {s: StateResponse(**r) for s, r in data["responses"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(
                f"not a readable tracker file ({type(exc).__name__})", file=path
            ) from None
        return cls(request, responses)

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "request": {**asdict(self.request), "fields": list(self.request.fields)},
            "responses": {s: asdict(r) for s, r in sorted(self.responses.items())},
        }
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def response(self, state: str) -> StateResponse:
        return self.responses.get(state) or StateResponse(state=state)

    def set(
        self,
        state: str,
        *,
        status: str | None = None,
        date_responded: str | None = None,
        notes: str | None = None,
        source: str | None = None,
    ) -> StateResponse:
        state = state.strip().upper()
        if state not in JURISDICTIONS:
            raise UserError(f"unknown state code {state[:8]!r}", field="state")
        r = self.responses.setdefault(state, StateResponse(state=state))
        if status is not None:
            r.status = _check_status(status)
        if date_responded is not None:
            r.date_responded = _check_date(date_responded)
        if notes is not None:
            r.notes = notes
        if source is not None:
            r.source = source
        r.as_of = date.today().isoformat()
        return r

    def import_csv(self, path: str | Path) -> int:
        """Import ``state,status[,date_responded,notes,source]`` rows; returns rows imported."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UserError(f"cannot read ({exc.strerror})", file=path) from None
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"state", "status"} <= {
            f.strip() for f in reader.fieldnames
        }:
            raise UserError("needs a header with at least state,status", file=path, line=1)
        n = 0
        for i, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            state = row["state"].upper()
            if state not in JURISDICTIONS:
                raise UserError(
                    f"unknown state code {state[:8]!r}", file=path, line=i, field="state"
                )
            self.set(
                state,
                status=_check_status(row["status"], path, i),
                date_responded=_check_date(row.get("date_responded"), path, i) or "",
                notes=row.get("notes") or None,
                source=row.get("source") or None,
            )
            if not row.get("date_responded"):
                self.responses[state].date_responded = None
            n += 1
        return n


# --------------------------------------------------------------------------
# allowed (from policy)
# --------------------------------------------------------------------------

#: Requested fields that every public list carries (the list is public to at
#: least some lawful recipients in every state; protected voters excluded).
_ALWAYS_LISTED = ("full_name", "address", "status")


def allowed_detail(policy: StatePolicy) -> dict[str, str]:
    """Per requested field: ``yes``, ``year only``, ``no``, ``no (token only)`` or ``unknown``.

    Only ``yes`` counts as allowed; ``unknown`` is treated as not allowed.
    """

    def yn(value: bool, name: str) -> str:
        if not policy.is_known(name):
            return "unknown"
        return "yes" if value else "no"

    dob = {"full": "yes", "year": "year only", "none": "no"}[policy.dob_disclosure]
    if not policy.is_known("dob_disclosure"):
        dob = "unknown"
    out = {
        "full_name": "yes",
        "address": "yes",
        "dob": dob,
        "party": "yes" if policy.party_on_file else "no (no party registration)",
        "ssn4": "no (token only)" if not policy.ssn4_public else "yes",
        "vote_history_since_2006": yn(policy.vote_history_public, "vote_history_public"),
        "status": "yes",
        "cancellation_reason": "unknown",
        "felony_convictions": "unknown",
        "other_state_registrations": "unknown",
        "military_status": "unknown",
        "overseas_status": "unknown",
        "phone": yn(policy.phone_public, "phone_public"),
        "email": yn(policy.email_public, "email_public"),
    }
    if not policy.on_file:
        out = dict.fromkeys(out, "unknown")
    return {f: out.get(f, "unknown") for f in REQUESTED_2017_FIELDS}


# --------------------------------------------------------------------------
# delivered (from a workspace connection)
# --------------------------------------------------------------------------


def _columns(con, view: str) -> set[str] | None:
    try:
        rows = con.execute(f"DESCRIBE {view}").fetchall()
    except Exception:  # noqa: BLE001 - a missing view is simply "not delivered"
        return None
    return {r[0] for r in rows}


def delivered_fields(con) -> pa.Table:
    """Per (state, requested field): rows, non-null values and what was delivered.

    ``con`` is any DuckDB connection with a ``registrations`` view in the
    national schema (``Workspace.connect()``); a ``vote_history`` view is used
    when present.  One aggregate query per view; counts only.
    ``delivered`` is ``yes``, ``year only`` (DOB as birth year), ``sealed``
    (token only) or ``no``.
    """
    cols = _columns(con, "registrations")
    if cols is None:
        raise UserError("the workspace has no registrations view")

    def has(*names: str) -> bool:
        return all(n in cols for n in names)

    exprs: dict[str, str] = {}
    if has("first_name", "last_name"):
        exprs["full_name"] = (
            "count(*) FILTER (WHERE first_name IS NOT NULL AND last_name IS NOT NULL)"
        )
    if has("residence_address"):
        exprs["address"] = "count(residence_address)"
    exprs["dob"] = "count(dob)" if has("dob") else "0"
    exprs["_birth_year"] = "count(birth_year)" if has("birth_year") else "0"
    if has("party"):
        exprs["party"] = "count(*) FILTER (WHERE party IS NOT NULL AND party NOT IN ('NPR', 'UNK'))"
    if has("ssn4_token"):
        exprs["ssn4"] = "count(ssn4_token)"
    if has("status"):
        exprs["status"] = "count(*) FILTER (WHERE status IS NOT NULL AND status <> 'unknown')"
    if has("status_reason"):
        exprs["cancellation_reason"] = "count(status_reason)"
    if has("uocava"):
        known = "count(*) FILTER (WHERE uocava IS NOT NULL AND uocava <> 'unknown')"
        exprs["military_status"] = known
        exprs["overseas_status"] = known
    if has("phone"):
        exprs["phone"] = "count(phone)"
    if has("email"):
        exprs["email"] = "count(email)"
    names = list(exprs)
    sql = (
        "SELECT state, count(*) AS n, "
        + ", ".join(f'{e} AS "{k}"' for k, e in exprs.items())
        + " FROM registrations GROUP BY state"
    )
    reg = {r[0]: (r[1], dict(zip(names, r[2:], strict=True))) for r in con.execute(sql).fetchall()}

    vh: dict[str, int] = {}
    vcols = _columns(con, "vote_history")
    if vcols is not None and {"state", "election_date"} <= vcols:
        vh = dict(
            con.execute(
                "SELECT state, count(*) FROM vote_history WHERE election_date >= DATE '2006-01-01' GROUP BY state"
            ).fetchall()
        )

    out: dict[str, list] = {k: [] for k in ("state", "field", "rows", "non_null", "delivered")}
    for state in sorted(set(reg) | set(vh)):
        n, counts = reg.get(state, (0, {}))
        for f in REQUESTED_2017_FIELDS:
            if f == "vote_history_since_2006":
                nn = int(vh.get(state, 0))
                delivered = "yes" if nn else "no"
            elif f == "dob":
                nn = int(counts.get("dob", 0))
                by = int(counts.get("_birth_year", 0))
                delivered = "yes" if nn else ("year only" if by else "no")
                nn = nn or by
            elif f == "ssn4":
                nn = int(counts.get("ssn4", 0))
                delivered = "sealed" if nn else "no"
            else:
                nn = int(counts.get(f, 0))
                delivered = "yes" if nn else "no"
            out["state"].append(state)
            out["field"].append(f)
            out["rows"].append(int(n))
            out["non_null"].append(nn)
            out["delivered"].append(delivered)
    return pa.table(
        out,
        schema=pa.schema(
            [
                ("state", pa.string()),
                ("field", pa.string()),
                ("rows", pa.int64()),
                ("non_null", pa.int64()),
                ("delivered", pa.string()),
            ]
        ),
    )


def open_workspace(path: str | Path):
    """A DuckDB connection to an ingested workspace (via ``voterolls.store.Workspace``)."""
    from voterolls.store import Workspace
    if not Path(path).exists():
        raise UserError("workspace not found", file=path)
    return Workspace(path).connect()


# --------------------------------------------------------------------------
# weights and coverage
# --------------------------------------------------------------------------


@cache
def registrant_weights() -> tuple[dict[str, int], str]:
    """State -> weight, and a one-line note on what the weight measures.

    Until sourced registrant counts (EAC EAVS) are vendored, the weight is the
    Census 2020 resident population from ``voterolls/data/state_population_2020.csv``
    (the same table the synthetic population uses), labelled as a proxy
    wherever a coverage share is shown.
    """
    text = (resources.files("voterolls.data") / "state_population_2020.csv").read_text(encoding="utf-8")
    weights = {r["state"]: int(r["population"]) for r in csv.DictReader(io.StringIO(text))}
    note = "resident population as of 2020-04-01 (Census 2020 apportionment), a proxy for registrants"
    return weights, note


def coverage(workspace_con=None, *, tracker: Tracker | None = None) -> dict[str, Any]:
    """The tracker, state by state, with national coverage figures.

    Returns a dict with ``requested_fields``, ``states`` (51 dicts) and
    ``national``: ``registrants_total``, ``registrants_share_responding``
    (complied or partial), ``allowed_field_share`` (registrant-weighted share
    of requested fields the law allows in full) and, when a workspace
    connection is given, ``registrants_share_delivered`` and
    ``delivered_field_share`` (``None`` otherwise).
    """
    tracker = tracker or Tracker.example_2017()
    fields = list(tracker.request.fields)
    n_fields = len(fields)
    weights, note = registrant_weights()
    delivered: dict[str, dict[str, str]] | None = None
    if workspace_con is not None:
        delivered = {}
        for row in delivered_fields(workspace_con).to_pylist():
            delivered.setdefault(row["state"], {})[row["field"]] = row["delivered"]

    states = []
    for s in JURISDICTIONS:
        resp = tracker.response(s)
        detail = allowed_detail(get_policy(s))
        allowed = [f for f in fields if detail.get(f) == "yes"]
        d_detail = delivered.get(s) if delivered is not None else None
        if delivered is not None and d_detail is None:
            d_detail = dict.fromkeys(fields, "no")
        d_list = (
            [f for f in fields if d_detail and d_detail.get(f) == "yes"]
            if d_detail is not None
            else None
        )
        states.append(
            {
                "state": s,
                "status": resp.status,
                "date_responded": resp.date_responded,
                "as_of": resp.as_of,
                "notes": resp.notes,
                "source": resp.source,
                "registrants": weights.get(s),
                "registrants_source": "proxy" if "proxy" in note else "count",
                "requested": fields,
                "allowed": allowed,
                "allowed_detail": detail,
                "allowed_share": len(allowed) / n_fields,
                "delivered": d_list,
                "delivered_detail": d_detail,
                "delivered_share": (len(d_list) / n_fields) if d_list is not None else None,
                "has_rows": bool(delivered and s in delivered),
            }
        )
    total = sum(r["registrants"] or 0 for r in states)

    def wshare(pred) -> float:
        return sum((r["registrants"] or 0) for r in states if pred(r)) / total if total else 0.0

    national = {
        "registrants_total": total,
        "registrants_share_responding": wshare(lambda r: r["status"] in RESPONDING),
        "allowed_field_share": sum((r["registrants"] or 0) * r["allowed_share"] for r in states)
        / total,
        "registrants_share_delivered": wshare(lambda r: r["has_rows"])
        if delivered is not None
        else None,
        "delivered_field_share": (
            sum((r["registrants"] or 0) * r["delivered_share"] for r in states) / total
            if delivered is not None
            else None
        ),
        "status_counts": {st: sum(1 for r in states if r["status"] == st) for st in STATUSES},
    }
    return {
        "request": asdict(tracker.request),
        "requested_fields": fields,
        "states": states,
        "national": national,
        "registrants_note": note,
    }


def coverage_table(workspace_con=None, *, tracker: Tracker | None = None) -> pa.Table:
    """:func:`coverage` as one Arrow row per state (for reports and the stats stage)."""
    cov = coverage(workspace_con, tracker=tracker)
    rows = [
        {
            "state": r["state"],
            "status": r["status"],
            "date_responded": r["date_responded"],
            "registrants": r["registrants"],
            "n_requested": len(r["requested"]),
            "n_allowed": len(r["allowed"]),
            "allowed_share": r["allowed_share"],
            "n_delivered": None if r["delivered"] is None else len(r["delivered"]),
            "delivered_share": r["delivered_share"],
            "allowed_fields": ",".join(r["allowed"]),
            "delivered_fields": None if r["delivered"] is None else ",".join(r["delivered"]),
        }
        for r in cov["states"]
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("state", pa.string()),
                ("status", pa.string()),
                ("date_responded", pa.string()),
                ("registrants", pa.int64()),
                ("n_requested", pa.int32()),
                ("n_allowed", pa.int32()),
                ("allowed_share", pa.float64()),
                ("n_delivered", pa.int32()),
                ("delivered_share", pa.float64()),
                ("allowed_fields", pa.string()),
                ("delivered_fields", pa.string()),
            ]
        ),
    )
