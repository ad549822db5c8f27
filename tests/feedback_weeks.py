"""Three ISO weeks of known calls and feedback (2026-W10 to W12), and what the report must count
for them, worked out by hand: two versions of RB-01, RF-01, RB-02 in shadow, a card shown again
a week later, overrides with reasons, cards snoozed after them, a call before the period and
feedback on an unknown card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cds.store import AuditRecord, FeedbackItem, IssuedCard, Store

SERVICE = "back-to-foot"
OVERRIDE = "https://footpath-cds.example.org/CodeSystem/override"
# The period: Monday 2026-03-02 (2026-W10) to Sunday 2026-03-22 (2026-W12), whole UTC days.
SINCE, UNTIL = "2026-03-02", "2026-03-22"
START = datetime(2026, 3, 2, tzinfo=UTC)
END = datetime(2026, 3, 23, tzinfo=UTC)
WEEKS = ["2026-W10", "2026-W11", "2026-W12"]
VERSIONS = {"RB-01": "1.0.0", "RF-01": "1.0.0", "RB-02": "2.0.0"}


def _at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


# (hook instance, received, patient, {card: rule}, RB-01's version, would fire, snoozed)
CALLS: list[tuple[str, datetime, str, dict[str, str], str, list[str], list[str]]] = [
    ("h-0", _at(1), "pid-z", {"c-0": "RB-01"}, "1.0.0", [], []),  # the day before the period
    ("h-1", _at(3), "pid-a", {"c-1": "RB-01", "c-2": "RF-01"}, "1.0.0", [], []),
    ("h-2", _at(5), "pid-b", {"c-3": "RB-01"}, "1.0.0", ["RB-02"], []),
    ("h-3", _at(10), "pid-a", {"c-1": "RB-01"}, "1.0.0", [], []),  # c-1 shown again in W11
    ("h-7", _at(11), "pid-a", {}, "1.0.0", [], ["RB-01"]),  # c-1, overridden again: snoozed
    ("h-4", _at(12), "pid-c", {"c-4": "RB-01"}, "1.1.0", ["RB-02"], []),
    ("h-5", _at(17), "pid-d", {"c-5": "RB-01", "c-6": "RF-01"}, "1.1.0", ["RB-02"], []),
    ("h-8", _at(18), "pid-c", {}, "1.1.0", [], ["RB-01"]),  # c-4, declined: snoozed
    ("h-6", _at(22, 23), "pid-d", {}, "1.1.0", ["RB-02"], []),  # the period's last hour
]

# (card, outcome, override code, display, received)
FEEDBACK: list[tuple[str, str, str | None, str | None, datetime]] = [
    ("c-1", "overridden", "not-relevant", "Not relevant for this patient", _at(3, 11)),
    ("c-2", "accepted", None, None, _at(3, 11)),
    ("c-1", "overridden", "not-relevant", "Not relevant for this patient", _at(10, 11)),
    ("c-4", "overridden", "patient-declined", "Patient declined", _at(12, 11)),
    ("c-5", "accepted", None, None, _at(17, 11)),
    ("c-6", "overridden", "already-addressed", "Already addressed", _at(17, 11)),
    ("c-0", "accepted", None, None, _at(3, 12)),  # a card shown before the period
    ("no-such-card", "accepted", None, None, _at(4)),
]


def _item(
    card: str, outcome: str, code: str | None, display: str | None, at: datetime
) -> FeedbackItem:
    return FeedbackItem.model_validate(
        {
            "card": card,
            "outcome": outcome,
            "override_code": code,
            "override_system": OVERRIDE if code else None,
            "override_display": display,
            "user_comment": "Seen by the physio already, pid-a said" if code else None,
            "outcome_timestamp": at,
        }
    )


async def fill(store: Store) -> None:
    """The calls and feedback above, as the audit writer and the feedback flow store them."""
    for hook, at, patient, cards, rb01, shadow, snoozed in CALLS:
        issued = [
            IssuedCard(
                card_uuid=card,
                rule_id=rule,
                service_id=SERVICE,
                hook_instance=hook,
                issued_at=at,
            )
            for card, rule in cards.items()
        ]
        versions = {rule: VERSIONS[rule] for rule in [*cards.values(), *shadow, *snoozed]}
        if "RB-01" in versions:
            versions["RB-01"] = rb01
        row = AuditRecord(
            hook_instance=hook,
            service_id=SERVICE,
            hook="patient-view",
            rule_ids=sorted(set(cards.values())),
            would_fire=shadow,
            snoozed=snoozed,
            rule_versions=versions,
            card_uuids=list(cards),
            duration_ms=10.0,
            status=200,
            received_at=at,
            patient_hash=f"hash-of-{patient}",
        )
        await store.record_invocation(row, issued)
    for card, outcome, code, display, at in FEEDBACK:
        await store.record_feedback(
            SERVICE, [_item(card, outcome, code, display, at)], at + timedelta(seconds=1)
        )


def _counts(
    *,
    shown: int = 0,
    would_fire: int = 0,
    snoozed: int = 0,
    cards: int = 0,
    patients: int = 0,
    no_response: int = 0,
    accepted: int = 0,
    overridden: int = 0,
) -> dict[str, int]:
    return {
        "times_shown": shown,
        "would_fire": would_fire,
        "snoozed": snoozed,
        "cards": cards,
        "patients": patients,
        "no_response": no_response,
        "accepted": accepted,
        "overridden": overridden,
    }


# (rule, version) -> the period's counts.
PERIOD = {
    ("RB-01", "1.0.0"): _counts(
        shown=3, snoozed=1, cards=2, patients=2, no_response=1, overridden=2
    ),
    ("RB-01", "1.1.0"): _counts(shown=2, snoozed=1, cards=2, patients=2, accepted=1, overridden=1),
    ("RB-02", "2.0.0"): _counts(would_fire=4),
    ("RF-01", "1.0.0"): _counts(shown=2, cards=2, patients=2, accepted=1, overridden=1),
}
# week -> (rule, version) -> that week's counts; a card and its answers count in the week it
# was first shown (c-1's second override, in W11, counts in W10).
WEEKLY = {
    "2026-W10": {
        ("RB-01", "1.0.0"): _counts(shown=2, cards=2, patients=2, no_response=1, overridden=2),
        ("RB-02", "2.0.0"): _counts(would_fire=1),
        ("RF-01", "1.0.0"): _counts(shown=1, cards=1, patients=1, accepted=1),
    },
    "2026-W11": {
        ("RB-01", "1.0.0"): _counts(shown=1, snoozed=1, patients=1),
        ("RB-01", "1.1.0"): _counts(shown=1, cards=1, patients=1, overridden=1),
        ("RB-02", "2.0.0"): _counts(would_fire=1),
    },
    "2026-W12": {
        ("RB-01", "1.1.0"): _counts(shown=1, snoozed=1, cards=1, patients=1, accepted=1),
        ("RB-02", "2.0.0"): _counts(would_fire=2),
        ("RF-01", "1.0.0"): _counts(shown=1, cards=1, patients=1, overridden=1),
    },
}
# (rule, version) -> [(code, display, count)], the most given first.
REASONS = {
    ("RB-01", "1.0.0"): [("not-relevant", "Not relevant for this patient", 2)],
    ("RB-01", "1.1.0"): [("patient-declined", "Patient declined", 1)],
    ("RB-02", "2.0.0"): [],
    ("RF-01", "1.0.0"): [("already-addressed", "Already addressed", 1)],
}
ACCEPTANCE = {
    ("RB-01", "1.0.0"): 0.0,
    ("RB-01", "1.1.0"): 0.5,
    ("RB-02", "2.0.0"): None,
    ("RF-01", "1.0.0"): 0.5,
}
UNMATCHED_FEEDBACK = 1
# What must never reach a page: the patients (as ids or hashes) and clinicians' comments.
PRIVATE = ["pid-", "hash-of-", "physio"]
