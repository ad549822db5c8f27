"""Conformance against the CDS Hooks 2.0.1 spec's own examples (checklist ids in each test)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from cds import hooks
from tests.examples import spec_example
from tests.wire_rules import empty_values

pytestmark = pytest.mark.anyio


def _shape(value: Any) -> Any:
    """The type skeleton of a JSON value: keys and the types of their values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_the_spec_patient_view_request_parses() -> None:
    """R-02, H-01 (example 02)."""
    request = hooks.HookRequest.model_validate(spec_example("02-request-patient-view.json"))
    context = hooks.PatientViewContext.model_validate(request.context)
    assert context.patient_id == "1288992"


def test_the_spec_request_with_extension_parses() -> None:
    """X-01 (example 26)."""
    request = hooks.HookRequest.model_validate(spec_example("26-request-with-extension.json"))
    assert request.extension


def test_the_spec_prefetch_example_parses_with_a_bare_string_user() -> None:
    """P-09, P-11 (example 08 is the prefetch member only; 02 gives it an envelope)."""
    body = spec_example("02-request-patient-view.json") | spec_example(
        "08-request-prefetch-data.json"
    )
    request = hooks.HookRequest.model_validate(body)
    assert request.prefetch is not None
    assert request.prefetch["user"] == "123"


def test_the_spec_fhir_authorization_parses_and_hides_the_token() -> None:
    """R-07, R-08 (example 09)."""
    auth = hooks.FhirAuthorization.model_validate(
        spec_example("09-request-fhirAuthorization.json")["fhirAuthorization"]
    )
    assert "some-opaque-fhir-access-token" not in repr(auth)


@pytest.mark.parametrize(
    "name",
    [
        "19-feedback-accepted.json",
        "20-feedback-overridden-no-reason.json",
        "21-feedback-overridden-with-reason.json",
    ],
)
def test_the_spec_feedback_examples_parse(name: str) -> None:
    """F-02, F-03."""
    assert hooks.FeedbackRequest.model_validate(spec_example(name)).feedback


@pytest.mark.parametrize(
    "name",
    [
        "10-response-empty-cards.json",
        "17-response-cards-links-overrideReasons.json",
    ],
)
def test_the_spec_responses_round_trip_through_our_models_unchanged(name: str) -> None:
    """C-01..C-21: our models accept and re-emit the spec's responses exactly."""
    example = spec_example(name)
    assert hooks.to_wire(hooks.CdsResponse.model_validate(example)) == example


def test_the_spec_autolaunchable_links_are_valid_links() -> None:
    """C-21, C-22 (example 18 abbreviates its card, so only its links are checked)."""
    for card in spec_example("18-response-autolaunchable-link.json")["cards"]:
        for link in card["links"]:
            assert hooks.to_wire(hooks.Link.model_validate(link)) == link


@pytest.mark.parametrize(
    "name", ["12-action-create.json", "13-action-update.json", "14-action-delete.json"]
)
def test_the_spec_actions_are_valid_actions(name: str) -> None:
    """C-16."""
    assert hooks.Action.model_validate(spec_example(name))


def test_the_spec_discovery_round_trips_through_our_models() -> None:
    """D-02, D-04 (example 01)."""
    example = spec_example("01-discovery-response.json")
    assert hooks.to_wire(hooks.DiscoveryResponse.model_validate(example)) == example


async def test_our_discovery_has_the_shape_of_the_spec_example(
    client: httpx.AsyncClient,
) -> None:
    """D-04: same member types as example 01."""
    ours = (await client.get("/cds-services")).json()
    theirs = spec_example("01-discovery-response.json")
    their_entry = _shape(theirs["services"][0])
    for entry in ours["services"]:
        for key, kind in _shape(entry).items():
            if key in their_entry:
                assert kind == their_entry[key] or key == "prefetch"
    assert empty_values(ours) == []


async def test_our_cards_have_the_shape_of_the_spec_example_cards(
    client: httpx.AsyncClient, rb01_request: dict[str, Any]
) -> None:
    """C-06, C-11, C-12, C-16, C-21: member names and types match example 17."""
    response = await client.post("/cds-services/back-to-foot", json=rb01_request)
    cards = response.json()["cards"]
    assert cards
    theirs = _shape(spec_example("17-response-cards-links-overrideReasons.json")["cards"][0])
    for card in cards:
        shape = _shape(card)
        for key in ("summary", "indicator", "source", "uuid", "links", "overrideReasons"):
            if key in shape and key in theirs:
                assert type(shape[key]) is type(theirs[key])


def test_the_empty_walker_catches_what_the_spec_forbids() -> None:
    """G-02, G-03: the checker itself."""
    assert empty_values({"cards": []}) == []
    assert empty_values({"cards": [{"links": []}]}) == ["$.cards[0].links"]
    assert empty_values({"cards": [], "systemActions": []}) == ["$.systemActions"]
    assert empty_values({"services": [{"prefetch": {}}]}) == ["$.services[0].prefetch"]
    assert empty_values({"a": None, "b": ""}) == ["$.a", "$.b"]


def _card_with(resource: dict[str, Any]) -> hooks.CdsResponse:
    action = hooks.Action(type="create", description="Order it", resource=resource)
    source = hooks.Source(label="Guideline")
    suggestion = hooks.Suggestion(label="Order", actions=[action])
    card = hooks.Card(
        summary="s",
        indicator="info",
        source=source,
        suggestions=[suggestion],
        selection_behavior="at-most-one",
    )
    return hooks.CdsResponse(cards=[card])


def test_a_response_with_nothing_empty_goes_out_exactly_as_dumped() -> None:
    """G-02..G-04: the quick check that skips the prune walk changes nothing it skips."""
    resource = {"resourceType": "ServiceRequest", "note": [{"text": 'says "null", [] and {}'}]}
    wire = hooks.to_wire(_card_with(resource))
    assert empty_values(wire) == []
    assert wire["cards"][0]["suggestions"][0]["actions"][0]["resource"] == resource


def test_empty_values_inside_a_suggested_resource_never_reach_the_wire() -> None:
    """G-02, G-03: free-form resources are pruned too, down to the emptied containers."""
    resource = {
        "resourceType": "ServiceRequest",
        "code": {"text": "", "coding": []},
        "note": [{"text": None}],
        "priority": "routine",
    }
    wire = hooks.to_wire(_card_with(resource))
    assert empty_values(wire) == []
    assert wire["cards"][0]["suggestions"][0]["actions"][0]["resource"] == {
        "resourceType": "ServiceRequest",
        "priority": "routine",
    }
    assert hooks.to_wire(hooks.CdsResponse(cards=[])) == {"cards": []}


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "ServiceRequest", "note": [{"text": 'says "null", [] and {}'}]},
        {"resourceType": "ServiceRequest", "code": {"text": "", "coding": []}, "note": [{}]},
    ],
    ids=["nothing to prune", "empties to prune"],
)
def test_the_answer_encoded_once_is_the_json_of_its_wire_dict(resource: dict[str, Any]) -> None:
    """G-02..G-04: the bytes the route sends (hooks.to_wire_json) are exactly orjson's encoding
    of the wire dict, pruned or not."""
    wire, encoded = hooks.to_wire_json(_card_with(resource))
    assert encoded == orjson.dumps(wire)
    assert empty_values(wire) == []


def test_an_answer_without_cards_is_encoded_with_its_empty_cards() -> None:
    """C-01: ``cards`` stays, empty, in the encoded answer too."""
    assert hooks.to_wire_json(hooks.CdsResponse(cards=[])) == ({"cards": []}, b'{"cards":[]}')
