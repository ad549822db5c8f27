"""What the service accepts in a request's headers beyond their size (which ``cds serve``
bounds, see cds/serving.py): a single ``Authorization``."""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from cds.api.responses import error_response
from cds.errors import InvalidRequest

_AUTHORIZATION: Final = b"authorization"


class SingleAuthorization:
    """Two ``Authorization`` headers answer 400: which one a proxy checked and which one we
    read could differ, and taking the first would hide the question."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            count = sum(1 for name, _ in scope["headers"] if name.lower() == _AUTHORIZATION)
            if count > 1:
                error = InvalidRequest("The request has more than one Authorization header.")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
