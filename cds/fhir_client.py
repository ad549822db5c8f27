"""The one outbound FHIR HTTP client: fetch missing prefetch keys concurrently, within a budget."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import anyio
import httpx
import orjson
from pydantic import SecretStr

from cds.metrics import FhirError, Metrics
from cds.prefetch import PatientData, PrefetchState, classify
from cds.settings import Settings

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_RETRY_STATUSES = frozenset({429, 503})
_BACKOFF_BASE_SECONDS = 0.2
# A server asking for a longer pause than this will not be ready within a CDS Hooks call.
_RETRY_AFTER_CAP_SECONDS = 2.0


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default_port


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None when absent/garbled."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(slots=True)
class _Page:
    payload: Any | None = None
    reason: str | None = None


@dataclass(slots=True)
class FetchJob:
    """One prefetch key being read from the FHIR server, page by page."""

    key: str
    url: httpx.URL
    why: str = ""  # why the key is fetched at all, to lead its unavailability reason
    resources: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0  # pages in hand, counting a prefetched first page
    reason: str | None = None  # set when the key turned out unavailable
    incomplete: bool = False
    done: bool = False


class FhirClient:
    """One ``httpx.AsyncClient`` for the app's lifetime; tests inject a transport for faults."""

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        timeout = httpx.Timeout(
            connect=settings.fhir_connect_timeout,
            read=settings.fhir_read_timeout,
            write=settings.fhir_read_timeout,
            pool=settings.fhir_connect_timeout,
        )
        # Redirects are not followed: a 3xx could carry the bearer token's request elsewhere.
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"Accept": FHIR_JSON},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"FhirClient(pages<={self.settings.fhir_max_pages})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FhirClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def refusal(
        self,
        fhir_server: str | None,
        access_token: SecretStr | None,
        token_patient: str | None,
        patient_id: object,
    ) -> str | None:
        """Why this request's FHIR server must not be called (R-06, R-07, P-16), or None."""
        if not fhir_server:
            return "the request has no fhirServer"
        try:
            url = httpx.URL(fhir_server)
        except httpx.InvalidURL:
            return "fhirServer is not a valid URL"
        if url.scheme not in {"http", "https"} or not url.host:
            return "fhirServer is not an absolute https URL"
        if url.scheme == "http" and not self.settings.fhir_allow_http:
            return "fhirServer is plain http, which is refused (CDS_FHIR_ALLOW_HTTP is off)"
        if access_token is None and not self.settings.fhir_open_server:
            return "the request has no fhirAuthorization (CDS_FHIR_OPEN_SERVER is off)"
        # The spec gives a FHIR id; some clients send a reference, which names the same patient.
        if token_patient is not None and token_patient.removeprefix("Patient/") != patient_id:
            return "fhirAuthorization is for another patient than context.patientId"
        return None

    async def run(
        self,
        jobs: list[FetchJob],
        *,
        fhir_server: str,
        access_token: SecretStr | None,
        budget_seconds: float,
        data: PatientData,
        out_of_time: str | None = None,
    ) -> None:
        """Run ``jobs`` concurrently until done or out of budget; results land in ``data``.

        ``out_of_time`` names what the budget stands for when it is not the request's own.
        """
        deadline = anyio.current_time() + budget_seconds
        server_origin = _origin(httpx.URL(fhir_server))
        if budget_seconds > 0:
            with anyio.move_on_after(budget_seconds):
                async with anyio.create_task_group() as tasks:
                    for job in jobs:
                        tasks.start_soon(
                            self._run_job, job, server_origin, access_token, deadline, data
                        )
        for job in jobs:
            if not job.done:
                job.reason = job.reason or out_of_time or "the request's time budget ran out"
                job.incomplete = True
            if job.pages > 0:
                data.resources[job.key] = job.resources
                if job.incomplete:
                    data.incomplete.add(job.key)
            else:
                data.unavailable[job.key] = f"{job.why}; {job.reason or 'no data arrived'}"
            if job.reason:
                logger.info("FHIR fetch for prefetch key %s: %s", job.key, job.reason)

    async def _run_job(
        self,
        job: FetchJob,
        server_origin: tuple[str, str, int | None],
        access_token: SecretStr | None,
        deadline: float,
        data: PatientData,
    ) -> None:
        url: httpx.URL | None = job.url
        while url is not None:
            if job.pages >= self.settings.fhir_max_pages:
                job.incomplete = True
                break
            if url.scheme != "https" and not (
                url.scheme == "http" and self.settings.fhir_allow_http
            ):
                job.reason, job.incomplete = "a next link is not https", True
                break
            # The bearer token belongs to the request's fhirServer and goes nowhere else.
            same_origin = _origin(url) == server_origin
            page = await self._get(url, access_token if same_origin else None, deadline, data)
            if page.reason is not None:
                job.reason, job.incomplete = page.reason, True
                break
            read = classify(page.payload)
            if read.state is PrefetchState.needs_fetch:
                job.reason, job.incomplete = "the FHIR server sent an OperationOutcome", True
                break
            job.pages += 1
            job.resources.extend(read.resources)
            url = url.join(read.next_url) if read.next_url else None
            if url is not None and len(job.resources) >= self.settings.max_prefetch_entries:
                job.incomplete = True
                break
        job.done = True

    async def _get(
        self, url: httpx.URL, token: SecretStr | None, deadline: float, data: PatientData
    ) -> _Page:
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        attempt = 0
        while True:
            data.fetched += 1
            started = time.perf_counter()
            try:
                response = await self._http.get(url, headers=headers)
            except httpx.TimeoutException:
                self._count_error(FhirError.timeout)
                return _Page(reason="the FHIR server timed out")
            except httpx.HTTPError as exc:
                self._count_error(FhirError.connect)
                # The exception text can hold the URL (patient id); name only its class.
                return _Page(reason=f"the FHIR server could not be reached ({type(exc).__name__})")
            if self.metrics is not None:
                self.metrics.fhir_fetch(_searched_type(url), time.perf_counter() - started)
            status = response.status_code
            if status in _RETRY_STATUSES and attempt < self.settings.fhir_max_retries:
                delay = self._backoff(attempt, response.headers.get("Retry-After"))
                if delay is None or anyio.current_time() + delay >= deadline:
                    return _Page(reason=f"HTTP {status} from the FHIR server; no time to retry")
                await anyio.sleep(delay)
                attempt += 1
                continue
            if status != httpx.codes.OK:
                self._count_error(FhirError.http_5xx if status >= 500 else FhirError.http_4xx)
                return _Page(reason=f"HTTP {status} from the FHIR server")
            try:
                return _Page(payload=orjson.loads(response.content))
            except orjson.JSONDecodeError:
                self._count_error(FhirError.invalid_response)
                return _Page(reason="the FHIR server sent invalid JSON")

    def _count_error(self, kind: FhirError) -> None:
        if self.metrics is not None:
            self.metrics.fhir_error(kind)

    @staticmethod
    def _backoff(attempt: int, retry_after: str | None) -> float | None:
        """Seconds to wait before retry ``attempt``; None when the server wants too long a pause."""
        asked = _retry_after(retry_after)
        if asked is not None:
            return asked if asked <= _RETRY_AFTER_CAP_SECONDS else None
        return min(_RETRY_AFTER_CAP_SECONDS, _BACKOFF_BASE_SECONDS * math.pow(2, attempt))


def _searched_type(url: httpx.URL) -> str:
    """The resource type a FHIR URL reads or searches (a metrics label: never an id)."""
    for segment in reversed(url.path.split("/")):
        if segment[:1].isupper() and segment.isalpha():
            return segment
    return "unknown"


def absolute_url(fhir_server: str, relative: str) -> httpx.URL:
    """``relative`` (a search such as ``Condition?patient=1``) on the EHR's FHIR base URL."""
    return httpx.URL(fhir_server.rstrip("/") + "/" + relative.lstrip("/"))
