"""Plaintext vs sealed-only linkage on one synthetic nation: F1 by DOB class and time.

    python bench/sealed_vs_plain.py --people 100000 [--data DIR] [--out bench/results/sealed_vs_plain_100k.json]
    python bench/sealed_vs_plain.py --table-only     # regenerate the docs/LINKAGE.md table

Steps (each timed): generate the nation (or reuse ``--data``); plaintext
``ingest-dir`` + ``link``; sealed-only: every state's native files sealed by
``voterolls.policy.sealed_only`` (the state side, ``voterolls seal
--sealed-only``), ingested with ``ingest_sealed`` and linked with
``sealed_only=True``; both evaluated against the generator's truth.  The
sealed-only workspace is then scanned for the generator's plaintext names and
dates (:func:`plaintext_hits`).  Prints one JSON document, writes it under
bench/results/ and regenerates the table between the ``sealed_vs_plain``
markers of docs/LINKAGE.md from every ``sealed_vs_plain_*.json`` there.

F1 is reported per DOB class at p >= 0.5 (:data:`THRESHOLDS` also keeps
0.9, the link's default threshold); wall and CPU seconds of each link; the
1-minute load average (what ``uptime`` shows) before and after each link,
because the machine is shared and wall times move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Match-probability thresholds F1 is evaluated at (the first is the headline).
THRESHOLDS = (0.5, 0.9)
DOC = ROOT / "docs" / "LINKAGE.md"
BEGIN, END = "<!-- sealed_vs_plain:begin -->", "<!-- sealed_vs_plain:end -->"
CLASSES = ("full", "year", "none", "all")


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def seal_generated(
    gen_dir: Path, deliveries: Path, key: bytes, states: list[str] | None = None
) -> dict[str, float]:
    """Seal every (or the named) state of a `voterolls generate` directory, sealed-only."""
    from voterolls.policy.sealed_only import SealedOnlyRequest, seal_sealed_only

    manifest = json.loads((gen_dir / "manifest.json").read_text())
    seconds: dict[str, float] = {}
    for state, info in sorted(manifest["states"].items()):
        if states and state not in states:
            continue
        t = time.perf_counter()
        files = tuple(gen_dir / f for f in info["files"])
        seal_sealed_only(
            SealedOnlyRequest(
                files=files, state=state, out_dir=deliveries / state, key=key, format=info["format"]
            )
        )
        seconds[state] = round(time.perf_counter() - t, 3)
    return seconds


def ingest_generated_sealed(ws_path: Path, deliveries: Path) -> int:
    from voterolls.ingest.sealed_only import ingest_sealed
    from voterolls.store import Workspace

    ws = Workspace(ws_path)
    return sum(
        ingest_sealed(ws, d.name, d).loaded for d in sorted(deliveries.iterdir()) if d.is_dir()
    )


def plaintext_values(gen_dir: Path) -> dict[str, set[str]]:
    """The generator's plaintext first / last names and dates of birth (from its truth)."""
    import pyarrow.parquet as pq

    p = pq.read_table(gen_dir / "truth" / "persons.parquet").to_pydict()
    dobs = {str(d) for d in p["dob"] if d is not None}
    return {
        "first_name": {n for n in p["first_name"] if n and len(n) >= 4},
        "last_name": {n for n in p["last_name"] if n and len(n) >= 4},
        "dob": dobs
        | {d.replace("-", "") for d in dobs}
        | {f"{d[5:7]}/{d[8:10]}/{d[:4]}" for d in dobs},
    }


#: Columns of public categories (a county named DOUGLAS, a vote method "Early"): a
#: name that is also one of their values is not evidence of a leak and is not searched.
PUBLIC_COLUMNS = (
    "county", "party", "party_code", "status", "status_code", "status_reason", "uocava", "gender",
    "gender_code", "election_desc", "election_type", "vote_method", "vote_method_code", "party_ballot",
)  # fmt: skip


def _public_words(con, root: Path, word) -> set[bytes]:  # noqa: ANN001
    """Words any sealed-only workspace holds whatever the data: public category values and
    the text of the sealed model definition (SQL and labels such as CAST, Dice)."""
    from voterolls.link.sealed import sealed_settings_creator
    from voterolls.sql import literal

    model = json.dumps(sealed_settings_creator().create_settings_dict("duckdb"))
    out: set[bytes] = set(word.findall(model.encode()))
    for path in root.rglob("*.parquet"):
        cols = [
            r[0]
            for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(path)})").fetchall()
        ]
        for c in (c for c in cols if c in PUBLIC_COLUMNS):
            for (v,) in con.execute(
                f'SELECT DISTINCT "{c}" FROM read_parquet({literal(path)})'
            ).fetchall():
                if v is not None:
                    out.update(word.findall(str(v).encode()))
    return out


