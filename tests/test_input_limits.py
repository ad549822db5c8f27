"""Input limits and fuzzing: oversized, deep or random bodies never cause a 500 or a hang."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from cds.app import create_app
from cds.catalogue import Catalogue
from cds.fhir import depth_exceeds
from cds.settings import Settings
from tests.conftest import changed, serving

pytestmark = pytest.mark.anyio


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_depth_is_measured_in_containers() -> None:
    assert not depth_exceeds(_nested(3), 4)
    assert depth_exceeds(_nested(5), 4)
    assert depth_exceeds([[[[]]]], 3)


@pytest.fixture
async def limited(settings: Settings, catalogue: Catalogue) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(changed(settings, max_prefetch_entries=100), catalogue=catalogue)
    async with serving(app) as c:
        yield c


async def test_a_context_nested_too_deep_is_a_400(limited: httpx.AsyncClient) -> None:
    body = {"hook": "patient-view", "hookInstance": "x", "context": _nested(200)}
    response = await limited.post("/cds-services/back-to-foot", json=body)
    assert response.status_code == 400
    assert "deeper" in response.json()["issue"][0]["diagnostics"]


async def test_too_many_prefetched_resources_is_a_413(limited: httpx.AsyncClient) -> None:
    entries = [{"resource": {"resourceType": "Observation", "id": str(i)}} for i in range(101)]
    body = {
        "hook": "patient-view",
        "hookInstance": "x",
        "context": {"userId": "Practitioner/1", "patientId": "p1"},
        "prefetch": {"observations": {"resourceType": "Bundle", "entry": entries}},
    }
    response = await limited.post("/cds-services/back-to-foot", json=body)
    assert response.status_code == 413


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["hook", "hookInstance", "context", "prefetch", "fhirServer", "fhirAuthorization", "extension"]
)
context_keys = st.sampled_from(["userId", "patientId", "encounterId", "draftOrders", "selections"])
resource = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Condition", "Observation", "Bundle", "X"])},
    optional={
        "id": st.text(max_size=6),
        "code": json_values,
        "status": json_values,
        "onsetDateTime": st.text(max_size=12),
        "entry": st.lists(st.fixed_dictionaries({"resource": json_values}), max_size=3),
    },
)
requests = st.fixed_dictionaries(
    {
        "hook": st.sampled_from(["patient-view", "order-sign", "order-select", "x"]),
        "hookInstance": st.text(max_size=10),
        "context": st.dictionaries(context_keys, json_values | st.just("Practitioner/1")),
    },
    optional={
        "prefetch": st.dictionaries(
            st.sampled_from(["patient", "conditions", "observations", "other"]),
            resource | st.none(),
        ),
        "fhirServer": json_values,
        "fhirAuthorization": json_values,
    },
) | st.dictionaries(keys, json_values)


@hypothesis_settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=requests)
async def test_random_request_bodies_never_cause_a_500(
    limited: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    """Fuzz over the request models: every answer is a deliberate status, never a crash."""
    for service in ("back-to-foot", "back-to-foot-order-sign", "back-to-foot-order-select"):
        response = await limited.post(f"/cds-services/{service}", json=body)
        assert response.status_code in {200, 400, 412, 413}, response.text


@hypothesis_settings(
    max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=json_values)
async def test_random_feedback_bodies_never_cause_a_500(
    limited: httpx.AsyncClient, body: Any
) -> None:
    response = await limited.post("/cds-services/back-to-foot/feedback", json={"feedback": body})
    assert response.status_code in {200, 400}, response.text
