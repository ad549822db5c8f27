"""An audit batch on a SQLite file, on the event loop's thread: the calls' rows and their cards
sent with sqlite3's ``executemany`` on the batch engine's own connection, in one transaction.

Through SQLAlchemy's ``execute`` the same two INSERTs cost about 57 us of CPU per call (four
cards each), some 35 of them in SQLAlchemy building each row's parameters. Here each statement
is the text SQLAlchemy compiles for it, compiled once per set of columns, and each value is
converted by its column type's own bind processor, as SQLAlchemy converts it (aware datetimes
as UTC text, JSON as text; a UTC datetime written directly, cds/store/utc_binds.py), so the
stored rows are the same. Errors are raised as SQLAlchemy
raises them: a value no processor takes as a ``StatementError`` (a bad row), a database error
wrapped by ``DBAPIError.instance`` (an ``IntegrityError``, or an ``OperationalError`` whose busy
lock the store waits out).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, StatementError

from cds.store.engines import insert
from cds.store.schema import invocations, issued_cards
from cds.store.utc_binds import bind_processor

Row = dict[str, Any]


class _Insert:
    """One table's INSERT for a set of columns: its text and each parameter's processor."""

    def __init__(self, statement: sa.Insert, names: tuple[str, ...], dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        self.sql = compiled.string
        self.table = statement.table.name
        order = tuple(compiled.positiontup or ())
        if sorted(order) != sorted(names):
            raise ValueError(f"{self.table}: parameters {order} are not the columns {names}")
        columns = statement.table.c
        self.fields: list[tuple[str, Callable[[Any], Any] | None]] = [
            (name, bind_processor(columns[name].type, dialect)) for name in order
        ]

    def values(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        fields = self.fields
        try:
            return [
                tuple(
                    row[name] if process is None else process(row[name]) for name, process in fields
                )
                for row in rows
            ]
        except (TypeError, ValueError) as exc:
            # As SQLAlchemy reports a value it cannot bind: an error about the row.
            raise StatementError(str(exc), self.sql, None, exc) from exc


class SqliteAudit:
    """Writes audit batches through ``engine`` (a SQLite file's batch engine, see
    ``cds.store.engines.create_batch_engine``) on the calling thread."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._cards = insert_cards(engine.dialect.name)
        self._inserts: dict[tuple[str, tuple[str, ...]], _Insert] = {}

    def write(self, audits: Sequence[Row], cards: Sequence[Row]) -> None:
        """Both tables' rows in one transaction; nothing is written if either fails."""
        calls = self._insert(invocations.insert(), tuple(audits[0]))
        issued = self._insert(self._cards, tuple(cards[0])) if cards else None
        statements = [(calls.sql, calls.values(audits))]
        if issued is not None:
            statements.append((issued.sql, issued.values(cards)))
        connection = self._engine.raw_connection()
        try:
            try:
                cursor = connection.cursor()
                for sql, values in statements:
                    cursor.executemany(sql, values)
                connection.commit()
            except sqlite3.Error as exc:
                connection.rollback()
                raise DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
        finally:
            connection.close()

    def _insert(self, statement: sa.Insert, names: tuple[str, ...]) -> _Insert:
        key = (statement.table.name, names)
        found = self._inserts.get(key)
        if found is None:
            found = self._inserts[key] = _Insert(statement, names, self._engine.dialect)
        return found


def insert_cards(dialect: str) -> Any:
    """The ``issued_cards`` INSERT: a uuid seen twice (a retried write) must not lose the whole
    call's audit."""
    return insert(dialect, issued_cards).on_conflict_do_nothing(
        index_elements=["service_id", "card_uuid"]
    )
