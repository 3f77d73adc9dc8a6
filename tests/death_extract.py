"""A vital-statistics death extract layout shared by the external-list tests (made up, no real data).

``tests/test_lists_external.py`` (the matcher) and ``tests/test_service_lists.py``
(the upload endpoint) both build such a CSV from a synthetic nation's truth.
"""

#: The CSV header, in file order.
COLUMNS = ["CERT_NO", "DECEDENT_LAST", "DECEDENT_FIRST", "DECEDENT_MIDDLE", "BIRTH_DATE", "SEX", "DEATH_DATE", "RES_ZIP"]

MAPPING = """
description = "Vital statistics death extract (test layout)"
sources = ["built in tests/death_extract.py"]

[registrations]
filename = "deaths.csv"
kind = "delimited"
delimiter = ","
quoting = "minimal"
header = true
encoding = "utf-8"
columns = [
  {name = "CERT_NO", target = "state_voter_id"},
  {name = "DECEDENT_LAST", target = "last_name"},
  {name = "DECEDENT_FIRST", target = "first_name"},
  {name = "DECEDENT_MIDDLE", target = "middle_name"},
  {name = "BIRTH_DATE", target = "dob", date_format = "%m/%d/%Y"},
  {name = "SEX", target = "gender"},
  "DEATH_DATE",
  {name = "RES_ZIP", target = "residence_zip5"},
]

[registrations.codes.gender]
map = {M = "M", F = "F"}
default = "U"
"""
