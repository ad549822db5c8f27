"""How ``cds serve`` runs uvicorn: the connection cap and its 503, and the server's options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from cds.errors import Unavailable
from cds.settings import Settings
from cds.wire import error_response

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

# A connection refused for capacity is worth retrying almost at once: others finish in ms.
OVER_CAPACITY_RETRY_SECONDS = 1


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
    """uvicorn's httptools protocol, whose over-capacity 503 is our OperationOutcome.

    uvicorn counts the connections and picks its own plain-text ``service_unavailable`` app for
    a request beyond ``limit_concurrency``; every request, pipelined ones too, is started here,
    so that one app is swapped for ours.
    """

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        chosen = cast("ASGI3Application", over_capacity) if app is service_unavailable else app
        super()._start_asgi_task(cycle, chosen)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments for ``settings`` (besides the app and the address)."""
    return {
        "workers": settings.workers,
        "http": HttpProtocol,
        # uvicorn refuses a request when the connections it has (the requesting one included)
        # reach the limit: one more than ours lets exactly CDS_MAX_CONNECTIONS be served.
        "limit_concurrency": settings.max_connections + 1,
        # Our own JSON request log replaces the access log; nothing else is printed per request.
        "access_log": False,
        "log_config": None,
        "proxy_headers": True,
    }
