"""Named facts for what the clause vocabulary cannot express (bilateral onset, weight loss)."""

from __future__ import annotations

from datetime import datetime

from cds.record import Entry, PatientRecord
from cds.record.dates import Duration, parse_duration
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri

DEFAULT_LOSS_PERCENT = 5.0
DEFAULT_LOSS_WINDOW = "P12M"
MIN_GAP_DAYS = 30
MAX_GAP_DAYS = 365


def bilateral(
    record: PatientRecord, wanted: frozenset[str], within: Duration | None, *, differential: bool
) -> Result:
    """Both sides involved (rules.md 3.5): an explicit bilateral code, or a left and a right entry.

    With ``within``, the later side (the moment it became bilateral) must fall in the window.
    """
    entries = [
        e
        for e in record.conditions(wanted, differential=differential, findings=True)
        if e.side is not None
    ]
    start = within.before(record.now) if within is not None else None

    def recent(moment: datetime | None) -> bool:
        return start is None or (moment is not None and moment >= start)

    explicit = [e for e in entries if e.side == "bilateral" and recent(e.date)]
    if explicit:
        return Result(Tri.TRUE, tuple(explicit))
    first: dict[str, Entry] = {}
    for e in sorted(entries, key=lambda x: x.date or record.now):
        first.setdefault(str(e.side), e)
    if "left" in first and "right" in first:
        later = max((first["left"], first["right"]), key=lambda x: x.date or record.now)
        if recent(later.date):
            return Result(Tri.TRUE, (first["left"], first["right"]))
    return FALSE if record.available("Condition", "Observation") else UNKNOWN


def measured_weight_loss(
    record: PatientRecord, wanted: frozenset[str], within: Duration | None, percent: float | None
) -> Result:
    """A loss of at least ``percent`` between two valid weights 30-365 days apart (rules.md 3.3)."""
    window = within or parse_duration(DEFAULT_LOSS_WINDOW)
    threshold = (percent or DEFAULT_LOSS_PERCENT) / 100
    start = window.before(record.now)
    weights = [
        (e, e.date, kg)
        for e, kg in record.measurements(wanted, "kg")
        if e.date is not None and e.date >= start and kg > 0
    ]
    weights.sort(key=lambda item: item[1])
    for i, (earlier, first_date, before_kg) in enumerate(weights):
        for later, later_date, after_kg in weights[i + 1 :]:
            gap = (later_date - first_date).days
            loss = (before_kg - after_kg) / before_kg
            if MIN_GAP_DAYS <= gap <= MAX_GAP_DAYS and loss >= threshold:
                return Result(Tri.TRUE, (earlier, later))
    return FALSE if record.available("Observation") else UNKNOWN
