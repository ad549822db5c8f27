"""Where a hook call's CPU-heavy stretch runs: one evaluation at a time per worker by default,
a heavy one in a worker thread, so that the event loop stays free for probes meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class EvaluationSlots:
    """At most ``size`` evaluations of this worker run at once; the others wait their turn
    on the loop, holding nothing but their body.

    A heavy evaluation runs in a worker thread. The thread still needs the GIL, but the
    interpreter hands it over every switch interval (5 ms), so the loop answers /healthz
    between two slices of a heavy evaluation instead of after all of it (over a second for
    a 5,000-resource chart on a busy machine); the longest slice is one C call that keeps the
    GIL, such as parsing the body (about 20 ms for 3.3 MiB). A light one runs on the loop,
    where a thread hop would cost it more than it blocks anything. More slots would not
    evaluate faster (one GIL) and would make the loop share the GIL with more threads: the
    default is one.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._limiter = anyio.CapacityLimiter(size)
        self.running = 0
        self.waiting = 0

    async def run(self, step: Callable[[], T], *, in_thread: bool) -> T:
        """``step()`` once a slot is free: in a worker thread, or on the loop."""
        try:
            # A free slot, and no call waiting for one (which would be served first): taken
            # at once. anyio's acquire would also yield to the loop once, a loop iteration
            # for every call that never waited.
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            self.waiting += 1
            try:
                await self._limiter.acquire()
            finally:
                self.waiting -= 1
        self.running += 1
        try:
            return await anyio.to_thread.run_sync(step) if in_thread else step()
        finally:
            self.running -= 1
            self._limiter.release()
