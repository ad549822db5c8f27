"""Cards: markdown escaping, stable uuids, ServiceRequest suggestions and card validation."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds import hooks
from cds.cards import render, service_request, stable_uuid
from cds.cards.markdown import escape
from cds.cards.render import evidence_lines
from cds.cards.schema import ServiceRequestSpec
from cds.catalogue import Catalogue
from cds.fhir import parse_resource
from cds.record import Entry
from cds.rules.schema import Indicator

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
WHEN = datetime(2026, 2, 1, tzinfo=UTC)


def evidence(display: str = "Sciatica, right side", rid: str = "c1") -> Entry:
    return Entry("Condition", rid, "condition", frozenset({"radic"}), display, WHEN)


def rendered(
    catalogue: Catalogue, card_id: str, *found: Entry, service_id: str = "back-to-foot"
) -> hooks.Card:
    template = catalogue.cards[card_id]
    return render(
        template,
        service_id=service_id,
        rule_key="RB-01",
        rule_id="RB-01",
        rule_name="Foot or leg neurological symptoms with a lumbar-spine condition",
        indicator=template.indicator,
        patient_id="p1",
        evidence=found or (evidence(),),
        suggestions=template.suggestions,
        notes=[],
        draft=None,
        valuesets=catalogue.valuesets,
        topic_system=TOPIC,
    ).card


def test_ehr_text_cannot_inject_html_or_markdown() -> None:
    escaped = escape("<img src=x onerror=alert(1)> **bold** [link](http://x)")
    assert "<" not in escaped
    assert "\\*\\*bold\\*\\*" in escaped
    assert "\\[link\\]\\(http://x\\)" in escaped


@given(st.text(max_size=60))
def test_escaped_text_reads_back_as_its_words_with_no_live_markup(text: str) -> None:
    escaped = escape(text)
    # Every special character is preceded by a backslash, and removing those backslashes
    # gives the text back, whitespace folded and HTML characters as entities.
    assert re.fullmatch(r"(?:[^\\`*_{}\[\]()#+\-.!|~<>]|\\[\\`*_{}\[\]()#+\-.!|~])*", escaped)
    folded = " ".join(text.split())
    entities = folded.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert re.sub(r"\\(.)", r"\1", escaped) == entities


def test_the_detail_lists_the_triggering_evidence_with_dates(catalogue: Catalogue) -> None:
    card = rendered(catalogue, "rb-01", evidence("<b>Sciatica</b>"))
    assert card.detail is not None
    assert "- Condition: &lt;b&gt;Sciatica&lt;/b&gt; (2026-02-01)" in card.detail


def test_card_uuids_are_stable_for_the_same_rule_patient_and_evidence(
    catalogue: Catalogue,
) -> None:
    first = rendered(catalogue, "rb-01")
    again = rendered(catalogue, "rb-01")
    other = rendered(catalogue, "rb-01", evidence(rid="c2"))
    assert first.uuid == again.uuid != other.uuid
    assert first.suggestions is not None
    assert again.suggestions is not None
    assert first.suggestions[0].uuid == again.suggestions[0].uuid
    assert stable_uuid(TOPIC, "a") != stable_uuid(TOPIC, "b")


def test_the_same_rules_card_from_another_service_has_another_uuid(
    catalogue: Catalogue,
) -> None:
    """Feedback is matched by (service, uuid): one card uuid never names two services' cards."""
    here = rendered(catalogue, "rb-01", service_id="back-to-foot-order-sign")
    there = rendered(catalogue, "rb-01", service_id="back-to-foot-order-select")
    assert here.uuid != there.uuid
    assert here.uuid == rendered(catalogue, "rb-01", service_id="back-to-foot-order-sign").uuid
    assert here.suggestions is not None
    assert there.suggestions is not None
    assert here.suggestions[0].uuid != there.suggestions[0].uuid


def test_the_source_topic_carries_the_rule_id(catalogue: Catalogue) -> None:
    topic = rendered(catalogue, "rb-01").source.topic
    assert topic is not None
    assert (topic.system, topic.code) == (TOPIC, "RB-01")


