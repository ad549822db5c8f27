"""Named facts for what the clause vocabulary cannot express (bilateral onset, weight loss)."""

from __future__ import annotations

from datetime import datetime

from cds.record import Entry, PatientRecord
from cds.record.dates import Duration, parse_duration
from cds.rules.logic import FALSE, UNKNOWN, Result, Tri
from cds.rules.schema import WeightLossWindows

LISTED_WEIGHTS = 12  # a window with more weights is summarised on the card, not listed


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


def _median(values: list[float]) -> float:
    """The median of values already in order (no sort: the caller's list is sorted by value)."""
    middle = len(values) // 2
    if len(values) % 2:
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def _kg(value: float) -> str:
    return f"{round(value, 1):g} kg"


def _span(entries: list[tuple[Entry, float]]) -> str:
    """How a window's weights (dated, newest first) read on the card: few listed, many
    summarised. Newest first, the earliest date is the last entry's and the latest the first's.
    """
    oldest, newest = entries[-1][0].date, entries[0][0].date
    assert oldest is not None  # noqa: S101 - the windows hold dated weights only
    assert newest is not None  # noqa: S101
    first, last = oldest.date().isoformat(), newest.date().isoformat()
    dates = first if first == last else f"{first} to {last}"
    count = f"{len(entries)} weight" + ("s" if len(entries) != 1 else "")
    if len(entries) <= LISTED_WEIGHTS:
        listed = ", ".join([f"{round(kg, 1):g}" for _, kg in reversed(entries)])  # oldest first
        return f"{count}, {dates}: {listed} kg"
    return f"{count}, {dates}"


def measured_weight_loss(
    record: PatientRecord, wanted: frozenset[str], percent: float, windows: WeightLossWindows
) -> Result:
    """Rules.md 3.3: the median of the valid weights in ``windows.current`` up to the latest
    (itself at most ``windows.latest_within`` old) against the median of those
    ``windows.baseline_from`` to ``windows.baseline_to`` before the latest; TRUE when the loss
    is at least ``percent``. Medians, not pairs: scale noise around a stable weight never
    fires, a real drop does however noisy the series, and the cost grows with the sort alone.
    """
    weights = [
        (e, kg)
        for e, kg in record.measurements(wanted, "kg")  # newest first, dated
        if kg > 0 and e.date is not None and e.date <= record.now
    ]
    # Not TRUE: FALSE, or UNKNOWN while some Observations could not be obtained.
    absent = FALSE if record.available("Observation") else UNKNOWN
    if not weights:
        return absent
    latest = weights[0][0].date
    assert latest is not None  # noqa: S101 - filtered above
    if latest < parse_duration(windows.latest_within).before(record.now):
        return absent
    current, baseline = _windows(weights, latest, windows)
    if not baseline:
        return absent
    now_kg = _median(sorted(kg for _, kg in current))
    before_kg = _median(sorted(kg for _, kg in baseline))
    loss = (before_kg - now_kg) / before_kg
    if loss * 100 < percent:
        return absent
    note = (
        f"Measured weight loss {loss * 100:.1f} % (threshold {percent:g} %): median "
        f"{_kg(before_kg)} earlier ({_span(baseline)}) against median {_kg(now_kg)} now "
        f"({_span(current)})."
    )
    latest_entry = weights[0][0]
    earliest = baseline[-1][0]
    return Result(Tri.TRUE, (earliest, latest_entry), (note,))


def _windows(
    weights: list[tuple[Entry, float]], latest: datetime, windows: WeightLossWindows
) -> tuple[list[tuple[Entry, float]], list[tuple[Entry, float]]]:
    """The (current, baseline) weights, newest first, of dated ``weights`` (newest first)."""
    current_start = parse_duration(windows.current).before(latest)
    baseline_end = parse_duration(windows.baseline_from).before(latest)
    baseline_start = parse_duration(windows.baseline_to).before(latest)
    current: list[tuple[Entry, float]] = []
    baseline: list[tuple[Entry, float]] = []
    for pair in weights:
        when = pair[0].date
        assert when is not None  # noqa: S101 - the caller keeps dated weights only
        if when >= current_start:
            current.append(pair)
        elif baseline_start <= when <= baseline_end:
            baseline.append(pair)
        elif when < baseline_start:
            break  # newest first: everything further is older still
    return current, baseline


def new_onset(
    record: PatientRecord,
    wanted: frozenset[str],
    within: Duration | None,
    *,
    relative_to: frozenset[str],
    prior_by: Duration,
    differential: bool,
) -> Result:
    """A recent problem in ``wanted`` that is new: the same problem (any code of ``wanted``) is
    not on record more than ``prior_by`` before the earliest ``relative_to`` condition.

    Rules.md 4, RF-01: years of incontinence re-entered today is not a new sphincter disturbance.
    An undated reference condition cannot show the problem is older, so it never excludes.
    """
    start = within.before(record.now) if within is not None else None
    recent = [
        e
        for e in record.conditions(wanted, differential=differential, findings=True)
        if start is None or (e.date is not None and e.date >= start)
    ]
    if not recent:
        return FALSE if record.available("Condition", "Observation") else UNKNOWN
    references = [
        e.date
        for e in record.conditions(relative_to, differential=differential)
        if e.date is not None
    ]
    if references:
        cutoff = prior_by.before(min(references))
        prior = record.conditions(wanted, history=True, findings=True)
        if any(e.date is not None and e.date < cutoff for e in prior):
            return FALSE
    return Result(Tri.TRUE, tuple(recent))
