"""The OpenAPI document as the service really answers it.

The routes read their bodies themselves (size limit first, then the CDS Hooks models), so
FastAPI alone would describe no request body, no card and no error, and would promise 422
answers the service never sends (it answers 400 with an OperationOutcome). This module adds the
CDS Hooks wire models as schemas and lists each route's real status codes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from cds import hooks
from cds.store import RuleReport, WeeklyReport

_REF = "#/components/schemas/{model}"

# Each wire model as the service reads it (requests) or writes it (responses).
_MODELS: list[tuple[type[BaseModel], Any]] = [
    (hooks.HookRequest, "validation"),
    (hooks.PatientViewContext, "validation"),
    (hooks.OrderSignContext, "validation"),
    (hooks.OrderSelectContext, "validation"),
    (hooks.FeedbackRequest, "validation"),
    (hooks.CdsResponse, "serialization"),
    (hooks.DiscoveryResponse, "serialization"),
    (RuleReport, "serialization"),
    (WeeklyReport, "serialization"),
]

_OPERATION_OUTCOME: dict[str, Any] = {
    "title": "OperationOutcome",
    "description": "FHIR R4 OperationOutcome: every error the service answers.",
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string", "description": "FHIR IssueType code"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

_FEEDBACK_RESPONSE: dict[str, Any] = {
    "title": "FeedbackResponse",
    "description": "How many feedback items were stored; unknown cards are kept and counted.",
    "type": "object",
    "required": ["stored", "duplicates", "unmatched"],
    "properties": {
        "stored": {"type": "integer", "minimum": 0},
        "duplicates": {"type": "integer", "minimum": 0},
        "unmatched": {"type": "integer", "minimum": 0},
    },
}

_READINESS: dict[str, Any] = {
    "title": "Readiness",
    "type": "object",
    "required": ["status", "rules", "store", "siteDigest"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "rules": {"const": "loaded"},
        "store": {"type": "boolean"},
        "siteDigest": {
            "description": "sha256 of the site settings file (CDS_SITE_CONFIG), or none",
            "type": "string",
            "pattern": "^([0-9a-f]{64}|none)$",
        },
    },
}

_ERRORS = {
    400: "Malformed JSON, or not a valid CDS Hooks body (never 422)",
    401: "Missing or rejected JWT (with WWW-Authenticate: Bearer)",
    404: "No such CDS service",
    412: "Required prefetch data neither sent nor obtainable from the FHIR server",
    413: "Body over CDS_MAX_BODY_BYTES, or too many prefetched resources",
    408: "The body did not fully arrive within CDS_BODY_READ_TIMEOUT (connection closed)",
    415: "The body is not JSON",
    431: "The request line and headers are over CDS_MAX_HEADER_BYTES (under cds serve)",
    500: "An unexpected error (no stack trace, no patient data)",
    503: "The database is unreachable, or every connection is taken (with Retry-After)",
}


def _json(schema: str | dict[str, Any]) -> dict[str, Any]:
    body = {"$ref": _REF.format(model=schema)} if isinstance(schema, str) else schema
    return {"application/json": {"schema": body}}


def _answer(description: str, schema: str | dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema is not None:
        answer["content"] = _json(schema)
    return answer


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _answer(_ERRORS[code], "OperationOutcome") for code in codes}


def _request_body(schema: str, description: str) -> dict[str, Any]:
    return {"required": True, "description": description, "content": _json(schema)}


def _operations() -> dict[tuple[str, str], dict[str, Any]]:
    """What each route takes and answers, by (method, path)."""
    service_call = "The CDS Hooks request: hook, hookInstance, context, prefetch, fhirServer"
    return {
        ("get", "/cds-services"): {
            "responses": {
                "200": _answer("Every service with its hook and prefetch", "DiscoveryResponse"),
                **_errors(401, 503),
            }
        },
        ("post", "/cds-services/{service_id}"): {
            "requestBody": _request_body("HookRequest", service_call),
            "responses": {
                "200": _answer("The cards (possibly none)", "CdsResponse"),
                **_errors(400, 401, 404, 408, 412, 413, 415, 431, 500, 503),
            },
        },
        ("post", "/cds-services/{service_id}/feedback"): {
            "requestBody": _request_body("FeedbackRequest", "What clinicians did with cards"),
            "responses": {
                "200": _answer("Feedback stored", "FeedbackResponse"),
                **_errors(400, 401, 404, 408, 413, 415, 431, 503),
            },
        },
        ("get", "/readyz"): {
            "responses": {
                "200": _answer("Ready", "Readiness"),
                "503": _answer(
                    "The store is unreachable, or its last health check is older than it may be",
                    "Readiness",
                ),
            }
        },
        ("get", "/metrics"): {
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401": _answer("CDS_METRICS_TOKEN is set and not given", "OperationOutcome"),
            }
        },
        ("get", "/admin/report"): {
            "responses": {
                "200": _answer(
                    "The per-rule report; with by=week, per ISO week too (WeeklyReport)",
                    {
                        "anyOf": [
                            {"$ref": _REF.format(model=m)} for m in ("RuleReport", "WeeklyReport")
                        ]
                    },
                ),
                **_admin_errors(),
            }
        },
        ("get", "/admin/dashboard"): {
            "responses": {
                "200": {
                    "description": "The feedback dashboard: one self-contained HTML page (inline "
                    "SVG charts, no script); the weekly report as JSON when the request accepts "
                    "application/json and not text/html",
                    "content": {
                        "text/html": {"schema": {"type": "string"}},
                        **_json("WeeklyReport"),
                    },
                },
                **_admin_errors(),
            }
        },
    }


def _admin_errors() -> dict[str, Any]:
    return {
        "400": _answer(
            "A malformed since or until, or (by week) a period over 53 ISO weeks",
            "OperationOutcome",
        ),
        "401": _answer("Not the admin token", "OperationOutcome"),
        "404": _answer("CDS_ADMIN_TOKEN is unset, or no such service", "OperationOutcome"),
        "503": _answer(_ERRORS[503], "OperationOutcome"),
    }


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(_MODELS, by_alias=True, ref_template=_REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    # The context's members depend on the hook; the request names each hook's shape.
    request = schemas["HookRequest"]
    request["properties"]["context"] = {
        "description": "The hook's context: patient-view, order-sign or order-select",
        "anyOf": [
            {"$ref": _REF.format(model=name)}
            for name in ("PatientViewContext", "OrderSignContext", "OrderSelectContext")
        ],
    }
    schemas.update(
        OperationOutcome=_OPERATION_OUTCOME,
        FeedbackResponse=_FEEDBACK_RESPONSE,
        Readiness=_READINESS,
    )
    return schemas


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document with the real bodies and status codes, and no 422 anywhere."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    known = _operations()
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            operation.get("responses", {}).pop("422", None)
            described = known.get((method, path))
            if described is None:
                continue
            if "requestBody" in described:
                operation["requestBody"] = described["requestBody"]
            operation["responses"].update(described["responses"])
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(_schemas())
    return document


def describe_real_answers(app: FastAPI) -> None:
    """Serve ``openapi_document`` at ``/openapi.json`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
