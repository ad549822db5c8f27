"""A request's next message is awaited by the body's deadline exactly as a receive awaited
inside ``asyncio.timeout_at`` was: the same message, the same BodyTimeout, the same errors and
cancellation; only a receive that waits gets a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.types import Message

from cds.api.body_deadline import received_by
from cds.errors import BodyTimeout

pytestmark = pytest.mark.anyio

MESSAGE: Message = {"type": "http.request", "body": b"{}", "more_body": False}
Receive = Callable[[], Awaitable[Message]]


async def _as_before(deadline: float, seconds: float, receiving: Awaitable[Message]) -> Message:
    """The way the edge awaited a message before: every receive under a timer."""
    try:
        async with asyncio.timeout_at(deadline):
            return await receiving
    except TimeoutError:
        raise BodyTimeout(seconds) from None


async def _at_once() -> Message:
    return MESSAGE


async def _after_a_wait() -> Message:
    await asyncio.sleep(0.01)
    return MESSAGE


async def _after_several_waits() -> Message:
    for _ in range(3):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return MESSAGE


async def _too_late() -> Message:
    await asyncio.sleep(1)
    return MESSAGE


async def _fails_at_once() -> Message:
    raise ValueError("at once")


async def _fails_after_a_wait() -> Message:
    await asyncio.sleep(0.01)
    raise ValueError("after a wait")


async def _times_out_itself() -> Message:
    raise TimeoutError


async def _times_out_itself_after_a_wait() -> Message:
    await asyncio.sleep(0.01)
    raise TimeoutError


def _a_future() -> Awaitable[Message]:
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.01, future.set_result, MESSAGE)
    return future


def _a_done_future() -> Awaitable[Message]:
    future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
    future.set_result(MESSAGE)
    return future


RECEIVES: list[Receive] = [
    _at_once,
    _after_a_wait,
    _after_several_waits,
    _too_late,
    _fails_at_once,
    _fails_after_a_wait,
    _times_out_itself,
    _times_out_itself_after_a_wait,
    _a_future,
    _a_done_future,
]


async def _outcome(
    way: Callable[[float, float, Awaitable[Message]], Awaitable[Message]],
    receive: Receive,
    seconds: float,
) -> tuple[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    try:
        return "answered", await way(deadline, seconds, receive())
    except Exception as exc:  # the outcome compared is the error itself
        return type(exc).__name__, getattr(exc, "status_code", None) or str(exc)


@pytest.mark.parametrize("receive", RECEIVES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("seconds", [-1.0, 0.0, 0.2, 5.0])
async def test_every_receive_ends_as_it_did_under_a_timer(receive: Receive, seconds: float) -> None:
    assert await _outcome(received_by, receive, seconds) == await _outcome(
        _as_before, receive, seconds
    )


async def test_a_message_already_there_is_handed_over_without_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timers: list[float] = []
    set_timer = asyncio.timeout_at

    def timeout_at(when: float) -> asyncio.Timeout:
        timers.append(when)
        return set_timer(when)

    monkeypatch.setattr(asyncio, "timeout_at", timeout_at)
    deadline = asyncio.get_running_loop().time() - 1
    assert await received_by(deadline, 5, _at_once()) == MESSAGE
    assert timers == []
    assert await received_by(deadline + 10, 5, _after_a_wait()) == MESSAGE
    assert len(timers) == 1


async def test_a_cancelled_request_cancels_the_receive_it_waits_on() -> None:
    seen: list[str] = []

    async def waits() -> Message:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return MESSAGE

    deadline = asyncio.get_running_loop().time() + 5
    task = asyncio.create_task(received_by(deadline, 5, waits()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]


async def test_a_receive_that_swallows_the_deadline_answers_what_it_returns_either_way() -> None:
    async def shrugs() -> Message:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return {"type": "http.disconnect"}
        return MESSAGE

    outcomes = [await _outcome(way, shrugs, 0.01) for way in (received_by, _as_before)]
    assert outcomes == [("answered", {"type": "http.disconnect"})] * 2
