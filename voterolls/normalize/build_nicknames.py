"""Build ``nicknames.csv`` (nickname -> canonical first name) from the ``nicknames`` package.

Run at build time, not at ingest: ``python -m voterolls.normalize.build_nicknames``.
The output is vendored beside this file so ingest needs neither the package
nor the network, and so the mapping cannot change under a workspace without a
visible diff.

Why a rule is needed: the source lists *relationships* (``robert has_nickname
bob``), so one nickname can belong to several formal names (RON: AARON,
CAMERON, RONALD, VERONICA).  ``first_name_canonical`` needs exactly one value,
chosen deterministically:

1. candidates are the formal names the nickname belongs to, minus those whose
   Census share of male bearers differs from the nickname's by more than 50
   points (ERIN is listed under AARON; they are not the same person's name);
2. the nickname keeps itself when it is at least as common a given name (Census
   2020 first-name counts, ``voterolls.data.first_names``) as its most common
   candidate: ELLEN stays ELLEN rather than becoming HELEN only if ELLEN is
   the commoner registered name;
3. otherwise the candidate with the highest score wins, score = Census count
   x support, where support is 1 plus the number of other candidates that are
   themselves nicknames of it (BILL belongs to ROBERT, WILL and WILLIAM; WILL
   is a nickname of WILLIAM, so WILLIAM scores twice its count and beats the
   commoner ROBERT, while BOBBY's ROGER, supported by RODGER, still loses to
   ROBERT);
4. ties: alphabetical;
5. chains are followed to a fixed point (BOBBIE -> BOBBY -> ROBERT).
"""

from __future__ import annotations

import csv
from pathlib import Path

import nicknames

from voterolls.data import first_names

OUT = Path(__file__).with_name("nicknames.csv")


def build() -> dict[str, str]:
    """Return the nickname -> canonical mapping (upper case), without self-mappings."""
    counts = dict(
        zip(
            first_names().column("name").to_pylist(),
            first_names().column("count").to_pylist(),
            strict=True,
        )
    )
    male = dict(
        zip(
            first_names().column("name").to_pylist(),
            first_names().column("pctmale").to_pylist(),
            strict=True,
        )
    )

    def same_sex(a: str, b: str) -> bool:
        if a not in male or b not in male:
            return True
        return abs(float(male[a]) - float(male[b])) <= 50.0

    candidates: dict[str, set[str]] = {}
    for t in nicknames.name_triplets():
        if t.relationship != "has_nickname":
            continue
        nick, formal = t.name2.upper(), t.name1.upper()
        if nick != formal and same_sex(nick, formal):
            candidates.setdefault(nick, set()).add(formal)

    step: dict[str, str] = {}
    for nick, formal in candidates.items():

        def rank(name: str, formal: set[str] = formal) -> tuple[int, int, str]:
            support = 1 + sum(1 for other in formal if name in candidates.get(other, ()))
            # highest count x support, then alphabetical (negated so min() works)
            return (-support * int(counts.get(name, 0)), 0, name)

        best = min(formal, key=rank)
        if counts.get(nick, 0) >= counts.get(best, 0) and counts.get(nick, 0) > 0:
            continue  # the "nickname" is the commoner given name: keep it
        step[nick] = best

    out: dict[str, str] = {}
    for nick in step:
        seen = {nick}
        cur = step[nick]
        while cur in step and step[cur] not in seen:
            seen.add(cur)
            cur = step[cur]
        if cur != nick:
            out[nick] = cur
    return dict(sorted(out.items()))


def main() -> None:
    mapping = build()
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["nickname", "canonical"])
        w.writerows(mapping.items())
    print(f"wrote {len(mapping)} nicknames to {OUT}")


if __name__ == "__main__":
    main()
