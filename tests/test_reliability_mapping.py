"""Property-based tests of the declarative mapping engine (a user's own ``.toml`` layout).

Hypothesis writes a random mapping (delimiter, quoting, header, encoding,
columns with random national targets, date formats, code maps, multi-part
address and phone) and a random file for it: well-formed rows, rows with
embedded quotes and delimiters, wrong field counts, values in a foreign
encoding, noise lines.  ``scan`` with that mapping must refuse with a
``UserError`` or read with every line loaded or quarantined (the same
invariants as the native readers, ``reliability_helpers.check_scan``).  A
broken mapping file is always a ``UserError`` naming the file, never a crash.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import duckdb
from hypothesis import given
from hypothesis import strategies as st
from reliability_helpers import check_scan, fuzz_settings

from voterolls.errors import UserError
from voterolls.formats import load_user_format, scan

DATE_FORMATS = ["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%d.%m.%Y"]
SIMPLE_TARGETS = ["last_name", "first_name", "middle_name", "county", "residence_city", "gender", "status", "email"]
FIELD_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r\n\x00")


@st.composite
def mapping(draw):
    delim = draw(st.sampled_from([",", "\t", "|", ";"]))
    quoting = draw(st.sampled_from(["minimal", "none", "all"]))
    header = draw(st.booleans())
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    cols: list[dict] = []
    if draw(st.integers(0, 9)) > 0:
        cols.append({"name": "voter_id", "target": "state_voter_id"})
    for t in draw(st.lists(st.sampled_from(SIMPLE_TARGETS), unique=True, max_size=5)):
        cols.append({"name": f"c_{t}", "target": t})
    if draw(st.booleans()):
        cols.append({"name": "birth", "target": "dob", "date_format": draw(st.sampled_from([*DATE_FORMATS, "%Y"]))})
    if draw(st.booleans()):
        cols.append({"name": "regdate", "target": "registration_date", "date_format": draw(st.sampled_from(DATE_FORMATS))})
    if draw(st.booleans()):
        cols.append({"name": "zip", "target": "residence_zip5"})
    if draw(st.booleans()):
        cols += [{"name": "house", "target": "residence_address", "part": "number"},
                 {"name": "street", "target": "residence_address", "part": "street"}]  # fmt: skip
    if draw(st.booleans()):
        cols += [{"name": "area", "target": "phone", "part": "area"}, {"name": "local", "target": "phone", "part": "local"}]
    party = draw(st.booleans())
    if party:
        cols.append({"name": "pty", "target": "party"})
    for k in range(draw(st.integers(0, 3))):
        cols.append({"name": f"extra{k}"})
    order = draw(st.permutations(range(len(cols)))) if cols else []
    cols = [cols[i] for i in order]
    if not cols:
        cols = [{"name": "only"}]
    return {"delimiter": delim, "quoting": quoting, "header": header, "encoding": encoding, "columns": cols, "party_codes": party}


def _toml(m: dict) -> str:
    def col(c: dict) -> str:
        return "{" + ", ".join(f'{k} = "{v}"' for k, v in c.items()) + "}"

    delim = {"\t": "\\t"}.get(m["delimiter"], m["delimiter"])
    lines = [
        'description = "fuzzed user mapping"',
        "[registrations]",
        f'delimiter = "{delim}"',
        f'quoting = "{m["quoting"]}"',
        f"header = {str(m['header']).lower()}",
        f'encoding = "{m["encoding"]}"',
        'filename = "voters.txt"',
        "columns = [" + ", ".join(col(c) for c in m["columns"]) + "]",
    ]
    if m["party_codes"]:
        lines += ["[registrations.codes.party]", 'map = { D = "DEM", R = "REP", U = "UNA" }', 'default = "OTH"']
    return "\n".join(lines) + "\n"


def _value(draw, c: dict) -> str:
    t = c.get("target")
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(FIELD_CHARS, max_size=15))  # anything, quotes and delimiters included
    if t in ("dob", "registration_date"):
        d = draw(st.dates(dt.date(1800, 1, 1), dt.date(2150, 12, 31)))
        return d.strftime(c["date_format"]) if kind > 1 else draw(st.sampled_from(["02/30/1980", "0000-00-00", "1980", "x"]))
    if t == "residence_zip5":
        return draw(st.sampled_from(["27601", "2760", "27601-1234", "27601.0", "276011234", "ABCDE", ""]))
    if t == "party":
        return draw(st.sampled_from(["D", "R", "U", "d", "X", ""]))
    if t == "gender":
        return draw(st.sampled_from(["M", "F", "U", "m", "Q", ""]))
    if t == "state_voter_id":
        return draw(st.sampled_from(["", " ", "A1", "123456"])) if kind == 1 else f"ID{draw(st.integers(0, 10**6))}"
    return draw(st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=12))


def _render(fields: list[str], m: dict) -> str:
    d, q = m["delimiter"], m["quoting"]
    if q == "none":
        return d.join(fields)
    if q == "all":
        return d.join('"' + f.replace('"', '""') + '"' for f in fields)
    return d.join('"' + f.replace('"', '""') + '"' if (d in f or '"' in f) else f for f in fields)


@st.composite
def mapped_file(draw):
    m = draw(mapping())
    names = [c["name"] for c in m["columns"]]
    lines = [_render(names, m)] if m["header"] else []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.integers(0, 9))
        if kind <= 6:
            fields = [_value(draw, c) for c in m["columns"]]
        elif kind == 7:  # wrong field count
            fields = [_value(draw, c) for c in m["columns"]]
            fields = fields[: draw(st.integers(0, max(len(fields) - 1, 0)))] if draw(st.booleans()) else fields + ["x"]
        else:
            lines.append(draw(st.text(FIELD_CHARS, max_size=60)))
            continue
        lines.append(_render(fields, m))
    text = "\n".join(lines) + draw(st.sampled_from(["\n", "", "\r\n"]))
    data = text.encode(m["encoding"], "replace")
    if draw(st.booleans()) and m["encoding"] == "utf-8":  # a latin-1 value inside a UTF-8 file
        data += "Müller,Zoë\n".encode("latin-1")
    return m, data


OUTCOMES: dict[str, int] = {}


@fuzz_settings(40)
@given(mf=mapped_file())
def test_any_mapping_and_file_never_crash_and_reconcile(mf) -> None:
    m, data = mf
    with tempfile.TemporaryDirectory(prefix="vr_map_") as d:
        toml = Path(d) / "mine.toml"
        toml.write_text(_toml(m))
        try:
            load_user_format(toml)
        except UserError:
            OUTCOMES["mapping refused"] = OUTCOMES.get("mapping refused", 0) + 1
            return  # a combination the spec refuses (said clearly): fine
        f = Path(d) / "voters.txt"
        f.write_bytes(data)
        outcome = check_scan([f], "VT", toml, [data])
        OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1


def test_mapping_outcomes_include_reads() -> None:
    """The generator must mostly produce mappings the spec accepts, or the property says little."""
    if not OUTCOMES:
        test_any_mapping_and_file_never_crash_and_reconcile()
    print("mapping outcomes:", OUTCOMES)
    assert OUTCOMES.get("read", 0) >= sum(OUTCOMES.values()) // 3, OUTCOMES


VALID = _toml({
    "delimiter": ",", "quoting": "minimal", "header": True, "encoding": "utf-8", "party_codes": True,
    "columns": [{"name": "id", "target": "state_voter_id"}, {"name": "pty", "target": "party"}],
})  # fmt: skip

BROKEN = [
    VALID.replace('delimiter = ","', 'delimiter = ",,"'),
    VALID.replace('target = "party"', 'target = "ssn"'),
    VALID.replace('encoding = "utf-8"', 'encoding = "ebcdic"'),
    VALID.replace('name = "pty"', 'name = "id"'),
    VALID.replace('"DEM"', '"DEMOCRAT"'),
    VALID.replace("[registrations]", "[registration]"),
    VALID.replace('quoting = "minimal"', "quoting = 3"),
    VALID + "\n[registrations.codes.party]\n",
    VALID.replace("columns = [", "columns = [{name = 'b', target = 'dob'}, "),
    VALID.replace('description = "fuzzed user mapping"', ""),
    "\x00\x01\x02",
    "",
]


@fuzz_settings(40)
@given(text=st.one_of(st.sampled_from(BROKEN), st.text(max_size=300)))
def test_broken_mapping_files_are_user_errors(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="vr_map_") as d:
        toml = Path(d) / "mine.toml"
        toml.write_text(text)
        f = Path(d) / "voters.txt"
        f.write_text("id,pty\n1,D\n")
        try:
            load_user_format(toml)
        except UserError as exc:
            assert "mine.toml" in str(exc)
            return
        con = duckdb.connect()
        try:
            s = scan(con, [f], state="VT", format=toml)
            s.registrations.to_arrow_table()
            s.finish()
        except UserError:
            pass
