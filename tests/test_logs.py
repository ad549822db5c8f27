"""Behaviour of the structured JSON logging (checklist S-14: never log tokens; no PHI)."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import uvicorn

from cds.logs import ALLOWED_FIELDS, AccessLogFilter, JsonFormatter, configure_logging, log_fields

A_JWT = (
    "eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9"
    ".eyJpc3MiOiJodHRwczovL2Voci5leGFtcGxlLm9yZyJ9"
    ".d1WfLjGRKlcWB94l9do4cM8REXeYJLL6SGUBO8VHZhfM8mwKYP70"
)


# What a record looks up only when told to (the logging HOWTO's "Optimization").
RECORD_SWITCHES = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logging into a buffer; the root and uvicorn loggers are restored afterwards."""
    names = [
        "",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "uvicorn.asgi",
        "httpx",
        "httpcore",
        "alembic.runtime.plugins",
    ]
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            list(logging.getLogger(name).filters),
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    switches = {name: getattr(logging, name) for name in RECORD_SWITCHES}
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    yield stream
    for name, value in switches.items():
        setattr(logging, name, value)
    for name, (handlers, filters, level, propagate) in saved.items():
        restored = logging.getLogger(name)
        restored.handlers[:] = handlers
        restored.filters[:] = filters
        restored.setLevel(level)
        restored.propagate = propagate


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_per_line(log_stream: io.StringIO) -> None:
    """S-14: machine-readable logs; a newline in a message cannot forge a second entry."""
    logger = logging.getLogger("cds.test")
    logger.info("first\nsecond", extra=log_fields(service="back-to-foot", duration_ms=12.5))
    logger.warning("third")

    raw = log_stream.getvalue().splitlines()
    entries = lines(log_stream)
    assert len(raw) == 2
    assert entries[0]["message"] == "first\nsecond"
    assert entries[0]["service"] == "back-to-foot"
    assert entries[0]["duration_ms"] == 12.5
    assert {"timestamp", "level", "logger", "message"} <= entries[1].keys()
    assert (entries[1]["level"], entries[1]["logger"]) == ("WARNING", "cds.test")


def test_only_whitelisted_fields_are_emitted() -> None:
    """S-14: fields outside ALLOWED_FIELDS are dropped even if they reach the formatter."""
    record = logging.LogRecord("cds.test", logging.INFO, __file__, 1, "card returned", None, None)
    record.fields = {"rule_ids": ["R1", "R2"], "patient_id": "123", "body": {"a": 1}}
    record.patient_name = "Jane Doe"

    entry = json.loads(JsonFormatter().format(record))

    assert entry["rule_ids"] == ["R1", "R2"]
    assert "patient_id" not in entry
    assert "body" not in entry
    assert "Jane Doe" not in json.dumps(entry)


def test_log_fields_refuses_a_name_that_is_not_whitelisted() -> None:
    """S-14: a mistake like logging patient_id fails the first time the line runs in tests."""
    with pytest.raises(TypeError, match="patient_id"):
        log_fields(service="x", patient_id="123")
    assert log_fields(iss="https://ehr.example.org") == {
        "fields": {"iss": "https://ehr.example.org"}
    }


@pytest.mark.parametrize("name", ["patient", "patient_id", "name", "body", "token", "prefetch"])
def test_phi_and_token_shaped_names_are_not_whitelisted(name: str) -> None:
    """S-14: none of the names that would carry PHI or credentials are loggable."""
    assert name not in ALLOWED_FIELDS


def test_a_token_passed_by_mistake_is_redacted(log_stream: io.StringIO) -> None:
    """S-14: a JWT or Bearer credential in a message or a field value never reaches the output."""
    logger = logging.getLogger("cds.test")
    logger.warning("header was Bearer %s", A_JWT)
    logger.warning("raw %s here", A_JWT, extra=log_fields(reason=f"bad {A_JWT}"))
    logger.warning("authorization: bearer opaque-access-token-value")

    output = log_stream.getvalue()
    for part in A_JWT.split("."):
        assert part not in output
    assert "opaque-access-token-value" not in output
    assert "[redacted" in output


def test_a_number_too_big_for_the_fast_encoder_is_still_one_json_line(
    log_stream: io.StringIO,
) -> None:
    logging.getLogger("cds.test").info("big", extra=log_fields(count=2**70))
    assert lines(log_stream)[0]["count"] == 2**70


def test_objects_are_rendered_by_type_never_by_value() -> None:
    """S-14: a resource passed as a field value shows only its type name."""
    record = logging.LogRecord("cds.test", logging.INFO, __file__, 1, "m", None, None)
    record.fields = {"status": {"resourceType": "Patient", "name": "Jane Doe"}}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["status"] == "<dict>"


def _validate_a_patient() -> None:
    raise ValueError("input_value={'name': 'Jane Doe'}")


def test_exception_messages_are_not_logged_only_type_and_frames(log_stream: io.StringIO) -> None:
    """S-14: exception text may quote patient data (e.g. validation errors), so it is omitted."""
    logger = logging.getLogger("cds.test")
    try:
        _validate_a_patient()
    except ValueError:
        logger.exception("evaluation failed")

    entry = lines(log_stream)[0]
    assert entry["exc_type"] == "ValueError"
    assert isinstance(entry["exc_frames"], list)
    assert "Jane Doe" not in log_stream.getvalue()


