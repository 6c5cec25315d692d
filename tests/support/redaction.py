"""What the redaction corpus expects (tests/fixtures/redaction_corpus.json and the unit
fixtures of observed model outputs): the token each entity kind must become, shared by
tests/unit/test_text_redact_written.py and bench/shaping_redaction.py."""

from __future__ import annotations

import re

LABEL = re.compile(r"\[([A-Z]+)_\d+\]")  # a redaction token; group 1 is its kind
# The token kind each corpus entity kind must become.
TOKEN_KIND = {
    "phone": "PHONENUMBER",
    "email": "EMAIL",
    "firstname": "FIRSTNAME",
    "lastname": "LASTNAME",
    "card": "ACCOUNTNUMBER",
    "cvv": "ACCOUNTNUMBER",
    "expiry": "ACCOUNTNUMBER",
    "iban": "ACCOUNTNUMBER",
    "account": "ACCOUNTNUMBER",
}
