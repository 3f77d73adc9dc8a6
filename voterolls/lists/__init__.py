"""List-maintenance outputs: per-state evidence for review, never removals."""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "ACTIONS": "actions", "ActionPolicy": "actions", "next_federal_general_election": "actions",
    "ListSummary": "build", "movers_and_duplicates": "build", "build_lists": "run",
    "NoticeWindow": "actions", "notice_window": "actions", "write_xlsx": "xlsx",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"voterolls.lists.{_HOME[name]}"), name)
    raise AttributeError(name)


__all__ = [
    "ACTIONS", "ActionPolicy", "ListSummary", "NoticeWindow", "build_lists", "movers_and_duplicates",
    "next_federal_general_election", "notice_window", "write_xlsx",
]
