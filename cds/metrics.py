"""Prometheus metrics on an app-owned registry; labels carry ids and fixed enums, never PHI."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from enum import StrEnum

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

UNKNOWN = "unknown"
# Ids come from our own YAML; anything else (a 404 path, a typo) collapses into "unknown".
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
# An R4 element path ("dosageInstruction.timing.event"): names from the R4B models, no values.
_ELEMENT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,15}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class AuthFailure(StrEnum):
    """Why a caller was refused, as a small fixed set (the detailed reason goes to the log)."""

    # Label values, not secrets.
    missing_token = "missing_token"  # noqa: S105
    malformed_token = "malformed_token"  # noqa: S105
    untrusted_issuer = "untrusted_issuer"
    bad_algorithm = "bad_algorithm"
    unknown_key = "unknown_key"
    bad_signature = "bad_signature"
    expired = "expired"
    bad_audience = "bad_audience"
    bad_claims = "bad_claims"
    replayed = "replayed"
    jwks_unavailable = "jwks_unavailable"
    other = "other"


class FhirError(StrEnum):
    """How a FHIR fetch failed."""

    timeout = "timeout"
    connect = "connect"
    http_4xx = "http_4xx"
    http_5xx = "http_5xx"
    invalid_response = "invalid_response"
    too_many_pages = "too_many_pages"
    too_large = "too_large"  # over CDS_FHIR_MAX_RESPONSE_BYTES or CDS_FHIR_MAX_CALL_BYTES
    other = "other"


# First match wins: the order puts the specific words before the generic ones.
_AUTH_KEYWORDS: tuple[tuple[tuple[str, ...], AuthFailure], ...] = (
    (("replay", "jti already", "reused"), AuthFailure.replayed),
    (("expired", "exp ", "not yet valid", "iat", "nbf", "lifetime"), AuthFailure.expired),
    (("aud",), AuthFailure.bad_audience),
    (("iss", "issuer", "tenant"), AuthFailure.untrusted_issuer),
    (("alg",), AuthFailure.bad_algorithm),
    (("jwks", "jku", "fetch"), AuthFailure.jwks_unavailable),
    (("kid", "key"), AuthFailure.unknown_key),
    (("signature",), AuthFailure.bad_signature),
    (("missing", "no bearer", "no authorization", "scheme"), AuthFailure.missing_token),
    (("malformed", "decode", "header", "typ"), AuthFailure.malformed_token),
    (("claim",), AuthFailure.bad_claims),
)


def auth_failure_category(reason: str | AuthFailure) -> AuthFailure:
    """Map a free-text refusal reason onto the fixed label set."""
    if isinstance(reason, AuthFailure):
        return reason
    text = reason.strip().lower()
    if text in AuthFailure.__members__:
        return AuthFailure(text)
    for words, category in _AUTH_KEYWORDS:
        if any(word in text for word in words):
            return category
    return AuthFailure.other


class Metrics:
    """Every metric of one app; the request path calls the methods, ``/metrics`` calls render."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        service_ids: Iterable[str] | None = None,
        rule_ids: Iterable[str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._services = frozenset(service_ids) if service_ids is not None else None
        self._rules = frozenset(rule_ids) if rule_ids is not None else None
        reg = self.registry
        self.requests = Counter(
            "cds_requests", "CDS service calls answered", ["service", "status"], registry=reg
        )
        self.request_seconds = Histogram(
            "cds_request_duration_seconds",
            "Time to answer a CDS service call",
            ["service", "status"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.cards = Counter(
            "cds_cards", "Cards returned, by the rule that fired", ["service", "rule"], registry=reg
        )
        self.would_fire = Counter(
            "cds_cards_would_fire",
            "Cards not returned because their rule runs in shadow (a draft rule): the rule "
            "fired and was audited as 'would have fired'",
            ["service", "rule"],
            registry=reg,
        )
        self.snoozed = Counter(
            "cds_cards_snoozed",
            "Cards not returned because an earlier override with a snoozing reason snoozed them "
            "(same patient and evidence, within the rule's snooze period): the rule fired",
            ["service", "rule"],
            registry=reg,
        )
        self.fhir_seconds = Histogram(
            "cds_fhir_fetch_duration_seconds",
            "Time for one FHIR search or read (fallback when prefetch is missing)",
            ["resource_type"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.fhir_errors = Counter(
            "cds_fhir_fetch_errors", "FHIR fetches that failed", ["kind"], registry=reg
        )
        self.skipped = Counter(
            "cds_skipped_resources",
            "FHIR resources skipped as invalid or unusable",
            ["resource_type"],
            registry=reg,
        )
        self.repaired = Counter(
            "cds_repaired_elements",
            "FHIR elements read leniently: a single value where R4 repeats the element, or a "
            "one-item list where it does not, reshaped to R4's cardinality",
            ["resource_type", "element"],
            registry=reg,
        )
        self.auth_failures = Counter(
            "cds_auth_failures", "Callers refused, by reason category", ["reason"], registry=reg
        )
        self.feedback = Counter(
            "cds_feedback_items",
            "Feedback items received, by what the store did with them",
            ["service", "result"],
            registry=reg,
        )
        self.audit_batch_failures = Counter(
            "cds_audit_batch_failures",
            "Audit batches whose one-transaction write failed (then written call by call)",
            registry=reg,
        )
        self.audit_lost = Counter(
            "cds_audit_rows_lost",
            "Hook calls whose audit row and issued cards could not be written at all",
            registry=reg,
        )
        self.store_unavailable_total = Counter(
            "cds_store_unavailable",
            "Database operations that failed because the database could not be reached, by "
            "what needed it and why (each answered 503 when a call needed it)",
            ["operation", "cause"],
            registry=reg,
        )
        self.validations = Counter(
            "cds_resource_validations",
            "Value-set-matched resources checked as valid R4: 'remembered' answered from the "
            "validation memo (CDS_VALIDATION_MEMO_SIZE), 'validated' by the R4B models",
            ["outcome"],
            registry=reg,
        )
        self._validations = (
            self.validations.labels("remembered"),
            self.validations.labels("validated"),
        )
        # Label children by the arguments that chose them: every request records a few metrics,
        # and .labels() (validation, a lock, a lookup) cost more than the increments themselves.
        self._request_children: dict[tuple[str | None, int], tuple[Counter, Histogram]] = {}
        self._card_children: dict[tuple[str, str], Counter] = {}

    def _service(self, service_id: str | None) -> str:
        return _known(service_id, self._services)

    def request_done(self, service_id: str | None, status: int, seconds: float) -> None:
        """One CDS service call answered with HTTP ``status`` after ``seconds``."""
        key = (service_id, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (self._service(service_id), str(status) if 100 <= status <= 599 else UNKNOWN)
            children = (self.requests.labels(*labels), self.request_seconds.labels(*labels))
            # Only catalogue ids are kept, so the memo is no larger than the label space.
            if labels[0] == service_id:
                self._request_children[key] = children
        counter, histogram = children
        counter.inc()
        histogram.observe(seconds)

    def card_emitted(self, service_id: str, rule_id: str, count: int = 1) -> None:
        key = (service_id, rule_id)
        child = self._card_children.get(key)
        if child is None:
            labels = (self._service(service_id), _known(rule_id, self._rules))
            child = self.cards.labels(*labels)
            if labels == key:
                self._card_children[key] = child
        child.inc(count)

    def card_would_fire(self, service_id: str, rule_id: str) -> None:
        # Shadow rules are few and rare: no memo of label children, unlike card_emitted.
        self.would_fire.labels(self._service(service_id), _known(rule_id, self._rules)).inc()

    def card_snoozed(self, service_id: str, rule_id: str) -> None:
        self.snoozed.labels(self._service(service_id), _known(rule_id, self._rules)).inc()

    def fhir_fetch(self, resource_type: str, seconds: float) -> None:
        self.fhir_seconds.labels(_resource_type(resource_type)).observe(seconds)

    def fhir_error(self, kind: FhirError | str) -> None:
        value = kind if kind in FhirError.__members__.values() else FhirError.other
        self.fhir_errors.labels(str(value)).inc()

    def resources_validated(self, *, remembered: int, validated: int) -> None:
        """One call's validity checks: a low remembered share means the memo is too small."""
        if remembered:
            self._validations[0].inc(remembered)
        if validated:
            self._validations[1].inc(validated)

    def skipped_resources(self, resource_type: str, count: int = 1) -> None:
        self.skipped.labels(_resource_type(resource_type)).inc(count)

    def repaired_elements(self, resource_type: str, element: str, count: int = 1) -> None:
        """Elements of ``resource_type`` at ``element`` (a path of R4 names) reshaped."""
        path = element if _ELEMENT_PATH.match(element) and len(element) <= 128 else UNKNOWN
        self.repaired.labels(_resource_type(resource_type), path).inc(count)

    def auth_failure(self, reason: str | AuthFailure) -> None:
        self.auth_failures.labels(str(auth_failure_category(reason))).inc()

    def feedback_received(
        self, service_id: str, *, stored: int, duplicates: int, unmatched: int
    ) -> None:
        """Counts from ``Store.record_feedback``: matched, unmatched and duplicate items."""
        service = self._service(service_id)
        self.feedback.labels(service, "matched").inc(stored - unmatched)
        self.feedback.labels(service, "unmatched").inc(unmatched)
        self.feedback.labels(service, "duplicate").inc(duplicates)

    def store_unavailable(self, operation: str, cause: str) -> None:
        """One database operation refused by an outage; both labels are fixed enums."""
        self.store_unavailable_total.labels(operation, cause).inc()

    def audit_batch_failed(self) -> None:
        self.audit_batch_failures.inc()

    def audit_rows_lost(self, count: int) -> None:
        self.audit_lost.inc(count)

    def render(self) -> tuple[bytes, str]:
        return render_latest(self.registry)


def _known(value: str | None, allowed: frozenset[str] | None) -> str:
    if value is None or not _ID.match(value):
        return UNKNOWN
    if allowed is not None and value not in allowed:
        return UNKNOWN
    return value


def _resource_type(value: str) -> str:
    return value if _RESOURCE_TYPE.match(value) else UNKNOWN


def render_latest(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition and its content type.

    With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory, the
    same for every worker, before they start): values are then shared through files in it and
    each scrape aggregates every worker. Without it, each process reports only itself.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        aggregate = CollectorRegistry()
        # prometheus_client leaves this constructor unannotated.
        multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate), CONTENT_TYPE_LATEST
    return generate_latest(registry), CONTENT_TYPE_LATEST
