"""New York: vote history packed in the last field, entries separated by ``;`` (reading; the writer is ``voterolls.synth.native.ny``)."""

from __future__ import annotations

from voterolls.formats.engine import FilePlan
from voterolls.formats.history import code_sql, entries_sql, history_rows_sql
from voterolls.formats.spec import EmbeddedHistory
from voterolls.sql import literal as lit


def _entry_date(eh: EmbeddedHistory, entry: str) -> str:
    """The date of one history entry (NULL when it cannot be read)."""
    return (
        f"try_strptime(regexp_extract({entry}, {lit(eh.entry_pattern)}, 1), {lit(eh.date_format)})"
    )


def history_sql(plan: FilePlan, state: str) -> str:
    """Split the packed history field into VOTE_HISTORY rows (SQL text).

    Entries whose date cannot be read are skipped (VOTE_HISTORY needs a date);
    ``unreadable_history_issue`` names them in the registration's ``_issues``.
    """
    eh = plan.layout.embedded_history
    date = f"CAST({_entry_date(eh, 'e')} AS DATE)"
    native_type = f"regexp_extract(e, {lit(eh.entry_pattern)}, 2)"
    entries = f"string_split({plan.fld(plan.idx(eh.column))}, {lit(eh.separator)})"
    return history_rows_sql(
        state, entries_sql(plan, entries), where=["trim(e) <> ''", f"{date} IS NOT NULL"],
        election_date=date, election_desc="trim(e)",
        election_type=code_sql(plan.layout.codes[eh.type_codes], native_type, "other"),
    )  # fmt: skip


def unreadable_history_issue(plan: FilePlan) -> tuple[str, str]:
    eh = plan.layout.embedded_history
    k = plan.idx(eh.column)
    cond = (
        f"len(list_filter(string_split(coalesce({plan.fld(k)}, ''), {lit(eh.separator)}), "
        f"lambda e: trim(e) <> '' AND {_entry_date(eh, 'e')} IS NULL)) > 0"
    )
    return ("vote_history", cond)
