"""Live registrations and the records a state keeps beside them.

Duplicates and double votes rest on live registrations only
(:data:`voterolls.schema.LIVE_STATUSES`): a cancelled or denied record next to
an active one is the state's list maintenance at work, not a second
registration.  This module reports those records apart: how many there are
per status, how many of them were recorded voting, and how many name + DOB
rule matches join one of them to a live registration (what a naive count
would have called duplicates).  Counts only, never a name or an id.
"""

from __future__ import annotations

import duckdb

from voterolls.schema import LIVE_STATUSES

#: The rule's agreement, as in the estimators: first + last + birth year, and the
#: full DOB where both records carry one.
_RULE = """n.first_name = l.first_name AND n.last_name = l.last_name AND n.birth_year = l.birth_year
           AND (n.dob = l.dob OR n.dob_granularity <> 'full' OR l.dob_granularity <> 'full')"""


def status_summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Records per status (live or not), recorded votes on them, and rule matches
    between a record that is not live and a live registration (``_vr_all``)."""
    per_status = {
        s: {"records": int(n), "recorded_voting": int(v), "live": bool(live)}
        for s, live, n, v in con.execute(
            "SELECT status, live, count(*), count(*) FILTER (WHERE voted) FROM _vr_all "
            "GROUP BY 1, 2 ORDER BY 1"
        ).fetchall()
    }
    matches = [
        {
            "status": s,
            "scope": "in_state" if same else "cross_state",
            "rule_pairs_with_a_live_record": int(k),
        }
        for s, same, k in con.execute(
            f"""
            SELECT n.status, n.state = l.state, count(*)
            FROM (SELECT * FROM _vr_all WHERE NOT live) n
            JOIN (SELECT * FROM _vr_all WHERE live) l ON {_RULE}
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ).fetchall()
    ]
    not_live = sum(v["records"] for v in per_status.values() if not v["live"])
    return {
        "live_statuses": list(LIVE_STATUSES),
        "rule": "duplicates and double votes count live registrations only (status active, inactive "
        "or not recorded); cancelled, denied and pending records are reported here and still scored "
        "by linkage, so lists can show them as evidence",
        "records_by_status": per_status,
        "records_not_live": not_live,
        "rule_matches_not_live_with_live": matches,
    }
