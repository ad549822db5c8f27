"""Runtime settings from the environment (prefix ``CDS_``); secrets are SecretStr, never logged."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cds.config_errors import database_url_problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVELOPMENT_HASH_KEY = "development-only-patient-hash-key"
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:8080"
# HMAC-SHA256 keys shorter than the hash's own 32 bytes weaken it (RFC 2104, section 3).
MIN_HASH_KEY_BYTES = 32


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class AuthMode(StrEnum):
    required = "required"
    off = "off"


class ReplayCacheChoice(StrEnum):
    """Where the JWT ``jti`` replay cache lives (``CDS_REPLAY_CACHE``)."""

    auto = "auto"
    memory = "memory"
    database = "database"


class TrustedIssuer(BaseModel):
    """One ``CDS_TRUSTED_ISSUERS`` entry in its object form: where the issuer's keys come from
    and the FHIR base URLs its calls may name as ``fhirServer``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    jwks: str
    fhir_servers: list[str] = Field(default=[], alias="fhirServers")

    @field_validator("fhir_servers")
    @classmethod
    def _absolute_urls(cls, servers: list[str]) -> list[str]:
        for server in servers:
            parts = urlsplit(server)
            if parts.scheme not in {"http", "https"} or not parts.hostname:
                raise ValueError(f"fhirServers entry is not an absolute URL: {server!r}")
            if any(segment in {".", ".."} for segment in parts.path.split("/")):
                raise ValueError(f"fhirServers entry has a dot segment: {server!r}")
        return servers