def test_the_uvicorn_access_log_drops_query_strings_and_client_addresses(
    log_stream: io.StringIO,
) -> None:
    """S-14: a token or patient id in a query string never reaches the access log."""
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "203.0.113.9:5000",
        "GET",
        f"/cds-services?access_token={A_JWT}&patient=123",
        "1.1",
        200,
    )

    entry = lines(log_stream)[0]
    assert entry["message"] == "http request"
    assert (entry["method"], entry["path"], entry["status_code"]) == ("GET", "/cds-services", 200)
    output = log_stream.getvalue()
    assert "patient=123" not in output
    assert "203.0.113.9" not in output


def test_an_access_log_uvicorn_was_told_to_skip_stays_off_when_the_app_configures_logging(
    log_stream: io.StringIO,
) -> None:
    """cds serve runs uvicorn with access_log=False: "hook answered" is the one line per call."""
    uvicorn.Config("cds.app:create_app", access_log=False, log_config=None)  # as cds serve
    configure_logging("INFO", stream=log_stream)  # what create_app does afterwards
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "203.0.113.9:5000", "POST", "/cds-services/x", "1.1", 200
    )
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    assert log_stream.getvalue() == ""


def test_configure_logging_is_idempotent_and_quietens_httpx(log_stream: io.StringIO) -> None:
    """S-14: httpx's INFO lines carry FHIR search URLs with patient ids."""
    configure_logging("INFO", stream=log_stream)
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1
    access_filters = logging.getLogger("uvicorn.access").filters
    assert sum(isinstance(f, AccessLogFilter) for f in access_filters) == 1
    logging.getLogger("httpx").info("HTTP Request: GET https://fhir/Patient?_id=123")
    assert "Patient" not in log_stream.getvalue()


def test_records_no_longer_look_up_their_caller_thread_or_process(log_stream: io.StringIO) -> None:
    logger = logging.getLogger("cds.test")
    record = logger.makeRecord("cds.test", logging.INFO, "(unknown file)", 0, "x", (), None)
    logger.handle(record)
    assert (record.thread, record.threadName, record.process, record.processName) == (None,) * 4
    assert "thread" not in lines(log_stream)[0]


def test_a_line_is_the_same_whatever_records_look_up(log_stream: io.StringIO) -> None:
    """The switches configure_logging turns off change nothing in any line."""
    configure_logging("DEBUG", stream=log_stream)
    _log_a_failure_and_an_answer()
    looked_up = {"_srcfile": logging.__file__, "logThreads": True, "logProcesses": True}
    for name, value in {**looked_up, "logMultiprocessing": True}.items():
        setattr(logging, name, value)
    _log_a_failure_and_an_answer()
    without, with_ = (
        [{k: v for k, v in entry.items() if k != "timestamp"} for entry in half]
        for half in (lines(log_stream)[:2], lines(log_stream)[2:])
    )
    assert without == with_
    assert without[0]["exc_frames"]


def _log_a_failure_and_an_answer() -> None:
    logger = logging.getLogger("cds.test")
    fields = log_fields(service="back-to-foot", status=200, rule_ids=["RB-01"], duration_ms=1.5)
    try:
        raise ValueError("patient data")  # noqa: TRY301 - the exception the line reports
    except ValueError:
        logger.exception("failed", extra=fields)
    logger.info("hook answered", extra=fields)


def test_configure_logging_writes_to_stderr_by_default(
    log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logs go to stderr so a CLI's stdout stays clean for its own output."""
    fake_stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", fake_stderr)
    configure_logging("INFO")
    logging.getLogger("cds.test").info("hello")
    assert json.loads(fake_stderr.getvalue())["message"] == "hello"


def test_alembic_does_not_announce_its_plugins_on_every_start(log_stream: io.StringIO) -> None:
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.tables")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade")
    assert [entry["logger"] for entry in lines(log_stream)] == ["alembic.runtime.migration"]


def test_a_traceback_logged_as_text_is_reduced_to_the_exception_line_whole(
    log_stream: io.StringIO,
) -> None:
    cause = "CDS_DATABASE_URL: cannot use the database: " + "x" * 400 + " Connection refused"
    text = (
        "Traceback (most recent call last):\n"
        '  File "/site-packages/starlette/routing.py", line 661, in lifespan\n'
        "    async with self.lifespan_context(app) as maybe_state:\n"
        f"cds.errors.ConfigError: {cause}\n"
    )
    logging.getLogger("uvicorn.error").error(text)
    (entry,) = lines(log_stream)
    assert entry["message"] == f"cds.errors.ConfigError: {cause}"


def test_a_startup_error_field_is_kept_whole(log_stream: io.StringIO) -> None:
    cause = "ConnectionRefusedError: " + "y" * 600
    logging.getLogger("cds").error("startup failed", extra=log_fields(startup_error=cause))
    (entry,) = lines(log_stream)
    assert entry["startup_error"] == cause
