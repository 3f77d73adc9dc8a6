"""``voterolls estimate``: the honest-statistics stage on the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from voterolls.stats.estimators import DEFAULT_ERROR_RATE


def _est(x: float | None) -> str:
    """A count estimate for display: the unbiased estimate can fall below zero; shown as 0*."""
    if x is None:
        return "-"
    return "0*" if x < 0 else f"{x:,.0f}"


def _ci(d: dict | None) -> str:
    if not d or d.get("estimate") is None:
        return "-"
    lo, hi = d["ci95"]
    return f"{lo:,.0f} - {hi:,.0f}"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _nat(n: dict | None) -> str:
    if not n:
        return "-"
    if n.get("national") is None:
        return n.get("label", "covered states only")
    return f"{_est(n['national'])} ({n['ci95'][0]:,.0f} - {n['ci95'][1]:,.0f}); {n['label']}"


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
    for scope, label in (
        ("cross_state", "duplicate registrations, cross-state"),
        ("in_state", "duplicate registrations, in-state"),
    ):
        e = res["duplicate_registrations"][scope]
        rn = e["rule_net_of_coincidences"]
        t.add_row(
            f"{label}: name+DOB rule net of coincidences",
            _num(rn.get("raw_rule_count")),
            _num(rn.get("expected_coincidences")),
            _est(rn["estimate"]),
            _ci(rn),
            "",
        )
        if "splink_sum_of_probabilities" in e:
            sp = e["splink_sum_of_probabilities"]
            t.add_row(
                f"{label}: sum of match probabilities", "", "", _est(sp["estimate"]), _ci(sp), ""
            )
            c = e["combined"]
            t.add_row(
                f"{label}: combined (headline)",
                _num(c.get("raw_rule_count")),
                _num(c.get("expected_coincidences")),
                _est(c["estimate"]),
                _ci(c),
                _nat(e.get("national")),
            )
        else:
            t.add_row(
                f"{label}: headline (no linkage output)",
                "",
                "",
                _est(rn["estimate"]),
                _ci(rn),
                _nat(e.get("national")),
            )
    dv = res["double_votes"]
    if dv.get("headline"):
        h = dv["headline"]
        t.add_row(
            f"possible double votes (vote-record error {res['error_rate']:.1%})",
            _num(h.get("raw_rule_count")),
            _num(h.get("expected_coincidences")),
            _est(h["estimate"]),
            _ci(h),
            _nat(dv.get("national")),
        )
        for s in dv["error_rate_sensitivity"]:
            t.add_row(
                f"  ... with vote-record error {s['error_rate']:.1%}",
                "",
                "",
                _est(s["estimate"]),
                _ci(s),
                "",
            )
    else:
        t.add_row("possible double votes", "", "", "-", "-", dv.get("note", ""))
    console.print(t)
    p = res.get("crosscheck_purge")
    if p:
        console.print(
            f"A purge on the name+DOB rule would remove {p['registrations_removed']:,} registrations, "
            f"{p['removed_registrations_used_to_vote']:,} of them used to vote; estimated legitimate votes "
            "blocked per double vote prevented: "
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
    console.print(
        "* the unbiased estimate is below zero (fewer matches than coincidences predict); shown as 0."
    )
    console.print(res["wording"], style="italic")


def register(app: typer.Typer) -> None:
    @app.command("estimate")
    def estimate_cmd(
        workspace: Path = typer.Option(
            Path("workspace"), "--workspace", "-w", help="workspace directory"
        ),
        error_rate: float = typer.Option(
            DEFAULT_ERROR_RATE,
            "--error-rate",
            help="share of vote records credited to the wrong registration",
        ),
        election: str = typer.Option(
            None, "--election", help="election date YYYY-MM-DD (default: latest general)"
        ),
    ) -> None:
        """Estimate duplicate registrations and double votes net of coincidences, with 95% intervals."""
        from voterolls.stats.api import estimate

        res = estimate(workspace, error_rate=error_rate, election=election)
        render(res, Console())
        typer.echo(f"wrote {workspace / 'estimates' / 'estimates.json'}")
