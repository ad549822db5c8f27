"""Which FHIR servers a caller may send the service to: the base URLs each trusted issuer's
entry in ``CDS_TRUSTED_ISSUERS`` lists (``fhirServers``).

A validly signed call still names its ``fhirServer`` itself; without this list it could aim the
service's fetches at any host its network reaches, internal addresses included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from cds.settings import Environment, Settings

Origin = tuple[str, str, int | None]

NOT_LISTED = "fhirServer is not one of the caller's issuer's fhirServers (CDS_TRUSTED_ISSUERS)"
NONE_LISTED = (
    "the caller's issuer lists no fhirServers (CDS_TRUSTED_ISSUERS), required in production"
)


def origin(url: httpx.URL) -> Origin:
    """Scheme, host and effective port: what "the same server" means for a URL."""
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default_port


def _segments(url: httpx.URL) -> list[str]:
    return [segment for segment in url.path.split("/") if segment]


def _under(url: httpx.URL, base: httpx.URL) -> bool:
    """``url`` is ``base`` or below it, segment by segment (``/fhir`` never admits ``/fhirx``)."""
    if origin(url) != origin(base):
        return False
    prefix = _segments(base)
    return _segments(url)[: len(prefix)] == prefix


@dataclass(frozen=True, slots=True)
class FhirServerPolicy:
    """The FHIR base URLs each trusted issuer's calls may name, and whether naming none is
    refused (production) or leaves the issuer unrestricted (development, tests)."""

    allowed: Mapping[str, tuple[httpx.URL, ...]]
    listing_required: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirServerPolicy:
        return cls(
            allowed={
                iss: tuple(httpx.URL(base) for base in servers)
                for iss, servers in settings.issuer_fhir_servers().items()
            },
            listing_required=settings.env is Environment.production,
        )

    def refusal(self, issuer: str | None, fhir_server: httpx.URL) -> str | None:
        """Why a call from ``issuer`` (None: no authenticated caller) may not fetch from
        ``fhir_server``, or None."""
        if issuer is None:
            # Only with CDS_AUTH_MODE=off, which production refuses: there is no issuer to ask.
            return None
        bases = self.allowed.get(issuer, ())
        if not bases:
            return NONE_LISTED if self.listing_required else None
        if any(segment in {".", ".."} for segment in fhir_server.path.split("/")):
            # Encoded dot segments survive URL parsing and a server may resolve them above base.
            return NOT_LISTED
        if any(_under(fhir_server, base) for base in bases):
            return None
        return NOT_LISTED
