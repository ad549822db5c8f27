"""Instants written from the table of two-digit strings read exactly as ``isoformat`` and
SQLAlchemy's SQLite DATETIME write them, and a UTC column on SQLite binds every value as its
type's own processor binds it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from cds.store.schema import UtcDateTime, invocations, issued_cards, snoozes
from cds.store.utc_binds import bind_processor
from cds.utc_text import iso_milliseconds, sqlite_text

FIRST = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
SQLITE = sqlite.dialect()
UTC_COLUMNS = [invocations.c.received_at, issued_cards.c.issued_at, snoozes.c.expires_at]

utc_moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=UTC)
)
offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def _isoformat(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _own(column: sa.Column[Any]) -> Any:
    return column.type.dialect_impl(SQLITE).bind_processor(SQLITE)


@given(st.floats(min_value=FIRST, max_value=LAST - 1))
def test_a_log_timestamp_reads_as_isoformat_in_milliseconds(timestamp: float) -> None:
    assert iso_milliseconds(timestamp) == _isoformat(timestamp)


@pytest.mark.parametrize(
    "timestamp",
    [
        0.0,
        -0.0005,
        1.9999995,  # rounds to the next second's microseconds
        1.0009999,
        1796659621.874999,
        1796659621.9995,
        1796659621.0004995,
        1796659621.9999996,
        FIRST,
        LAST,
        LAST + 0.9994,
    ],
)
def test_a_log_timestamp_at_a_rounding_or_range_edge_reads_as_isoformat(timestamp: float) -> None:
    assert iso_milliseconds(timestamp) == _isoformat(timestamp)


def test_a_log_timestamp_out_of_range_fails_as_fromtimestamp_fails() -> None:
    with pytest.raises((ValueError, OverflowError, OSError)) as direct:
        _isoformat(LAST + 1)
    with pytest.raises(direct.type):
        iso_milliseconds(LAST + 1)


@given(utc_moments)
def test_a_utc_moment_reads_as_sqlalchemy_stores_it_on_sqlite(moment: datetime) -> None:
    assert sqlite_text(moment) == _own(snoozes.c.expires_at)(moment)


@pytest.mark.parametrize("column", UTC_COLUMNS, ids=lambda c: f"{c.table.name}.{c.name}")
@given(moment=utc_moments, offset=offsets)
def test_every_aware_datetime_binds_as_the_column_type_binds_it(
    column: sa.Column[Any], moment: datetime, offset: timezone
) -> None:
    process = bind_processor(column.type, SQLITE)
    assert process is not None
    in_utc, elsewhere = moment, moment.astimezone(offset)
    assert process(in_utc) == _own(column)(in_utc)
    assert process(elsewhere) == _own(column)(elsewhere)


class _Moment(datetime):
    """A datetime subclass: not what the service's clocks give, so the type's own path."""


@pytest.mark.parametrize(
    "value",
    [None, _Moment(2026, 12, 7, 15, 47, tzinfo=UTC), datetime(2026, 12, 7, 15, 47, tzinfo=UTC)],
)
def test_values_other_than_the_usual_bind_as_the_column_type_binds_them(value: Any) -> None:
    process = bind_processor(snoozes.c.expires_at.type, SQLITE)
    assert process is not None
    assert process(value) == _own(snoozes.c.expires_at)(value)


@pytest.mark.parametrize(
    "value", [datetime(2026, 12, 7, 15, 47), date(2026, 12, 7), "2026-12-07", 1796659621]
)
def test_a_value_the_column_type_refuses_is_refused_with_its_error(value: Any) -> None:
    process = bind_processor(snoozes.c.expires_at.type, SQLITE)
    assert process is not None
    with pytest.raises(Exception) as own:  # noqa: PT011 - whatever the type raises
        _own(snoozes.c.expires_at)(value)
    with pytest.raises(own.type) as ours:
        process(value)
    assert str(ours.value) == str(own.value)


def test_other_columns_and_other_databases_keep_the_type_s_own_processor() -> None:
    pg = postgresql.dialect()  # type: ignore[no-untyped-call]
    assert _is_the_type_s_own(bind_processor(UtcDateTime(), pg))
    for column in (invocations.c.rule_ids, invocations.c.status_code, issued_cards.c.card_uuid):
        assert _is_the_type_s_own(bind_processor(column.type, SQLITE))


def _is_the_type_s_own(process: Any) -> bool:
    return process is None or process.__module__ != "cds.store.utc_binds"
