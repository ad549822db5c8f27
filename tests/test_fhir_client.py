"""Fault injection for the FHIR fallback: timeouts, errors, retries, paging, the token.

Each test reads a hook request's patient data as a hook call does: ``read_prefetch``, then
``complete``."""

from __future__ import annotations

import copy
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import anyio
import httpx
import pytest
from pydantic import SecretStr, ValidationError

from cds.data.fhir_client import Fetched, FetchJob, FhirClient
from cds.data.patient_data import FhirAccess, PatientData
from cds.errors import MissingData
from cds.hooks import HookRequest
from cds.settings import Settings
from tests.patient_data import fhir_access, hook_request, read_patient_data

SERVER = "https://ehr.example.org/fhir"
TOKEN = "s3cr3t-opaque-access-token"
CONTEXT = {"userId": "Practitioner/abc", "patientId": "p1"}
CONDITIONS = "Condition?patient={{context.patientId}}"
TEMPLATES = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": CONDITIONS,
    "observations": "Observation?patient={{context.patientId}}&code=http://loinc.org|72514-3",
}

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"env": "test", "fhir_max_retries": 2, **overrides}
    return Settings(**values)


def _bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _answer(request: httpx.Request) -> httpx.Response:
    """A well-behaved FHIR server for patient p1."""
    path = request.url.path.removeprefix("/fhir/")
    if path == "Patient/p1":
        return httpx.Response(200, json={"resourceType": "Patient", "id": "p1"})
    if path == "Condition":
        return httpx.Response(200, json=_bundle({"resourceType": "Condition", "id": "c1"}))
    if path == "Observation":
        return httpx.Response(200, json=_bundle({"resourceType": "Observation", "id": "o1"}))
    return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})


class Recorder:
    """Wraps a handler as a MockTransport and remembers every request it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.handler(request)

    def client(self, settings: Settings | None = None) -> FhirAccess:
        return fhir_access(settings or _settings(), httpx.MockTransport(self))


def _sync(handler: Callable[[httpx.Request], httpx.Response]) -> Handler:
    async def handle(request: httpx.Request) -> httpx.Response:
        return handler(request)

    return handle


def _request(
    *,
    fhir_server: str | None = SERVER,
    token: str | None = TOKEN,
    context: Mapping[str, Any] = CONTEXT,
    **request: Any,
) -> HookRequest:
    return hook_request(context, fhir_server=fhir_server, token=token, **request)


async def _gather(
    access: FhirAccess,
    *,
    templates: Mapping[str, str] = TEMPLATES,
    required: set[str] | None = None,
    **request: Any,
) -> PatientData:
    return await read_patient_data(access, templates, _request(**request), required or ())


@pytest.mark.anyio
async def test_absent_keys_are_fetched_concurrently_with_the_bearer_token() -> None:
    """P-15(a), P-16, P-19: GET {fhirServer}/{rendered} with Bearer token, all keys at once."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(0.3)
        return _answer(request)

    recorder = Recorder(slow)
    started = time.perf_counter()
    data = await _gather(recorder.client(), required=set(TEMPLATES))
    elapsed = time.perf_counter() - started

    assert elapsed < 0.8, "three 0.3 s fetches ran one after another"
    assert data.resources == {
        "patient": [{"resourceType": "Patient", "id": "p1"}],
        "conditions": [{"resourceType": "Condition", "id": "c1"}],
        "observations": [{"resourceType": "Observation", "id": "o1"}],
    }
    assert data.unavailable == {}
    assert data.fetched == 3
    urls = sorted(str(r.url) for r in recorder.requests)
    assert urls[0] == f"{SERVER}/Condition?patient=p1"
    assert urls[2] == f"{SERVER}/Patient/p1"
    for request in recorder.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/fhir+json"


@pytest.mark.anyio
async def test_null_and_empty_prefetch_values_are_not_queried_again() -> None:
    """P-12: null and an empty searchset are satisfied; only the absent key is fetched."""
    recorder = Recorder(_sync(_answer))
    prefetch = {"patient": None, "conditions": {"resourceType": "Bundle", "type": "searchset"}}
    data = await _gather(recorder.client(), prefetch=prefetch)

    assert [r.url.path for r in recorder.requests] == ["/fhir/Observation"]
    assert data.resources["patient"] == []
    assert data.resources["conditions"] == []
    assert data.resources["observations"] == [{"resourceType": "Observation", "id": "o1"}]


