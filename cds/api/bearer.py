"""The operations routes' static bearer tokens: CDS_ADMIN_TOKEN and CDS_METRICS_TOKEN."""

from __future__ import annotations

import hmac

from pydantic import SecretStr

from cds.errors import NotFound, Unauthorized


def check_admin(expected: SecretStr | None, authorization: str | None) -> None:
    """The admin routes exist only with CDS_ADMIN_TOKEN set, and need exactly that token."""
    if expected is None:
        raise NotFound("Not found.")
    if not _bearer_is(authorization, expected):
        raise Unauthorized("admin token mismatch")


def check_metrics(expected: SecretStr | None, authorization: str | None) -> None:
    """/metrics needs CDS_METRICS_TOKEN as bearer token when it is set."""
    if expected is not None and not _bearer_is(authorization, expected):
        raise Unauthorized("metrics token mismatch")


def _bearer_is(authorization: str | None, expected: SecretStr) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    )
