"""A log line whose fields need no redaction, truncation or rendering is written without passing
each one through them, and is the same line as when every field is: checked against each field
made safe one by one, for plain lines and for every kind of field that must be changed."""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime

import orjson
import pytest

from cds.logs import (
    ALLOWED_FIELDS,
    LONG_FIELDS,
    MAX_LONG_STRING_CHARS,
    JsonFormatter,
    _message,
    _safe_value,
    redact,
)

A_JWT = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ4In0.c2ln"
UUIDS = ["35aa4f3c-a84a-5ffd-b3ab-d042feea52c1", "7f96e422-6e5b-57bd-9c97-c6d416b08e4b"]


class Level(enum.IntEnum):
    high = 2


class Text(str):
    """A string of another type: rendered as ``_safe_value`` renders it."""


def _each_field_made_safe(record: logging.LogRecord) -> str:
    """The line as it is written when every field goes through ``_safe_value``."""
    entry: dict[str, object] = {
        "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": _message(record),
    }
    for name, value in record.fields.items():  # type: ignore[attr-defined]
        if name in LONG_FIELDS and isinstance(value, str):
            entry[name] = redact(value, MAX_LONG_STRING_CHARS)
        elif name in ALLOWED_FIELDS:
            entry[name] = _safe_value(value)
    try:
        return orjson.dumps(entry).decode()
    except TypeError:
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "cds.invocation", logging.INFO, __file__, 1, "hook answered", (), None
    )
    record.fields = fields
    return record


HOOK_ANSWERED = {
    "hook_instance": "b1cc6531-b369-4aa6-bea9-69391dabd422",
    "service": "back-to-foot",
    "hook": "patient-view",
    "status": 200,
    "rule_ids": ["RF-03", "RB-02"],
    "snoozed": [],
    "card_uuids": UUIDS,
    "duration_ms": 2.808,
    "fhir_fetch_count": 0,
    "skipped_resources": 0,
    "repaired_elements": 0,
}

CHANGED_FIELDS = {
    "a JWT in a string": {"hook_instance": f"x {A_JWT}"},
    "a JWT in a list": {"card_uuids": [*UUIDS, A_JWT]},
    "a bearer credential in any case": {"reason": "sent BeArEr abc"},
    "bearer in capitals in a list": {"rule_ids": ["BEARER xyz"]},
    "a string over the limit": {"hook_instance": "a" * 300},
    "a list over the limit": {"card_uuids": [str(i) for i in range(150)]},
    "a set": {"rule_ids": {"RB-02", "RF-03"}},
    "a tuple": {"rule_ids": ("RF-03", "RB-02")},
    "an object": {"reason": object()},
    "an object in a list": {"rule_ids": ["RF-03", object()]},
    "a nested list": {"rule_ids": [["RF-03"]]},
    "a string of another type": {"hook": Text("patient-view")},
    "an int enum": {"status": Level.high},
    "an int beyond 64 bits": {"count": 2**70},
    "a name not whitelisted": {"patient_id": "p1"},
    "a long field": {"startup_error": "e" * 5000},
    "control characters and non-ASCII": {"reason": 'tab\there, quote" ünïcødé \x01'},
    "a float that is not a number": {"duration_ms": float("nan")},
    "booleans and None": {"outcome": True, "cause": None},
}


def test_a_request_s_log_line_is_the_line_of_each_field_made_safe() -> None:
    record = _record(**HOOK_ANSWERED)
    assert JsonFormatter().format(record) == _each_field_made_safe(record)


@pytest.mark.parametrize("fields", list(CHANGED_FIELDS.values()), ids=list(CHANGED_FIELDS))
def test_a_field_that_must_be_changed_is_changed_as_before(fields: dict[str, object]) -> None:
    record = _record(**{**HOOK_ANSWERED, **fields})
    assert JsonFormatter().format(record) == _each_field_made_safe(record)


def test_a_jwt_in_a_plain_field_never_reaches_the_line() -> None:
    line = JsonFormatter().format(_record(**{**HOOK_ANSWERED, "hook_instance": A_JWT}))
    assert "eyJ" not in line
    assert "[redacted-jwt]" in line


def _fail() -> None:
    raise RuntimeError("secret")


def test_an_exception_s_type_and_frames_follow_the_fields() -> None:
    try:
        _fail()
    except RuntimeError:
        record = logging.LogRecord(
            "cds", logging.ERROR, __file__, 1, "unexpected failure", (), sys.exc_info()
        )
    record.fields = {"path": "/cds-services/x"}
    entry = json.loads(JsonFormatter().format(record))
    assert list(entry)[-3:] == ["path", "exc_type", "exc_frames"]
    assert entry["exc_type"] == "RuntimeError"
    assert "secret" not in str(entry)
