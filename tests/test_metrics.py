"""Metrics render in the Prometheus text format, and their labels carry no free text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from cds.metrics import AuthFailure, FhirError, Metrics, auth_failure_category, render_latest

SERVICES = {"back-to-foot"}
RULES = {"RF-01", "RF-02"}
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")


def exercised() -> Metrics:
    metrics = Metrics(service_ids=SERVICES, rule_ids=RULES)
    metrics.request_done("back-to-foot", 200, 0.042)
    metrics.request_done("Patient/123 <script>", 404, 0.001)
    metrics.request_done(None, 400, 0.001)
    metrics.card_emitted("back-to-foot", "RF-01")
    metrics.card_emitted("back-to-foot", "made-up rule with spaces")
    metrics.fhir_fetch("Condition", 0.12)
    metrics.fhir_fetch("Condition?patient=123", 0.12)
    metrics.fhir_error(FhirError.timeout)
    metrics.fhir_error("patient 123 not found")
    metrics.skipped_resources("Observation", 2)
    metrics.skipped_resources("urn:uuid:1234", 1)
    metrics.repaired_elements("MedicationRequest", "dosageInstruction.timing.event", 2)
    metrics.repaired_elements("Patient", "name.given 123", 1)
    metrics.auth_failure("token expired at 2025-01-01 for patient 123")
    metrics.auth_failure(AuthFailure.replayed)
    metrics.auth_failure("something nobody predicted")
    metrics.feedback_received("back-to-foot", stored=3, duplicates=1, unmatched=1)
    metrics.audit_batch_failed()
    metrics.audit_rows_lost(2)
    metrics.resources_validated(remembered=3, validated=1)
    return metrics


def label_values() -> dict[str, set[str]]:
    payload, _ = exercised().render()
    seen: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(payload.decode()):
        for sample in family.samples:
            for name, value in sample.labels.items():
                seen.setdefault(name, set()).add(value)
    return seen


def test_metrics_render_in_the_prometheus_text_format() -> None:
    payload, content_type = exercised().render()
    assert content_type.startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(payload.decode())}
    assert {
        "cds_requests",
        "cds_request_duration_seconds",
        "cds_cards",
        "cds_fhir_fetch_duration_seconds",
        "cds_fhir_fetch_errors",
        "cds_skipped_resources",
        "cds_repaired_elements",
        "cds_auth_failures",
        "cds_feedback_items",
        "cds_audit_batch_failures",
        "cds_audit_rows_lost",
    } <= names
    assert 'cds_requests_total{service="back-to-foot",status="200"} 1.0' in payload.decode()


def test_label_values_are_only_known_ids_status_codes_resource_types_and_enums() -> None:
    seen = label_values()
    assert seen["service"] <= SERVICES | {"unknown"}
    assert seen["rule"] <= RULES | {"unknown"}
    assert all(value.isdigit() for value in seen["status"])
    assert all(RESOURCE_TYPE.match(v) or v == "unknown" for v in seen["resource_type"])
    assert seen["kind"] <= {str(kind) for kind in FhirError}
    assert seen["reason"] <= {str(reason) for reason in AuthFailure}
    assert seen["result"] == {"matched", "unmatched", "duplicate"}
    assert seen["element"] == {"dosageInstruction.timing.event", "unknown"}
    everything = " ".join(v for values in seen.values() for v in values)
    assert "123" not in everything
    assert "<script>" not in everything


def test_free_text_auth_reasons_fall_into_the_fixed_categories() -> None:
    assert auth_failure_category("token expired") is AuthFailure.expired
    assert auth_failure_category("jti was already used (replay)") is AuthFailure.replayed
    assert auth_failure_category("aud does not match this endpoint") is AuthFailure.bad_audience
    assert auth_failure_category("issuer not trusted") is AuthFailure.untrusted_issuer
    assert auth_failure_category("bad_signature") is AuthFailure.bad_signature
    assert auth_failure_category("") is AuthFailure.other


def test_apps_created_repeatedly_each_get_their_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.request_done("svc", 200, 0.1)
    assert b'cds_requests_total{service="svc",status="200"} 1.0' in first.render()[0]
    assert b"cds_requests_total{" not in second.render()[0]


def test_a_multiprocess_directory_switches_rendering_to_the_aggregate_of_all_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = exercised()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    payload, _ = render_latest(metrics.registry)
    # The workers' files are the source now; this test process wrote none.
    assert b"cds_requests_total{" not in payload


def test_repeated_calls_add_up_and_unknown_ids_still_collapse() -> None:
    """The per-label memo changes nothing a scrape sees."""
    metrics = Metrics(service_ids=SERVICES, rule_ids=RULES)
    for _ in range(3):
        metrics.request_done("back-to-foot", 200, 0.01)
        metrics.request_done("Patient/123", 200, 0.01)
        metrics.card_emitted("back-to-foot", "RF-01")
        metrics.card_emitted("back-to-foot", "made-up")
    sample = metrics.registry.get_sample_value
    assert sample("cds_requests_total", {"service": "back-to-foot", "status": "200"}) == 3
    assert sample("cds_requests_total", {"service": "unknown", "status": "200"}) == 3
    histogram = {"service": "back-to-foot", "status": "200"}
    assert sample("cds_request_duration_seconds_count", histogram) == 3
    assert sample("cds_cards_total", {"service": "back-to-foot", "rule": "RF-01"}) == 3
    assert sample("cds_cards_total", {"service": "back-to-foot", "rule": "unknown"}) == 3


@pytest.mark.anyio
async def test_a_repeat_call_counts_its_validity_checks_as_remembered(
    client: httpx.AsyncClient, app: FastAPI, rb01_request: dict[str, Any]
) -> None:
    """Operators size CDS_VALIDATION_MEMO_SIZE from the remembered share."""
    sample = app.state.parts.metrics.registry.get_sample_value
    for _ in range(2):
        assert (await client.post("/cds-services/back-to-foot", json=rb01_request)).is_success
    validated = sample("cds_resource_validations_total", {"outcome": "validated"})
    remembered = sample("cds_resource_validations_total", {"outcome": "remembered"})
    assert validated is not None
    assert validated > 0
    assert remembered == validated