class Settings(BaseSettings):
    """Every knob of the service; ``cds serve`` and ``create_app`` take one of these."""

    model_config = SettingsConfigDict(env_prefix="CDS_", extra="ignore", frozen=True)

    env: Environment = Environment.development
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "INFO"

    # Clinical content.
    rules_dir: Path = PROJECT_ROOT / "rules"
    cards_dir: Path = PROJECT_ROOT / "cards"
    topic_system: str = "https://footpath-cds.example.org/CodeSystem/rule"
    # One hospital's settings (docs/governance.md#site-settings): rule modes, tuned parameters,
    # local codes. None: the catalogue as shipped.
    site_config: Path | None = None
    # Evaluation clock override, for reproducible demos and golden cases ("now" when unset).
    fixed_now: str | None = None

    # HTTP surface.
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # The request line and headers together (431 above it); a JWT alone may take 16 KiB.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096)
    max_json_depth: int = Field(default=64, ge=8)
    max_prefetch_entries: int = Field(default=50_000, ge=1)
    # Slow clients: a body must have fully arrived this many seconds after its request's headers
    # (408 and the connection closed otherwise); each worker serves at most this many
    # connections at once (503 beyond).
    body_read_timeout: float = Field(default=10.0, gt=0)
    # ... and its line and headers this many seconds after the connection opened (its first
    # request) or after the request's first byte (later ones): 408 and closed otherwise.
    header_read_timeout: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    cors_origins: list[str] = ["https://sandbox.cds-hooks.org"]
    playground_enabled: bool | None = None
    demo_dir: Path = PROJECT_ROOT / "demo" / "patients"
    # Bodies this large are parsed and evaluated in a worker thread, one slot at a time per
    # worker by default, so the event loop keeps answering probes and small calls meanwhile.
    evaluation_thread_bytes: int = Field(default=1024 * 1024, ge=0)
    max_concurrent_evaluations: int = Field(default=1, ge=1)
    # Seconds between two checks of the database by each worker; /readyz answers from the last.
    readiness_interval: float = Field(default=1.0, gt=0)
    # /docs (Swagger UI); off in production unless asked for (see docs/operations.md).
    api_docs_enabled: bool | None = None
    # Validation outcomes remembered by resource content (0 = validate every time).
    validation_memo_size: int = Field(default=20_000, ge=0)

    # Caller authentication (JWT from the EHR).
    auth_mode: AuthMode | None = None
    # iss -> JWKS source, or {"jwks": source, "fhirServers": [base URL, ...]}.
    trusted_issuers: dict[str, str | TrustedIssuer] = {}
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_seconds: int = Field(default=3600, ge=60)
    jwks_cache_seconds: int = Field(default=3600, ge=10)
    jwks_min_refresh_seconds: int = Field(default=30, ge=0)
    trust_sandbox: bool = False
    # S-08 step 4: when set, a token's `tenant` claim must be one of these.
    trusted_tenants: list[str] = []
    # S-09: feedback also accepts tokens whose aud is the service URL or the discovery URL.
    feedback_aud_lenient: bool = False
    # auto: in memory when one process sees every token (SQLite, one worker), else the database.
    replay_cache: ReplayCacheChoice = ReplayCacheChoice.auto

    # Fallback FHIR fetching.
    fhir_connect_timeout: float = Field(default=2.0, gt=0)
    fhir_read_timeout: float = Field(default=3.0, gt=0)
    fhir_max_pages: int = Field(default=10, ge=1)
    fhir_max_retries: int = Field(default=2, ge=0)
    # Streamed reads stop here: one response, and all of one call's responses together.
    fhir_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    fhir_max_call_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    fhir_allow_http: bool = False
    fhir_open_server: bool = False
    # P-13: query a key again when the client answered it with an OperationOutcome.
    refetch_prefetch_errors: bool = False
    request_budget_seconds: float = Field(default=4.0, gt=0)

    # Storage.
    database_url: str = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'footpath-cds.db'}"
    migrate_on_start: bool = True
    patient_hash_key: SecretStr = SecretStr(DEVELOPMENT_HASH_KEY)
    # Bearer token for the admin report route; the route answers 404 while it is unset.
    admin_token: SecretStr | None = None
    # Bearer token /metrics asks for when set; unset, /metrics answers anyone who reaches it.
    metrics_token: SecretStr | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url_has_our_driver(cls, url: str) -> str:
        problem = database_url_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> Settings:
        problems = production_problems(self)
        if problems:
            # One line per problem; each names its variable, none quotes a value.
            raise ValueError("\n".join(problems))
        return self

    def issuer_jwks(self) -> dict[str, str]:
        """Each trusted issuer's JWKS source string, whichever form its entry takes."""
        return {
            iss: entry if isinstance(entry, str) else entry.jwks
            for iss, entry in self.trusted_issuers.items()
        }

    def issuer_fhir_servers(self) -> dict[str, list[str]]:
        """The FHIR base URLs each trusted issuer lists (none for the plain string form)."""
        return {
            iss: [] if isinstance(entry, str) else list(entry.fhir_servers)
            for iss, entry in self.trusted_issuers.items()
        }

    @property
    def effective_auth_mode(self) -> AuthMode:
        if self.auth_mode is not None:
            return self.auth_mode
        return AuthMode.required if self.env is Environment.production else AuthMode.off

    @property
    def effective_replay_cache(self) -> ReplayCacheChoice:
        """``memory`` or ``database``; ``auto`` picks memory only for SQLite with one worker.

        SQLite serves one process on one machine, so with one worker that process sees every
        token; PostgreSQL means replicas, which must share the cache to refuse a replay.
        """
        if self.replay_cache is not ReplayCacheChoice.auto:
            return self.replay_cache
        if self.database_is_sqlite and self.workers == 1:
            return ReplayCacheChoice.memory
        return ReplayCacheChoice.database

    @property
    def database_is_sqlite(self) -> bool:
        # The URL's scheme names the dialect before an optional "+driver".
        return self.database_url.partition(":")[0].partition("+")[0].lower() == "sqlite"

    @property
    def effective_api_docs(self) -> bool:
        if self.api_docs_enabled is not None:
            return self.api_docs_enabled
        return self.env is not Environment.production

    @property
    def effective_playground(self) -> bool:
        if self.playground_enabled is not None:
            return self.playground_enabled
        return self.env is not Environment.production

    def public_url(self, path: str) -> str:
        """The absolute URL callers use for ``path``: the JWT ``aud`` is checked against it."""
        return self.public_base_url.rstrip("/") + "/" + path.lstrip("/")

    def audiences(self, path: str) -> tuple[str, ...]:
        """The ``aud`` values a token for ``path`` may carry (S-09).

        Always the endpoint's own URL; for a feedback endpoint with ``feedback_aud_lenient``
        also its service's URL and the discovery URL, which some clients put there.
        """
        own = self.public_url(path)
        trimmed = path.rstrip("/")
        if not (self.feedback_aud_lenient and trimmed.endswith("/feedback")):
            return (own,)
        service = trimmed.removesuffix("/feedback")
        return own, self.public_url(service), self.public_url("/cds-services")


def production_problems(settings: Settings) -> list[str]:
    """Why ``settings`` cannot serve in production: each line names a variable, never a value."""
    if settings.env is not Environment.production:
        return []
    problems = []
    if settings.effective_auth_mode is AuthMode.off:
        problems.append("CDS_AUTH_MODE=off is refused when CDS_ENV=production")
    elif not settings.trusted_issuers:
        problems.append(
            "CDS_TRUSTED_ISSUERS is empty: with auth required no EHR could call the service; "
            "set a JSON object of issuer to JWKS URL"
        )
    if settings.trust_sandbox:
        problems.append("CDS_TRUST_SANDBOX is unsafe and refused in production")
    key = settings.patient_hash_key.get_secret_value()
    if key == DEVELOPMENT_HASH_KEY:
        problems.append(
            "CDS_PATIENT_HASH_KEY is unset: production needs its own key of at least "
            f"{MIN_HASH_KEY_BYTES} random bytes (e.g. openssl rand -base64 32)"
        )
    elif len(key.encode()) < MIN_HASH_KEY_BYTES:
        problems.append(
            f"CDS_PATIENT_HASH_KEY is shorter than {MIN_HASH_KEY_BYTES} bytes: use at least "
            f"{MIN_HASH_KEY_BYTES} random bytes (e.g. openssl rand -base64 32)"
        )
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment with explicit overrides (tests, CLI flags)."""
    return Settings(**overrides)
