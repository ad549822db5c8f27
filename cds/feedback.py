"""Feedback on cards: validate the spec's body and store it item by item."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pydantic import ValidationError

from cds import hooks
from cds.catalogue import Catalogue
from cds.clock import Clock
from cds.errors import NotFound, invalid_request
from cds.logs import log_fields
from cds.metrics import Metrics
from cds.settings import Settings
from cds.snooze.snoozing import Snoozing
from cds.store import AuditWriter, FeedbackItem, Store

log = logging.getLogger("cds.feedback")


class FeedbackParts(Protocol):
    """What storing feedback uses of the app's long-lived parts."""

    @property
    def settings(self) -> Settings: ...
    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def store(self) -> Store: ...
    @property
    def audit(self) -> AuditWriter: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def snoozes(self) -> Snoozing: ...
    @property
    def stamp(self) -> Clock: ...  # when the feedback was received: always the real clock


def _stored_item(item: hooks.FeedbackItem) -> FeedbackItem:
    reason = item.override_reason.reason if item.override_reason else None
    return FeedbackItem(
        card=item.card,
        outcome=item.outcome,
        accepted_suggestion_ids=[s.id for s in item.accepted_suggestions or []],
        override_code=reason.code if reason else None,
        override_system=reason.system if reason else None,
        override_display=reason.display if reason else None,
        user_comment=item.override_reason.user_comment if item.override_reason else None,
        outcome_timestamp=item.outcome_timestamp,
    )


async def accept_feedback(parts: FeedbackParts, service_id: str, body: Any) -> dict[str, Any]:
    """F-01..F-08: 200 with counts; unknown card uuids and suggestion ids are kept and flagged,
    never refused."""
    if service_id not in parts.catalogue.services:
        raise NotFound(f"No CDS service '{service_id}'.")
    try:
        request = hooks.FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc
    # A card answered a moment ago may still sit in the audit writer's queue: write it first,
    # or its feedback would be stored as unmatched.
    await parts.audit.flush()
    items, received_at = [_stored_item(item) for item in request.feedback], parts.stamp()
    outcome = await parts.store.record_feedback(service_id, items, received_at)
    # After the feedback is stored: a snooze that fails to be written (503) is set again when
    # the EHR retries, and the feedback is not stored twice.
    await parts.snoozes.record(service_id, items, received_at)
    parts.metrics.feedback_received(
        service_id,
        stored=outcome.stored,
        duplicates=outcome.duplicates,
        unmatched=outcome.unmatched,
    )
    log.info(
        "feedback stored",
        extra=log_fields(
            service=service_id,
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            unmatched=outcome.unmatched,
            unknown_suggestions=outcome.unknown_suggestions,
        ),
    )
    return {
        "stored": outcome.stored,
        "duplicates": outcome.duplicates,
        "unmatched": outcome.unmatched,
        "unknownSuggestions": outcome.unknown_suggestions,
    }
