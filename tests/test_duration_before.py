"""A duration counts months on the calendar and days as days: one of days alone (the rules'
P14D, P90D) moves a moment back by exactly that many days, keeping its time and zone, as the
calendar arithmetic does; months and years still clamp to the month's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from cds.record.dates import Duration, parse_duration

MOMENTS = st.datetimes(
    min_value=datetime(1900, 3, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(MOMENTS, st.integers(min_value=0, max_value=40_000))
def test_days_alone_move_back_exactly_that_many_days(moment: datetime, days: int) -> None:
    earlier = Duration(days=days).before(moment)
    assert earlier == moment - timedelta(days=days)
    assert earlier.tzinfo is moment.tzinfo
    assert (earlier.hour, earlier.minute, earlier.microsecond) == (
        moment.hour,
        moment.minute,
        moment.microsecond,
    )


@given(MOMENTS, st.integers(min_value=0, max_value=40_000))
def test_days_as_weeks_or_days_read_the_same(moment: datetime, days: int) -> None:
    weeks, rest = divmod(days, 7)
    assert parse_duration(f"P{weeks}W{rest}D").before(moment) == Duration(days=days).before(moment)


def test_months_and_years_still_count_on_the_calendar() -> None:
    march_31 = datetime(2026, 3, 31, 9, 30, tzinfo=UTC)
    assert parse_duration("P1M").before(march_31) == datetime(2026, 2, 28, 9, 30, tzinfo=UTC)
    assert parse_duration("P1Y").before(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(
        2027, 2, 28, tzinfo=UTC
    )
    assert parse_duration("P1M2D").before(march_31) == datetime(2026, 2, 26, 9, 30, tzinfo=UTC)


def test_a_zone_other_than_utc_is_kept() -> None:
    zone = timezone(timedelta(hours=-5))
    moment = datetime(2026, 3, 10, 23, 0, tzinfo=zone)
    assert parse_duration("P10D").before(moment) == datetime(2026, 2, 28, 23, 0, tzinfo=zone)
