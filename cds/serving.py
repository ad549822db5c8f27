"""How ``cds serve`` runs uvicorn: the connection cap and its 503, the header bytes and their
431, and the server's options."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from cds.api.responses import error_response
from cds.errors import CdsError, HeadersTimeout, HeadersTooLarge, Unavailable, operation_outcome
from cds.settings import Settings

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

# A connection refused for capacity is worth retrying almost at once: others finish in ms.
OVER_CAPACITY_RETRY_SECONDS = 1
# How long a connection refused for its headers still drains what the client sends.
_LINGER_SECONDS: Final = 1.0


class OverCapacity(Unavailable):
    """Every connection this worker may serve is taken (``CDS_MAX_CONNECTIONS``)."""

    issue_code = "throttled"
    retry_after_seconds = OVER_CAPACITY_RETRY_SECONDS

    def __init__(self) -> None:
        super().__init__(
            "The service is temporarily unavailable: it is serving as many connections as it "
            "may. Retry shortly."
        )

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "Connection": "close"}


async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """uvicorn's answer beyond ``limit_concurrency``, as an OperationOutcome instead of text."""
    await error_response(OverCapacity())(scope, receive, send)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, whose over-capacity 503 is our OperationOutcome, and
    which answers 431 once a request's line and headers pass
    ``config.h11_max_incomplete_event_size`` bytes (``CDS_MAX_HEADER_BYTES``).

    uvicorn counts the connections and picks its own plain-text ``service_unavailable`` app for
    a request beyond ``limit_concurrency``; every request, pipelined ones too, is started here,
    so that one app is swapped for ours.

    httptools itself buffers header values of any size (a 10 MB header was accepted); h11 has
    a bound built in (the knob that carries ours) but parses in Python, at a cost to every
    request. Bytes are counted as they arrive while the headers are incomplete, so at most
    one read (256 KiB) past the limit is ever held.

    uvicorn has no timeout for headers either: a client sending them a byte a second held its
    connection (and a place under the connection cap) for ever. The headers must be in
    ``CDS_HEADER_READ_TIMEOUT`` after the connection opened (its first request) or after the
    request's first byte (later ones, once uvicorn's keep-alive timer has handed over); a
    request begun and not finished then gets a 408, and a connection that never sent a byte
    is closed without one (an answer nobody asked for would be read as the next one's).
    """

    _reading_headers = False
    _header_bytes = 0
    _refused = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_awaiting_headers()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        chosen = cast("ASGI3Application", over_capacity) if app is service_unavailable else app
        super()._start_asgi_task(cycle, chosen)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_bytes = True, 0
        if self._header_timer is None:
            self._await_headers()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_awaiting_headers()
        super().on_headers_complete()

    def _await_headers(self) -> None:
        self._header_timer = self.loop.call_later(header_read_timeout(), self._headers_too_slow)

    def _stop_awaiting_headers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._refused or self.transport.is_closing():
            return
        if not self._reading_headers:
            self.transport.close()
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request behind an answer still being sent: that answer goes first.
            self._await_headers()
            return
        self._reading_headers = False
        seconds = header_read_timeout()
        self._answer_and_close(b"408 Request Timeout", HeadersTimeout(seconds))

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request, read only so the 431 is not lost to a reset
        super().data_received(data)
        if not self._reading_headers or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        limit = self.config.h11_max_incomplete_event_size
        if limit is not None and self._header_bytes > limit:
            self._reading_headers = False
            self._refuse(limit)

    def _refuse(self, limit: int) -> None:
        error = HeadersTooLarge(f"The request's headers are larger than {limit} bytes.")
        self._answer_and_close(b"431 Request Header Fields Too Large", error)

    def _answer_and_close(self, status: bytes, error: CdsError) -> None:
        """``error`` as an OperationOutcome before the request reached the app, then close."""
        self._stop_awaiting_headers()
        body = orjson.dumps(operation_outcome(error))
        self._refused = True
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        # A lingering close: closing with the client's bytes unread would send a reset, which
        # can destroy the answer before the client reads it. Stop writing, drain, close soon.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)


@cache
def header_read_timeout() -> float:
    """This worker's ``CDS_HEADER_READ_TIMEOUT``: no uvicorn option carries it to the workers,
    which read the same environment as the app they serve."""
    return Settings().header_read_timeout


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments for ``settings`` (besides the app and the address)."""
    return {
        "workers": settings.workers,
        "http": HttpProtocol,
        # uvicorn refuses a request when the connections it has (the requesting one included)
        # reach the limit: one more than ours lets exactly CDS_MAX_CONNECTIONS be served.
        "limit_concurrency": settings.max_connections + 1,
        # The bound HttpProtocol puts on request line and header bytes (h11's name for it).
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # Our own JSON request log replaces the access log; nothing else is printed per request.
        "access_log": False,
        "log_config": None,
        "proxy_headers": True,
    }


def serve(settings: Settings, *, host: str, port: int) -> None:
    """Run the service under uvicorn (each worker builds its own app) until it is stopped."""
    uvicorn.run(
        "cds.app:create_app", factory=True, host=host, port=port, **uvicorn_options(settings)
    )
