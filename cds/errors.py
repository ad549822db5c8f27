"""The one error hierarchy; each error knows its HTTP status and OperationOutcome issue code,
and is rendered as the OperationOutcome body the API answers with."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class CdsError(Exception):
    """An error the API renders as a FHIR OperationOutcome with ``status_code``."""

    status_code: int = 500
    issue_code: str = "exception"

    def __init__(self, diagnostics: str, *, expression: list[str] | None = None) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression or []

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the status needs (a challenge, a retry hint)."""
        return {}


class InvalidRequest(CdsError):
    """The body is not a valid CDS Hooks request or feedback (400)."""

    status_code = 400
    issue_code = "invalid"


class UnsupportedMediaType(CdsError):
    """The body is not JSON (415)."""

    status_code = 415
    issue_code = "not-supported"


class PayloadTooLarge(CdsError):
    """The body is larger than the configured limit (413)."""

    status_code = 413
    issue_code = "too-costly"


class HeadersTooLarge(CdsError):
    """The request line and headers are larger than the configured limit (431)."""

    status_code = 431
    issue_code = "too-long"


class HeadersTimeout(CdsError):
    """The request line and headers did not arrive within ``CDS_HEADER_READ_TIMEOUT`` (408)."""

    status_code = 408
    issue_code = "timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request's headers did not arrive within {seconds:g} seconds.")


class Unauthorized(CdsError):
    """The caller's JWT is missing or not accepted (401); the detail is logged, never returned."""

    status_code = 401
    issue_code = "login"

    def __init__(self, reason: str) -> None:
        super().__init__("The request is not authorized.")
        self.reason = reason

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class NotFound(CdsError):
    """No such CDS service (404)."""

    status_code = 404
    issue_code = "not-found"


class MissingData(CdsError):
    """Required FHIR data is neither prefetched nor obtainable from the FHIR server (412)."""

    status_code = 412
    issue_code = "processing"

    def __init__(self, keys: list[str], reason: str) -> None:
        names = ", ".join(f"'{k}'" for k in keys)
        super().__init__(
            f"CDS Hooks prefetch key(s) {names} were absent or unusable and could not be "
            f"fetched from the FHIR server: {reason}",
            expression=[f"prefetch.{k}" for k in keys],
        )
        self.keys = keys


class UnreadableData(MissingData):
    """A required key's resource cannot be read as R4, even reshaped: the key is unusable, so it
    is fetched from the FHIR server when there is one, else this is the answer (412)."""

    def __init__(self, reasons: dict[str, str]) -> None:
        keys = sorted(reasons)
        super().__init__(keys, "; ".join(f"{k}: {reasons[k]}" for k in keys))
        self.reasons = reasons


class BodyTimeout(CdsError):
    """The request body did not fully arrive within ``CDS_BODY_READ_TIMEOUT`` (408).

    The connection is closed: the rest of a half-sent body cannot be told from a next request.
    """

    status_code = 408
    issue_code = "timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body did not arrive within {seconds:g} seconds.")

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class Unavailable(CdsError):
    """The service cannot do this now but may a little later (503, with ``Retry-After``)."""

    status_code = 503
    issue_code = "transient"
    retry_after_seconds = 5

    def __init__(self, diagnostics: str = "The service is temporarily unavailable.") -> None:
        super().__init__(diagnostics)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class StoreUnavailable(Unavailable):
    """The database cannot be reached: an outage to wait out, not a bug (503)."""

    def __init__(self) -> None:
        super().__init__(
            "The service is temporarily unavailable: its database cannot be reached. Retry later."
        )


class ConfigError(CdsError):
    """Rules, cards, value sets or settings are invalid; raised at startup with every problem."""

    status_code = 500
    issue_code = "exception"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def invalid_request(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """A pydantic error as a 400 that names each path and problem but never echoes input values."""
    problems: list[str] = []
    paths: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        path = f"{prefix}.{path}" if prefix and path else (prefix or path)
        paths.append(path or "(body)")
        problems.append(f"{path or '(body)'}: {error['msg']}")
    return InvalidRequest("; ".join(problems), expression=paths)


def operation_outcome(error: CdsError) -> dict[str, Any]:
    """E-02..E-06: the FHIR OperationOutcome body for an error."""
    issue: dict[str, Any] = {
        "severity": "error",
        "code": error.issue_code,
        "diagnostics": error.diagnostics,
    }
    if error.expression:
        issue["expression"] = error.expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}
