"""What ``fhirAuthorization`` lets one hook call do on the FHIR server, and until when."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import SecretStr

from cds.data.scopes import Scopes, target_of

TOKEN_EXPIRED = "the FHIR access token expired (fhirAuthorization.expires_in)"  # noqa: S105


@dataclass(frozen=True, slots=True)
class Grant:
    """What ``fhirAuthorization`` lets this call do on the FHIR server, and until when."""

    access_token: SecretStr | None
    patient: str | None = None  # fhirAuthorization.patient: the patient the token is for
    scopes: Scopes | None = None  # None: no token, every read is the server's to decide
    expires_at: float | None = None  # time.monotonic() after which the token is not used

    @classmethod
    def of(
        cls,
        access_token: SecretStr | None,
        *,
        patient: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        received: float | None = None,
    ) -> Grant:
        """The grant of a token received at ``received`` (monotonic; now when None)."""
        start = time.monotonic() if received is None else received
        return cls(
            access_token,
            patient,
            Scopes.parse(scope) if scope is not None else None,
            start + expires_in if expires_in is not None else None,
        )

    def refuses(self, relative: str) -> str | None:
        """Why the token's scope does not allow reading ``relative`` (R-09), or None."""
        if self.scopes is None:
            return None
        resource_type, search = target_of(relative)
        if self.scopes.allows(resource_type, search=search):
            return None
        return f"fhirAuthorization.scope does not allow reading {resource_type}"
