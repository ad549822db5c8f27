"""Structured logging: one JSON object per line, carrying only whitelisted, PHI-free fields."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Mapping
from typing import Final, TextIO

import orjson

from cds.utc_text import iso_milliseconds

ALLOWED_FIELDS: Final = frozenset(
    {
        # A CDS Hooks call and what we answered.
        "hook_instance",
        "service",
        "hook",
        "rule_ids",
        "card_uuids",
        "card_count",
        "snoozed",
        "duration_ms",
        "status",
        "reason",
        "outcome",
        "prefetch_keys",
        "fhir_status",
        "attempt",
        "fhir_fetch_count",
        "skipped_resources",
        "repaired_elements",
        "models_built",
        # FHIR reading: a resource type and an R4 element path (never an id or a value).
        "resource_type",
        "element",
        "stored",
        "duplicates",
        "unmatched",
        "unknown_suggestions",
        # The authenticated caller (CDS Hooks best practice: safe to log).
        "iss",
        "kid",
        "jti",
        "tenant",
        "alg",
        # HTTP access log.
        "method",
        "path",
        "status_code",
        "request_id",
        # Service lifecycle.
        "env",
        "version",
        "count",
        "error_type",
        # A dependency that failed (fixed enums, see cds/store/outage.py).
        "cause",
        "operation",
        # Why the service could not start (type and message whole): no request exists yet.
        "startup_error",
    }
)
# Fields written whole up to this many characters instead of MAX_STRING_CHARS.
LONG_FIELDS: Final = frozenset({"startup_error"})
_SHORT_FIELDS: Final = ALLOWED_FIELDS - LONG_FIELDS
MAX_LONG_STRING_CHARS: Final = 4000
# uvicorn logs a failed lifespan startup as the whole traceback text in the message.
_TRACEBACK_TEXT: Final = "Traceback (most recent call last):"

MAX_STRING_CHARS: Final = 256
MAX_LIST_ITEMS: Final = 100
MAX_FRAMES: Final = 20

_JWT_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
# What either pattern needs to match at all (a JWT's "eyJ", any case of "bearer"), found by
# substring tests: a regular expression search for either cost 2 us a string, and a request's
# log line has a dozen strings. No character other than B, E, A and R lowercases to b, e, a or
# r (tests/test_logs_redaction.py), so ``lower()`` finds every case the pattern ``(?i)`` did.
_JWT_START: Final = "eyJ"
_BEARER_WORD: Final = "bearer"

_Scalar = str | int | float | bool | None
_HANDLER_MARK: Final = "_footpath_json_handler"


def log_fields(**values: object) -> dict[str, dict[str, object]]:
    """The ``extra=`` argument for a log call; raises ``TypeError`` on a non-whitelisted name."""
    if not values.keys() <= ALLOWED_FIELDS:
        unknown = sorted(values.keys() - ALLOWED_FIELDS)
        raise TypeError(f"not loggable fields (see cds.logs.ALLOWED_FIELDS): {unknown}")
    return {"fields": values}


def redact(text: str, limit: int = MAX_STRING_CHARS) -> str:
    """``text`` with JWT-shaped strings and Bearer credentials replaced, then truncated."""
    if _JWT_START in text or _BEARER_WORD in text.lower():
        text = _BEARER.sub(r"\1 [redacted]", text)
        text = _JWT_SHAPED.sub("[redacted-jwt]", text)
    if len(text) > limit:
        return text[:limit] + "…"
    return text


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if text.startswith(_TRACEBACK_TEXT):
        # Its last line is the exception's type and message: what the reader needs, whole,
        # where the first 256 characters were file names. The frames stay out of the log.
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "")
        return redact(last.strip(), MAX_LONG_STRING_CHARS)
    return redact(text)


def _scalar(value: object) -> _Scalar:
    # Strings first: nearly every field is one, and this runs for every request's log line.
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    # str() of an arbitrary object may render patient data; its type name cannot.
    return f"<{type(value).__name__}>"


def _safe_value(value: object) -> _Scalar | list[_Scalar]:
    if isinstance(value, str):
        return redact(value)
    if type(value) is list and len(value) <= MAX_LIST_ITEMS:
        # The usual list (rule ids, card uuids): as below, without the copies.
        return [_scalar(item) for item in value]
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [_scalar(item) for item in list(items)[:MAX_LIST_ITEMS]]
    return _scalar(value)


def _is_plain_scalar(value: object) -> bool:
    """Whether ``_scalar`` gives ``value`` back as it is, when no string holds anything that
    redaction looks for (which ``JsonFormatter.format`` checks on the whole line)."""
    kind = type(value)
    if kind is str:
        return len(value) <= MAX_STRING_CHARS  # type: ignore[arg-type]
    return value is None or kind is int or kind is float or kind is bool


def _is_plain(value: object) -> bool:
    """Whether ``_safe_value`` gives ``value`` back as it is (as ``_is_plain_scalar``)."""
    if type(value) is list:
        return len(value) <= MAX_LIST_ITEMS and all(map(_is_plain_scalar, value))
    return _is_plain_scalar(value)


def _dumps(entry: dict[str, object]) -> str:
    # orjson: the same compact UTF-8 line as json.dumps, at a fraction of the cost per call.
    try:
        return orjson.dumps(entry).decode()
    except TypeError:  # an int beyond 64 bits, which only the standard encoder takes
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def _might_need_redaction(line: str) -> bool:
    """Whether any string in ``line`` could hold what ``redact`` replaces. The JSON encoder
    writes letters as they are, so a string holding "eyJ" or any case of "bearer" leaves it in
    the line too (see ``redact`` on why ``lower()`` finds every case)."""
    return _JWT_START in line or _BEARER_WORD in line.lower()


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON line with whitelisted fields only.

    A request's log line (a dozen short strings, numbers and lists of ids) is written as its
    fields are when none would change: every name whitelisted and short, every value a
    number, a short string or a short list of those, and nothing in the whole line that
    redaction looks for. Otherwise each field goes through ``_safe_value``: the line is the
    same either way, the first costs one scan of the line instead of one per string."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            if fields.keys() <= _SHORT_FIELDS and all(map(_is_plain, fields.values())):
                entry = self._entry(record)
                entry.update(fields)
                line = _dumps(self._with_exception(entry, record))
                if not _might_need_redaction(line):
                    return line
            entry = self._entry(record)
            for name, value in fields.items():
                if name in LONG_FIELDS and isinstance(value, str):
                    entry[name] = redact(value, MAX_LONG_STRING_CHARS)
                elif name in ALLOWED_FIELDS:
                    entry[name] = _safe_value(value)
            return _dumps(self._with_exception(entry, record))
        return _dumps(self._with_exception(self._entry(record), record))

    @staticmethod
    def _entry(record: logging.LogRecord) -> dict[str, object]:
        return {
            "timestamp": iso_milliseconds(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }

    @staticmethod
    def _with_exception(entry: dict[str, object], record: logging.LogRecord) -> dict[str, object]:
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__qualname__
            frames = traceback.extract_tb(record.exc_info[2])[-MAX_FRAMES:]
            entry["exc_frames"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames]
        return entry


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn access records to method, path and status: no query string, no client."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path?query, version, status).
        if isinstance(args, tuple) and len(args) == 5:
            _client, method, full_path, _version, status = args
            record.msg = "http request"
            record.args = ()
            record.fields = {
                "method": str(method),
                "path": str(full_path).split("?", 1)[0],
                "status_code": status,
            }
        return True


def configure_logging(level: str, *, stream: TextIO | None = None) -> None:
    """Send every log record, uvicorn's included, to ``stream`` (stderr) as JSON lines.

    Idempotent: calling it again replaces the handler it installed earlier and leaves other
    handlers (e.g. pytest's capture) alone. Call it in each worker process (e.g. from the app
    factory), because uvicorn's worker processes do not inherit the parent's logging setup.

    Rules for every log call in this project (the formatter enforces what it can):

    * Never pass request or response bodies, JWTs or other tokens, patient ids, names, FHIR
      resources or any part of them, in the message or in fields. Log identifiers of *our*
      artefacts (rule ids, card uuids, service ids) and of the call (hook instance, caller
      ``iss``/``kid``/``jti``/``tenant``), timings and outcomes.
    * Structured values go in ``extra=log_fields(name=value, ...)``; ``log_fields`` refuses a
      name that is not in ``ALLOWED_FIELDS`` and the formatter drops any that slip through, so a
      new field needs a deliberate, reviewable change to that set.
    * Messages are constant strings. Anything shaped like a JWT or a ``Bearer`` credential is
      redacted anyway, and exception *messages* are never emitted (a pydantic error quotes its
      input, i.e. patient data): only the exception type and its stack frames.
    * It routes uvicorn's loggers through this formatter, rewrites its access
      log to method, path (query string dropped) and status, and silences httpx's INFO request
      log, whose URLs carry FHIR search parameters such as patient ids.
    """
    # Nothing the JSON line holds comes from the caller's file, line and function, the thread
    # or the process, so no record looks them up (the logging HOWTO's "Optimization"): about
    # 15 thousand instructions of the 140 thousand a hook call's log line costs.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        # uvicorn's access_log=False (cds serve, cds demo) leaves the access logger with no
        # handler and not propagating. Keep it off: the app factory runs after uvicorn set it
        # up, and turning it back on printed a second line for every request.
        switched_off = (
            name == "uvicorn.access"
            and not uvicorn_logger.handlers
            and not uvicorn_logger.propagate
        )
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = not switched_off
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessLogFilter) for f in access.filters):
        access.addFilter(AccessLogFilter())

    # httpx logs every request URL at INFO; FHIR search URLs carry patient ids.
    # Alembic announces each of its plugins at INFO on every start: seven lines of noise.
    for name in ("httpx", "httpcore", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
