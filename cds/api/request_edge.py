"""What every HTTP request meets before the routes, in one middleware: a single
``Authorization`` header (400), the body's arrival deadline (408), and any unhandled exception
as a 500 OperationOutcome. (The headers' size is bounded by ``cds serve``, see cds/serving.py.)

One layer, not three: each ASGI layer costs every call its own frame, and the two that wrap
``receive`` and ``send`` a closure each. Their order is the one the three layers had: the header
check answers before the deadline starts, and a 500 goes out through the same ``send``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.body_deadline import received_by
from cds.api.hook_lane import HookLane
from cds.api.responses import error_response
from cds.errors import CdsError, InvalidRequest
from cds.logs import log_fields

# The app's logger: operators read unexpected failures under "cds", as before the fold.
log = logging.getLogger("cds")

_AUTHORIZATION: Final = b"authorization"


class RequestEdge:
    """The three jobs, for ``http`` scopes only (lifespan and others pass straight through).

    * Two ``Authorization`` headers answer 400: which one a proxy checked and which one we read
      could differ, and taking the first would hide the question.
    * A request body must have fully arrived ``body_seconds`` after the request began, or 408.
      The server reads a body as fast as the client sends it, so a client sending one byte a
      second would hold its connection and a worker's memory for as long as it liked. Counted
      from the moment the headers were read: time spent before the route reads the body (the
      JWT check) is time the body had to arrive. Once the last chunk is in, ``receive`` is
      handed through untouched (it then only reports a disconnect).
    * E-06: any unhandled exception becomes a 500 OperationOutcome without stack or PHI. It
      sits inside the CORS middleware, so browsers can read the 500 too (S-18).
    """

    def __init__(
        self,
        app: ASGIApp,
        body_seconds: float,
        hook_lane: Callable[[], HookLane | None] | None = None,
    ) -> None:
        self.app = app
        self.body_seconds = body_seconds
        # Built with the middleware stack, on the first request: the routes and exception
        # handlers are then those the router and FastAPI's exception layer were built with.
        self.hook_lane = hook_lane() if hook_lane is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _authorizations(scope["headers"]) > 1:
            error = InvalidRequest("The request has more than one Authorization header.")
            await error_response(error)(scope, receive, send)
            return
        seconds = self.body_seconds
        deadline = asyncio.get_running_loop().time() + seconds
        complete = False
        started = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            message = await received_by(deadline, seconds, receive())
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        lane = self.hook_lane
        inner = lane if lane is not None and lane.claims(scope) else self.app
        try:
            await inner(scope, receive_in_time, tracking_send)
        except Exception:
            # Log the exception type and where, never the request: bodies may hold PHI.
            log.exception("unexpected failure", extra=log_fields(path=scope.get("path")))
            if started:
                raise
            response = error_response(CdsError("An unexpected error occurred."))
            await response(scope, receive_in_time, send)


def _authorizations(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(1 for name, _ in headers if name.lower() == _AUTHORIZATION)
