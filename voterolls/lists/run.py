"""Assemble every list for one state from a workspace (the CLI and the service call this)."""

from __future__ import annotations

from pathlib import Path

from voterolls.errors import UserError
from voterolls.lists.actions import ActionPolicy
from voterolls.lists.build import (
    ListSummary,
    movers_and_duplicates,
    pair_key,
    require_linkage,
    write_summary,
)
from voterolls.lists.evidence import levels_from_model
from voterolls.log import get_logger
from voterolls.schema import JURISDICTIONS
from voterolls.sql import literal

log = get_logger(__name__)


def build_lists(
    workspace,
    state: str,
    out: Path,
    policy: ActionPolicy | None = None,
    external: list[Path] | None = None,
    external_format: str | None = None,
) -> list[ListSummary]:
    """Write cross-state movers, in-state duplicates (and external-list matches) for ``state``."""
    state = state.upper()
    if state not in JURISDICTIONS:
        raise UserError(f"unknown state code {state!r}; expected one of the 50 states or DC")
    policy = policy or ActionPolicy()
    link_dir = workspace.paths.link.dir
    pairs = require_linkage(link_dir)
    model = workspace.paths.link.model
    levels = levels_from_model(model) if model.exists() else []
    out.mkdir(parents=True, exist_ok=True)
    con = workspace.connect(read_only=True)
    try:
        present = {r[0] for r in con.execute("SELECT DISTINCT state FROM registrations").fetchall()}
        if state not in present:
            raise UserError(f"{state} has no ingested registrations in this workspace", file=workspace.path)
        summaries = movers_and_duplicates(
            con, state, f"read_parquet({literal(pairs)})", out, policy, levels, key=pair_key(link_dir)
        )
        if external:
            from voterolls.lists.external import match_external

            summaries.append(match_external(con, workspace, state, external, external_format, out, policy))
    finally:
        con.close()
    from voterolls.freshness import check

    link = check(workspace, "linkage")
    write_summary(out, state, policy, summaries, built_from=link.built_from, stale=link.message() or None)
    log.info("lists for %s: %s", state, {s.name: s.rows for s in summaries})
    return summaries
