"""Per-state list-maintenance outputs: evidence for review, never removals.

Each list is a DuckDB query over the linkage pairs and the workspace
registrations, written as CSV (for staff spreadsheets) and Parquet.  A row
carries the match probability, the evidence behind it, each side's DOB
granularity and a recommended action from :mod:`voterolls.lists.actions`.

What a state sees of *another* state's registration is decided once, in
docs/PRIVACY.md: the other state, the registration date there and its status
(``OTHER_STATE_COLUMNS``), plus the match evidence and a pair reference both
states see alike.  Never the other state's voter id, name, address or DOB.
An in-state duplicate shows the state's own second registration in full.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from voterolls.errors import UserError
from voterolls.lists.actions import ACTIONS, REVIEW, SEND_NOTICE, ActionPolicy
from voterolls.lists.evidence import ComparisonLevels, evidence_sql
from voterolls.lists.xlsx import write_xlsx
from voterolls.log import get_logger
from voterolls.policy import get_policy
from voterolls.sql import literal
from voterolls.store import LinkFiles

log = get_logger(__name__)

_GRANULARITY_RANK = {"none": 0, "year": 1, "full": 2}

#: This state's own columns in every list (the state is entitled to its own voters' records).
OWN_COLUMNS = (
    "state_voter_id",
    "county",
    "last_name",
    "first_name",
    "middle_name",
    "name_suffix",
    "birth_year",
    "dob",
    "residence_address",
    "residence_city",
    "residence_zip5",
    "registration_date",
    "status",
)


@dataclass
class ListSummary:
    """Counts for one list; what a supervisor reads before opening the file."""

    name: str
    rows: int
    by_action: dict[str, int]
    at_or_above_notice_threshold: int
    between_thresholds: int
    below_review_threshold: int
    expected_false_positives_at_notice: float
    expected_false_positives_at_review: float
    held_reason: str | None = None
    files: list[str] = field(default_factory=list)
    #: where the rows came from, for lists read from a file (the external list): counts only
    source: dict | None = None


def shared_dob_granularity(state_a: str, state_b: str) -> str:
    """The coarser DOB granularity both states' policies allow."""
    a = get_policy(state_a).dob_disclosure
    b = get_policy(state_b).dob_disclosure
    return a if _GRANULARITY_RANK[a] <= _GRANULARITY_RANK[b] else b


def _oriented_pairs_sql(pairs: str, gammas: list[str], *, cross_state: bool, key: str = "") -> str:
    """Pairs turned so the ``this_`` side is the list's state (given as $state)."""
    g_same = "".join(f', "{g}"' for g in gammas) + f", {pair_ref_sql(key)} AS pair_ref"
    cond = "state_r <> $state" if cross_state else "state_r = $state"
    cond_swapped = "state_l <> $state" if cross_state else "FALSE"
    return f"""
        SELECT state_l AS this_state, state_voter_id_l AS this_id,
               state_r AS other_state, state_voter_id_r AS other_id,
               match_probability, dob_granularity_l AS this_dob_granularity,
               dob_granularity_r AS other_dob_granularity{g_same}
        FROM {pairs} WHERE state_l = $state AND {cond}
        UNION ALL
        SELECT state_r, state_voter_id_r, state_l, state_voter_id_l,
               match_probability, dob_granularity_r, dob_granularity_l{g_same}
        FROM {pairs} WHERE state_r = $state AND {cond_swapped}
    """


#: What a state's list shows of *another* state's registration (docs/PRIVACY.md, "What a
#: state sees of another state's registration"): where and when the voter registered there
#: and whether that registration is live - what the state needs to send the NVRA
#: confirmation notice to the address it already holds - and nothing that identifies or
#: describes the person in the other state's records (no voter id, name, address or DOB).
OTHER_STATE_COLUMNS = ("other_state", "other_registration_date", "other_status")


