"""What one hook call may read from its FHIR server: the server, the token, its scope and expiry,
and the reasons the server may not be asked at all (R-06..R-09, P-16)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pydantic import SecretStr

from cds.data.fhir_client import scheme_and_host
from cds.data.fhir_servers import FhirServerPolicy
from cds.data.scopes import Scopes, target_of
from cds.settings import Settings

TOKEN_EXPIRED = "the FHIR access token expired (fhirAuthorization.expires_in)"  # noqa: S105
NO_CLIENT = "no FHIR client is configured"


@dataclass(frozen=True, slots=True)
class Grant:
    """The FHIR server one call names, the token ``fhirAuthorization`` gives for it, and until
    when; ``refusal`` says why the server may not be asked at all (None: it may)."""

    fhir_server: str | None
    access_token: SecretStr | None = None
    patient: str | None = None  # fhirAuthorization.patient: the patient the token is for
    scopes: Scopes | None = None  # None: no token, every read is the server's to decide
    expires_at: float | None = None  # time.monotonic() after which the token is not used
    refusal: str | None = None

    @classmethod
    def refused(cls, refusal: str) -> Grant:
        """A grant that lets the call read nothing, for ``refusal``."""
        return cls(None, refusal=refusal)

    @property
    def server(self) -> str | None:
        """The FHIR base URL to read from, or None when the server may not be asked."""
        return self.fhir_server if self.refusal is None else None

    def refuses(self, relative: str) -> str | None:
        """Why the token's scope does not allow reading ``relative`` (R-09), or None."""
        if self.scopes is None:
            return None
        resource_type, search = target_of(relative)
        if self.scopes.allows(resource_type, search=search):
            return None
        return f"fhirAuthorization.scope does not allow reading {resource_type}"

    def time_left(self, budget_seconds: float) -> tuple[float, str | None]:
        """Seconds the fetches may run: the request's budget, or less when the token expires
        first (R-08: the token is transient and never used past ``expires_in``), with what the
        time stands for when it is not the request's own budget."""
        if self.expires_at is None:
            return budget_seconds, None
        token_left = self.expires_at - time.monotonic()
        if token_left < budget_seconds:
            return max(token_left, 0.0), TOKEN_EXPIRED
        return budget_seconds, None


@dataclass(frozen=True, slots=True)
class GrantPolicy:
    """What the settings let any call's grant do: plain http (CDS_FHIR_ALLOW_HTTP), reading
    without a token (CDS_FHIR_OPEN_SERVER), and the servers each issuer lists."""

    allow_http: bool
    open_server: bool
    servers: FhirServerPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> GrantPolicy:
        return cls(
            allow_http=settings.fhir_allow_http,
            open_server=settings.fhir_open_server,
            servers=FhirServerPolicy.from_settings(settings),
        )

    def grant(
        self,
        fhir_server: str | None,
        access_token: SecretStr | None,
        *,
        patient_id: object,
        token_patient: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        received: float | None = None,
        issuer: str | None = None,
    ) -> Grant:
        """The grant of a call naming ``fhir_server`` and ``access_token`` (None: no
        ``fhirAuthorization``) for ``patient_id``, received at ``received`` (monotonic; now when
        None) from a caller of ``issuer`` (None without authentication)."""
        start = time.monotonic() if received is None else received
        return Grant(
            fhir_server,
            access_token,
            token_patient,
            Scopes.parse(scope) if scope is not None else None,
            start + expires_in if expires_in is not None else None,
            self.refusal(fhir_server, access_token, token_patient, patient_id, issuer),
        )

    def refusal(
        self,
        fhir_server: str | None,
        access_token: SecretStr | None,
        token_patient: str | None,
        patient_id: object,
        issuer: str | None = None,
    ) -> str | None:
        """Why this call's FHIR server must not be called (R-06, R-07, P-16), or None.

        ``issuer`` is the authenticated caller's ``iss`` (None without authentication): its
        ``fhirServers`` in CDS_TRUSTED_ISSUERS say where its calls may send the service."""
        if not fhir_server:
            return "the request has no fhirServer"
        unusable = self._unusable(fhir_server)
        if unusable is not None:
            return unusable
        not_allowed = self.servers.refusal(issuer, fhir_server)
        if not_allowed is not None:
            return not_allowed
        if access_token is None and not self.open_server:
            return "the request has no fhirAuthorization (CDS_FHIR_OPEN_SERVER is off)"
        # The spec gives a FHIR id; some clients send a reference, which names the same patient.
        if token_patient is not None and token_patient.removeprefix("Patient/") != patient_id:
            return "fhirAuthorization is for another patient than context.patientId"
        return None

    def _unusable(self, fhir_server: str) -> str | None:
        parts = scheme_and_host(fhir_server)
        if parts is None:
            return "fhirServer is not a valid URL"
        scheme, host = parts
        if scheme not in {"http", "https"} or not host:
            return "fhirServer is not an absolute https URL"
        if scheme == "http" and not self.allow_http:
            return "fhirServer is plain http, which is refused (CDS_FHIR_ALLOW_HTTP is off)"
        return None
