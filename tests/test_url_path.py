"""The path a token's audience is checked against is the path of starlette's ``request.url``,
read without building the URL: the same for every path and host a request may bring."""

from __future__ import annotations

import pytest
from starlette.requests import Request
from starlette.types import Scope

from cds.api.routes import url_path

PATHS = [
    "/cds-services/back-to-foot",
    "/cds-services/back-to-foot/",
    "/cds-services/back-to-foot/feedback",
    "/cds-services",
    "/",
    "//cds-services/back-to-foot",
    "///x",
    "/cds-services/a?b",
    "/cds-services/a#b",
    "/cds-services/a\\b",
    "/cds-services/a\tb",
    "/cds-services/a\rb\nc",
    "/cds-services/a%3Fb",
    "/cds-services/ünïcødé",
    "/cds-services/a b",
    "/cds-services/a;b=c",
    "cds-services/no-leading-slash",
    "",
]
HOSTS = [
    [(b"host", b"127.0.0.1:8000")],
    [(b"host", b"cds.example.org")],
    [(b"host", b"[::1]:8443")],
    [(b"host", b"not a/host")],
    [],
]
SERVERS = [("127.0.0.1", 8000), ("::1", 443), None]


def _scope(path: str, headers: list[tuple[bytes, bytes]], server: object) -> Scope:
    scope: Scope = {
        "type": "http",
        "scheme": "https" if server == ("::1", 443) else "http",
        "method": "POST",
        "path": path,
        "query_string": b"x=1",
        "headers": headers,
    }
    if server is not None:
        scope["server"] = server
    return scope


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("headers", HOSTS)
@pytest.mark.parametrize("server", SERVERS)
def test_the_audience_path_is_the_path_of_the_request_url(
    path: str, headers: list[tuple[bytes, bytes]], server: object
) -> None:
    scope = _scope(path, headers, server)
    assert url_path(Request(scope)) == Request(scope).url.path
