"""The per-rule report: for the cards issued in a time range, how often each rule was shown, to
how many patients, and what clinicians did with it (accepted, overridden, and why)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cds.store.models import OverrideReasonCount, RuleReport, RuleStats
from cds.store.schema import feedback, invocations, issued_cards

TOP_REASONS = 5


async def rule_report(
    engine: AsyncEngine, service_id: str | None, start: datetime, end: datetime
) -> RuleReport:
    """Per rule, for cards issued in [start, end): shown, patients, accepted, overridden."""
    ic, fb, inv = issued_cards, feedback, invocations
    in_range = [ic.c.issued_at >= start, ic.c.issued_at < end]
    if service_id is not None:
        in_range.append(ic.c.service_id == service_id)
    group = (ic.c.service_id, ic.c.rule_id)
    # Feedback joins issued cards at report time, so feedback that arrived before its card
    # row was written (another replica, a slow audit) still counts for the right rule.
    on_card = sa.and_(fb.c.card_uuid == ic.c.card_uuid, fb.c.service_id == ic.c.service_id)
    async with engine.connect() as conn:
        shown = await conn.execute(
            sa.select(*group, sa.func.count()).where(*in_range).group_by(*group)
        )
        patients = await conn.execute(
            sa.select(*group, sa.func.count(sa.distinct(inv.c.patient_hash)))
            .select_from(ic)
            .join(
                inv,
                sa.and_(
                    inv.c.hook_instance == ic.c.hook_instance,
                    inv.c.service_id == ic.c.service_id,
                ),
            )
            .where(*in_range)
            .group_by(*group)
        )
        outcomes = await conn.execute(
            sa.select(*group, fb.c.outcome, sa.func.count(sa.distinct(fb.c.card_uuid)))
            .select_from(ic)
            .join(fb, on_card)
            .where(*in_range)
            .group_by(*group, fb.c.outcome)
        )
        reasons = await conn.execute(
            sa.select(
                *group,
                fb.c.override_system,
                fb.c.override_code,
                sa.func.max(fb.c.override_display),
                sa.func.count(),
            )
            .select_from(ic)
            .join(fb, on_card)
            .where(*in_range, fb.c.outcome == "overridden", fb.c.override_code.is_not(None))
            .group_by(*group, fb.c.override_system, fb.c.override_code)
        )
        orphan_filter = [
            fb.c.received_at >= start,
            fb.c.received_at < end,
            ~sa.exists().where(on_card),
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
        patients=[tuple(row) for row in patients],
        outcomes=[tuple(row) for row in outcomes],
        reasons=[tuple(row) for row in reasons],
    ).model_copy(update={"unmatched_feedback": int(orphans or 0)})


def _assemble(
    service_id: str | None,
    start: datetime,
    end: datetime,
    *,
    shown: list[tuple[Any, ...]],
    patients: list[tuple[Any, ...]],
    outcomes: list[tuple[Any, ...]],
    reasons: list[tuple[Any, ...]],
) -> RuleReport:
    counts: dict[tuple[str, str], dict[str, int]] = {
        (svc, rule): {"shown": n, "patients": 0, "accepted": 0, "overridden": 0}
        for svc, rule, n in shown
    }
    for svc, rule, n in patients:
        counts[svc, rule]["patients"] = n
    for svc, rule, outcome, n in outcomes:
        counts[svc, rule][outcome] = n
    top: dict[tuple[str, str], list[OverrideReasonCount]] = {}
    for svc, rule, system, code, display, n in reasons:
        top.setdefault((svc, rule), []).append(
            OverrideReasonCount(system=system, code=code, display=display, count=n)
        )
    rules = [
        RuleStats(
            service_id=svc,
            rule_id=rule,
            top_override_reasons=sorted(
                top.get((svc, rule), []), key=lambda r: (-r.count, r.system or "", r.code)
            )[:TOP_REASONS],
            **numbers,
        )
        for (svc, rule), numbers in sorted(counts.items())
    ]
    return RuleReport(service_id=service_id, start=start, end=end, rules=rules)
