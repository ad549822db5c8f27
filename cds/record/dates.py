"""FHIR date/dateTime parsing and ISO 8601 durations (calendar years, months, weeks, days)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

_DURATION = re.compile(r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")
_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
PARTIAL_CHARS = len("YYYY-MM-DD")


@dataclass(frozen=True, slots=True)
class Duration:
    """A date-based ISO 8601 duration such as ``P12M`` or ``P42D``; time parts are not needed."""

    years: int = 0
    months: int = 0
    days: int = 0

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration, months counted on the calendar (clamped to month end)."""
        if not self.years and not self.months:
            # Days alone move no month: the calendar arithmetic below would give the same.
            return moment - timedelta(days=self.days)
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        day = min(moment.day, _days_in_month(year, month + 1))
        return moment.replace(year=year, month=month + 1, day=day) - timedelta(days=self.days)


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


@lru_cache(maxsize=256)
def parse_duration(text: str) -> Duration:
    """Parse ``PnYnMnWnD``; raises ValueError for anything else (e.g. ``PT1H`` or ``12 months``)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"'{text}' is not an ISO 8601 duration such as P12M, P6W or P42D")
    years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
    return Duration(years, months, days + 7 * weeks)


def parse_datetime(value: object) -> datetime | None:
    """A FHIR date or dateTime as an aware UTC datetime (partial dates start their period)."""
    if not isinstance(value, str) or not value:
        return None
    # Only 4, 7 or 10 characters can be partial; a full dateTime skips the pattern.
    partial = _PARTIAL.match(value) if len(value) <= PARTIAL_CHARS else None
    try:
        if partial is not None:
            year, month, day = partial.groups()
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # FHIR requires a zone on times; a zoneless one is read as UTC rather than dropped.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def period_start(value: object) -> datetime | None:
    """The start of a FHIR Period (its end when the start is missing)."""
    if not isinstance(value, dict):
        return None
    return parse_datetime(value.get("start")) or parse_datetime(value.get("end"))


def add_years(moment: datetime, years: float) -> datetime:
    """``moment`` plus a (fractional) number of years, for Age-valued onsets."""
    whole = int(years)
    shifted = Duration(years=-whole).before(moment) if whole else moment
    return shifted + timedelta(days=(years - whole) * 365.25)


def age_in_years(birth: date, now: datetime) -> int:
    """Completed years of age at ``now``."""
    today = now.date()
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
