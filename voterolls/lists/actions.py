"""Recommended actions that respect the NVRA: the law, written as parameters.

Federal law (52 U.S.C. 20507, NVRA section 8) shapes what a list may say:

* a registrant may not be removed for a change of residence on the strength of
  a data match; the state must send a confirmation notice and wait (through
  two federal general elections without response or activity) before removal;
* systematic programs that remove ineligible voters must be completed no later
  than 90 days before a federal primary or general election (the "quiet
  period").

So no output of voterolls ever says "remove".  The strongest recommendation is
"send confirmation notice"; the weakest is "no action (probable different
person)".  Thresholds are explicit parameters whose defaults are documented in
docs/LIST_MAINTENANCE.md next to their expected false-positive counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

SEND_NOTICE = "send confirmation notice"
REVIEW = "review"
NO_ACTION = "no action (probable different person)"
HOLD = "hold: NVRA 90-day quiet period"

#: Every action a list may recommend.  "remove" is deliberately absent.
ACTIONS = (SEND_NOTICE, REVIEW, NO_ACTION, HOLD)

QUIET_PERIOD_DAYS = 90


def next_federal_general_election(after: dt.date) -> dt.date:
    """The first federal general election on or after ``after``.

    Federal general elections are held on the Tuesday after the first Monday
    of November in even-numbered years (2 U.S.C. 7).
    """
    year = after.year if after.year % 2 == 0 else after.year + 1
    while True:
        nov1 = dt.date(year, 11, 1)
        first_monday = nov1 + dt.timedelta(days=(0 - nov1.weekday()) % 7)
        election = first_monday + dt.timedelta(days=1)
        if election >= after:
            return election
        year += 2


@dataclass(frozen=True)
class ActionPolicy:
    """Thresholds and dates that turn a match probability into an action.

    ``notice_threshold``: at or above, a residence-based match recommends a
    confirmation notice.  ``review_threshold``: at or above (and below the
    notice threshold) a person should look at the evidence.  Below it the row
    is kept, labelled "no action", so staff can see what was *not* flagged.
    """

    notice_threshold: float = 0.95
    review_threshold: float = 0.50
    as_of: dt.date | None = None
    federal_election: dt.date | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.review_threshold <= self.notice_threshold <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= review <= notice <= 1")

    @property
    def today(self) -> dt.date:
        return self.as_of or dt.date.today()

    @property
    def election(self) -> dt.date:
        return self.federal_election or next_federal_general_election(self.today)

    @property
    def in_quiet_period(self) -> bool:
        """True inside the 90 days before the federal election (NVRA 8(c)(2)(A))."""
        start = self.election - dt.timedelta(days=QUIET_PERIOD_DAYS)
        return start <= self.today <= self.election

    @property
    def hold_reason(self) -> str | None:
        if not self.in_quiet_period:
            return None
        return (
            f"{self.today.isoformat()} is within {QUIET_PERIOD_DAYS} days of the federal election on "
            f"{self.election.isoformat()}: NVRA section 8(c)(2)(A) forbids systematic removal programs "
            "in this period, so residence-based rows are held; review them after the election."
        )

    def action_sql(self, probability: str, *, residence_based: bool) -> str:
        """A DuckDB CASE expression giving the action for each row."""
        notice = SEND_NOTICE if residence_based else REVIEW
        if residence_based and self.in_quiet_period:
            upper = HOLD
        else:
            upper = notice
        mid = HOLD if (residence_based and self.in_quiet_period) else REVIEW
        return (
            f"CASE WHEN {probability} >= {self.notice_threshold!r} THEN '{upper}' "
            f"WHEN {probability} >= {self.review_threshold!r} THEN '{mid}' "
            f"ELSE '{NO_ACTION}' END"
        )


@dataclass(frozen=True)
class NoticeWindow:
    """When a confirmation notice may go out and when removal could first follow, per NVRA 8.

    ``notice_from`` .. ``notice_by``: the days a notice can be sent as part of a
    systematic program (it must end before the 90-day quiet period of the next
    federal general election, 8(c)(2)(A); a federal *primary* has its own quiet
    period, set by the state's primary date and not modelled here).
    ``earliest_removal``: the day after the second federal general election
    following a notice sent on ``notice_from`` - the registrant may be removed
    only if the notice went unanswered and they did not vote or appear through
    that election (8(d)(1)(B)).  Dates only: nothing here recommends removal.
    """

    notice_from: dt.date
    notice_by: dt.date
    earliest_removal: dt.date


def _elections_after(day: dt.date, n: int) -> list[dt.date]:
    """The next ``n`` federal general elections strictly after ``day``."""
    out = []
    for _ in range(n):
        day = next_federal_general_election(day + dt.timedelta(days=1))
        out.append(day)
    return out


def notice_window(policy: ActionPolicy) -> NoticeWindow:
    """The window for a row whose action is :data:`SEND_NOTICE` (or :data:`HOLD`, after the election).

    Outside the quiet period the notice can go out from ``policy.today`` until
    the day before the quiet period.  Inside it (rows held), from the day after
    the election until the day before the next election's quiet period.
    """
    quiet = dt.timedelta(days=QUIET_PERIOD_DAYS)
    if policy.in_quiet_period:
        start = policy.election + dt.timedelta(days=1)
        next_election = _elections_after(policy.election, 1)[0]
    else:
        start, next_election = policy.today, policy.election
    second = _elections_after(start, 2)[1]
    return NoticeWindow(
        notice_from=start,
        notice_by=next_election - quiet - dt.timedelta(days=1),
        earliest_removal=second + dt.timedelta(days=1),
    )
