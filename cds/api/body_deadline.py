"""Awaiting a request's next message by the body's deadline, with a timer only when it waits.

The server has usually read a small body before the app asks for it: its ``receive`` then
answers without waiting, and a deadline cannot fire where nothing waits (asyncio cancels a
task only at a wait). Setting and cancelling a timer for every such call cost about 4 us in a
warm loop and 15-20 us in a hook call. So ``receive`` runs first to its first wait, and only
a receive that does wait goes on under ``asyncio.timeout_at``, from where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any

from starlette.types import Message

from cds.errors import BodyTimeout


async def received_by(deadline: float, seconds: float, receiving: Awaitable[Message]) -> Message:
    """``receiving`` awaited, or ``BodyTimeout(seconds)`` when the loop's clock passes
    ``deadline`` while it waits, or when it raises ``TimeoutError`` itself (as a receive awaited
    inside ``asyncio.timeout_at`` would have been answered)."""
    steps = receiving.__await__()
    try:
        try:
            waiting_on = next(steps)
        except StopIteration as done:
            message: Message = done.value
            return message
        async with asyncio.timeout_at(deadline):
            return await _Resumed(steps, waiting_on)
    except TimeoutError:
        raise BodyTimeout(seconds) from None


class _Resumed:
    """An awaitable that already ran to its first wait, awaited from that wait on: what the
    task sends or throws in goes to it, what it waits on goes to the task, as ``await`` does."""

    __slots__ = ("_steps", "_waiting_on")

    def __init__(self, steps: Generator[Any, Any, Message], waiting_on: Any) -> None:
        self._steps = steps
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Message]:
        steps, waiting_on = self._steps, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # the task's cancellation among them: passed on
                try:
                    waiting_on = steps.throw(exc)
                except StopIteration as done:
                    thrown: Message = done.value
                    return thrown
            else:
                try:
                    waiting_on = steps.send(sent)
                except StopIteration as done:
                    answered: Message = done.value
                    return answered
