"""The per-rule report: for the calls received in a time range, how often each rule's cards were
shown, how many distinct cards and patients that was, and what clinicians answered (accepted,
overridden and why, or nothing at all); for the whole range or per ISO week of it.

One set of queries answers both: they count per bucket of the range, and the period report is
the range as a single bucket. A card, with its feedback, counts in the bucket it was first shown
in, so the weeks add up to the period (but for patients, who may come back another week)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cds.store.models import OverrideReasonCount, RuleReport, RuleStats, WeeklyReport, WeekStats
from cds.store.schema import feedback, invocations, issued_cards

TOP_REASONS = 5
# A year of ISO weeks (53 when the range starts and ends mid-week): a chart of more is unreadable.
MAX_WEEKS = 53
_NO_FEEDBACK = {"accepted": 0, "overridden": 0, "no_response": 0}
_Key = tuple[str, str, str | None, int]  # service, rule, version, bucket


def week_edges(start: datetime, end: datetime) -> list[datetime]:
    """[start, the Mondays 00:00 UTC inside (start, end), end]: the ISO weeks of [start, end),
    the first and last cut at the range's bounds."""
    monday = (start - timedelta(days=start.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    edges = [start]
    for n in range(1, MAX_WEEKS + 1):
        edge = monday + timedelta(weeks=n)
        if edge >= end:
            break
        edges.append(edge)
    else:
        raise ValueError(f"the range spans more than {MAX_WEEKS} ISO weeks")
    return [*edges, end]


def _version(dialect: str, rule_id: Any, versions: Any = invocations.c.rule_versions) -> Any:
    """The version the call ran of the rule ``rule_id`` (a column), from the call's
    ``rule_versions`` (NULL for calls audited before rules had versions)."""
    if dialect == "sqlite":
        path = sa.literal('$."', sa.String) + rule_id + sa.literal('"', sa.String)
        return sa.type_coerce(sa.func.json_extract(versions, path), sa.String)
    return sa.type_coerce(versions.op("->>")(rule_id), sa.String)


def _unnest(dialect: str, column: Any, name: str) -> Any:
    """A JSON list column of the call as rows of its items (``.c.value``); each dialect has its
    own way to unnest one."""
    unnest = sa.func.json_each if dialect == "sqlite" else sa.func.json_array_elements_text
    return unnest(column).table_valued("value").alias(name)


def _bucket(edges: Sequence[datetime]) -> Any:
    """The index of the bucket a call falls in: ``i`` for [edges[i], edges[i + 1]).

    The indexes are literal SQL (small ints this module makes), so that no driver has to guess
    a parameter's type in a select list."""
    last = sa.literal_column(str(len(edges) - 2), sa.Integer)
    if len(edges) == 2:
        return last
    received = invocations.c.received_at
    return sa.case(
        *(
            (received < edge, sa.literal_column(str(i), sa.Integer))
            for i, edge in enumerate(edges[1:-1])
        ),
        else_=last,
    )


def _window(service_id: str | None, edges: Sequence[datetime]) -> list[Any]:
    inv = invocations
    where = [inv.c.received_at >= edges[0], inv.c.received_at < edges[-1]]
    if service_id is not None:
        where.append(inv.c.service_id == service_id)
    return where


def _listed(dialect: str, column: Any, service_id: str | None, edges: Sequence[datetime]) -> Any:
    """Per service, rule named in the call's JSON list ``column`` (as ``would_fire``), version
    and bucket: the calls in the range that named it."""
    inv = invocations
    rule = _unnest(dialect, column, "listed")
    rule_id = sa.type_coerce(rule.c.value, sa.String)
    calls = (
        sa.select(
            inv.c.service_id,
            rule_id.label("rule_id"),
            _version(dialect, rule_id).label("rule_version"),
            _bucket(edges).label("bucket"),
        )
        .select_from(inv)
        .join(rule, sa.true())
        .where(*_window(service_id, edges))
        .subquery("calls")
    )
    group = (calls.c.service_id, calls.c.rule_id, calls.c.rule_version, calls.c.bucket)
    return sa.select(*group, sa.func.count()).group_by(*group)


def _showings(dialect: str, service_id: str | None, edges: Sequence[datetime]) -> Any:
    """One row per card a call in the range returned: the uuid repeats on every call.

    Each card's rule is looked up by its key (service, uuid): joined instead, SQLite's planner
    read every issued card of the service for each call, a time that grew as calls times cards.
    A uuid no card row has (its audit not written yet) is left out, as the join left it."""
    inv, ic = invocations, issued_cards
    shown = _unnest(dialect, inv.c.card_uuids, "shown")
    card_uuid = sa.type_coerce(shown.c.value, sa.String)
    rule_of = (
        sa.select(ic.c.rule_id)
        .where(ic.c.service_id == inv.c.service_id, ic.c.card_uuid == card_uuid)
        .scalar_subquery()
    )
    calls = (
        sa.select(
            inv.c.service_id,
            rule_of.label("rule_id"),
            inv.c.rule_versions,
            _bucket(edges).label("bucket"),
            card_uuid.label("card_uuid"),
            inv.c.patient_hash,
        )
        .select_from(inv)
        .join(shown, sa.true())
        .where(*_window(service_id, edges))
        .subquery("calls")
    )
    return (
        sa.select(
            calls.c.service_id,
            calls.c.rule_id,
            _version(dialect, calls.c.rule_id, calls.c.rule_versions).label("rule_version"),
            calls.c.bucket,
            calls.c.card_uuid,
            calls.c.patient_hash,
        )
        .where(calls.c.rule_id.is_not(None))
        .subquery("showings")
    )


async def rule_report(
    engine: AsyncEngine, service_id: str | None, start: datetime, end: datetime
) -> RuleReport:
    """Per rule, for the calls received in [start, end): times shown, cards, patients, feedback."""
    async with engine.connect() as conn:
        (rules,) = await _counts(conn, service_id, [start, end])
        orphans = await _unmatched_feedback(conn, service_id, start, end)
    return RuleReport(
        service_id=service_id, start=start, end=end, rules=rules, unmatched_feedback=orphans
    )


async def weekly_rule_report(
    engine: AsyncEngine, service_id: str | None, start: datetime, end: datetime
) -> WeeklyReport:
    """The report for [start, end) and the same counts per ISO week of it (``week_edges``).

    Raises ``ValueError`` for a range of more than ``MAX_WEEKS`` weeks."""
    edges = week_edges(start, end)
    async with engine.connect() as conn:
        (rules,) = await _counts(conn, service_id, [start, end])
        per_week = await _counts(conn, service_id, edges)
        orphans = await _unmatched_feedback(conn, service_id, start, end)
    weeks = [
        WeekStats(week=_iso_week(since), start=since, end=until, rules=week_rules)
        for (since, until), week_rules in zip(pairwise(edges), per_week, strict=True)
    ]
    return WeeklyReport(
        service_id=service_id,
        start=start,
        end=end,
        rules=rules,
        unmatched_feedback=orphans,
        weeks=weeks,
    )


def _iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


async def _counts(
    conn: AsyncConnection, service_id: str | None, edges: Sequence[datetime]
) -> list[list[RuleStats]]:
    """Each bucket's rule stats, for the calls received in [edges[0], edges[-1])."""
    fb = feedback
    dialect = conn.dialect.name
    showings = _showings(dialect, service_id, edges)
    group = (showings.c.service_id, showings.c.rule_id, showings.c.rule_version)
    # Each card once, in the bucket of the first call in the range that showed it.
    cards = (
        sa.select(*group, showings.c.card_uuid, sa.func.min(showings.c.bucket).label("bucket"))
        .group_by(*group, showings.c.card_uuid)
        .subquery("cards")
    )
    card_group = (cards.c.service_id, cards.c.rule_id, cards.c.rule_version, cards.c.bucket)
    # Feedback joins cards at report time, so feedback that arrived before its card row was
    # written (another replica, a slow audit) still counts for the right rule.
    on_card = sa.and_(fb.c.card_uuid == cards.c.card_uuid, fb.c.service_id == cards.c.service_id)
    shown = await conn.execute(
        sa.select(
            *group,
            showings.c.bucket,
            sa.func.count(),
            sa.func.count(sa.distinct(showings.c.patient_hash)),
        ).group_by(*group, showings.c.bucket)
    )
    new_cards = await conn.execute(sa.select(*card_group, sa.func.count()).group_by(*card_group))
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
    would_fire = await conn.execute(_listed(dialect, invocations.c.would_fire, service_id, edges))
    snoozed = await conn.execute(_listed(dialect, invocations.c.snoozed, service_id, edges))
    return _assemble(
        len(edges) - 1,
        shown=[tuple(row) for row in shown],
        cards=[tuple(row) for row in new_cards],
        outcomes=[tuple(row) for row in outcomes],
        silent=[tuple(row) for row in silent],
        reasons=[tuple(row) for row in reasons],
        would_fire=[tuple(row) for row in would_fire],
        snoozed=[tuple(row) for row in snoozed],
    )


async def _unmatched_feedback(
    conn: AsyncConnection, service_id: str | None, start: datetime, end: datetime
) -> int:
    """Feedback received in [start, end) on cards unknown to the service it was sent to."""
    fb = feedback
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
    orphans = await conn.scalar(sa.select(sa.func.count()).select_from(fb).where(*orphan_filter))
    return int(orphans or 0)


def _assemble(
    buckets: int,
    *,
    shown: list[tuple[Any, ...]],
    cards: list[tuple[Any, ...]],
    outcomes: list[tuple[Any, ...]],
    silent: list[tuple[Any, ...]],
    reasons: list[tuple[Any, ...]],
    would_fire: list[tuple[Any, ...]],
    snoozed: list[tuple[Any, ...]],
) -> list[list[RuleStats]]:
    zero = {"times_shown": 0, "cards": 0, "patients": 0, **_NO_FEEDBACK}
    counts: dict[_Key, dict[str, int]] = {
        (svc, rule, version, bucket): {**zero, "times_shown": times, "patients": patients}
        for svc, rule, version, bucket, times, patients in shown
    }
    for svc, rule, version, bucket, n in cards:
        # A card first shown in an earlier bucket leaves this one with showings but no new card.
        counts[svc, rule, version, bucket]["cards"] = n
    for svc, rule, version, bucket, n in would_fire:
        # A rule in shadow shows no card; one that changed mode in the period has both counts.
        counts.setdefault((svc, rule, version, bucket), dict(zero))["would_fire"] = n
    for svc, rule, version, bucket, n in snoozed:
        # A rule whose every card was snoozed in the bucket showed none there.
        counts.setdefault((svc, rule, version, bucket), dict(zero))["snoozed"] = n
    for svc, rule, version, bucket, outcome, n in outcomes:
        counts[svc, rule, version, bucket][outcome] = n
    for svc, rule, version, bucket, n in silent:
        counts[svc, rule, version, bucket]["no_response"] = n
    top: dict[_Key, list[OverrideReasonCount]] = {}
    for svc, rule, version, bucket, system, code, display, n in reasons:
        top.setdefault((svc, rule, version, bucket), []).append(
            OverrideReasonCount(system=system, code=code, display=display, count=n)
        )
    per_bucket: list[list[RuleStats]] = [[] for _ in range(buckets)]
    # Calls audited before rules had versions (None) sort first.
    for key, numbers in sorted(counts.items(), key=lambda item: (*item[0][:2], item[0][2] or "")):
        svc, rule, version, bucket = key
        per_bucket[bucket].append(
            RuleStats(
                service_id=svc,
                rule_id=rule,
                rule_version=version,
                top_override_reasons=sorted(
                    top.get(key, []), key=lambda r: (-r.count, r.system or "", r.code)
                )[:TOP_REASONS],
                **numbers,
            )
        )
    return per_bucket
