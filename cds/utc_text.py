"""UTC instants written as text the way ``datetime.isoformat`` and SQLAlchemy's SQLite DATETIME
write them, from a table of two-digit strings.

Every hook call writes several: its log line's timestamp, the snooze lookup's "now" and the
audit row's and each card's time on a SQLite file. ``isoformat`` formats through C's printf
machinery and SQLAlchemy's processor through ``%`` with a dict after its type's own
conversion: 14-30 thousand instructions each, against about 6 thousand here. The texts are the
same for every year 1-9999 (tests/test_utc_text.py compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

_TWO_DIGITS: Final = tuple(f"{n:02d}" for n in range(100))


def iso_milliseconds(timestamp: float) -> str:
    """``datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")``."""
    # fromtimestamp rounds the float to microseconds (which may carry into the next second);
    # isoformat then drops the last three digits.
    moment = datetime.fromtimestamp(timestamp, UTC)
    millisecond = moment.microsecond // 1000
    return f"{_fields(moment, 'T')}.{_TWO_DIGITS[millisecond // 10]}{millisecond % 10}+00:00"


def sqlite_text(moment: datetime) -> str:
    """What SQLAlchemy's SQLite DATETIME stores for ``moment`` (its fields as they are, the
    microseconds always written): "2026-12-07 15:47:01.874894"."""
    two, microsecond = _TWO_DIGITS, moment.microsecond
    return (
        f"{_fields(moment, ' ')}"
        f".{two[microsecond // 10000]}{two[microsecond // 100 % 100]}{two[microsecond % 100]}"
    )


def _fields(moment: datetime, separator: str) -> str:
    """``moment``'s date and time to the second, "2026-12-07" ``separator`` "15:47:01"."""
    two, year = _TWO_DIGITS, moment.year
    return (
        f"{two[year // 100]}{two[year % 100]}-{two[moment.month]}-{two[moment.day]}"
        f"{separator}{two[moment.hour]}:{two[moment.minute]}:{two[moment.second]}"
    )