ERRORED_PREFETCH = {
    "patient": {"resourceType": "Patient", "id": "p1"},
    "conditions": {"resourceType": "OperationOutcome", "issue": []},
    "observations": {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"search": {"mode": "outcome"}, "resource": {"resourceType": "OperationOutcome"}}
        ],
    },
}


@pytest.mark.anyio
async def test_an_operation_outcome_in_prefetch_is_not_queried_again_by_default() -> None:
    """P-13: the client sends an OperationOutcome to spare the service that query."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(recorder.client(), prefetch=ERRORED_PREFETCH)
    assert recorder.requests == []
    assert set(data.unavailable) == {"conditions", "observations"}
    assert all("not queried again" in why for why in data.unavailable.values())
    with pytest.raises(MissingData, match="OperationOutcome"):
        await _gather(recorder.client(), prefetch=ERRORED_PREFETCH, required={"conditions"})


@pytest.mark.anyio
async def test_an_operation_outcome_in_prefetch_is_fetched_when_configured() -> None:
    """P-13 (configurable): CDS_REFETCH_PREFETCH_ERRORS asks the server itself."""
    recorder = Recorder(_sync(_answer))
    client = recorder.client(_settings(refetch_prefetch_errors=True))
    data = await _gather(client, prefetch=ERRORED_PREFETCH)
    assert sorted(r.url.path for r in recorder.requests) == ["/fhir/Condition", "/fhir/Observation"]
    assert data.resources["conditions"] == [{"resourceType": "Condition", "id": "c1"}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"resourceType":"OperationOutcome"}'),
        (403, b""),
        (404, b'{"resourceType":"OperationOutcome"}'),
        (500, b"<html>oops</html>"),
        (502, b""),
        (302, b""),
    ],
)
async def test_an_error_status_makes_the_key_unavailable_and_required_keys_raise_412(
    status: int, body: bytes
) -> None:
    """P-15(c), P-18, E-05: 401/403/404/5xx (and redirects, never followed) -> 412."""
    recorder = Recorder(
        _sync(lambda _r: httpx.Response(status, content=body, headers={"Location": "/x"}))
    )
    with pytest.raises(MissingData) as caught:
        await _gather(
            recorder.client(), templates={"conditions": CONDITIONS}, required={"conditions"}
        )
    assert caught.value.status_code == 412
    assert caught.value.keys == ["conditions"]
    assert f"HTTP {status}" in caught.value.diagnostics
    assert len(recorder.requests) == 1


@pytest.mark.anyio
async def test_an_unavailable_optional_key_degrades_instead_of_raising() -> None:
    """P-15(d): data that is only nice to have never causes a 412."""
    recorder = Recorder(_sync(lambda _r: httpx.Response(500)))
    data = await _gather(recorder.client(), required=set())
    assert data.resources == {}
    assert set(data.unavailable) == set(TEMPLATES)
    assert all(
        reason.endswith("HTTP 500 from the FHIR server") for reason in data.unavailable.values()
    )


@pytest.mark.anyio
async def test_invalid_json_from_the_server_makes_the_key_unavailable() -> None:
    """P-15(c): a body that is not JSON is not data."""
    recorder = Recorder(_sync(lambda _r: httpx.Response(200, content=b"{not json")))
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert data.unavailable == {
        "conditions": "the prefetch key was absent; the FHIR server sent invalid JSON"
    }


@pytest.mark.anyio
async def test_an_operation_outcome_answer_makes_the_key_unavailable() -> None:
    """P-13, P-15: a 200 carrying only an OperationOutcome is not data."""
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    recorder = Recorder(_sync(lambda _r: httpx.Response(200, json=outcome)))
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert "OperationOutcome" in data.unavailable["conditions"]


@pytest.mark.anyio
async def test_a_transport_timeout_makes_the_key_unavailable() -> None:
    """P-15(c), P-19: httpx timeouts are caught and reported per key."""

    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    recorder = Recorder(_sync(time_out))
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert data.unavailable["conditions"].endswith("the FHIR server timed out")


@pytest.mark.anyio
async def test_a_connection_error_makes_the_key_unavailable() -> None:
    """P-15(c): an unreachable server is unavailable data, not a crash."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder = Recorder(_sync(refuse))
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert data.unavailable["conditions"].endswith("could not be reached (ConnectError)")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A local TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/fhir"
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in accepted:
            connection.close()
        listener.close()


