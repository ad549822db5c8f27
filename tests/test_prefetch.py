"""Prefetch token rendering, template lint and classification of prefetch values (P-02..P-14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds.data.patient_data import PatientData
from cds.data.prefetch import ABSENT, PrefetchState, classify, classify_all
from cds.data.templates import check_template, render, user_tokens
from tests.examples import DRAFT_3, HOOKS_LIBRARY, load
from tests.examples import SPEC_EXAMPLES as SPEC


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = load(path)
    return data


def _context(name: str) -> dict[str, Any]:
    context: dict[str, Any] = _load(SPEC / name)["context"]
    return context


TEMPLATES_07: dict[str, str] = _load(SPEC / "07-discovery-prefetch-templates.json")["prefetch"]


@pytest.mark.parametrize(
    ("example", "template", "expected"),
    [
        ("04-context-patientId.json", TEMPLATES_07["patient"], "Patient/123"),
        (
            "04-context-patientId.json",
            TEMPLATES_07["hemoglobin-a1c"],
            "Observation?patient=123&code=4548-4&_count=1&sort:desc=date",
        ),
        (
            "04-context-patientId.json",
            TEMPLATES_07["diabetes-type2"],
            "Condition?patient=123&code=44054006&category=problem-list-item&status=active",
        ),
        # No userId in context, so no user token resolves: the template is skipped.
        ("04-context-patientId.json", TEMPLATES_07["user"], None),
        (
            "05-context-draftOrders-token-ineligible.json",
            "Encounter/{{context.encounterId}}",
            "Encounter/456",
        ),
        # A Bundle is not a primitive, and nested paths are not tokens (P-04).
        ("05-context-draftOrders-token-ineligible.json", "Bundle/{{context.draftOrders}}", None),
        (
            "05-context-draftOrders-token-ineligible.json",
            "MedicationRequest/{{context.draftOrders.id}}",
            None,
        ),
        ("05-context-draftOrders-token-ineligible.json", "Patient/{{context.patientId}}", None),
        (
            "06-context-with-medicationRequestId.json",
            "MedicationRequest/{{context.medicationRequestId}}",
            "MedicationRequest/123",
        ),
        (
            "06-context-with-medicationRequestId.json",
            "Condition?encounter={{context.encounterId}}",
            "Condition?encounter=456",
        ),
    ],
)
def test_render_substitutes_context_tokens_as_in_the_spec_examples(
    example: str, template: str, expected: str | None
) -> None:
    """P-02, P-03, P-04, P-17: first-level primitive context fields render; others skip."""
    assert render(template, _context(example)) == expected


@pytest.mark.parametrize(
    ("user_id", "template", "expected"),
    [
        ("Practitioner/abc", "Practitioner/{{userPractitionerId}}", "Practitioner/abc"),
        ("Practitioner/abc", "PractitionerRole?_id={{userPractitionerRoleId}}", None),
        ("PractitionerRole/123", TEMPLATES_07["user"], "PractitionerRole?_id=123"),
        ("Patient/p9", "Patient/{{userPatientId}}", "Patient/p9"),
        ("RelatedPerson/r1", "RelatedPerson/{{userRelatedPersonId}}", "RelatedPerson/r1"),
        ("Practitioner/abc", "{{context.userId}}", "Practitioner/abc"),
        # In a query the whole value is encoded, `/` included, as encodeURIComponent does.
        (
            "Practitioner/abc",
            "Observation?performer={{context.userId}}",
            "Observation?performer=Practitioner%2Fabc",
        ),
        ("abc", "Practitioner/{{userPractitionerId}}", None),
        ("Practitioner/", "Practitioner/{{userPractitionerId}}", None),
    ],
)
def test_render_derives_the_four_user_tokens_from_context_user_id(
    user_id: str, template: str, expected: str | None
) -> None:
    """P-05, P-17: user tokens come from ``context.userId`` = ``Type/id``."""
    assert render(template, {"userId": user_id, "patientId": "1"}) == expected


@pytest.mark.parametrize(
    ("context", "template", "expected"),
    [
        (
            {"patientId": "a b&c=d"},
            "Observation?patient={{context.patientId}}",
            "Observation?patient=a%20b%26c%3Dd",
        ),
        ({"patientId": "x y"}, "Patient/{{context.patientId}}", "Patient/x%20y"),
        ({"patientId": "../Observation"}, "Patient/{{context.patientId}}", None),
        ({"patientId": ""}, "Patient/{{context.patientId}}", None),
        ({"patientId": None}, "Patient/{{context.patientId}}", None),
        ({"patientId": "1"}, "Patient/{{ context.patientId }}", "Patient/1"),
        (
            {"count": 5, "flag": True},
            "Observation?_count={{context.count}}&x={{context.flag}}",
            "Observation?_count=5&x=true",
        ),
        ({"patientId": "1"}, "Observation?date=ge{{today()}}", None),
        ({"patientId": "1"}, "Patient/{{context.patientId", None),
        (
            {"patientId": "1"},
            "Observation?patient={{context.patientId}}&code=4548-4",
            "Observation?patient=1&code=4548-4",
        ),
    ],
)
def test_render_encodes_query_values_and_skips_unresolvable_templates(
    context: dict[str, Any], template: str, expected: str | None
) -> None:
    """P-17: URL-encode query values; unresolvable or malformed tokens skip the template."""
    assert render(template, context) == expected


def test_user_tokens_are_empty_for_a_malformed_user_id() -> None:
    """P-05: only ``Type/id`` yields a user token."""
    assert user_tokens("Practitioner/abc") == {"userPractitionerId": "abc"}
    assert user_tokens("Practitioner/a/b") == {}
    assert user_tokens(42) == {}


@pytest.mark.parametrize(
    "template",
    [
        TEMPLATES_07["patient"],
        TEMPLATES_07["diabetes-type2"],
        TEMPLATES_07["user"],
        "{{context.userId}}",
        "Encounter/{{context.encounterId}}",
        "Practitioner/{{userPractitionerId}}",
        "Condition?patient={{context.patientId}}&code:in=http://example.org/ValueSet/back",
        "Observation?patient={{context.patientId}}&code=http://loinc.org|72514-3&_sort=-date",
        "Observation?patient={{context.patientId}}&date=ge2020-01-01&date=lt2021-01-01",
        "Observation?patient={{context.patientId}}&_count=10&_lastUpdated=gt2024-01-01",
    ],
)
def test_check_template_accepts_templates_inside_the_prefetch_subset(template: str) -> None:
    """P-02, P-04, P-06: allowed tokens, reads, type searches, ``:in``, eq/lt/gt/ge/le."""
    assert check_template(template, "patient-view") == []


@pytest.mark.parametrize(
    ("template", "hook", "problem"),
    [
        (TEMPLATES_07["hemoglobin-a1c"], "patient-view", "modifier ':desc'"),
        ("Practitioner/{{context.userId}}", "patient-view", "already Type/id"),
        (
            "Condition?patient={{context.patientId}}&_include=Condition:subject",
            "order-sign",
            "'_include'",
        ),
        (
            "Patient?_id={{context.patientId}}&_revinclude=Observation:subject",
            "order-sign",
            "'_revinclude'",
        ),
        ("Observation?subject.name=smith", "patient-view", "chained"),
        ("Patient?_has:Observation:patient:code=1234-5", "patient-view", "'_has'"),
        (
            "Condition?patient={{context.patientId}}&code:text=back",
            "patient-view",
            "modifier ':text'",
        ),
        (
            "Observation?patient={{context.patientId}}&date=sa2020-01-01",
            "patient-view",
            "date prefix 'sa'",
        ),
        (
            "Observation?patient={{context.patientId}}&date=ne2020-01-01",
            "patient-view",
            "date prefix 'ne'",
        ),
        ("Bundle?_id={{context.draftOrders}}", "order-sign", "not a prefetch token of this hook"),
        (
            "MedicationRequest?_id={{context.selections}}",
            "order-select",
            "not a prefetch token of this hook",
        ),
        ("Medication/{{context.medication.id}}", "order-select", "not a first-level"),
        ("Patient/{{context.patientId}}", "no-such-hook", "unknown hook"),
        ("?_type=Patient", "patient-view", "system-level"),
        ("Patient/{{context.patientId}}/_history", "patient-view", "only instance reads"),
        ("Observation?_elements=code", "patient-view", "'_elements'"),
        ("Observation?patient={{context.patientId}}&_count=0", "patient-view", "'_count'"),
        ("Patient/{{user}}", "patient-view", "neither context"),
        ("Patient/{{context.patientId}", "patient-view", "unbalanced"),
        ("patient/{{context.patientId}}", "patient-view", "not a resource type"),
    ],
)
def test_check_template_reports_what_falls_outside_the_prefetch_subset(
    template: str, hook: str, problem: str
) -> None:
    """P-02, P-04, P-05, P-06: bad tokens, includes, chaining, _has, modifiers, date prefixes."""
    problems = check_template(template, hook)
    assert any(problem in p for p in problems), problems


def test_spec_example_prefetch_data_classifies_each_key() -> None:
    """P-09, P-11: bare resource = data, searchset = data, absent key = needs fetch."""
    prefetch = _load(SPEC / "08-request-prefetch-data.json")["prefetch"]
    read = classify_all(TEMPLATES_07, prefetch)
    assert read["patient"].state is PrefetchState.data
    assert read["patient"].resources == [prefetch["patient"]]
    assert read["hemoglobin-a1c"].state is PrefetchState.data
    assert [r["resourceType"] for r in read["hemoglobin-a1c"].resources] == ["Observation"]
    # The example's "user": "123" is not a FHIR resource: unusable, so fetch or 412.
    assert read["user"].state is PrefetchState.needs_fetch
    assert read["diabetes-type2"].state is PrefetchState.needs_fetch
    assert read["diabetes-type2"].reason == "the prefetch key was absent"


def test_resources_stay_the_very_dicts_the_client_sent() -> None:
    """P-09: raw JSON is passed through untouched (no models built here)."""
    observation = {"resourceType": "Observation", "id": "o1"}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": observation}]}
    assert classify(bundle).resources[0] is observation


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"resourceType": "Bundle", "type": "searchset", "total": 0},
        {"resourceType": "Bundle", "type": "searchset", "entry": []},
        {"resourceType": "Bundle", "entry": []},
    ],
)
def test_null_and_empty_searchsets_mean_no_data_and_need_no_query(value: Any) -> None:
    """P-12: null or a Bundle with zero entries is satisfied: no data, do not re-query."""
    read = classify(value)
    assert read.state is PrefetchState.no_data
    assert read.resources == []


@pytest.mark.parametrize(
    "value",
    [
        ABSENT,
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]},
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": {"resourceType": "OperationOutcome", "issue": []}}],
        },
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "search": {"mode": "outcome"},
                    "resource": {"resourceType": "OperationOutcome", "issue": []},
                }
            ],
        },
        "123",
        ["not", "a", "resource"],
        {"id": "no-resource-type"},
    ],
)
def test_absent_errored_or_unusable_values_need_a_fetch(value: Any) -> None:
    """P-11, P-13: an absent key or an OperationOutcome is not data; fetch it or 412."""
    read = classify(value)
    assert read.state is PrefetchState.needs_fetch
    assert read.resources == []
    assert read.reason


def test_outcome_entries_are_dropped_from_a_bundle_with_data() -> None:
    """P-13: OperationOutcome entries (search.mode = outcome) are never clinical data."""
    condition = {"resourceType": "Condition", "id": "c1"}
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"search": {"mode": "match"}, "resource": condition},
            {"search": {"mode": "outcome"}, "resource": {"resourceType": "OperationOutcome"}},
            {"resource": {"resourceType": "OperationOutcome"}},
            {"fullUrl": "urn:uuid:no-resource"},
            "garbage",
        ],
    }
    read = classify(bundle)
    assert read.state is PrefetchState.data
    assert read.resources == [condition]


def test_only_entries_holding_a_typed_resource_that_is_no_outcome_are_read() -> None:
    """P-13 on every shape of entry: a match, an include or a search member of another shape
    is read; an outcome by its search mode or its type is dropped, as is anything that is not
    an entry holding a resource object with a string resourceType."""
    kept = [
        {"resourceType": "Condition", "id": "match"},
        {"resourceType": "Condition", "id": "scored"},
        {"resourceType": "Condition", "id": "include"},
        {"resourceType": "Condition", "id": "odd-search"},
        {"resourceType": "Condition", "id": "no-search"},
    ]
    entries: list[Any] = [
        {"search": {"mode": "match"}, "resource": kept[0]},
        {"search": {"mode": "match", "score": 1}, "resource": kept[1]},
        {"search": {"mode": "include"}, "resource": kept[2]},
        {"search": "match", "resource": kept[3]},
        {"resource": kept[4]},
        {"search": {"mode": "outcome"}, "resource": {"resourceType": "Condition", "id": "x"}},
        {"search": {"mode": "match"}, "resource": {"resourceType": "OperationOutcome"}},
        {"resource": {"resourceType": 7}},
        {"resource": {"id": "untyped"}},
        {"resource": "Condition/1"},
        {"resource": ["Condition"]},
        {"resource": None},
        ["resource"],
        None,
        7,
    ]
    read = classify({"resourceType": "Bundle", "type": "searchset", "entry": entries})
    assert read.state is PrefetchState.data
    assert read.resources == kept


def test_a_bundle_without_type_is_read_like_a_searchset() -> None:
    """P-09 and SB-02: the sandbox omits Bundle.type; read it anyway."""
    order_sign = _load(HOOKS_LIBRARY / "order-sign-request-context-R4.json")
    bundle = order_sign["context"]["draftOrders"]
    assert "type" not in bundle
    read = classify(bundle)
    assert read.state is PrefetchState.data
    assert read.resources
    assert all(r["resourceType"] for r in read.resources)


def test_a_paginated_prefetch_gives_the_first_page_and_the_next_url() -> None:
    """P-14: data so far plus the ``next`` link to follow (3.0 draft pagination example)."""
    request = _load(DRAFT_3 / "request-order-sign-paginated-prefetch.json")
    orders = request["prefetch"]["orders"]
    read = classify(orders)
    assert read.state is PrefetchState.data
    assert read.resources == [orders["entry"][0]["resource"]]
    assert read.next_url == (
        "https://ehr.example.org/fhir/MedicationRequest?patient=1288992&_count=1&_page=2"
    )


def test_a_next_link_on_an_empty_page_still_counts_as_data_to_follow() -> None:
    """P-14: a client may page so that the first page is empty."""
    bundle = {
        "resourceType": "Bundle",
        "link": [{"relation": "next", "url": "https://ehr.example.org/fhir/x?page=2"}],
    }
    read = classify(bundle)
    assert read.state is PrefetchState.data
    assert read.next_url == "https://ehr.example.org/fhir/x?page=2"


def test_prefetch_keys_the_service_did_not_declare_are_ignored() -> None:
    """P-10: only our own keys are read."""
    templates = {"patient": "Patient/{{context.patientId}}"}
    prefetch = {
        "patient": {"resourceType": "Patient", "id": "1"},
        "someone-elses-key": {"resourceType": "Patient", "id": "2"},
    }
    read = classify_all(templates, prefetch)
    assert set(read) == {"patient"}


def test_no_prefetch_at_all_means_every_key_needs_a_fetch() -> None:
    """P-08, P-11: a client may honour none of the templates."""
    read = classify_all(TEMPLATES_07, None)
    assert {k: v.state for k, v in read.items()} == dict.fromkeys(
        TEMPLATES_07, PrefetchState.needs_fetch
    )


def test_patient_data_starts_empty() -> None:
    """P-15: nothing known, nothing fetched until gathered."""
    data = PatientData()
    assert (data.resources, data.unavailable, data.fetched, data.incomplete) == ({}, {}, 0, set())
