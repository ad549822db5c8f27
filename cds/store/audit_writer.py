"""Hook calls' audit rows and issued cards, written in batches off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Final, Protocol

import asyncpg
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from cds.errors import StoreUnavailable
from cds.logs import log_fields
from cds.metrics import Metrics
from cds.store.models import AuditRecord, Invocation, IssuedCardLike

log = logging.getLogger("cds.audit")

BATCH_CALLS: Final = 200
BATCH_SECONDS: Final = 0.05
MAX_QUEUED: Final = 10_000


class InvocationStore(Protocol):
    """Where batches go: ``Store``, or a stand-in in tests."""

    async def record_invocations(self, calls: Sequence[Invocation]) -> None: ...


class AuditWriter:
    """Queues each hook call's audit row and issued cards; one task writes them in batches.

    A request only enqueues its call. The task writes up to ``batch_calls`` calls in one
    transaction, at the latest ``batch_seconds`` after the first of them arrived: a transaction
    per request cost ~1 ms of CPU, a batch of tens of calls ~0.06 ms per call. The queue is
    bounded: when ``max_queued`` calls wait, requests wait too, so a slow database slows callers
    down instead of growing memory or dropping rows.

    ``flush()`` returns once every call submitted before it is written. The feedback path calls
    it, so feedback on a card answered a moment ago finds the card; the admin report calls it;
    tests call it (``await app.state.parts.audit.flush()``) before reading audit rows.
    ``close()`` writes everything still queued and stops the task (the app's lifespan exit).
    Calls queued when the process is killed are lost: about ``batch_seconds`` of them.

    Before ``start()`` and after ``close()`` a call is written at once, as on the request path.
    """

    def __init__(
        self,
        store: InvocationStore,
        metrics: Metrics,
        *,
        batch_calls: int = BATCH_CALLS,
        batch_seconds: float = BATCH_SECONDS,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._batch_calls = batch_calls
        self._batch_seconds = batch_seconds
        self._max_queued = max_queued
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # None is the stop mark close() queues behind the last call.
        self._queue: asyncio.Queue[Invocation | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._queued = 0  # calls put in the queue so far
        self._done = 0  # calls taken out of it and written (or given up on)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    def start(self) -> None:
        """Start the writing task on the running event loop (the app's lifespan)."""
        if self.running:
            return
        # Built here, not in __init__: they belong to the loop that runs the app.
        self._queue = asyncio.Queue(self._max_queued)
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._queued = self._done = 0
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")
        self._task.add_done_callback(self._stopped)

    async def submit(self, audit: AuditRecord, issued: Sequence[IssuedCardLike]) -> None:
        """Queue one hook call; waits only while the queue is full."""
        call: Invocation = (audit, tuple(issued))
        if not self.running:
            await self._write([call])
            return
        await self._queue.put(call)
        self._queued += 1
        if self._queue.qsize() >= self._batch_calls:
            self._wake.set()

    async def flush(self) -> None:
        """Return once every call submitted before this one is written (or given up on)."""
        target = self._queued
        while self._done < target and self._task is not None and not self._task.done():
            self._wake.set()
            await self._progress.wait()

    async def close(self) -> None:
        """Write everything queued, then stop the task; later calls are written at once."""
        task = self._task
        if task is None or self._closing:
            return
        self._closing = True
        if not task.done():
            await self._queue.put(None)
            self._wake.set()
            await asyncio.wait([task])
        # A writing task that died (not expected) leaves its queue to be written here.
        leftovers = [call for call in _drain(self._queue) if call is not None]
        if leftovers:
            await self._write(leftovers)
        self._task = None

    async def _run(self) -> None:
        queue = self._queue
        while True:
            first = await queue.get()
            if first is None:
                return
            if queue.qsize() + 1 < self._batch_calls and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._batch_seconds):
                        await self._wake.wait()
            self._wake.clear()
            batch = [first]
            stop = False
            while len(batch) < self._batch_calls and not queue.empty():
                call = queue.get_nowait()
                if call is None:
                    stop = True
                    break
                batch.append(call)
            await self._write(batch)
            self._done += len(batch)
            self._progress.set()
            self._progress = asyncio.Event()
            if stop:
                return

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Not expected (_write keeps every database error to itself); later calls are
            # then written on the request path, and flush() stops waiting.
            log.error(
                "audit writer stopped", extra=log_fields(error_type=type(task.exception()).__name__)
            )
        self._progress.set()

    async def _write(self, batch: list[Invocation]) -> None:
        """Write ``batch`` in one transaction, else call by call: one bad row loses only itself.

        Only error types are logged: a database error's message quotes the row's values.
        """
        failure = await self._attempt(batch)
        if failure is None:
            return
        self._metrics.audit_batch_failed()
        if isinstance(failure, StoreUnavailable):
            # The store logs the outage once; a log line per batch would repeat it 20 times a
            # second, and writing the calls one by one would only fail the same way.
            self._metrics.audit_rows_lost(len(batch))
            return
        log.warning(
            "audit batch write failed; writing its calls one by one",
            extra=log_fields(count=len(batch), error_type=type(failure).__name__),
        )
        lost: list[str] = []
        for index, call in enumerate(batch):
            failure = await self._attempt([call])
            if failure is None:
                continue
            if _bad_row(failure):
                lost.append(type(failure).__name__)
                continue
            # The database itself failed: the rest would fail too, each after its own timeout.
            if isinstance(failure, StoreUnavailable):
                self._metrics.audit_rows_lost(len(batch) - index)
                break
            lost.extend([type(failure).__name__] * (len(batch) - index))
            break
        if lost:
            self._metrics.audit_rows_lost(len(lost))
            log.error(
                "audit rows lost", extra=log_fields(count=len(lost), error_type=sorted(set(lost)))
            )

    async def _attempt(self, calls: list[Invocation]) -> Exception | None:
        try:
            await self._store.record_invocations(calls)
        except Exception as exc:  # whatever the driver raises, the writing task must live on
            return exc
        return None


def _bad_row(exc: Exception) -> bool:
    """Whether ``exc`` is about the row (a constraint, a value) rather than the database."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    # The same from asyncpg itself (cds/store/audit_batch.py): SQLSTATE class 22 or 23.
    if isinstance(exc, asyncpg.PostgresError) and str(exc.sqlstate)[:2] in {"22", "23"}:
        return True
    # A StatementError that is not a DBAPIError failed while binding a value, before the driver.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _drain(queue: asyncio.Queue[Invocation | None]) -> list[Invocation | None]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items
