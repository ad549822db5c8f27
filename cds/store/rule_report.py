"""The per-rule report: for the calls received in a time range, how often each rule's cards were
shown, how many distinct cards and patients that was, and what clinicians answered (accepted,
overridden and why, or nothing at all)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cds.store.models import OverrideReasonCount, RuleReport, RuleStats
from cds.store.schema import feedback, invocations, issued_cards

TOP_REASONS = 5
_NO_FEEDBACK = {"accepted": 0, "overridden": 0, "no_response": 0}


def _version(dialect: str, rule_id: Any) -> Any:
    """The version the call ran of the rule ``rule_id`` (a column), from the call's
    ``rule_versions`` (NULL for calls audited before rules had versions)."""
    inv = invocations
    if dialect == "sqlite":
        path = sa.literal('$."', sa.String) + rule_id + sa.literal('"', sa.String)
        return sa.type_coerce(sa.func.json_extract(inv.c.rule_versions, path), sa.String)
    return sa.type_coerce(inv.c.rule_versions.op("->>")(rule_id), sa.String)


def _unnest(dialect: str, column: Any, name: str) -> Any:
    """A JSON list column of the call as rows of its items (``.c.value``); each dialect has its
    own way to unnest one."""
    unnest = sa.func.json_each if dialect == "sqlite" else sa.func.json_array_elements_text
    return unnest(column).table_valued("value").alias(name)


def _window(service_id: str | None, start: datetime, end: datetime) -> list[Any]:
    inv = invocations
    where = [inv.c.received_at >= start, inv.c.received_at < end]
    if service_id is not None:
        where.append(inv.c.service_id == service_id)
    return where


def _would_fire(dialect: str, service_id: str | None, start: datetime, end: datetime) -> Any:
    """Per service, rule in shadow and version: the calls in [start, end) it would have fired
    in."""
    inv = invocations
    rule = _unnest(dialect, inv.c.would_fire, "shadow")
    rule_id = sa.type_coerce(rule.c.value, sa.String)
    group = (inv.c.service_id, rule_id, _version(dialect, rule_id))
    return (
        sa.select(*group, sa.func.count())
        .select_from(inv)
        .join(rule, sa.true())
        .where(*_window(service_id, start, end))
        .group_by(*group)
    )


def _showings(dialect: str, service_id: str | None, start: datetime, end: datetime) -> Any:
    """One row per card a call in [start, end) returned: the uuid repeats on every call."""
    inv, ic = invocations, issued_cards
    shown = _unnest(dialect, inv.c.card_uuids, "shown")
    return (
        sa.select(
            inv.c.service_id,
            ic.c.rule_id,
            _version(dialect, ic.c.rule_id).label("rule_version"),
            ic.c.card_uuid,
            inv.c.patient_hash,
        )
        .select_from(inv)
        .join(shown, sa.true())
        .join(ic, sa.and_(ic.c.card_uuid == shown.c.value, ic.c.service_id == inv.c.service_id))
        .where(*_window(service_id, start, end))
        .subquery("showings")
    )


async def rule_report(
    engine: AsyncEngine, service_id: str | None, start: datetime, end: datetime
) -> RuleReport:
    """Per rule, for the calls received in [start, end): times shown, cards, patients, feedback."""
    fb = feedback
    showings = _showings(engine.dialect.name, service_id, start, end)
    group = (showings.c.service_id, showings.c.rule_id, showings.c.rule_version)
    cards = sa.select(*group, showings.c.card_uuid).distinct().subquery("cards")
    card_group = (cards.c.service_id, cards.c.rule_id, cards.c.rule_version)
    # Feedback joins cards at report time, so feedback that arrived before its card row was
    # written (another replica, a slow audit) still counts for the right rule.
    on_card = sa.and_(fb.c.card_uuid == cards.c.card_uuid, fb.c.service_id == cards.c.service_id)
    async with engine.connect() as conn:
        shown = await conn.execute(
            sa.select(
                *group,
                sa.func.count(),
                sa.func.count(sa.distinct(showings.c.card_uuid)),
                sa.func.count(sa.distinct(showings.c.patient_hash)),
            ).group_by(*group)
        )
        outcomes = await conn.execute(
            sa.select(*card_group, fb.c.outcome, sa.func.count())
            .select_from(cards)
            .join(fb, on_card)
            .group_by(*card_group, fb.c.outcome)
        )
        silent = await conn.execute(
            sa.select(*card_group, sa.func.count())
            .where(~sa.exists().where(on_card))
            .group_by(*card_group)
        )
        reasons = await conn.execute(
            sa.select(
                *card_group,
                fb.c.override_system,
                fb.c.override_code,
                sa.func.max(fb.c.override_display),
                sa.func.count(),
            )
            .select_from(cards)
            .join(fb, on_card)
            .where(fb.c.outcome == "overridden", fb.c.override_code.is_not(None))
            .group_by(*card_group, fb.c.override_system, fb.c.override_code)
        )
        would_fire = await conn.execute(_would_fire(engine.dialect.name, service_id, start, end))
        orphan_filter = [
            fb.c.received_at >= start,
            fb.c.received_at < end,
            # Unknown to the service it was sent to: a card of another service does not count.
            ~sa.exists().where(
                fb.c.card_uuid == issued_cards.c.card_uuid,
                fb.c.service_id == issued_cards.c.service_id,
            ),
        ]
        if service_id is not None:
            orphan_filter.append(fb.c.service_id == service_id)
        orphans = await conn.scalar(
            sa.select(sa.func.count()).select_from(fb).where(*orphan_filter)
        )
    return _assemble(
        service_id,
        start,
        end,
        shown=[tuple(row) for row in shown],
        outcomes=[tuple(row) for row in outcomes],
        silent=[tuple(row) for row in silent],
        reasons=[tuple(row) for row in reasons],
        would_fire=[tuple(row) for row in would_fire],
    ).model_copy(update={"unmatched_feedback": int(orphans or 0)})


def _assemble(
    service_id: str | None,
    start: datetime,
    end: datetime,
    *,
    shown: list[tuple[Any, ...]],
    outcomes: list[tuple[Any, ...]],
    silent: list[tuple[Any, ...]],
    reasons: list[tuple[Any, ...]],
    would_fire: list[tuple[Any, ...]],
) -> RuleReport:
    counts: dict[tuple[str, str, str | None], dict[str, int]] = {
        (svc, rule, version): {
            "times_shown": times,
            "cards": cards,
            "patients": patients,
            **_NO_FEEDBACK,
        }
        for svc, rule, version, times, cards, patients in shown
    }
    for svc, rule, version, n in would_fire:
        # A rule in shadow shows no card; one that changed mode in the period has both counts.
        zero = dict.fromkeys(("times_shown", "cards", "patients"), 0)
        numbers = counts.setdefault((svc, rule, version), {**zero, **_NO_FEEDBACK})
        numbers["would_fire"] = n
    for svc, rule, version, outcome, n in outcomes:
        counts[svc, rule, version][outcome] = n
    for svc, rule, version, n in silent:
        counts[svc, rule, version]["no_response"] = n
    top: dict[tuple[str, str, str | None], list[OverrideReasonCount]] = {}
    for svc, rule, version, system, code, display, n in reasons:
        top.setdefault((svc, rule, version), []).append(
            OverrideReasonCount(system=system, code=code, display=display, count=n)
        )
    rules = [
        RuleStats(
            service_id=svc,
            rule_id=rule,
            rule_version=version,
            top_override_reasons=sorted(
                top.get((svc, rule, version), []), key=lambda r: (-r.count, r.system or "", r.code)
            )[:TOP_REASONS],
            **numbers,
        )
        # Calls audited before rules had versions (None) sort first.
        for (svc, rule, version), numbers in sorted(
            counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        )
    ]
    return RuleReport(service_id=service_id, start=start, end=end, rules=rules)