@pytest.mark.anyio
async def test_a_server_that_never_answers_hits_the_read_timeout(silent_server: str) -> None:
    """P-19: explicit read timeout on a real socket."""
    settings = _settings(fhir_allow_http=True, fhir_read_timeout=0.3, request_budget_seconds=5)
    started = time.perf_counter()
    data = await _gather(
        fhir_access(settings), templates={"conditions": CONDITIONS}, fhir_server=silent_server
    )
    assert time.perf_counter() - started < 2
    assert data.unavailable["conditions"].endswith("the FHIR server timed out")


@pytest.mark.anyio
async def test_a_hanging_server_cannot_outlast_the_request_budget() -> None:
    """P-19: the overall budget stops every fetch and reports what arrived; never hangs."""

    async def hang(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Patient/p1"):
            return _answer(request)
        await anyio.sleep(3600)
        raise AssertionError("unreachable")

    recorder = Recorder(hang)
    started = time.perf_counter()
    data = await _gather(recorder.client(_settings(request_budget_seconds=0.5)))
    elapsed = time.perf_counter() - started

    assert 0.4 < elapsed < 1.5
    assert data.resources == {"patient": [{"resourceType": "Patient", "id": "p1"}]}
    assert data.unavailable == {
        "conditions": "the prefetch key was absent; the request's time budget ran out",
        "observations": "the prefetch key was absent; the request's time budget ran out",
    }


@pytest.mark.anyio
async def test_a_budget_overrun_mid_pagination_keeps_the_pages_that_arrived() -> None:
    """P-14, P-19: partial pages are data, marked incomplete."""

    async def first_page_then_hang(request: httpx.Request) -> httpx.Response:
        if "page=2" in str(request.url):
            await anyio.sleep(3600)
        return httpx.Response(
            200, json=_bundle({"resourceType": "Condition", "id": "c1"}, next_url="?page=2")
        )

    recorder = Recorder(first_page_then_hang)
    data = await _gather(
        recorder.client(_settings(request_budget_seconds=0.4)), templates={"conditions": CONDITIONS}
    )
    assert data.resources == {"conditions": [{"resourceType": "Condition", "id": "c1"}]}
    assert data.incomplete == {"conditions"}
    assert data.unavailable == {}


@pytest.mark.anyio
async def test_429_then_200_retries_after_an_exponential_backoff() -> None:
    """P-19: 429/503 are retried with bounded backoff."""
    answers = iter([httpx.Response(429), httpx.Response(503, headers={"Retry-After": "0"})])

    def throttled(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or _answer(request)

    recorder = Recorder(_sync(throttled))
    started = time.perf_counter()
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    elapsed = time.perf_counter() - started

    assert data.resources == {"conditions": [{"resourceType": "Condition", "id": "c1"}]}
    assert data.fetched == 3
    assert elapsed >= 0.2, "the first retry waits the base backoff"


@pytest.mark.anyio
async def test_a_retry_after_http_date_in_the_past_retries_at_once() -> None:
    """P-19: Retry-After may be an HTTP-date; one already passed means no wait."""
    answers = iter([httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})])

    def throttled(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or _answer(request)

    recorder = Recorder(_sync(throttled))
    started = time.perf_counter()
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert time.perf_counter() - started < 0.15
    assert data.resources == {"conditions": [{"resourceType": "Condition", "id": "c1"}]}
    assert data.fetched == 2


@pytest.mark.anyio
async def test_retries_stop_at_the_configured_maximum() -> None:
    """P-19: bounded retries, then the key is unavailable."""
    recorder = Recorder(_sync(lambda _r: httpx.Response(503, headers={"Retry-After": "0"})))
    data = await _gather(
        recorder.client(_settings(fhir_max_retries=2)), templates={"conditions": CONDITIONS}
    )
    assert len(recorder.requests) == 3
    assert data.fetched == 3
    assert data.unavailable["conditions"].endswith("HTTP 503 from the FHIR server")


@pytest.mark.anyio
async def test_a_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    """P-19: a server asking for minutes will not be ready within a hook call."""
    recorder = Recorder(_sync(lambda _r: httpx.Response(429, headers={"Retry-After": "120"})))
    started = time.perf_counter()
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert time.perf_counter() - started < 0.5
    assert len(recorder.requests) == 1
    assert data.unavailable["conditions"].endswith(
        "HTTP 429 from the FHIR server; no time to retry"
    )


@pytest.mark.anyio
async def test_next_links_are_followed_up_to_the_page_cap() -> None:
    """P-14: follow Bundle next links, at most fhir_max_pages, and record the cut."""

    def paged(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        return httpx.Response(
            200,
            json=_bundle(
                {"resourceType": "Condition", "id": f"c{page}"},
                next_url=f"{SERVER}/Condition?patient=p1&page={page + 1}",
            ),
        )

    recorder = Recorder(_sync(paged))
    data = await _gather(
        recorder.client(_settings(fhir_max_pages=3)), templates={"conditions": CONDITIONS}
    )
    assert [r["id"] for r in data.resources["conditions"]] == ["c1", "c2", "c3"]
    assert data.incomplete == {"conditions"}
    assert data.fetched == 3


@pytest.mark.anyio
async def test_a_paginated_prefetch_is_completed_from_the_fhir_server() -> None:
    """P-14: the service follows the client's next link with fhirAuthorization."""
    first = {"resourceType": "MedicationRequest", "id": "rx1"}
    second = {"resourceType": "MedicationRequest", "id": "rx2"}
    next_url = f"{SERVER}/MedicationRequest?patient=p1&_count=1&_page=2"
    recorder = Recorder(_sync(lambda _r: httpx.Response(200, json=_bundle(second))))
    data = await _gather(
        recorder.client(),
        templates={"orders": "MedicationRequest?patient={{context.patientId}}"},
        prefetch={"orders": _bundle(first, next_url=next_url)},
    )
    assert data.resources == {"orders": [first, second]}
    assert [str(r.url) for r in recorder.requests] == [next_url]
    assert recorder.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert data.incomplete == set()


@pytest.mark.anyio
async def test_a_paginated_prefetch_without_a_token_keeps_only_the_first_page() -> None:
    """P-14: without fhirAuthorization use the first page and record incompleteness."""
    first = {"resourceType": "MedicationRequest", "id": "rx1"}
    recorder = Recorder(_sync(_answer))
    data = await _gather(
        recorder.client(),
        templates={"orders": "MedicationRequest?patient={{context.patientId}}"},
        prefetch={"orders": _bundle(first, next_url=f"{SERVER}/MedicationRequest?page=2")},
        token=None,
    )
    assert data.resources == {"orders": [first]}
    assert data.incomplete == {"orders"}
    assert recorder.requests == []


@pytest.mark.anyio
async def test_a_next_link_to_another_origin_is_never_requested() -> None:
    """R-08, P-14: paging stays on the request's fhirServer; no request, tokened or not,
    goes to a host a FHIR server's Bundle names."""

    def two_origins(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json=_bundle(
                {"resourceType": "Condition", "id": "c1"},
                next_url="https://elsewhere.example.net/fhir/Condition?page=2",
            ),
        )

    recorder = Recorder(_sync(two_origins))
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert [r.url.host for r in recorder.requests] == ["ehr.example.org"]
    assert [r["id"] for r in data.resources["conditions"]] == ["c1"]
    assert data.incomplete == {"conditions"}


@pytest.mark.anyio
async def test_a_plain_http_next_link_is_not_followed() -> None:
    """R-06: paging never downgrades to plain http."""
    recorder = Recorder(
        _sync(
            lambda _r: httpx.Response(
                200,
                json=_bundle(
                    {"resourceType": "Condition", "id": "c1"},
                    next_url="http://ehr.example.org/fhir/Condition?page=2",
                ),
            )
        )
    )
    data = await _gather(recorder.client(), templates={"conditions": CONDITIONS})
    assert len(recorder.requests) == 1
    assert data.resources["conditions"] == [{"resourceType": "Condition", "id": "c1"}]
    assert data.incomplete == {"conditions"}


@pytest.mark.anyio
async def test_a_plain_http_fhir_server_is_refused_unless_allowed() -> None:
    """R-06: https in production; http only with CDS_FHIR_ALLOW_HTTP."""
    http_server = "http://ehr.example.org/fhir"
    recorder = Recorder(_sync(_answer))
    with pytest.raises(MissingData, match="plain http"):
        await _gather(recorder.client(), fhir_server=http_server, required={"patient"})
    assert recorder.requests == []

    data = await _gather(
        recorder.client(_settings(fhir_allow_http=True)),
        templates={"patient": TEMPLATES["patient"]},
        fhir_server=http_server,
    )
    assert data.resources == {"patient": [{"resourceType": "Patient", "id": "p1"}]}


@pytest.mark.anyio
@pytest.mark.parametrize("server", [None, ""])
async def test_a_missing_fhir_server_means_no_fetch(server: str | None) -> None:
    """P-15: cannot access the FHIR server -> required data gives 412."""
    recorder = Recorder(_sync(_answer))
    with pytest.raises(MissingData, match="the request has no fhirServer"):
        await _gather(recorder.client(), fhir_server=server, token=None, required={"patient"})
    assert recorder.requests == []


@pytest.mark.parametrize("server", ["ehr.example.org/fhir", "ftp://ehr.example.org"])
def test_an_unusable_fhir_server_is_an_invalid_request_and_never_granted(server: str) -> None:
    """P-15, R-06: the request model refuses a relative or non-http(s) fhirServer (400); the
    grant refuses it too, whatever reaches it."""
    with pytest.raises(ValidationError, match="must be an absolute http"):
        _request(fhir_server=server, token=None)
    grant = fhir_access(_settings()).policy.grant(server, SecretStr(TOKEN), patient_id="p1")
    assert grant.refusal == "fhirServer is not an absolute https URL"
    assert grant.server is None


@pytest.mark.anyio
async def test_without_fhir_authorization_nothing_is_fetched_by_default() -> None:
    """P-15(b): key absent and no fhirAuthorization (open-server fallback off) -> 412."""
    recorder = Recorder(_sync(_answer))
    with pytest.raises(MissingData, match="no fhirAuthorization") as caught:
        await _gather(recorder.client(), token=None, required={"patient", "conditions"})
    assert caught.value.keys == ["conditions", "patient"]
    assert recorder.requests == []


@pytest.mark.anyio
async def test_the_open_server_mode_fetches_without_an_authorization_header() -> None:
    """P-16 (SB-07): the sandbox sends fhirServer without fhirAuthorization."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(recorder.client(_settings(fhir_open_server=True)), token=None)
    assert set(data.resources) == set(TEMPLATES)
    assert all("Authorization" not in r.headers for r in recorder.requests)


@pytest.mark.anyio
async def test_a_token_for_another_patient_is_not_used() -> None:
    """R-07: fhirAuthorization.patient differs from context.patientId -> refuse FHIR access."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(recorder.client(), token_patient="someone-else")
    assert recorder.requests == []
    assert all("another patient" in reason for reason in data.unavailable.values())

    same = await _gather(Recorder(_sync(_answer)).client(), token_patient="Patient/p1")
    assert same.unavailable == {}


@pytest.mark.anyio
async def test_a_template_with_an_unresolvable_token_is_skipped() -> None:
    """P-17: no encounterId in context -> that template is unavailable, never half-rendered."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(
        recorder.client(),
        templates={"encounter": "Encounter/{{context.encounterId}}"},
    )
    assert recorder.requests == []
    assert data.unavailable["encounter"].endswith("a template token is not in context")


@pytest.mark.anyio
async def test_without_fhir_access_only_prefetch_is_used() -> None:
    """P-08: offline evaluation (``cds evaluate``) reads prefetch and reports the rest as
    unavailable."""
    request = _request(prefetch={"patient": {"resourceType": "Patient", "id": "p1"}})
    data = await read_patient_data(None, TEMPLATES, request, {"patient"})
    assert data.resources == {"patient": [{"resourceType": "Patient", "id": "p1"}]}
    assert set(data.unavailable) == {"conditions", "observations"}
    assert all(why.endswith("no FHIR client is configured") for why in data.unavailable.values())
    assert data.fetched == 0


@pytest.mark.anyio
async def test_the_token_never_appears_in_reprs_logs_or_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """R-08: never log, repr or echo fhirAuthorization.access_token."""
    caplog.set_level(logging.DEBUG)
    answers = iter([httpx.Response(401), httpx.Response(429, headers={"Retry-After": "0"})])

    def mixed(request: httpx.Request) -> httpx.Response:
        answer = next(answers, None)
        if answer is not None:
            return answer
        raise httpx.ReadTimeout("timed out", request=request)

    recorder = Recorder(_sync(mixed))
    client = recorder.client()
    with pytest.raises(MissingData) as caught:
        await _gather(client, required=set(TEMPLATES))

    assert recorder.requests, "the token was actually used"
    texts = [
        caplog.text,
        str(caught.value),
        repr(caught.value),
        caught.value.diagnostics,
        repr(client),
        repr(SecretStr(TOKEN)),
        *(repr(r) for r in recorder.requests),
        *(repr(r.headers) for r in recorder.requests),
    ]
    assert all(TOKEN not in text for text in texts)


# ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_expired_token_is_never_sent_and_its_keys_are_unavailable() -> None:
    """R-08: the token is transient; past expires_in it is not used at all."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(recorder.client(), expires_in=0)
    assert recorder.requests == []
    assert set(data.unavailable) == set(TEMPLATES)
    assert all("access token expired" in why for why in data.unavailable.values())


@pytest.mark.anyio
async def test_fetches_stop_when_the_token_expires_before_the_budget_runs_out() -> None:
    """R-08: a 1 s token ends a slow fetch at 1 s, not at the 4 s request budget."""

    async def slow_conditions(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Condition"):
            await anyio.sleep(3)
        return _answer(request)

    recorder = Recorder(slow_conditions)
    started = time.perf_counter()
    data = await _gather(recorder.client(), expires_in=1)
    assert time.perf_counter() - started < 2.0
    assert "access token expired" in data.unavailable["conditions"]
    assert data.resources["patient"] == [{"resourceType": "Patient", "id": "p1"}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("scope", "fetched"),
    [
        ("patient/*.read", {"Patient", "Condition", "Observation"}),  # SMART v1
        ("user/Patient.read user/Condition.read", {"Patient", "Condition"}),
        (
            "patient/Patient.r patient/Condition.s patient/Observation.rs",
            {"Patient", "Condition", "Observation"},
        ),  # SMART v2
        ("patient/Patient.s patient/Condition.r", set()),  # v2: a read needs r, a search s
        ("patient/Observation.rs?category=laboratory", {"Observation"}),  # narrowed by the server
        ("patient/*.write", set()),
        ("openid fhirUser launch", {"Patient", "Condition", "Observation"}),  # nothing clear
    ],
)
async def test_only_what_the_scope_allows_is_fetched(scope: str, fetched: set[str]) -> None:
    """R-09: SMART v1 and v2 scopes; a query the scope clearly forbids is not sent (P-15)."""
    recorder = Recorder(_sync(_answer))
    data = await _gather(recorder.client(), scope=scope)
    asked = {r.url.path.removeprefix("/fhir/").split("/")[0] for r in recorder.requests}
    assert asked == fetched
    refused = {key for key, why in data.unavailable.items() if "scope does not allow" in why}
    assert len(refused) == len(TEMPLATES) - len(fetched)


@pytest.mark.anyio
async def test_a_next_page_the_scope_forbids_is_not_followed() -> None:
    """R-09 with P-14: the first page counts and the key is marked incomplete."""
    recorder = Recorder(_sync(_answer))
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "p1"},
        "conditions": _bundle(
            {"resourceType": "Condition", "id": "c0"}, next_url=f"{SERVER}/Condition?page=2"
        ),
        "observations": _bundle(),
    }
    data = await _gather(recorder.client(), prefetch=prefetch, scope="patient/Observation.rs")
    assert recorder.requests == []
    assert data.resources["conditions"] == [{"resourceType": "Condition", "id": "c0"}]
    assert "conditions" in data.incomplete


@pytest.mark.anyio
async def test_the_client_returns_the_pages_it_read_and_changes_no_job() -> None:
    """The client reads; where the pages land is the call's patient data's to decide."""
    first = {"resourceType": "Condition", "id": "c0"}

    def paged(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=_bundle({"resourceType": "Condition", "id": "c2"}))
        return httpx.Response(429, headers={"Retry-After": "0"})

    recorder = Recorder(_sync(paged))
    jobs = (
        FetchJob("conditions", httpx.URL(f"{SERVER}/Condition?page=2"), "why", (first,), pages=1),
        FetchJob("patient", httpx.URL(f"{SERVER}/Patient/p1"), why="the key was absent"),
    )
    before = copy.deepcopy(jobs)
    async with FhirClient(_settings(fhir_max_retries=1), httpx.MockTransport(recorder)) as client:
        fetches = await client.fetch(
            jobs, fhir_server=SERVER, access_token=SecretStr(TOKEN), budget_seconds=2
        )
    assert jobs == before
    assert fetches.requests == len(recorder.requests) == 3
    assert fetches.keys == [
        Fetched("conditions", "why", [first, {"resourceType": "Condition", "id": "c2"}], 2),
        Fetched(
            "patient",
            "the key was absent",
            [],
            0,
            reason="HTTP 429 from the FHIR server",
            incomplete=True,
        ),
    ]
