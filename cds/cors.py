"""Which browser origins may call the service: the configured list, plus, outside production,
any loopback origin on any port (a local sandbox, the playground, a Postman-like tool)."""

from __future__ import annotations

from dataclasses import dataclass

from cds.settings import Environment, Settings

# http only: a loopback origin is a developer's own machine, and its port changes per tool.
LOOPBACK_ORIGINS = r"http://(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?"


@dataclass(frozen=True)
class CorsPolicy:
    """What ``CORSMiddleware`` is given, and the one line that says so at startup."""

    origins: tuple[str, ...]
    origin_regex: str | None

    def describe(self) -> str:
        listed = ", ".join(self.origins) or "none"
        if self.origin_regex is None:
            return f"CORS: only the listed origins ({listed}; CDS_CORS_ORIGINS)"
        return (
            f"CORS: the listed origins ({listed}; CDS_CORS_ORIGINS) and any loopback origin "
            "(http://localhost, 127.0.0.1 or [::1], any port) outside production"
        )


def cors_policy(settings: Settings) -> CorsPolicy:
    """Production keeps an explicit list; development and test also allow loopback origins."""
    loopback = None if settings.env is Environment.production else LOOPBACK_ORIGINS
    return CorsPolicy(tuple(settings.cors_origins), loopback)
