"""The one outbound FHIR HTTP client: read prefetch keys' pages concurrently, within a budget."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import anyio
import httpx
import orjson
from pydantic import SecretStr

from cds.data.prefetch import PrefetchState, classify
from cds.metrics import FhirError, Metrics
from cds.settings import Settings

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_RETRY_STATUSES = frozenset({429, 503})
_BACKOFF_BASE_SECONDS = 0.2
# A server asking for a longer pause than this will not be ready within a CDS Hooks call.
_RETRY_AFTER_CAP_SECONDS = 2.0
_OVER_RESPONSE_CAP = "a FHIR response was larger than CDS_FHIR_MAX_RESPONSE_BYTES"
_OVER_CALL_CAP = "the call's FHIR responses together passed CDS_FHIR_MAX_CALL_BYTES"


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
class _Response:
    """What one GET brought: its status, its body (read only for a 200) and its Retry-After."""

    status: int
    body: bytes
    retry_after: str | None


@dataclass(slots=True)
class _Fetching:
    """What every fetch of one call shares: where it may go, with which token, until when, the
    bytes its responses may still bring (CDS_FHIR_MAX_CALL_BYTES) and the requests sent so far.

    Bytes read count even when their response is then dropped: the cap bounds the work a
    hostile server can make one call do, not only what is kept."""

    origin: tuple[str, str, int | None]
    token: SecretStr | None
    deadline: float
    bytes_left: int
    requests: int = 0


class _TooLarge(Exception):
    """A response ran over a byte cap; the message is the key's unavailability reason."""


class _UnaskedCoding(Exception):
    """A response compressed although the request asked for no content coding."""


@dataclass(frozen=True, slots=True)
class FetchJob:
    """One prefetch key to read from the FHIR server, page by page, from ``url`` on; a first
    page the client prefetched comes as ``resources`` (``pages`` = 1)."""

    key: str
    url: httpx.URL
    why: str = ""  # why the key is fetched at all, to lead its unavailability reason
    resources: tuple[dict[str, Any], ...] = ()
    pages: int = 0


@dataclass(frozen=True, slots=True)
class Fetched:
    """One key's pages as read: every resource of the pages in hand (a prefetched first page
    included), how many pages, and why the reading stopped short (``reason``, ``incomplete``)."""

    key: str
    why: str
    resources: list[dict[str, Any]]
    pages: int
    reason: str | None = None
    incomplete: bool = False


@dataclass(frozen=True, slots=True)
class Fetches:
    """What one call's fetches read, key by key, and how many HTTP requests they sent."""

    keys: list[Fetched]
    requests: int


@dataclass(slots=True)
class _Reading:
    """One job in progress: the pages read so far and why it stopped, if it did."""

    job: FetchJob
    resources: list[dict[str, Any]]
    pages: int
    reason: str | None = None
    incomplete: bool = False
    done: bool = False

    def stop(self, reason: str | None = None) -> None:
        """The key holds only some pages, for ``reason`` (None: a cap the settings set)."""
        self.reason, self.incomplete = reason, True

    def fetched(self, out_of_time: str) -> Fetched:
        reason, incomplete = self.reason, self.incomplete
        if not self.done:
            reason, incomplete = reason or out_of_time, True
        job = self.job
        return Fetched(job.key, job.why, self.resources, self.pages, reason, incomplete)


