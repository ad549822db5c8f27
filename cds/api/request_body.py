"""A request's body as the routes read it: its media type and its size limit; the bytes go on
to the flow that parses them (the time it may take to arrive: cds/api/request_edge.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from cds.api.responses import JSON_MEDIA_TYPE
from cds.errors import PayloadTooLarge, UnsupportedMediaType
from cds.request_json import parse_json


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