def _other_state_columns() -> str:
    """The other registration's columns a member state receives (OTHER_STATE_COLUMNS)."""
    return "p.other_state, o.registration_date AS other_registration_date, o.status AS other_status"


def pair_ref_sql(key: str, cols: tuple[str, str, str, str] = ("state_l", "state_voter_id_l", "state_r", "state_voter_id_r")) -> str:
    """A reference both states of a pair see alike, that names neither registration.

    The first 16 hex digits of SHA-256 over a workspace secret and the pair's
    ids: two offices can talk about "pair 3fa2..." and the operator can find
    it in ``pairs.parquet``, but a state cannot turn it into the other
    state's voter id (the secret never leaves the workspace).
    """
    sl, il, sr, ir = cols
    return (
        f"substr(sha256('{key}' || '|' || {sl} || '|' || {il} || '|' || {sr} || '|' || {ir}), 1, 16)"
    )


def pair_key(link_dir: Path) -> str:
    """The workspace's pair-reference secret (``W/link/pair_ref.key``), made on first use."""
    import os
    import secrets

    path = Path(link_dir) / "pair_ref.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's key
    except FileExistsError:
        pass
    tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def write_list(
    con: duckdb.DuckDBPyConnection, rel_sql: str, params: dict, out: Path, name: str, policy: ActionPolicy | None = None
) -> list[str]:
    """Write the list as CSV and Parquet (and, given the policy for its NVRA dates, as .xlsx)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _list AS {rel_sql}", params)
    files = []
    ordered = "(SELECT * FROM _list ORDER BY match_probability DESC, this_state_voter_id)"
    for ext, opts in (("csv", "FORMAT csv, HEADER true"), ("parquet", "FORMAT parquet, COMPRESSION zstd")):
        path = out / f"{name}.{ext}"
        con.execute(f"COPY {ordered} TO {literal(path)} ({opts})")
        files.append(str(path))
    if policy is not None and (xlsx := write_xlsx(con, ordered, out / f"{name}.xlsx", policy)) is not None:
        files.append(str(xlsx))
    return files


def summarise_list(con: duckdb.DuckDBPyConnection, name: str, policy: ActionPolicy, files: list[str], held: str | None) -> ListSummary:
    row = con.execute(
        """
        SELECT count(*),
               count(*) FILTER (WHERE match_probability >= $n),
               count(*) FILTER (WHERE match_probability >= $r AND match_probability < $n),
               count(*) FILTER (WHERE match_probability < $r),
               coalesce(sum(1 - match_probability) FILTER (WHERE match_probability >= $n), 0),
               coalesce(sum(1 - match_probability) FILTER (WHERE match_probability >= $r), 0)
        FROM _list
        """,
        {"n": policy.notice_threshold, "r": policy.review_threshold},
    ).fetchone()
    by_action = dict(con.execute("SELECT recommended_action, count(*) FROM _list GROUP BY 1").fetchall())
    assert set(by_action) <= set(ACTIONS), "a list recommended an action outside the lawful set"
    return ListSummary(
        name=name,
        rows=row[0],
        by_action={a: by_action.get(a, 0) for a in ACTIONS},
        at_or_above_notice_threshold=row[1],
        between_thresholds=row[2],
        below_review_threshold=row[3],
        expected_false_positives_at_notice=round(float(row[4]), 2),
        expected_false_positives_at_review=round(float(row[5]), 2),
        held_reason=held,
        files=files,
    )


def movers_and_duplicates(
    con: duckdb.DuckDBPyConnection,
    state: str,
    pairs: str,
    out: Path,
    policy: ActionPolicy,
    levels: list[ComparisonLevels] | None = None,
    key: str = "",
) -> list[ListSummary]:
    """Write the cross-state movers and in-state duplicates lists for ``state``.

    ``con`` must have a ``registrations`` view (the workspace); ``pairs`` is a
    table or ``read_parquet(...)`` expression in the linkage-output contract.
    A cross-state match is a *mover* row for this state when the other
    state's registration is more recent (the voter probably moved away); when
    this state's registration is the more recent one the row belongs on the
    other state's list and is left out here; when either date is unknown the
    row is kept but can reach at most "review".
    """
    cols = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {pairs}").fetchall()}
    gammas = sorted(c for c in cols if c.startswith("gamma_"))
    ev = evidence_sql(levels or [], cols, prefix="p.")
    own = ", ".join(f"t.{c} AS this_{c}" for c in OWN_COLUMNS)
    summaries = []

    cross = _oriented_pairs_sql(pairs, gammas, cross_state=True, key=key)
    other_cols = _other_state_columns()
    residence_action = policy.action_sql("p.match_probability", residence_based=True)
    review_action = policy.action_sql("p.match_probability", residence_based=False)
    movers_sql = f"""
        SELECT p.pair_ref, {own}, p.match_probability, {ev} AS evidence,
               p.this_dob_granularity, p.other_dob_granularity, {other_cols},
               CASE WHEN t.registration_date IS NULL OR o.registration_date IS NULL
                    THEN 'unknown' ELSE 'other state newer' END AS which_is_newer,
               CASE WHEN t.registration_date IS NULL OR o.registration_date IS NULL
                    THEN (CASE WHEN {residence_action} = '{SEND_NOTICE}' THEN '{REVIEW}'
                               ELSE {residence_action} END)
                    ELSE {residence_action} END AS recommended_action
        FROM ({cross}) p
        JOIN registrations t ON t.state = p.this_state AND t.state_voter_id = p.this_id
        JOIN registrations o ON o.state = p.other_state AND o.state_voter_id = p.other_id
        WHERE t.registration_date IS NULL OR o.registration_date IS NULL
              OR o.registration_date > t.registration_date
    """
    files = write_list(con, movers_sql, {"state": state}, out, "cross_state_movers", policy)
    summaries.append(summarise_list(con, "cross_state_movers", policy, files, policy.hold_reason))

    within = _oriented_pairs_sql(pairs, gammas, cross_state=False, key=key)
    dup_sql = f"""
        SELECT p.pair_ref, {own}, p.match_probability, {ev} AS evidence,
               p.this_dob_granularity, p.other_dob_granularity,
               p.other_id AS other_voter_id, o.county AS other_county,
               o.registration_date AS other_registration_date, o.status AS other_status,
               {review_action} AS recommended_action
        FROM ({within}) p
        JOIN registrations t ON t.state = p.this_state AND t.state_voter_id = p.this_id
        JOIN registrations o ON o.state = p.other_state AND o.state_voter_id = p.other_id
    """
    files = write_list(con, dup_sql, {"state": state}, out, "in_state_duplicates", policy)
    summaries.append(summarise_list(con, "in_state_duplicates", policy, files, None))
    return summaries


def write_summary(
    out: Path,
    state: str,
    policy: ActionPolicy,
    summaries: list[ListSummary],
    *,
    built_from: dict[str, str] | None = None,
    stale: str | None = None,
) -> Path:
    """``summary.json``: counts per list, and the snapshots the linkage behind them was built from."""
    doc = {
        "state": state,
        "built_from_snapshots": built_from,
        "stale": stale,
        "as_of": policy.today.isoformat(),
        "federal_election": policy.election.isoformat(),
        "in_quiet_period": policy.in_quiet_period,
        "notice_threshold": policy.notice_threshold,
        "review_threshold": policy.review_threshold,
        "note": "Evidence for review. No row is a removal; NVRA notice-and-wait applies to every residence-based row.",
        "lists": [asdict(s) for s in summaries],
    }
    path = out / "summary.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def require_linkage(link_dir: Path) -> Path:
    pairs = LinkFiles(link_dir).pairs
    if not pairs.exists():
        raise UserError("no linkage output; run `voterolls link` first", file=pairs)
    return pairs