def test_override_reasons_have_displays_in_the_project_code_system(
    catalogue: Catalogue,
) -> None:
    reasons = rendered(catalogue, "rb-01").override_reasons or []
    assert reasons
    assert all(r.display and r.system.endswith("/override-reason") for r in reasons)


@pytest.mark.parametrize(
    ("indicator", "priority"), [("info", "routine"), ("warning", "urgent"), ("critical", "stat")]
)
def test_priority_follows_the_indicator_by_the_clinical_policy(
    catalogue: Catalogue, indicator: Indicator, priority: str
) -> None:
    policy = catalogue.services["back-to-foot"].policy
    spec = catalogue.cards["rb-01"].suggestions[0].actions[0].service_request
    assert spec is not None
    resource = service_request(
        spec,
        valuesets=catalogue.valuesets,
        patient_id="p1",
        reasons=[evidence()],
        priority=policy.indicator_priority[indicator],
    )
    assert resource["priority"] == priority


def test_every_card_template_renders_a_valid_card_and_fhir_service_requests(
    catalogue: Catalogue,
) -> None:
    for card_id in catalogue.cards:
        card = rendered(catalogue, card_id)
        hooks.Card.model_validate(hooks.to_wire(card))
        for suggestion in card.suggestions or []:
            for action in suggestion.actions or []:
                assert action.resource is not None
                resource = action.resource
                assert (resource["status"], resource["intent"]) == ("draft", "proposal")
                assert resource["subject"] == {"reference": "Patient/p1"}
                assert parse_resource(resource) is not None, card_id


def test_a_text_only_order_carries_no_coding(catalogue: Catalogue) -> None:
    spec = ServiceRequestSpec(text="Vitamin B12 (cobalamin) level, serum")
    resource = service_request(spec, valuesets=catalogue.valuesets, patient_id="p1", reasons=[])
    assert resource["code"] == {"text": "Vitamin B12 (cobalamin) level, serum"}
    assert parse_resource(resource) is not None


def measured(display: str, value: float, unit: str | None, rid: str) -> Entry:
    return Entry(
        "Observation", rid, "measurement", frozenset(), display, WHEN, value=value, unit=unit
    )


def test_the_detail_shows_the_values_that_made_it_fire_with_their_units() -> None:
    lines = evidence_lines(
        [
            measured("Pain severity", 8, "{score}", "o1"),
            measured("HbA1c", 7.2, "%", "o2"),
            measured("HbA1c", 53, "mmol/mol", "o3"),
            measured("Cobalamin", 182, "pg/mL", "o4"),
            measured("Body weight", 163.1, "[lb_av]", "o5"),
        ]
    ).splitlines()
    assert lines == [
        "- Observation: Pain severity (2026-02-01): 8/10",
        "- Observation: HbA1c (2026-02-01): 7.2 %",
        "- Observation: HbA1c (2026-02-01): 53 mmol/mol",
        "- Observation: Cobalamin (2026-02-01): 182 pg/mL",
        "- Observation: Body weight (2026-02-01): 163.1 lb",
    ]


def test_what_a_fact_measured_follows_the_evidence_once_each() -> None:
    measured = "Weight 80.0 kg (2025-10-02) to 74.0 kg (2026-02-09): 7.5 % lost"
    lines = evidence_lines([evidence()], [measured, measured]).splitlines()
    assert lines == ["- Condition: Sciatica, right side (2026-02-01)", f"- {measured}"]


def test_a_units_text_cannot_inject_markdown() -> None:
    assert evidence_lines([measured("B12", 180, "*pg*", "o1")]).endswith(": 180 \\*pg\\*")


@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(["Sciatica", "Foot drop"]))))
def test_a_resource_listed_twice_is_one_bullet_the_first_entry_of_it_in_place(
    listed: list[tuple[str, str]],
) -> None:
    found = [evidence(display, rid) for rid, display in listed]
    first: list[Entry] = []
    for e in found:
        if all(e.reference != kept.reference for kept in first):
            first.append(e)
    want = "\n".join(f"- Condition: {e.display} (2026-02-01)" for e in first)
    assert evidence_lines(found) == (want or "- (no coded evidence listed)")
