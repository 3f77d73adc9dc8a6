"""Workspace-like registrations straight from a synthetic :class:`~voterolls.synth.nation.Nation`.

Tests and ``bench/link.py`` need what a workspace would hold after ingest,
without writing and re-reading 51 native files: the same steps, in the same
order, on the in-memory tables -

1. ``voterolls.normalize.clean_dates`` (placeholder DOBs out before the law);
2. ``voterolls.policy.enforce`` per state (protected voters excluded, DOB
   generalised to a birth year or dropped per the state's disclosure policy);
3. ``voterolls.normalize.normalize_registrations`` (names, nicknames, ZIP);
4. optionally the sealed tokens a state would send (``voterolls.seal``): the
   HMAC of the *true* full DOB and SSN4 from the state's internal identifiers,
   for the states in ``token_states`` (ERIC-style members).

The result is a DuckDB table in REGISTRATION_SCHEMA columns; the real pipeline
(``voterolls generate`` -> ``seal`` -> ``ingest``) produces the same from files.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from voterolls.schema import REGISTRATION_SCHEMA

#: Key used for synthetic sealing in tests and benchmarks (never a real key).
SYNTHETIC_KEY = b"voterolls-synthetic-test-key-not-secret-0123456789"


def sealed_tokens(identifiers: pa.Table, key: bytes = SYNTHETIC_KEY) -> pa.Table:
    """state, state_voter_id, dob_token, ssn4_token from a Nation's identifiers table."""
    from voterolls.seal import normalise_dob, normalise_ssn4, tokens

    dob = normalise_dob(pc.cast(identifiers["dob"], pa.string()).combine_chunks())
    ssn4 = normalise_ssn4(identifiers["ssn4"].combine_chunks())
    return pa.table(
        {
            "state": identifiers["state"],
            "state_voter_id": identifiers["state_voter_id"],
            "dob_token": tokens(dob, key, "dob"),
            "ssn4_token": tokens(ssn4, key, "ssn4"),
        }
    )


def load_nation_registrations(
    con: duckdb.DuckDBPyConnection,
    nation,
    *,
    target: str = "registrations",
    token_states: Iterable[str] | None = None,
    key: bytes = SYNTHETIC_KEY,
) -> int:
    """Create table ``target`` with lawful, normalised registrations of ``nation``.

    ``token_states``: states that send sealed ``dob_token`` / ``ssn4_token``
    (None = none).  Returns the row count.
    """
    from voterolls.normalize import clean_dates, normalize_registrations
    from voterolls.policy import get_policy
    from voterolls.policy.enforce import enforce

    con.execute("SET lambda_syntax='ENABLE_SINGLE_ARROW'")
    regs = nation.registrations
    keep = [c for c in regs.column_names if c in REGISTRATION_SCHEMA.names or c == "protected"]
    con.register("_nation_regs", regs.select(keep))
    token_states = sorted(set(token_states or ()))
    if token_states:
        tok = sealed_tokens(nation.identifiers, key)
        con.register("_nation_tokens", tok)
        in_list = ", ".join(f"'{s}'" for s in token_states)
        drop = "dob_token, ssn4_token"
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW _nation_src AS
            SELECT r.* EXCLUDE ({drop}),
                   CASE WHEN r.state IN ({in_list}) THEN t.dob_token END AS dob_token,
                   CASE WHEN r.state IN ({in_list}) THEN t.ssn4_token END AS ssn4_token
            FROM _nation_regs r LEFT JOIN _nation_tokens t USING (state, state_voter_id)"""
        )
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW _nation_src AS SELECT * FROM _nation_regs")
    # The policy decides per state; for linkage only the DOB disclosure and the
    # protected exclusion matter, so states are grouped by disclosure and each
    # group goes through the real ``enforce`` once (3 calls, not 51: building
    # 51 lazy pipelines costs more than linking a small test population).
    groups: dict[str, list[str]] = {}
    states = [
        r[0] for r in con.execute("SELECT DISTINCT state FROM _nation_src ORDER BY 1").fetchall()
    ]
    for st in states:
        groups.setdefault(get_policy(st).dob_disclosure, []).append(st)
    cleaned = clean_dates(con.sql("SELECT * FROM _nation_src"))
    cleaned.create_view("_nation_clean", replace=True)
    parts = []
    for i, (_disclosure, members) in enumerate(sorted(groups.items())):
        in_list = ", ".join(f"'{s}'" for s in members)
        rel = con.sql(f"SELECT * FROM _nation_clean WHERE state IN ({in_list})")
        rel, _findings = enforce(rel, get_policy(members[0]), count=False)
        name = f"_nation_part_{i}"
        rel.create_view(name, replace=True)
        parts.append(name)
    cols0 = ", ".join(f'"{c}"' for c in REGISTRATION_SCHEMA.names)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _nation_lawful AS "
        + " UNION ALL ".join(f"SELECT {cols0} FROM {p}" for p in parts)
    )
    normalize_registrations(con, con.sql("SELECT * FROM _nation_lawful")).create_view(
        "_nation_norm", replace=True
    )
    parts = ["_nation_norm"]
    cols = ", ".join(f'"{c}"' for c in REGISTRATION_SCHEMA.names)
    union = " UNION ALL ".join(f"SELECT {cols} FROM {p}" for p in parts)
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {union}").fetchall()
    return int(con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0])
