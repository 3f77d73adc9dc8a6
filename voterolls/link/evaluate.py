"""Accuracy against the synthetic truth: pairwise precision, recall, F1 by DOB granularity.

What is measured: **cross-state duplicate registrations** (two registrations
of one person in two states), the pairs list maintenance and the 2017
commission cared about.  A predicted pair is a pair in ``pairs.parquet`` with
``match_probability >= threshold`` and different states; a true pair is a
``cross_state`` row of ``truth/duplicate_pairs.parquet`` whose two
registrations are both in the workspace (protected voters are excluded at
ingest by law, so they cannot be found and are not counted as misses).

Pairs are split by the DOB the two sides carry (``dob_granularity``):

* ``full``  - full DOB on both sides;
* ``year``  - a birth year only on at least one side (and no side without DOB);
* ``none``  - no DOB at all on at least one side.

Beside the model: the Crosscheck rule (:mod:`voterolls.link.crosscheck`) on
the same registrations, the share of true pairs that were scored at all
(blocking recall at ``min_probability``), and a calibration table (predicted
probability vs the share that are true, over every written pair, in-state and
cross-state), overall and by DOB granularity class (``calibration_by_granularity``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from voterolls.errors import UserError
from voterolls.link.crosscheck import crosscheck_sql
from voterolls.sql import literal as _lit

GRANULARITY_CLASSES = ("full", "year", "none")

_CLASS_SQL = """CASE
    WHEN {l} = 'none' OR {r} = 'none' OR {l} IS NULL OR {r} IS NULL THEN 'none'
    WHEN {l} = 'year' OR {r} = 'year' THEN 'year'
    ELSE 'full' END"""

CALIBRATION_BINS = (0.0, 0.01, 0.1, 0.5, 0.9, 0.99, 1.0000001)


def granularity_class_sql(left: str, right: str) -> str:
    """SQL classifying a pair by the DOB granularity of its two sides."""
    return _CLASS_SQL.format(l=left, r=right)


@dataclass(frozen=True)
class Scores:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None if p is None or r is None else 0.0
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, Any]:
        rnd = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {
            "true_pairs": self.tp + self.fn,
            "predicted_pairs": self.tp + self.fp,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": rnd(self.precision),
            "recall": rnd(self.recall),
            "f1": rnd(self.f1),
        }


def _key(state: str, vid: str) -> str:
    return f"({state} || ':' || {vid})"


def _calibration_bin(name: str, pairs: int, expected: float, observed: int) -> dict[str, Any]:
    """One row of a calibration table: pairs in a probability bin, expected vs observed matches."""
    return {
        "bin": name,
        "pairs": int(pairs),
        "expected_true": round(float(expected), 2),
        "observed_true": int(observed),
        "observed_share": round(observed / pairs, 4) if pairs else None,
    }


def _pair_view(con: duckdb.DuckDBPyConnection, name: str, select_sql: str) -> None:
    """Normalise a pair relation to (a, b) with a < b, de-duplicated."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT DISTINCT least(x, y) AS a, greatest(x, y) AS b FROM (
            SELECT {_key("state_l", "state_voter_id_l")} AS x, {_key("state_r", "state_voter_id_r")} AS y
            FROM ({select_sql}))"""
    ).fetchall()


def _scores_by_class(
    con: duckdb.DuckDBPyConnection, predicted: str, truth: str
) -> dict[str, Scores]:
    rows = con.execute(
        f"""
        WITH u AS (
            SELECT coalesce(p.a, t.a) AS a, coalesce(p.b, t.b) AS b,
                   p.a IS NOT NULL AS pred, t.a IS NOT NULL AS true_
            FROM {predicted} p FULL OUTER JOIN {truth} t ON p.a = t.a AND p.b = t.b
        )
        SELECT {granularity_class_sql("ga.g", "gb.g")} AS cls,
               count(*) FILTER (WHERE pred AND true_), count(*) FILTER (WHERE pred AND NOT true_),
               count(*) FILTER (WHERE true_ AND NOT pred)
        FROM u JOIN _ev_gran ga ON ga.k = u.a JOIN _ev_gran gb ON gb.k = u.b
        GROUP BY cls
        """
    ).fetchall()
    out = {c: Scores(0, 0, 0) for c in GRANULARITY_CLASSES}
    for cls, tp, fp, fn in rows:
        out[cls] = Scores(int(tp), int(fp), int(fn))
    return out


def _total(scores: dict[str, Scores]) -> Scores:
    return Scores(*(sum(getattr(s, f) for s in scores.values()) for f in ("tp", "fp", "fn")))


def evaluate(
    con: duckdb.DuckDBPyConnection,
    truth_dir: str | Path,
    pairs_path: str | Path,
    *,
    threshold: float,
    source: str = "registrations",
) -> dict[str, Any]:
    """Evaluate ``pairs_path`` against ``truth_dir`` for the registrations in ``source``."""
    truth_file = Path(truth_dir) / "truth" / "duplicate_pairs.parquet"
    if not truth_file.is_file():
        alt = Path(truth_dir) / "duplicate_pairs.parquet"
        if alt.is_file():
            truth_file = alt
        else:
            raise UserError(
                "no truth/duplicate_pairs.parquet here (expected a `voterolls generate` output)",
                file=truth_dir,
            )
    pairs = Path(pairs_path)
    if not pairs.is_file():
        raise UserError("no pairs.parquet: run `voterolls link` first", file=pairs)

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _ev_gran AS SELECT {_key('state', 'state_voter_id')} AS k, "
        f"dob_granularity AS g FROM {source}"
    ).fetchall()
    n_regs = int(con.execute("SELECT count(*) FROM _ev_gran").fetchall()[0][0])

    _pair_view(
        con,
        "_ev_truth_all",
        f"SELECT * FROM read_parquet({_lit(truth_file)}) WHERE kind = 'cross_state'",
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _ev_truth AS SELECT t.* FROM _ev_truth_all t
           WHERE t.a IN (SELECT k FROM _ev_gran) AND t.b IN (SELECT k FROM _ev_gran)"""
    ).fetchall()
    n_truth_all = int(con.execute("SELECT count(*) FROM _ev_truth_all").fetchall()[0][0])
    n_truth = int(con.execute("SELECT count(*) FROM _ev_truth").fetchall()[0][0])

    _pair_view(
        con,
        "_ev_pred",
        f"SELECT * FROM read_parquet({_lit(pairs)}) WHERE match_probability >= {threshold!r} AND state_l <> state_r",
    )
    _pair_view(
        con, "_ev_scored", f"SELECT * FROM read_parquet({_lit(pairs)}) WHERE state_l <> state_r"
    )
    _pair_view(con, "_ev_cc", crosscheck_sql(source))

    model = _scores_by_class(con, "_ev_pred", "_ev_truth")
    cc = _scores_by_class(con, "_ev_cc", "_ev_truth")
    scored = _scores_by_class(con, "_ev_scored", "_ev_truth")

    # Calibration over all written pairs (in-state and cross-state truth).
    _pair_view(con, "_ev_truth_any", f"SELECT * FROM read_parquet({_lit(truth_file)})")
    bins = CALIBRATION_BINS
    case = " ".join(
        f"WHEN p.match_probability >= {lo!r} AND p.match_probability < {hi!r} THEN '{lo:g}-{min(hi, 1):g}'"
        for lo, hi in zip(bins[:-1], bins[1:], strict=True)
    )
    # Every scored pair with its probability, read once for both calibration tables.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _ev_prob AS
        SELECT least(x, y) AS a, greatest(x, y) AS b, match_probability FROM (
            SELECT {_key("state_l", "state_voter_id_l")} AS x, {_key("state_r", "state_voter_id_r")} AS y,
                   match_probability FROM read_parquet({_lit(pairs)}))"""
    ).fetchall()
    cal_rows = con.execute(
        f"""
        SELECT CASE {case} END AS bin, count(*), sum(match_probability),
               count(t.a) AS true_pairs, min(p.match_probability) AS lo
        FROM _ev_prob p LEFT JOIN _ev_truth_any t ON p.a = t.a AND p.b = t.b
        GROUP BY bin ORDER BY lo
        """
    ).fetchall()
    calibration = [_calibration_bin(b, k, s, tr) for b, k, s, tr, _lo in cal_rows]
    # The same table split by the pair's DOB granularity class: where the
    # over- or under-confidence comes from (name-only pairs, year pairs, ...).
    by_class_rows = con.execute(
        f"""
        SELECT {granularity_class_sql("ga.g", "gb.g")} AS cls, CASE {case} END AS bin, count(*),
               sum(match_probability), count(t.a), min(p.match_probability) AS lo
        FROM _ev_prob p LEFT JOIN _ev_truth_any t ON p.a = t.a AND p.b = t.b
        JOIN _ev_gran ga ON ga.k = p.a JOIN _ev_gran gb ON gb.k = p.b
        GROUP BY cls, bin ORDER BY cls, lo
        """
    ).fetchall()
    calibration_by_class: dict[str, list[dict[str, Any]]] = {c: [] for c in GRANULARITY_CLASSES}
    for cls, b, k, s, tr, _lo in by_class_rows:
        calibration_by_class[cls].append(_calibration_bin(b, k, s, tr))
    return {
        "threshold": threshold,
        "registrations": n_regs,
        "truth_cross_state_pairs": n_truth_all,
        "truth_pairs_in_workspace": n_truth,
        "model": {c: model[c].as_dict() for c in GRANULARITY_CLASSES}
        | {"all": _total(model).as_dict()},
        "crosscheck": {c: cc[c].as_dict() for c in GRANULARITY_CLASSES}
        | {"all": _total(cc).as_dict()},
        "scored_recall": {
            c: (round(scored[c].recall, 4) if scored[c].recall is not None else None)
            for c in GRANULARITY_CLASSES
        }
        | {"all": None if _total(scored).recall is None else round(_total(scored).recall, 4)},
        "calibration": calibration,
        "calibration_by_granularity": calibration_by_class,
    }


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return p