def _text(v: object) -> str:
    """A value as the scan reads it: NULL as nothing and booleans as 1 / 0, so Python's
    ``None`` / ``True`` / ``False`` never pass for a surname NONE, TRUE or FALSE."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _duckdb_text(path: Path) -> bytes:
    """Every table of a DuckDB database file as text (names, then rows)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        parts = []
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            rel = con.execute(f'SELECT * FROM "{name}"')
            parts.append(name + "\t" + "\t".join(d[0] for d in rel.description))
            parts.extend("\t".join(_text(v) for v in r) for r in rel.fetchall())
    finally:
        con.close()
    return "\n".join(parts).encode()


def plaintext_hits(root: Path, values: dict[str, set[str]]) -> dict[str, list[str]]:
    """Files under ``root`` holding any of ``values`` as a whole value.

    Parquet files are read back (every column as text, plus the column
    names): their pages are compressed, so their raw bytes prove nothing
    either way (and random compressed bytes spell short names by chance).
    A DuckDB database (the catalog) is read back table by table, for the
    same reason.  Other files (JSON) are scanned as raw bytes.
    A value counts as a whole word, in upper or title case: a word is a
    maximal run of base64 / hex characters, so a token or an encoding is one
    long word and a name occurring by chance *inside* it does not count.
    Dates are compared with maximal runs of those characters plus ``-``.
    Names that are also words every sealed-only workspace holds
    (:func:`_public_words`) are not searched.  Returns field -> offending files.
    """
    import re

    import duckdb

    from voterolls.sql import literal

    word = re.compile(rb"[A-Za-z0-9+/=]+")
    date = re.compile(rb"[A-Za-z0-9+/=-]+")
    con = duckdb.connect()
    public = _public_words(con, root, word)
    forms = {
        f: {x.encode() for v in vals for x in (v.upper(), v.title())} - public
        for f, vals in values.items()
    }
    hits: dict[str, list[str]] = {f: [] for f in values}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            rel = con.execute(f"SELECT * FROM read_parquet({literal(path)})")
            names = "\t".join(d[0] for d in rel.description)
            rows = rel.fetchall()
            blob = (names + "\n" + "\n".join("\t".join(_text(v) for v in r) for r in rows)).encode()
        elif path.suffix == ".duckdb":
            blob = _duckdb_text(path)
        else:
            blob = path.read_bytes()
        words = set(word.findall(blob))
        dates = set(date.findall(blob))
        for f, vals in forms.items():
            if vals & (dates if f == "dob" else words):
                hits[f].append(str(path.relative_to(root)))
    con.close()
    return hits


def _link(ws_path: Path, gen_dir: Path, sealed: bool) -> dict[str, Any]:
    from voterolls.link.evaluate import evaluate
    from voterolls.link.run import link_registrations
    from voterolls.store import Workspace

    ws = Workspace(ws_path)
    con = ws.connect(read_only=False)
    try:
        load_before = _load1()
        t, c = time.perf_counter(), time.process_time()
        r = link_registrations(con, ws.path / "link", sealed_only=sealed, blocking_analysis=False)
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        load_after = _load1()
        evs = {
            th: evaluate(con, gen_dir, ws.path / "link" / "pairs.parquet", threshold=th)
            for th in THRESHOLDS
        }
    finally:
        con.close()
    out: dict[str, Any] = {
        "registrations": r.registrations,
        "candidate_pairs": r.candidate_pairs,
        "link_seconds": round(secs, 1),
        "link_cpu_seconds": round(cpu, 1),
        "load_1min_before_after": [load_before, load_after],
        "stage_seconds": r.seconds,
        "true_pairs": {c: evs[THRESHOLDS[0]]["model"][c]["true_pairs"] for c in CLASSES},
    }
    for th, ev in evs.items():
        m = ev["model"]
        out[f"at_{th}"] = {k: {c: m[c][k] for c in CLASSES} for k in ("f1", "precision", "recall")}
    out["f1"] = out[f"at_{THRESHOLDS[0]}"]["f1"]
    return out


