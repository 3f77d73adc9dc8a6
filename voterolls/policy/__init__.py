"""State law in code: per-state disclosure policy and its enforcement at ingest.

``get_policy(state)`` returns a :class:`StatePolicy`; ``enforce(rel, policy)``
applies it to a DuckDB relation before anything is stored.  See
docs/PRIVACY.md for what is stored, sealed and suppressed, and why.
"""

from voterolls.policy.enforce import (  # noqa: E402  (function shadows the submodule name on purpose)
    Override,
    PolicyFindings,
    allowed_columns,
    disallowed_columns,
    enforce,
    enforce_vote_history,
)
from voterolls.policy.model import (
    POLICY_FIELDS,
    RESTRICTIVE,
    StatePolicy,
    all_policies,
    get_policy,
)

__all__ = [
    "POLICY_FIELDS",
    "RESTRICTIVE",
    "StatePolicy",
    "all_policies",
    "get_policy",
    "enforce",
    "Override",
    "PolicyFindings",
    "allowed_columns",
    "disallowed_columns",
    "enforce_vote_history",
]
