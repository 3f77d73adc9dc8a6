"""Law before storage: apply a state's disclosure policy to a lazy DuckDB relation.

Ingest calls :func:`enforce` on the reader's relation *before* anything is
written, so a field the state's law does not make public never reaches disk.
Everything is one SQL projection + filter (vectorised, lazy); the findings are
one aggregate query over the input.

What happens, field by field (see docs/PRIVACY.md):

* ``dob``: kept only under ``dob_disclosure = full``.  Under ``year`` it is
  generalised: ``birth_year`` is filled from it and ``dob`` set to NULL; under
  ``none`` both are NULL.  ``dob_granularity`` is recomputed from what is left.
* ``phone`` / ``email``: NULL unless the policy says public.
* ``party``: ``NPR`` and ``party_code`` NULL when the state has no party
  registration (a primary-ballot party belongs in vote history).
* plaintext SSN / driver's licence columns (any of :data:`PLAINTEXT_SENSITIVE`)
  are removed outright: no state releases them; states send sealed tokens.
* sealed token columns (``ssn4_token``, ``dl_token``, ``dob_token``,
  ``name_clk``) are always allowed: they are not plaintext.
* rows with ``_protected`` true (address-confidentiality / exempt voters) are
  excluded and only counted.  A non-boolean ``_protected`` value that cannot be
  read counts as protected (unknown -> restrictive).

An :class:`Override` may re-allow named fields for one run.  It needs a stated
legal basis, is logged at WARNING level and is recorded in the findings; it can
never re-admit protected voters or plaintext SSN / licence numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

from voterolls.errors import PolicyViolation
from voterolls.log import get_logger
from voterolls.policy.model import StatePolicy
from voterolls.sql import identifier as _q

log = get_logger(__name__)

#: Columns that carry sealed tokens, never plaintext: always allowed.
TOKEN_COLUMNS = frozenset({"ssn4_token", "dl_token", "dob_token", "name_clk"})

#: Plaintext identifier column names that are removed whatever the policy says
#: (no state releases them; see ``ssn4_public`` / ``dl_public`` in the draft).
PLAINTEXT_SENSITIVE = frozenset(
    {
        "ssn", "ssn4", "ssn_last4", "last4_ssn", "ssn_last_four", "social_security_number",
        "dl", "dl_number", "dln", "drivers_license", "drivers_license_number",
        "driver_license_number", "license_number", "state_id_number",
    }
)  # fmt: skip

#: Fields an override may re-allow.
OVERRIDABLE = frozenset({"dob", "birth_year", "phone", "email", "party", "vote_history"})

PROTECTED_COLUMN = "_protected"

_MIN_LEGAL_BASIS = 12


@dataclass(frozen=True)
class Override:
    """An explicit, logged exception to a state's policy for one run.

    ``legal_basis`` must say why the law allows it (e.g. "qualified requester
    under Cal. Elec. Code 2194(a)(3), approval 2026-014"); it is written to the
    log and the findings, never applied silently.
    """

    fields: frozenset[str]
    legal_basis: str
    granted_by: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", frozenset(f.strip().lower() for f in self.fields))
        bad = sorted(self.fields - OVERRIDABLE)
        if bad:
            raise PolicyViolation(
                f"override cannot allow {', '.join(bad)}: only {', '.join(sorted(OVERRIDABLE))} "
                "may be overridden (protected voters and plaintext SSN/licence numbers never)"
            )
        if not self.fields:
            raise PolicyViolation("override names no fields")
        if len((self.legal_basis or "").strip()) < _MIN_LEGAL_BASIS:
            raise PolicyViolation(
                "override needs a stated legal basis (statute, court order or approval reference)",
                field="legal_basis",
            )


@dataclass
class PolicyFindings:
    """What enforcement did to one relation: counts only, never values."""

    state: str
    dob_disclosure: str
    rows_in: int | None = None
    rows_out: int | None = None
    protected_excluded: int | None = None
    #: field -> non-null values set to NULL (or removed, for plaintext columns)
    dropped: dict[str, int] = field(default_factory=dict)
    #: field -> values generalised (``dob`` -> ``birth_year``)
    generalised: dict[str, int] = field(default_factory=dict)
    #: columns removed from the relation entirely
    removed_columns: list[str] = field(default_factory=list)
    override_fields: list[str] = field(default_factory=list)
    override_legal_basis: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())


def allowed_columns(policy: StatePolicy, override: Override | None = None) -> dict[str, bool]:
    """Which policy-governed registration columns may be stored for ``policy``.

    Columns not listed here are not governed by the disclosure policy (name,
    address, status ...) and pass through.
    """
    o = override.fields if override else frozenset()
    full = policy.dob_disclosure == "full" or "dob" in o
    year = full or policy.dob_disclosure == "year" or "birth_year" in o
    party = policy.party_on_file or "party" in o
    return {
        "dob": full,
        "birth_year": year,
        "phone": policy.phone_public or "phone" in o,
        "email": policy.email_public or "email" in o,
        "party": party,
        "party_code": party,
        "ssn4": False,
        "dl_number": False,
        **dict.fromkeys(TOKEN_COLUMNS, True),
    }


def disallowed_columns(columns: list[str], policy: StatePolicy) -> list[str]:
    """The columns (by national-schema or plaintext name) the law does not allow."""
    allowed = allowed_columns(policy)
    out = []
    for c in columns:
        lc = c.lower()
        if lc in PLAINTEXT_SENSITIVE or (lc in allowed and not allowed[lc]):
            out.append(c)
    return out


def _protected_expr(cols: set[str]) -> str:
    if PROTECTED_COLUMN not in cols:
        return "false"
    p = _q(PROTECTED_COLUMN)
    return f"(CASE WHEN {p} IS NULL THEN false ELSE coalesce(TRY_CAST({p} AS BOOLEAN), true) END)"


def _log_override(policy: StatePolicy, override: Override | None, what: str) -> None:
    if override is not None:
        log.warning(
            "POLICY OVERRIDE for %s (%s): fields %s allowed; legal basis: %s; granted by: %s",
            policy.state,
            what,
            ", ".join(sorted(override.fields)),
            override.legal_basis.strip(),
            override.granted_by or "(not stated)",
        )


def enforce(
    rel: duckdb.DuckDBPyRelation,
    policy: StatePolicy,
    *,
    override: Override | None = None,
    count: bool = True,
) -> tuple[duckdb.DuckDBPyRelation, PolicyFindings]:
    """Apply ``policy`` to a registrations relation; return the lawful relation and findings.

    The returned relation is lazy and keeps every input column except
    ``_protected`` and plaintext SSN / licence columns, in the same order, with
    disallowed values NULL.  ``count=True`` runs one aggregate pass over the
    *input* relation (for a reader's lazy relation: a second streaming read of
    the native file); it never materialises the input, so no plaintext is
    spilled to DuckDB temp storage.  ``count=False`` skips it (the findings
    then carry no counts).  Do not materialise the input before enforcing.
    """
    cols = list(rel.columns)
    colset = set(cols)
    allowed = allowed_columns(policy, override)
    _log_override(policy, override, "registrations")
    prot = _protected_expr(colset)

    has_dob = "dob" in colset
    has_by = "birth_year" in colset
    dob_date = 'TRY_CAST("dob" AS DATE)' if has_dob else "NULL::DATE"
    new_dob = dob_date if allowed["dob"] else "NULL::DATE"
    if allowed["birth_year"]:
        parts = ['TRY_CAST("birth_year" AS SMALLINT)'] if has_by else []
        if has_dob:
            parts.append(f"CAST(year({dob_date}) AS SMALLINT)")
        new_by = f"coalesce({', '.join(parts)})" if parts else "NULL::SMALLINT"
    else:
        new_by = "NULL::SMALLINT"
    new_gran = (
        f"(CASE WHEN ({new_dob}) IS NOT NULL THEN 'full' "
        f"WHEN ({new_by}) IS NOT NULL THEN 'year' ELSE 'none' END)"
    )

    exprs: list[str] = []
    removed: list[str] = []
    for c in cols:
        lc = c.lower()
        qc = _q(c)
        if c == PROTECTED_COLUMN:
            removed.append(c)
            continue
        if lc in PLAINTEXT_SENSITIVE:
            removed.append(c)
            continue
        if c == "dob":
            exprs.append(f"{new_dob} AS {qc}")
        elif c == "birth_year":
            exprs.append(f"{new_by} AS {qc}")
        elif c == "dob_granularity":
            exprs.append(f"{new_gran} AS {qc}")
        elif c in ("phone", "email", "party_code"):
            exprs.append(qc if allowed[c] else f"NULL::VARCHAR AS {qc}")
        elif c == "party":
            exprs.append(qc if allowed["party"] else f"'NPR' AS {qc}")
        else:
            exprs.append(qc)
    if (has_dob or has_by) and "dob_granularity" not in colset:
        exprs.append(f"{new_gran} AS dob_granularity")

    out = rel.filter(f"NOT {prot}").project(", ".join(exprs))

    findings = PolicyFindings(
        state=policy.state,
        dob_disclosure=policy.dob_disclosure,
        removed_columns=removed,
        override_fields=sorted(override.fields) if override else [],
        override_legal_basis=override.legal_basis.strip() if override else None,
    )
    if count:
        _count(rel, findings, cols, allowed, prot, dob_date)
    log.info(
        "policy %s applied: rows_in=%s protected_excluded=%s dropped=%s generalised=%s",
        policy.state,
        findings.rows_in,
        findings.protected_excluded,
        findings.dropped,
        findings.generalised,
    )
    return out, findings


def _count(
    rel: duckdb.DuckDBPyRelation,
    findings: PolicyFindings,
    cols: list[str],
    allowed: dict[str, bool],
    prot: str,
    dob_date: str,
) -> None:
    """One aggregate pass: rows, protected rows and per-field values dropped."""
    keep = f"NOT {prot}"
    aggs = ["count(*) AS rows_in", f"count(*) FILTER (WHERE {prot}) AS protected"]
    keys: list[tuple[str, str, str]] = []  # (kind, field, alias)
    colset = set(cols)
    if "dob" in colset and not allowed["dob"]:
        alias = "a_dob"
        aggs.append(f"count({dob_date}) FILTER (WHERE {keep}) AS {alias}")
        keys.append(("generalised" if allowed["birth_year"] else "dropped", "dob", alias))
    if "birth_year" in colset and not allowed["birth_year"]:
        aggs.append(f'count("birth_year") FILTER (WHERE {keep}) AS a_by')
        keys.append(("dropped", "birth_year", "a_by"))
    for c in ("phone", "email", "party_code"):
        if c in colset and not allowed[c]:
            aggs.append(f"count({_q(c)}) FILTER (WHERE {keep}) AS a_{c}")
            keys.append(("dropped", c, f"a_{c}"))
    if "party" in colset and not allowed["party"]:
        aggs.append(f'count("party") FILTER (WHERE {keep} AND "party" <> \'NPR\') AS a_party')
        keys.append(("dropped", "party", "a_party"))
    for i, c in enumerate(cols):
        if c.lower() in PLAINTEXT_SENSITIVE:
            aggs.append(f"count({_q(c)}) FILTER (WHERE {keep}) AS a_plain{i}")
            keys.append(("dropped", c, f"a_plain{i}"))
    row = rel.aggregate(", ".join(aggs)).fetchall()[0]
    findings.rows_in = int(row[0])
    findings.protected_excluded = int(row[1])
    findings.rows_out = findings.rows_in - findings.protected_excluded
    for (kind, name, _alias), value in zip(keys, row[2:], strict=True):
        getattr(findings, kind)[name] = int(value)


def enforce_vote_history(
    rel: duckdb.DuckDBPyRelation,
    policy: StatePolicy,
    *,
    override: Override | None = None,
    count: bool = True,
    protected_ids: duckdb.DuckDBPyRelation | None = None,
) -> tuple[duckdb.DuckDBPyRelation, PolicyFindings]:
    """Apply ``policy`` to a vote-history relation.

    Where vote history is not public (or unknown) every row is withheld; the
    relation keeps its columns so downstream unions still work.  If
    ``protected_ids`` (a relation with ``state_voter_id`` of protected voters)
    is given, their history rows are withheld too.
    """
    allowed = policy.vote_history_public or (
        override is not None and "vote_history" in override.fields
    )
    _log_override(policy, override, "vote_history")
    findings = PolicyFindings(
        state=policy.state,
        dob_disclosure=policy.dob_disclosure,
        override_fields=sorted(override.fields) if override else [],
        override_legal_basis=override.legal_basis.strip() if override else None,
    )
    out = rel
    if protected_ids is not None:
        out = out.join(
            protected_ids.project("state_voter_id AS _pid"), "state_voter_id = _pid", how="anti"
        )
    if not allowed:
        out = rel.filter("false")
    if count:
        n_in = int(rel.aggregate("count(*)").fetchall()[0][0])
        n_out = int(out.aggregate("count(*)").fetchall()[0][0])
        findings.rows_in, findings.rows_out = n_in, n_out
        findings.protected_excluded = 0 if not allowed else n_in - n_out
        if not allowed:
            findings.dropped["vote_history"] = n_in
    return out, findings
