"""Which FHIR servers a caller may send the service to: the base URLs each trusted issuer's
entry in ``CDS_TRUSTED_ISSUERS`` lists (``fhirServers``).

A validly signed call still names its ``fhirServer`` itself; without this list it could aim the
service's fetches at any host its network reaches, internal addresses included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from cds.settings import Environment, Settings

NOT_LISTED = "fhirServer is not one of the caller's issuer's fhirServers (CDS_TRUSTED_ISSUERS)"
NONE_LISTED = "the caller's issuer lists no fhirServers in CDS_TRUSTED_ISSUERS (production)"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Base:
    """A URL as the comparison needs it: origin, and path segments as sent (not decoded)."""

    scheme: str
    host: str
    port: int | None
    segments: tuple[str, ...]

    @classmethod
    def parse(cls, url: str) -> _Base | None:
        """None when ``url`` is not an absolute http(s) URL or has a dot segment, encoded or
        not: a server may resolve one to a path above the listed base."""
        try:
            parts: SplitResult = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            return None
        segments = tuple(segment for segment in parts.path.split("/") if segment)
        if any(unquote(segment) in {".", ".."} for segment in segments):
            return None
        return cls(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], segments)

    def holds(self, other: _Base) -> bool:
        """``other`` is this base or below it, segment by segment (``/fhir`` never admits
        ``/fhirx``)."""
        return (self.scheme, self.host, self.port) == (
            other.scheme,
            other.host,
            other.port,
        ) and other.segments[: len(self.segments)] == self.segments


@dataclass(frozen=True, slots=True)
class FhirServerPolicy:
    """The FHIR base URLs each trusted issuer's calls may name, and whether naming none is
    refused (production) or leaves the issuer unrestricted (development, tests)."""

    allowed: Mapping[str, tuple[_Base, ...]]
    listing_required: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> FhirServerPolicy:
        allowed: dict[str, tuple[_Base, ...]] = {}
        for iss, servers in settings.issuer_fhir_servers().items():
            bases = [_Base.parse(server) for server in servers]
            allowed[iss] = tuple(base for base in bases if base is not None)
        return cls(allowed, listing_required=settings.env is Environment.production)

    def refusal(self, issuer: str | None, fhir_server: str) -> str | None:
        """Why a call from ``issuer`` (None: no authenticated caller) may not fetch from
        ``fhir_server``, or None."""
        if issuer is None:
            # Only with CDS_AUTH_MODE=off, which production refuses: there is no issuer to ask.
            return None
        bases = self.allowed.get(issuer, ())
        if not bases:
            return NONE_LISTED if self.listing_required else None
        server = _Base.parse(fhir_server)
        if server is not None and any(base.holds(server) for base in bases):
            return None
        return NOT_LISTED
