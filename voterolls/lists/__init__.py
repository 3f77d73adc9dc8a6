"""List-maintenance outputs: per-state evidence for review, never removals."""

from voterolls.lists.actions import ACTIONS, ActionPolicy, next_federal_general_election
from voterolls.lists.build import ListSummary, movers_and_duplicates
from voterolls.lists.run import build_lists

__all__ = ["ACTIONS", "ActionPolicy", "ListSummary", "build_lists", "movers_and_duplicates", "next_federal_general_election"]