class FhirClient:
    """One ``httpx.AsyncClient`` for the app's lifetime; tests inject a transport for faults.

    It reads pages and returns them; where they land, and whether a call may read at all, is
    the caller's (``cds.data.patient_data``, ``cds.data.grant``)."""

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
        # No compression: a few kilobytes of gzip can inflate to megabytes in one decoded chunk,
        # past the byte caps below before they could look at it.
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            headers={"Accept": FHIR_JSON, "Accept-Encoding": "identity"},
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

    async def fetch(
        self,
        jobs: Sequence[FetchJob],
        *,
        fhir_server: str,
        access_token: SecretStr | None,
        budget_seconds: float,
        out_of_time: str | None = None,
    ) -> Fetches:
        """Run ``jobs`` concurrently until done or out of budget, and return what they read.

        ``out_of_time`` names what the budget stands for when it is not the request's own.
        """
        fetching = _Fetching(
            origin=_origin(httpx.URL(fhir_server)),
            token=access_token,
            deadline=anyio.current_time() + budget_seconds,
            bytes_left=self.settings.fhir_max_call_bytes,
        )
        readings = [_Reading(job, list(job.resources), job.pages) for job in jobs]
        if budget_seconds > 0:
            with anyio.move_on_after(budget_seconds):
                async with anyio.create_task_group() as tasks:
                    for reading in readings:
                        tasks.start_soon(self._read, reading, fetching)
        fetched = [
            reading.fetched(out_of_time or "the request's time budget ran out")
            for reading in readings
        ]
        for key in fetched:
            if key.reason:
                logger.info("FHIR fetch for prefetch key %s: %s", key.key, key.reason)
        return Fetches(fetched, fetching.requests)

    async def _read(self, reading: _Reading, fetching: _Fetching) -> None:
        url: httpx.URL | None = reading.job.url
        while url is not None:
            if reading.pages >= self.settings.fhir_max_pages:
                reading.stop()
                break
            refusal = self._refuses(url, fetching)
            if refusal is not None:
                reading.stop(refusal)
                break
            page = await self._get(url, fetching)
            if page.reason is not None:
                reading.stop(page.reason)
                break
            read = classify(page.payload)
            if read.state is PrefetchState.needs_fetch:
                reading.stop("the FHIR server sent an OperationOutcome")
                break
            reading.pages += 1
            reading.resources.extend(read.resources)
            url = url.join(read.next_url) if read.next_url else None
            if url is not None and len(reading.resources) >= self.settings.max_prefetch_entries:
                reading.stop()
                break
        reading.done = True

    def _refuses(self, url: httpx.URL, fetching: _Fetching) -> str | None:
        """Why a next link ``url`` is not read, or None."""
        if url.scheme != "https" and not (url.scheme == "http" and self.settings.fhir_allow_http):
            return "a next link is not https"
        # A next link elsewhere is not followed: the request alone would reach a host (an
        # internal address, say) that the EHR's fhirServer never named.
        if _origin(url) != fetching.origin:
            return "a next link leaves the fhirServer's origin"
        return None

    async def _get(self, url: httpx.URL, fetching: _Fetching) -> _Page:
        """One page: the parsed JSON of a 200, after retrying a 429 or 503 within the budget."""
        token = fetching.token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        attempt = 0
        while True:
            response = await self._send(url, headers, fetching)
            if isinstance(response, _Page):
                return response
            status = response.status
            if status in _RETRY_STATUSES and attempt < self.settings.fhir_max_retries:
                delay = self._backoff(attempt, response.retry_after)
                if delay is None or anyio.current_time() + delay >= fetching.deadline:
                    return _Page(reason=f"HTTP {status} from the FHIR server; no time to retry")
                await anyio.sleep(delay)
                attempt += 1
                continue
            return self._page(response)

    async def _send(
        self, url: httpx.URL, headers: dict[str, str], fetching: _Fetching
    ) -> _Response | _Page:
        """One GET, or the page's reason when it failed before a status arrived in full."""
        fetching.requests += 1
        started = time.perf_counter()
        body = b""
        try:
            # Streamed, so that no response is ever held past the byte caps.
            async with self._http.stream("GET", url, headers=headers) as response:
                status = response.status_code
                if status == httpx.codes.OK:
                    body = await self._read_capped(response, fetching)
        except _TooLarge as exc:
            self._count_error(FhirError.too_large)
            return _Page(reason=str(exc))
        except _UnaskedCoding:
            self._count_error(FhirError.invalid_response)
            return _Page(reason="the FHIR server compressed its response unasked")
        except httpx.TimeoutException:
            self._count_error(FhirError.timeout)
            return _Page(reason="the FHIR server timed out")
        except httpx.HTTPError as exc:
            self._count_error(FhirError.connect)
            # The exception text can hold the URL (patient id); name only its class.
            return _Page(reason=f"the FHIR server could not be reached ({type(exc).__name__})")
        if self.metrics is not None:
            self.metrics.fhir_fetch(_searched_type(url), time.perf_counter() - started)
        return _Response(status, body, response.headers.get("Retry-After"))

    def _page(self, response: _Response) -> _Page:
        status = response.status
        if status != httpx.codes.OK:
            self._count_error(FhirError.http_5xx if status >= 500 else FhirError.http_4xx)
            return _Page(reason=f"HTTP {status} from the FHIR server")
        try:
            return _Page(payload=orjson.loads(response.body))
        except orjson.JSONDecodeError:
            self._count_error(FhirError.invalid_response)
            return _Page(reason="the FHIR server sent invalid JSON")

    async def _read_capped(self, response: httpx.Response, fetching: _Fetching) -> bytes:
        """The body of ``response``, or ``_TooLarge`` as soon as it passes a cap.

        The client asked for no content coding; a response that uses one anyway is refused
        unread, so that what is counted here is what is kept (no decompression bomb).
        """
        if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
            raise _UnaskedCoding
        limit = self.settings.fhir_max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _TooLarge(_OVER_RESPONSE_CAP)
        # Chunks joined once at the end: a growing buffer reallocates, holding two copies.
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            fetching.bytes_left -= len(chunk)
            if fetching.bytes_left < 0:
                raise _TooLarge(_OVER_CALL_CAP)
            size += len(chunk)
            if size > limit:
                raise _TooLarge(_OVER_RESPONSE_CAP)
            chunks.append(chunk)
        return b"".join(chunks)

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


def scheme_and_host(url: str) -> tuple[str, str] | None:
    """The scheme and host this client would read ``url`` with; None when it cannot parse it."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed.scheme, parsed.host
