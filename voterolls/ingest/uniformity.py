"""The uniformity report: per state and field, does it exist, how complete, how plausible.

The 2017 request foundered partly on "a whole problem of uniformity and
consistency": one state sends full DOB, another a year, a third nothing; one
state's party codes map cleanly, another's do not.  A national figure is only
honest if it says, per state and field:

* ``present``: the state's format carries the field at all;
* ``policy``: ``allowed`` / ``generalised`` (DOB -> year) / ``withheld`` by the
  state's disclosure law / ``not_governed``;
* ``non_null_share``: how many stored rows have a value;
* ``plausible_share``: how many have a *believable* value (DOB 1900..today-17y
  and not a placeholder, birth year 1901..this year-17, ZIP five digits, phone
  ten digits, codes that the state's code map knows, names of letters);
* ``repaired`` / ``nulled`` / ``flagged``: values normalisation repaired or
  removed, and values the reader flagged (unreadable date, unknown code ...);
* ``unmapped`` and ``unmapped_codes``: codes the layout's map does not know,
  with their counts (codes only: never names, dates or addresses).

Ingest tallies the registration counts while it writes the rows
(:class:`RegistrationTally`); otherwise (a snapshot with parts carried over
from the last one, or no tally) they come from one aggregate query over the
written Parquet.  Both use the same tests.  With the issue counts gathered
while streaming they are stored as ``uniformity.parquet`` beside the
snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.normalize import dates
from voterolls.normalize.names import NORMAL_NAME
from voterolls.schema import VOCABULARIES
from voterolls.sql import literal as _lit

UNIFORMITY_SCHEMA = pa.schema(
    [
        ("state", pa.string()),
        ("snapshot_id", pa.string()),
        ("dataset", pa.string()),
        ("field", pa.string()),
        ("present", pa.bool_()),
        ("policy", pa.string()),
        ("rows", pa.int64()),
        ("non_null", pa.int64()),
        ("non_null_share", pa.float64()),
        ("plausible", pa.int64()),
        ("plausible_share", pa.float64()),
        ("repaired", pa.int64()),
        ("nulled", pa.int64()),
        ("flagged", pa.int64()),
        ("withheld_values", pa.int64()),
        ("unmapped", pa.int64()),
        ("unmapped_codes", pa.string()),
    ]
)

#: Registration fields reported (identity and provenance columns are always present).
REGISTRATION_FIELDS = (
    "county", "state_voter_id", "last_name", "first_name", "middle_name", "name_suffix",
    "first_name_canonical", "dob", "birth_year", "dob_granularity", "gender", "gender_code",
    "party", "party_code", "status", "status_code", "status_reason", "race", "race_code", "uocava",
    "registration_date", "residence_address", "residence_city", "residence_zip5", "phone", "email",
    "ssn4_token", "dl_token", "dob_token", "name_clk",
)  # fmt: skip
CODED = ("gender", "party", "status", "race", "uocava")
TOKENS = ("ssn4_token", "dl_token", "dob_token", "name_clk")
HISTORY_FIELDS = ("county", "election_date", "election_type", "election_desc", "vote_method", "vote_method_code", "party_ballot")
#: a plausible name: letters, words joined by one space or hyphen (RE2 syntax: DuckDB and Arrow)
NAME_PATTERN = NORMAL_NAME
_NAME_OK = "regexp_full_match({f}, '" + NAME_PATTERN + "')"


def _one_of(expr: str, values: list[str] | tuple[str, ...]) -> str:
    """``expr`` is one of ``values`` (NULL when ``expr`` is NULL or there are no values, as ``IN (NULL)``).

    An OR of equalities, not ``IN (...)`` or ``list_contains``: DuckDB turns
    both into a hash join, which does not keep rows in order, and these
    tests run inside ingest's ordered stream (:class:`RegistrationTally`).
    """
    if not values:
        return "NULL"
    return "(" + " OR ".join(f"{expr} = {_lit(v)}" for v in values) + ")"


def _code_keys(spec: Any, target: str) -> list[str] | None:
    """Upper-cased native codes the layout maps for ``target``; None when the file writes national values."""
    if spec is None:
        return None
    lay = spec.registrations
    cols = lay.by_target(target)
    if not cols:
        return None
    cm = lay.code_map(cols[0])
    if cm is None:
        return None
    return sorted({k.upper() for k in cm.map})


def _targets(spec: Any) -> set[str] | None:
    if spec is None:
        return None
    lay = spec.registrations
    t = {c.target for c in lay.columns if c.target}
    t |= set(lay.constants)
    if "dob" in t:
        full = [c for c in lay.by_target("dob") if (c.date_format or "") != "%Y"]
        if not full:
            t.discard("dob")
        t.add("birth_year")
    return t


def _present(field: str, targets: set[str] | None, non_null: int, sealed: bool) -> bool:
    if field in TOKENS:
        return sealed and non_null > 0
    if targets is None:
        return non_null > 0
    if field in ("state_voter_id", "dob_granularity"):
        return True
    if field == "first_name_canonical":
        return "first_name" in targets
    if field.endswith("_code") and field.removesuffix("_code") in CODED:
        return field.removesuffix("_code") in targets
    if field == "name_suffix":
        return "name_suffix" in targets or non_null > 0
    return field in targets


def _policy_label(field: str, allowed: Mapping[str, bool]) -> str:
    if field == "dob" and not allowed.get("dob", True):
        return "generalised" if allowed.get("birth_year") else "withheld"
    if field in ("birth_year", "phone", "email", "party", "party_code"):
        return "allowed" if allowed.get(field, True) else "withheld"
    if field == "dob":
        return "allowed"
    return "not_governed"


def _plausible(field: str, code_keys: dict[str, list[str] | None], unmapped: Mapping[str, str] | None = None) -> str:
    """The SQL test of a plausible value of ``field``.

    ``unmapped``: coded field -> a column already holding its :func:`_unmapped` test (else it is inlined).
    """
    f = f'"{field}"'
    if field == "dob":
        return dates.dob_plausible_sql(f)
    if field == "birth_year":
        return dates.birth_year_plausible_sql(f)
    if field == "registration_date":
        return f"({dates.registration_date_plausible_sql(f)} AND (dob IS NULL OR {f} >= dob))"
    if field == "residence_zip5":
        return f"regexp_full_match({f}, '[0-9]{{5}}')"
    if field == "phone":
        return f"regexp_full_match({f}, '[2-9][0-9]{{9}}')"
    if field == "email":
        return f"regexp_full_match({f}, '[^@ ]+@[^@ ]+\\.[^@ ]+')"
    if field in ("last_name", "first_name", "middle_name", "first_name_canonical"):
        return _NAME_OK.format(f=f)
    if field == "dob_granularity":
        return _one_of(f, ("full", "year"))
    coded = field.removesuffix("_code")
    if coded in CODED:
        flag = (unmapped or {}).get(coded) or _unmapped(coded, code_keys.get(coded))
        if field == coded:
            return f"({_one_of(f, VOCABULARIES[field])} AND NOT {flag})"
        return f"NOT {flag}"
    return f"{f} IS NOT NULL"


def _unmapped(field: str, keys: list[str] | None) -> str:
    if f"{field}_code" not in REGISTRATION_FIELDS:
        return "false"  # no original-code column (uocava): nothing to call unmapped
    code = f'"{field}_code"'
    if keys is None:
        return f'({code} IS NOT NULL AND "{field}" IS NULL)'
    return f"coalesce({code} IS NOT NULL AND NOT {_one_of(f'upper({code})', keys)}, false)"


def _issue_counts(issues: Mapping[str, int], field: str) -> tuple[int, int, int]:
    repaired = int(issues.get(f"{field}:repaired", 0))
    if field == "name_suffix":
        repaired += int(issues.get("name_suffix:split", 0))
    return repaired, int(issues.get(f"{field}:nulled", 0)), int(issues.get(field, 0))


def _registration_aggregates(code_keys: Mapping[str, list[str] | None]) -> list[str]:
    """count(*), then per field non-null and plausible counts, then per coded field the unmapped count."""
    aggs = ["count(*)"]
    for f in REGISTRATION_FIELDS:
        aggs.append(f'count("{f}")')
        aggs.append(f"count(*) FILTER (WHERE {_plausible(f, code_keys)})")
    for c in CODED:
        aggs.append(f"count(*) FILTER (WHERE {_unmapped(c, code_keys[c])})")
    return aggs


class RegistrationTally:
    """The report's registration counts, summed over the rows ingest writes, as it writes them.

    Every registration aggregate of the report is a count, so sums over the
    written batches equal one query over the written file.  Ingest's own
    query evaluates the report's tests as boolean columns (:meth:`columns`,
    added by its projection chain, where the values are still DuckDB's), and
    :meth:`add` sums them per written batch with Arrow; non-null counts are
    the columns' null counts.  That replaces a second pass that read and
    decompressed the whole snapshot again.  ``first_name_canonical`` is made
    after that query (a nickname lookup in Arrow), so its name test runs on
    the batch, with the same pattern.
    """

    def __init__(self, spec: Any) -> None:
        code_keys = {c: _code_keys(spec, c) for c in CODED}
        tests = {f: _plausible(f, code_keys) for f in REGISTRATION_FIELDS}
        self._queried = [f for f, t in tests.items() if t != f'"{f}" IS NOT NULL' and f != "first_name_canonical"]
        self._unmapped = [(f"__vr_unmapped_{c}", _unmapped(c, code_keys[c])) for c in CODED]
        # a coded field's tests read its unmapped flag, computed once (the column of the first projection)
        flags = {c: f"__vr_unmapped_{c}" for c in CODED}
        self._plausible = [(f"__vr_plausible_{f}", _plausible(f, code_keys, flags)) for f in self._queried]
        self._sql = self._unmapped + self._plausible
        self.sums: list[int] | None = None  # laid out as ``_registration_aggregates``
        self.complete = True  # False once a batch came without the test columns

    def project(self, rel: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
        """``rel`` (REGISTRATION_SCHEMA's columns) with the boolean test columns added, row for row."""
        def select(tests: list[tuple[str, str]]) -> str:
            return ", ".join(f"coalesce(({sql}), false) AS {name}" for name, sql in tests)

        return rel.project(f"*, {select(self._unmapped)}").project(f"*, {select(self._plausible)}")

    def add(self, batch: pa.Table) -> None:
        """Count one batch of written rows (REGISTRATION_SCHEMA's columns and the test columns of :meth:`project`)."""
        if not self.complete or any(name not in batch.column_names for name, _ in self._sql):
            self.complete, self.sums = False, None  # e.g. a reader that dropped them: query the file
            return
        n = batch.num_rows
        non_null = {f: n - batch.column(f).null_count for f in REGISTRATION_FIELDS}
        true = {name: int(pc.sum(batch.column(name)).as_py() or 0) for name, _ in self._sql}
        plausible = dict(non_null)
        plausible.update({f: true[f"__vr_plausible_{f}"] for f in self._queried})
        canonical = batch.column("first_name_canonical")
        plausible["first_name_canonical"] = int(
            pc.sum(pc.match_substring_regex(canonical, f"^(?:{NAME_PATTERN})$")).as_py() or 0
        )
        counts = [n]
        for f in REGISTRATION_FIELDS:
            counts += [non_null[f], plausible[f]]
        counts += [true[f"__vr_unmapped_{c}"] for c in CODED]
        self.sums = counts if self.sums is None else [a + b for a, b in zip(self.sums, counts, strict=True)]


def _pq(path: Path) -> str:
    return f"read_parquet({_lit(str(path))})"


def compute(
    registrations: Path,
    vote_history: Path,
    *,
    state: str,
    snapshot_id: str,
    spec: Any,
    policy: Any,
    override: Any = None,
    issues: Mapping[str, int] | None = None,
    policy_removed: Mapping[str, int] | None = None,
    sealed_tokens: bool = False,
    memory_limit: str = "1GB",
    temp_dir: Path | None = None,
    tally: RegistrationTally | None = None,
) -> pa.Table:
    """The uniformity table of one snapshot (see module docstring).

    ``tally``: the registration aggregates already summed over every row
    written to ``registrations`` (:class:`RegistrationTally`); without one
    they are computed from the file.
    """
    from voterolls.policy import allowed_columns

    issues = issues or {}
    policy_removed = policy_removed or {}
    allowed = allowed_columns(policy, override) if policy is not None else {}
    targets = _targets(spec)
    code_keys = {c: _code_keys(spec, c) for c in CODED}
    cfg: dict[str, Any] = {"memory_limit": memory_limit}
    if temp_dir is not None:
        cfg["temp_directory"] = str(temp_dir)
    con = duckdb.connect(config=cfg)
    con.execute("SET enable_progress_bar = false")
    try:
        if tally is not None and tally.complete and tally.sums is not None:
            row = tally.sums
        else:
            row = con.sql(f"SELECT {', '.join(_registration_aggregates(code_keys))} FROM {_pq(registrations)}").fetchall()[0]
        n = int(row[0])
        per = {f: (int(row[1 + 2 * i]), int(row[2 + 2 * i])) for i, f in enumerate(REGISTRATION_FIELDS)}
        base = 1 + 2 * len(REGISTRATION_FIELDS)
        unmapped = {c: int(row[base + i]) for i, c in enumerate(CODED)}
        top: dict[str, str | None] = {}
        for c in CODED:
            if not unmapped[c]:
                top[c] = None
                continue
            rows = con.sql(
                f'SELECT left("{c}_code", 16) AS code, count(*) AS n FROM {_pq(registrations)} '
                f"WHERE {_unmapped(c, code_keys[c])} GROUP BY 1 ORDER BY n DESC, code LIMIT 10"
            ).fetchall()
            top[c] = json.dumps({str(k): int(v) for k, v in rows})

        out: list[dict[str, Any]] = []
        for f in REGISTRATION_FIELDS:
            non_null, plausible = per[f]
            repaired, nulled, flagged = _issue_counts(issues, f)
            coded = f if f in CODED else None
            out.append(
                {
                    "state": state, "snapshot_id": snapshot_id, "dataset": "registrations", "field": f,
                    "present": _present(f, targets, non_null, sealed_tokens),
                    "policy": _policy_label(f, allowed) if allowed else "not_governed",
                    "rows": n, "non_null": non_null, "non_null_share": non_null / n if n else None,
                    "plausible": plausible, "plausible_share": plausible / n if n else None,
                    "repaired": repaired, "nulled": nulled, "flagged": flagged,
                    "withheld_values": int(policy_removed.get(f, 0)),
                    "unmapped": unmapped[coded] if coded else None,
                    "unmapped_codes": top.get(coded) if coded else None,
                }
            )  # fmt: skip

        vh_aggs = ["count(*)"]
        for f in HISTORY_FIELDS:
            vh_aggs.append(f'count("{f}")')
            if f == "election_date":
                cond = f'"{f}" BETWEEN DATE \'1900-01-01\' AND current_date'
            elif f in ("election_type", "vote_method"):
                col = f'"{f}"'
                cond = f"{_one_of(col, VOCABULARIES[f])} AND NOT {_one_of(col, ('unknown', 'other'))}"
            else:
                cond = f'"{f}" IS NOT NULL'
            vh_aggs.append(f"count(*) FILTER (WHERE {cond})")
        vrow = con.sql(f"SELECT {', '.join(vh_aggs)} FROM {_pq(vote_history)}").fetchall()[0]
        vn = int(vrow[0])
        vh_label = "allowed" if (policy is None or policy.vote_history_public or (override is not None and "vote_history" in override.fields)) else "withheld"
        for i, f in enumerate(HISTORY_FIELDS):
            nn, pl = int(vrow[1 + 2 * i]), int(vrow[2 + 2 * i])
            out.append(
                {
                    "state": state, "snapshot_id": snapshot_id, "dataset": "vote_history", "field": f,
                    "present": nn > 0, "policy": vh_label, "rows": vn, "non_null": nn,
                    "non_null_share": nn / vn if vn else None, "plausible": pl,
                    "plausible_share": pl / vn if vn else None, "repaired": 0, "nulled": 0, "flagged": 0,
                    "withheld_values": 0, "unmapped": None, "unmapped_codes": None,
                }
            )  # fmt: skip
    finally:
        con.close()
    return pa.Table.from_pylist(out, schema=UNIFORMITY_SCHEMA)
