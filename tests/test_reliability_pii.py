"""No personal data where it does not belong: logs, errors, reports, analyst answers, side files.

A small synthetic nation goes through the documented commands
(generate -> ingest-dir -> uniformity -> link -> estimate -> report -> lists)
with ``VOTEROLLS_LOG=DEBUG``; a few mistakes are made on purpose to collect
error messages; the service answers its analyst, auditor and state-summary
endpoints.  Everything captured (stdout, stderr, log records, the report HTML
and JSON, manifests, quarantine and uniformity tables, model and estimates,
the audit log and submission records) is scanned for the population's

* full names (first + last, either order; only distinctive pairs, so common
  words in a report cannot be mistaken for a name),
* dates of birth (ISO ``YYYY-MM-DD``, ``MM/DD/YYYY`` and ``YYYYMMDD``),
* street addresses (number + street, three words or more),

and none may appear.  The registrations / vote-history Parquet files and the
list-maintenance files a state receives hold personal data by design and are
not scanned.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from reliability_helpers import PYTHON, ROOT

STATES = ["NC", "OH", "FL", "CO", "VT"]
PEOPLE = 3000
VOTEROLLS = str(Path(PYTHON).parent / "voterolls")


class PiiScanner:
    """Finds the synthetic population's names, DOBs and addresses in free text."""

    def __init__(self, regs: pa.Table, persons: pa.Table, innocent_words: set[str], not_dobs: set[str]) -> None:
        pairs: set[tuple[str, str]] = set()
        for t in (regs, persons):
            for first, last in zip(t["first_name"].to_pylist(), t["last_name"].to_pylist(), strict=True):
                if not first or not last:
                    continue
                f, la = first.upper().split()[0], last.upper().split()[-1]
                if len(f) >= 3 and len(la) >= 4 and f not in innocent_words and la not in innocent_words:
                    pairs.add((f, la))
        self.pairs = pairs
        dobs: set[str] = set()
        for t in (regs, persons):
            for d in t["dob"].to_pylist():
                if d is None:
                    continue
                for s in (d.isoformat(), d.strftime("%m/%d/%Y"), d.strftime("%Y%m%d")):
                    if s not in not_dobs:
                        dobs.add(s)
        self.dobs = dobs
        addrs: dict[int, set[str]] = {}
        for a in regs["residence_address"].to_pylist():
            if a and len(a) >= 10:
                words = re.findall(r"[A-Z0-9]+", a.upper())
                if len(words) >= 3 and words[0].isdigit():
                    addrs.setdefault(len(words), set()).add(" ".join(words))
        self.addrs = addrs

    def find(self, text: str) -> list[str]:
        up = text.upper()
        hits = []
        words = re.findall(r"[A-Z][A-Z'\-]*", up)
        for a, b in zip(words, words[1:], strict=False):
            if (a, b) in self.pairs or (b, a) in self.pairs:
                hits.append(f"name {a} {b}")
        for d in re.findall(r"\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4}|(?<![0-9A-Za-z])\d{8}(?![0-9A-Za-z])", text):
            if d in self.dobs:
                hits.append(f"dob {d}")
        toks = re.findall(r"[A-Z0-9]+", up)
        for n, addrs in self.addrs.items():
            for i in range(len(toks) - n + 1):
                if toks[i].isdigit():
                    g = " ".join(toks[i : i + n])
                    if g in addrs:
                        hits.append(f"address {g}")
        return hits


def _innocent_words() -> set[str]:
    """Words the product itself writes (templates, code): never taken as a person's name."""
    words: set[str] = set()
    for pattern in ("voterolls/**/*.py", "voterolls/**/*.html", "voterolls/**/*.j2", "voterolls/**/*.toml", "docs/*.md", "README.md"):
        for p in ROOT.glob(pattern):
            words |= set(re.findall(r"[A-Z][A-Z'\-]+", p.read_text(errors="replace").upper()))
    return words


