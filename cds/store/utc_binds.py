"""A ``UtcDateTime`` column's bind processor on SQLite that writes the service's own instants
(its clocks give datetimes in ``datetime.UTC``) straight to their stored text.

The type's own processor converts to UTC, drops the offset and formats the fields through a
dict: about 31 thousand instructions a value, and a small hook call binds six (the snooze
lookup's "now", the audit row's time, each of four cards' time). ``sqlite_text`` writes the
same text in about 7 thousand. Any other value (another offset, a naive datetime, a subclass,
None, a wrong type) goes to the type's own processor, with its conversion and its errors.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from cds.store.schema import UtcDateTime
from cds.utc_text import sqlite_text

Processor = Callable[[Any], Any]


def bind_processor(column_type: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """What SQLAlchemy would bind a value of ``column_type`` as on ``dialect``, with the direct
    path for a UTC datetime in a ``UtcDateTime`` on SQLite."""
    own = column_type.dialect_impl(dialect).bind_processor(dialect)
    if own is None or dialect.name != "sqlite" or not isinstance(column_type, UtcDateTime):
        return own

    def process(value: Any) -> Any:
        # Already UTC: the type's astimezone(UTC) gives it back unchanged.
        if type(value) is datetime and value.tzinfo is UTC:
            return sqlite_text(value)
        return own(value)

    return process