def run(
    people: int, data: Path, work: Path, seed: int = 7, plain_from: Path | None = None
) -> dict[str, Any]:
    from voterolls.ingest.commands import ingest_directory
    from voterolls.store import Workspace

    res: dict[str, Any] = {"people": people, "seed": seed, "load_before": list(os.getloadavg())}
    if not (data / "manifest.json").is_file():
        import subprocess

        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "voterolls.cli", "generate", "-n", str(people), "--seed", str(seed), "-o", str(data)],
            check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        res["generate_seconds"] = round(time.perf_counter() - t, 1)
    key = os.urandom(32).hex().encode()
    if plain_from is not None:
        # the plaintext side of an earlier run on the same nation (its code did not change)
        old = json.loads(Path(plain_from).read_text())
        if (old["people"], old["seed"]) != (people, seed):
            raise SystemExit(f"{plain_from} is another nation (people, seed)")
        res["plain_ingest_seconds"] = old.get("plain_ingest_seconds")
        res["plain"] = old["plain"]
        res["plain_reused_from"] = str(Path(plain_from).name)
    else:
        t = time.perf_counter()
        ingest_directory(data, Workspace(work / "plain"))
        res["plain_ingest_seconds"] = round(time.perf_counter() - t, 1)
        res["plain"] = _link(work / "plain", data, sealed=False)
    t = time.perf_counter()
    seal_generated(data, work / "deliveries", key)
    res["seal_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    ingest_generated_sealed(work / "sealed", work / "deliveries")
    res["sealed_ingest_seconds"] = round(time.perf_counter() - t, 1)
    res["sealed"] = _link(work / "sealed", data, sealed=True)
    res["threshold"] = THRESHOLDS[0]
    res["f1_difference_sealed_minus_plain"] = {
        c: (None if res["sealed"]["f1"][c] is None or res["plain"]["f1"][c] is None
            else round(res["sealed"]["f1"][c] - res["plain"]["f1"][c], 4))
        for c in CLASSES
    }  # fmt: skip
    t = time.perf_counter()
    hits = plaintext_hits(work / "sealed", plaintext_values(data))
    res["plaintext_scan"] = {
        "seconds": round(time.perf_counter() - t, 1),
        "hits": {f: len(v) for f, v in hits.items()},
    }
    res["load_after"] = list(os.getloadavg())
    return res


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def doc_table(results: list[dict[str, Any]]) -> str:
    """The docs/LINKAGE.md table: one block of rows per measured size."""
    head = (
        "| people | linkage | registrations | F1 full DOB both sides | F1 year on a side "
        "| F1 no DOB on a side | F1 all | link wall s | link CPU s | load (1 min) before / after |\n"
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    rows = [head]
    for r in sorted(results, key=lambda r: r["people"]):
        for side in ("plain", "sealed"):
            x = r[side]
            lb, la = x.get("load_1min_before_after", [None, None])
            rows.append(
                f"| {r['people']:,} | {'plaintext' if side == 'plain' else 'sealed-only'} "
                f"| {x['registrations']:,} | "
                + " | ".join(_fmt(x["f1"][c]) for c in CLASSES)
                + f" | {x['link_seconds']} | {x.get('link_cpu_seconds')} | {lb} / {la} |"
            )
        d = r["f1_difference_sealed_minus_plain"]
        rows.append(
            f"| {r['people']:,} | sealed - plain | | "
            + " | ".join("n/a" if d[c] is None else f"{d[c]:+.4f}" for c in CLASSES)
            + " | | | |"
        )
    notes = [
        "",
        f"F1 at match probability >= {THRESHOLDS[0]} against the generator's truth, cross-state "
        "duplicate pairs by the DOB class of the pair. True pairs full / year / none: "
        + "; ".join(
            f"{r['people']:,}: "
            + " / ".join(f"{r['plain']['true_pairs'][c]:,}" for c in CLASSES[:3])
            for r in sorted(results, key=lambda r: r["people"])
        )
        + ". Plaintext-scan hits in the sealed-only workspace (first name, last name, DOB): "
        + "; ".join(
            f"{r['people']:,}: " + " / ".join(str(v) for v in r["plaintext_scan"]["hits"].values())
            for r in sorted(results, key=lambda r: r["people"])
        )
        + ". Regenerated by `python bench/sealed_vs_plain.py` from "
        "bench/results/sealed_vs_plain_*.json.",
    ]
    reused = [r for r in results if r.get("plain_reused_from")]
    if reused:
        notes.append(
            "The plaintext rows of "
            + ", ".join(f"{r['people']:,}" for r in sorted(reused, key=lambda r: r["people"]))
            + " come from the earlier run on the same nation (`--plain-from`; the plaintext code "
            "did not change between the runs), so their load column is that run's."
        )
    notes.append("")
    notes.append(
        "| people | stage | seconds |\n|---:|---|---:|\n"
        + "\n".join(
            f"| {r['people']:,} | {k} | {r.get(k)} |"
            for r in sorted(results, key=lambda r: r["people"])
            for k in ("seal_seconds", "sealed_ingest_seconds", "plain_ingest_seconds")
        )
    )
    return "\n".join(rows + notes)


def write_doc(doc: Path = DOC) -> None:
    """Replace the table between the markers of ``doc`` (append the block if they are missing)."""
    import re

    results = [
        json.loads(p.read_text())
        for p in sorted((ROOT / "bench" / "results").glob("sealed_vs_plain_*.json"))
    ]
    results = [r for r in results if "at_0.5" in r.get("sealed", {})]
    if not results:
        return
    block = f"{BEGIN}\n{doc_table(results)}\n{END}"
    text = doc.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--table-only", action="store_true", help="only regenerate the docs table")
    ap.add_argument(
        "--plain-from", type=Path, default=None,
        help="reuse the plaintext side of an earlier result JSON of the same nation",
    )  # fmt: skip
    a = ap.parse_args()
    if a.table_only:
        write_doc()
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sealed_bench_") as tmp:
        data = a.data or Path(tmp) / "data"
        work = a.work or Path(tmp) / "work"
        res = run(a.people, data, work, seed=a.seed, plain_from=a.plain_from)
    label = f"{a.people // 1000}k" if a.people < 1_000_000 else f"{a.people // 1_000_000}M"
    out = a.out or ROOT / "bench" / "results" / f"sealed_vs_plain_{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    write_doc()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
