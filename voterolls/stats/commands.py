"""``voterolls estimate``: the honest-statistics stage on the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from voterolls.stats.defaults import DEFAULT_ERROR_RATE


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _count(x: float | None) -> str:
    """An observed count as published anywhere: "<10" for 1..9 (``voterolls.privacy``)."""
    from voterolls.privacy import label, shown

    return "-" if x is None else label(shown(int(round(x))))


class _Cells:
    """Formats counts for the table and remembers which ones were shown truncated at zero.

    The estimators are unbiased, so a count net of coincidences can come out
    below zero (fewer matches than coincidences predict).  The table shows such
    a count as ``0*`` and a lower interval end as 0; the footnote gives the
    signed values, which ``estimates.json`` keeps (``estimate``, ``ci95_signed``).
    """

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._seen: set[int] = set()

    def est(self, d: dict | None, label: str, key: str = "estimate") -> str:
        if not d or d.get(key) is None:
            return "-"
        x = d[key]
        if x >= 0:
            return f"{x:,.0f}"
        if id(d) in self._seen:  # the same figure shown twice (e.g. as the headline)
            return "0*"
        self._seen.add(id(d))
        signed = d.get("ci95_signed")
        self.notes.append(
            f"{label}: {x:,.1f}"
            + (f" (signed 95% interval {signed[0]:,.1f} to {signed[1]:,.1f})" if signed else "")
        )
        return "0*"

    @staticmethod
    def ci(d: dict | None, key: str = "estimate") -> str:
        if not d or d.get(key) is None or not d.get("ci95"):
            return "-"
        lo, hi = d["ci95"]
        return f"{lo:,.0f} - {hi:,.0f}"

    def nat(self, n: dict | None, label: str) -> str:
        if not n:
            return "-"
        if n.get("national") is None:
            return n.get("label", "covered states only")
        return f"{self.est(n, label + ', national', 'national')} ({self.ci(n, 'national')}); {n['label']}"


_SOURCE = {"learnt": "learnt from the data", "override": "override", "default": "assumed default"}


def _row(
    t: Table, cells: _Cells, label: str, d: dict | None, national: str = "", raw: bool = True
) -> None:
    """One figure: rule matches and expected coincidences (if ``raw``), estimate, interval."""
    d = d or {}
    t.add_row(
        label,
        _count(d.get("raw_rule_count")) if raw else "",
        _num(d.get("expected_coincidences")) if raw else "",
        cells.est(d, label.strip(" .")),
        cells.ci(d),
        national,
    )


def render(res: dict, console: Console) -> None:
    """Print the estimates as one table plus the coverage lines beneath it."""
    t = Table(title=f"Estimates (election {res.get('election') or 'n/a'})", show_lines=False)
    for col in (
        "figure",
        "rule matches",
        "expected coincidences",
        "estimate",
        "95% interval",
        "national",
    ):
        t.add_column(col, justify="right" if col != "figure" else "left")
    cells = _Cells()
    for scope, label in (
        ("cross_state", "duplicate registrations, cross-state"),
        ("in_state", "duplicate registrations, in-state"),
    ):
        e = res["duplicate_registrations"][scope]
        rn = e["rule_net_of_coincidences"]
        _row(t, cells, f"{label}: name+DOB rule net of coincidences", rn)
        if "rule_net_middle_initial" in e:
            mi = e["rule_net_middle_initial"]
            _row(t, cells, f"{label}: rule net, middle initial at the year level", mi)
        nat = cells.nat(e.get("national"), label)
        if "splink_sum_of_probabilities" in e:
            sp = e["splink_sum_of_probabilities"]
            _row(t, cells, f"{label}: sum of match probabilities", sp, raw=False)
            _row(t, cells, f"{label}: combined (headline)", e["combined"], nat)
        else:
            head = e[e["headline"]]
            _row(t, cells, f"{label}: headline (no linkage output)", head, nat, raw=False)
    dv = res["double_votes"]
    if dv.get("headline"):
        label = f"possible double votes (vote-record error {res['error_rate']:.2%}, {_SOURCE[res.get('error_rate_source', 'override')]})"
        _row(t, cells, label, dv["headline"], cells.nat(dv.get("national"), label))
        for s in dv["error_rate_sensitivity"]:
            _row(t, cells, f"  ... with vote-record error {s['error_rate']:.1%}", s, raw=False)
    else:
        t.add_row("possible double votes", "", "", "-", "-", dv.get("note", ""))
    console.print(t)
    p = res.get("crosscheck_purge")
    if p:
        console.print(
            f"A purge on the name+DOB rule would remove {p['registrations_removed']:,} registrations, "
            f"{p['removed_registrations_used_to_vote']:,} of them recorded as voting; estimated "
            f"legitimate votes blocked: {max(p['legitimate_votes_blocked_estimate'], 0):,.0f}; per double "
            "vote prevented: "
            + (
                "no double vote is estimated to be prevented"
                if p["legitimate_votes_blocked_per_double_vote_prevented"] is None
                else f"{p['legitimate_votes_blocked_per_double_vote_prevented']}"
            )
        )
    c = res["coverage"]
    share = c.get("registrant_share_covered")
    console.print(
        f"Covers {len(c['states_covered'])} states"
        + (
            f" ({share:.1%} of national registrants, {c['registrants_measure']})"
            if share is not None
            else ""
        )
        + f"; missing: {', '.join(c['states_missing']) or 'none'}."
    )
    console.print(
        f"Birth year only: {', '.join(c['states_with_birth_year_only']) or 'none'}; "
        f"no DOB: {', '.join(c['states_without_dob']) or 'none'}; "
        f"vote history: {', '.join(c['vote_history_states']) or 'none'}."
    )
    rn = (dv.get("rule_net_of_coincidences_error_corrected") or {}) if dv.get("headline") else {}
    if rn.get("noise_floor"):
        parts = [
            f"{name}: floor {d['noise_floor']['sd']:,.1f}, reported se {d['se']:,.1f}"
            for name, d in [("all strata", rn), *rn.get("by_level", {}).items()]
            if d.get("noise_floor")
        ]
        console.print(
            "Double votes, noise floor (the smallest standard error any estimator on names, DOBs "
            "and vote marks can have) vs reported: " + "; ".join(parts) + ".",
            markup=False,
        )
    ve = res.get("vote_record_error")
    if ve:
        console.print(
            f"Vote-record error {ve['error_rate']:.2%} (se {ve['error_rate_se']:.2%}): {ve['source']}.",
            markup=False,
        )
    st = res.get("registration_status")
    if st and st["records_not_live"]:
        kinds = ", ".join(
            f"{k} {v['records']:,}" for k, v in st["records_by_status"].items() if not v["live"]
        )
        pairs = sum(
            m["rule_pairs_with_a_live_record"] for m in st["rule_matches_not_live_with_live"]
        )
        console.print(
            f"Not counted as registrations: {st['records_not_live']:,} records ({kinds}); "
            f"{pairs:,} name+DOB rule matches join one of them to a live registration.",
            markup=False,
        )
    if cells.notes:
        console.print(
            "* below zero before truncation (fewer rule matches than coincidences and vote-record "
            "errors predict; the estimator is unbiased, so this happens when the true count is small). "
            "A count cannot be negative: the table shows 0 and clips interval ends at 0. Signed values "
            "(kept in estimates.json as estimate / ci95_signed): " + "; ".join(cells.notes) + ".",
            markup=False,
        )
    console.print(res["wording"], style="italic")


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        workspace: Path = typer.Option(
            Path("workspace"), "--workspace", "-w", help="workspace directory"
        ),
        error_rate: float = typer.Option(
            None,
            "--error-rate",
            help="override: share of vote records credited to the wrong registration "
            f"(default: learnt from the data, else {DEFAULT_ERROR_RATE:.0%})",
        ),
        election: str = typer.Option(
            None, "--election", help="election date YYYY-MM-DD (default: latest general)"
        ),
    ) -> None:
        """Estimate duplicate registrations and double votes net of coincidences, with 95% intervals."""
        from voterolls.freshness import check, warn
        from voterolls.stats.api import estimate
        from voterolls.store import Workspace, WorkspacePaths

        paths = WorkspacePaths(Path(workspace))
        ws = Workspace(workspace, create=False) if paths.catalog.exists() else None
        if ws is not None:
            warn([check(ws, "linkage")])  # estimates built on stale pairs say so before they print
        res = estimate(workspace, error_rate=error_rate, election=election)
        if ws is not None:
            ws.record_built_from(paths.estimates_dir)
        render(res.as_json(), Console())
        typer.echo(f"wrote {paths.estimates}")
