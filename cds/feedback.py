"""Feedback on cards: validate the spec's body and store it item by item."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cds import hooks
from cds.errors import NotFound, invalid_request
from cds.logs import log_fields
from cds.runtime import Runtime
from cds.store import FeedbackItem

log = logging.getLogger("cds.feedback")


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


async def accept_feedback(rt: Runtime, service_id: str, body: Any) -> dict[str, Any]:
    """F-01..F-08: 200 with counts; unknown card uuids and suggestion ids are kept and flagged,
    never refused."""
    if service_id not in rt.catalogue.services:
        raise NotFound(f"No CDS service '{service_id}'.")
    try:
        request = hooks.FeedbackRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc
    # A card answered a moment ago may still sit in the audit writer's queue: write it first,
    # or its feedback would be stored as unmatched.
    await rt.audit.flush()
    outcome = await rt.store.record_feedback(
        service_id, [_stored_item(item) for item in request.feedback], datetime.now(UTC)
    )
    rt.metrics.feedback_received(
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
