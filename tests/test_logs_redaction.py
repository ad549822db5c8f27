"""The log's redaction finds every string it must look into by substring tests: no string the
patterns could match is passed over, whatever its characters' case."""

from __future__ import annotations

import re
import sys

from cds.logs import redact

EVERY_CHARACTER = "".join(map(chr, range(sys.maxunicode + 1)))


def test_every_character_that_matches_b_e_a_or_r_in_any_case_lowercases_to_it() -> None:
    matched = set(re.findall(r"(?i)[bear]", EVERY_CHARACTER))
    assert matched == set("bearBEAR")
    assert all(character.lower() in "bear" for character in matched)


def test_bearer_credentials_in_any_case_and_jwt_shaped_strings_are_redacted() -> None:
    jwt_shaped = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln"
    assert redact(f"sent BeArEr {jwt_shaped[:12]}") == "sent BeArEr [redacted]"
    assert redact(f"token={jwt_shaped};") == "token=[redacted-jwt];"
    assert redact("d1577c69-dfbe-44ad-ba6d-3e05e953b2ea") == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