def _table_text(path: Path) -> str:
    t = pq.read_table(path)
    return json.dumps(t.to_pylist(), default=str)


def _cli(args: list[str], env: dict) -> tuple[int, str]:
    p = subprocess.run([VOTEROLLS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout + "\n" + p.stderr


def _commands() -> set[str]:
    """The CLI's command names, from one ``voterolls --help``."""
    p = subprocess.run([VOTEROLLS, "--help"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    return set(re.findall(r"^\W*([a-z][a-z-]+)\s{2,}", p.stdout, flags=re.M))


@pytest.mark.slow
def test_no_personal_data_in_logs_errors_reports_or_answers(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="voterolls")
    from voterolls.synth import generate_nation, write_nation

    nation = generate_nation(PEOPLE, seed=13).restrict(STATES)
    syn = tmp_path / "synthetic"
    write_nation(nation, syn)
    regs = nation.registrations
    not_dobs = {str(d) for d in pc.unique(nation.vote_history["election_date"]).to_pylist()}
    today = dt.date.today()
    not_dobs |= {(today - dt.timedelta(days=k)).isoformat() for k in range(0, 3)}
    scanner = PiiScanner(regs, nation.truth["persons"], _innocent_words(), not_dobs)
    assert len(scanner.pairs) > 100 and len(scanner.dobs) > 100 and scanner.addrs
    # the scanner does find what it looks for (else a clean result means nothing)
    r0 = regs.slice(0, 1).to_pylist()[0]
    probe = f"x {r0['first_name']} {r0['last_name']} born {r0['dob']:%m/%d/%Y} at {r0['residence_address']} y"
    assert len(scanner.find(probe)) >= 2, scanner.find(probe)

    commands = _commands()
    if "ingest-dir" not in commands:
        pytest.skip("`voterolls ingest-dir` is not available yet")
    env = {**os.environ, "VOTEROLLS_LOG": "DEBUG", "COLUMNS": "200"}
    ws = tmp_path / "ws"
    captured: dict[str, str] = {}
    ran, skipped = [], []

    def step(label: str, args: list[str], *, must: bool = True, expect_fail: bool = False) -> None:
        if args[0] not in commands:
            skipped.append(label)
            return
        rc, out = _cli(args, env)
        captured[f"cli {label}"] = out
        ran.append(label)
        if expect_fail:
            assert rc != 0 and "Traceback" not in out, out[-2000:]
        elif must:
            assert rc == 0, f"{label} failed:\n{out[-3000:]}"

    step("ingest-dir", ["ingest-dir", str(syn), "-w", str(ws)])
    step("uniformity", ["uniformity", "-w", str(ws)])
    step("link", ["link", "-w", str(ws)])
    step("estimate", ["estimate", "-w", str(ws)])
    report = tmp_path / "report.html"
    report_json = tmp_path / "report.json"
    step("report", ["report", "-w", str(ws), "--out", str(report), "--json", str(report_json)])
    step("lists", ["lists", "NC", "-w", str(ws), "--out", str(tmp_path / "lists")])
    step("diff", ["diff", "NC", "-w", str(ws)], must=False)

    # mistakes on purpose: their messages are scanned too
    nc_files = sorted((syn / "states" / "NC").iterdir())
    voters = next(p for p in nc_files if p.name.startswith("ncvoter"))
    lines = voters.read_bytes().split(b"\n")
    for i in (2, 3, 5):  # break a few records so the quarantine path and its logs run
        lines[i] = lines[i].replace(b'"\t"', b"\t", 2) + b"\t\xff"
    damaged = tmp_path / "damaged" / voters.name
    damaged.parent.mkdir()
    damaged.write_bytes(b"\n".join(lines))
    step("ingest damaged", ["ingest", "NC", str(damaged), "-w", str(tmp_path / "ws_err")])
    step("ingest wrong state format", ["ingest", "FL", str(voters), "--format", "fl_extract", "-w", str(tmp_path / "ws_err")], expect_fail=True)
    headerless = tmp_path / "damaged" / "records_only.txt"
    headerless.write_bytes(b"\n".join(lines[1:]))
    step("ingest headerless", ["ingest", "NC", str(headerless), "-w", str(tmp_path / "ws_err")], expect_fail=True)
    step("ingest missing", ["ingest", "NC", str(tmp_path / "nope.txt"), "-w", str(tmp_path / "ws_err")], expect_fail=True)

    # side files that must hold counts and reasons only
    for p in sorted(ws.rglob("*")):
        if not p.is_file():
            continue
        if p.name in ("manifest.json", "estimates.json", "model.json") or p.suffix in (".log", ".md"):
            captured[f"file {p.relative_to(ws)}"] = p.read_text(errors="replace")
        elif p.name in ("quarantine.parquet", "uniformity.parquet", "clusters.parquet", "pairs.parquet"):
            captured[f"file {p.relative_to(ws)}"] = _table_text(p)
    for p in sorted((tmp_path / "ws_err").rglob("quarantine.parquet")):
        captured[f"file err {p.name}"] = _table_text(p)
    if report.exists():
        captured["report html"] = report.read_text(errors="replace")
    if report_json.exists():
        captured["report json"] = report_json.read_text(errors="replace")

    # the service's answers to analysts, auditors and a state's summaries
    try:
        from fastapi.testclient import TestClient

        from voterolls.service.accounts import AccountStore
        from voterolls.service.app import create_app
    except ImportError:
        skipped.append("service")
    else:
        store = AccountStore(ws / "service" / "accounts.json")
        tok = {n: store.create(n, r, s)[1] for n, r, s in [("nc-upload", "state", "NC"), ("analyst", "analyst", None), ("auditor", "auditor", None)]}
        client = TestClient(create_app(ws))
        nc = {"Authorization": f"Bearer {tok['nc-upload']}"}
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in [damaged, *[q for q in nc_files if "vhis" in q.name]]]
        r = client.post("/api/states/NC/submissions", headers=nc, files=files)
        captured["service upload"] = r.text
        if r.status_code == 202:
            sid = r.json()["submission"]
            client.app.state.service.jobs.wait(sid, timeout=300)
            captured["service job"] = client.get(f"/api/states/NC/jobs/{sid}", headers=nc).text
        for who, url in [
            ("analyst", "/api/aggregates"),
            ("analyst", "/analyst"),
            ("analyst", "/report"),
            ("nc-upload", "/api/states/NC/quarantine"),
            ("nc-upload", "/api/states/NC/submissions"),
            ("auditor", "/api/audit?limit=5000"),
            ("auditor", "/auditor?all=1"),
        ]:
            resp = client.get(url, headers={"Authorization": f"Bearer {tok[who]}"})
            assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])
            captured[f"service {who} {url}"] = resp.text
        for p in (ws / "service").rglob("*"):
            if p.is_file() and p.suffix in (".json", ".log") and p.name != "accounts.json":
                captured[f"service file {p.relative_to(ws)}"] = p.read_text(errors="replace")

    captured["log records"] = "\n".join(r.getMessage() for r in caplog.records)
    findings = {}
    for label, text in captured.items():
        hits = scanner.find(text)
        if hits:
            findings[label] = sorted(set(hits))[:8]
    assert "ingest-dir" in ran and sum(len(t) for t in captured.values()) > 10_000
    print(f"PII scan: {len(captured)} texts, {sum(len(t) for t in captured.values()):,} characters; "
          f"ran {ran}; not available {skipped}; {len(scanner.pairs)} names, {len(scanner.dobs)} DOB strings, "
          f"{sum(len(a) for a in scanner.addrs.values())} addresses searched")
    assert not findings, json.dumps(findings, indent=1)
