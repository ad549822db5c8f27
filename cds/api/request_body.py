"""A request's body at the edge: its media type, its size limit and the time it may take to
arrive; the bytes go on to the flow that parses them."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds.api.responses import JSON_MEDIA_TYPE
from cds.errors import BodyTimeout, PayloadTooLarge, UnsupportedMediaType
from cds.request_json import parse_json


class BodyDeadline:
    """A request body must have fully arrived ``seconds`` after the request began, or 408.

    The server reads a body as fast as the client sends it, so a client sending one byte a
    second would hold its connection and a worker's memory for as long as it liked. Counted
    from the moment the headers were read: time spent before the route reads the body (the JWT
    check) is time the body had to arrive. Once the last chunk is in, ``receive`` is handed
    through untouched (it then only reports a disconnect).
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.seconds) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        # Liberal on the wire: a client that names no media type gets the benefit of the doubt.
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_MEDIA_TYPE or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_json(request: Request, limit: int) -> Any:
    """G-07 and the body limit: JSON of at most ``limit`` bytes, or a CdsError."""
    return parse_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    """G-07 and the body limit: the bytes of a JSON body of at most ``limit`` bytes."""
    if not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType("The body must be JSON (Content-Type: application/json).")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
