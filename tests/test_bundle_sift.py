"""A prefetched Bundle's entries are read once, by the record, and the record it builds is the
one built from every resource classification lists, each offered to the record in turn.

Prefetch classification leaves a Bundle's resources unlisted (``BundleResources``) and the
record's sift (``RecordBuilder.sift``) reads the entries themselves, dropping in the same pass
the resources remembered to match no value set without looking at their entry further. These
tests hold that path to the plain one on entries of every shape, other patients' resources,
outcomes, and the same resource sent under several keys, with equal or differing content.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds.catalogue import Catalogue, ServiceDefinition
from cds.data.prefetch import (
    BundleResources,
    PrefetchState,
    classify,
    classify_all,
    entry_resource,
)
from cds.fhir import ValidationMemo
from cds.record import PatientRecord, build_record
from cds.record.build import RecordBuilder
from cds.record.matching import MatchMemo
from cds.request_json import parse_json
from cds.valuesets import ICD10CM

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PATIENT = "p1"
NOISE = "https://footpath-cds.example.org/CodeSystem/synthetic-noise"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"


def _coded(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display is not None:
        coding["display"] = display
    return {"coding": [coding]}


def _condition(rid: str, concept: Any, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
        "code": concept,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "onsetDateTime": "2026-03-01",
        **more,
    }


def _observation(rid: str, concept: Any, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": concept,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "effectiveDateTime": "2026-05-01",
        "valueQuantity": {"value": 8, "unit": "{score}"},
        **more,
    }


def _finding(rid: str, concept: Any, value: Any) -> dict[str, Any]:
    finding = _observation(rid, concept, valueCodeableConcept=value)
    del finding["valueQuantity"]
    return finding


def _order(rid: str, concept: Any, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "code": concept,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "authoredOn": "2026-04-01",
        **more,
    }


def _bundle(*entries: Any) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": list(entries)}


def _match(resource: Any) -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": "match"}}


RADICULOPATHY = _coded(ICD10CM, "M54.16", "Radiculopathy, lumbar region")
NOISE_LAB = _coded(NOISE, "lab-0001", "Sodium (synthetic)")
NOISE_CONDITION = _coded(NOISE, "cond-0001", "Condition 1 (synthetic)")
PAIN = _coded(LOINC, "72514-3", "Pain severity")


def _odd_entries() -> list[Any]:
    """Entries the Bundle may hold besides a plain match: each is read exactly as prefetch
    classification reads it, or not at all."""
    return [
        {"resource": _condition("in-outcome", RADICULOPATHY), "search": {"mode": "outcome"}},
        {
            "resource": _condition("noise-in-outcome", NOISE_CONDITION),
            "search": {"mode": "outcome"},
        },
        _match({"resourceType": "OperationOutcome", "issue": []}),
        {"resource": _condition("string-search", RADICULOPATHY, id="string-search"), "search": "x"},
        {"resource": _condition("included", RADICULOPATHY), "search": {"mode": "include"}},
        {"resource": _condition("no-search", NOISE_CONDITION)},
        {"resource": _condition("scored", RADICULOPATHY), "search": {"mode": "match", "score": 1}},
        {"fullUrl": "urn:uuid:no-resource"},
        {"resource": "Condition/1"},
        {"resource": ["Condition"]},
        {"resource": None},
        {"resource": {"resourceType": 7, "code": NOISE_CONDITION}},
        {"resource": {"resourceType": ["Condition"], "code": NOISE_CONDITION}},
        {"resource": {"id": "untyped", "code": NOISE_CONDITION}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "code": NOISE_CONDITION}},
        ["resource"],
        "garbage",
        None,
        7,
    ]


def _conditions() -> dict[str, Any]:
    return _bundle(
        _match(_condition("noise-1", NOISE_CONDITION)),
        _match(_condition("radiculopathy", RADICULOPATHY)),
        _match(_condition("noise-2", copy.deepcopy(NOISE_CONDITION))),
        # Another patient's: counted as skipped when it matches, dropped unread when not.
        _match(
            _condition("other-match", RADICULOPATHY, subject={"reference": "Patient/someone-else"})
        ),
        _match(
            _condition(
                "other-noise", NOISE_CONDITION, subject={"reference": "Patient/someone-else"}
            )
        ),
        # Coded without a system: may be text only, which the record counts.
        _match(_condition("no-system", {"coding": [{"code": "cond-0001"}], "text": "Numb hand"})),
        _match(_condition("bare-coding", {"coding": NOISE_CONDITION["coding"][0]})),
        _match(_condition("two-codings", {"coding": NOISE_CONDITION["coding"] * 2})),
        _match(_condition("lower-case-icd", _coded(ICD10CM, "m54.16", "Radiculopathy"))),
        _match(_condition("member-elsewhere", _coded(NOISE, "M54.16", "Not ICD-10-CM here"))),
        _match(_condition("refuted", RADICULOPATHY, verificationStatus=_coded("x", "refuted"))),
        # A Patient inside a Bundle: another patient's, then this one.
        _match({"resourceType": "Patient", "id": "someone-else", "birthDate": "1950-01-01"}),
        *_odd_entries(),
    )


def _observations() -> dict[str, Any]:
    return _bundle(
        _match(_observation("lab-1", NOISE_LAB)),
        _match(_observation("pain", PAIN)),
        _match(_observation("lab-2", NOISE_LAB)),
        # Read by its value, and by its words (the B12 text set).
        _match(_finding("by-value", NOISE_LAB, RADICULOPATHY)),
        _match(_observation("by-words", {**NOISE_LAB, "text": "Vitamin B12"})),
        _match(_observation("by-display", _coded(NOISE, "lab-0001", "Cobalamin (local)"))),
        _match(_observation("empty-display", _coded(NOISE, "lab-0001", ""))),
        _match(_observation("null-value", NOISE_LAB, valueCodeableConcept=None)),
        # The same id as a noise lab above, with content that matches: not a duplicate of it.
        _match(_observation("lab-1", PAIN, effectiveDateTime="2026-05-20")),
        _match(_observation("lab-odd-code", {"coding": [{"system": NOISE, "code": ["x"]}]})),
    )


def _orders() -> dict[str, Any]:
    return _bundle(
        _match(_order("order-noise", _coded(NOISE, "order-0001", "Order 1 (synthetic)"))),
        # Noise by its code, a physiotherapy referral by its performer.
        _match(
            _order(
                "order-by-performer",
                _coded(NOISE, "order-0001", "Order 1 (synthetic)"),
                performerType=_coded(SNOMED, "394602003", "Rehabilitation"),
            )
        ),
        _match(_order("order-null-performer", NOISE_LAB, performerType=None)),
    )


def _prefetch() -> dict[str, Any]:
    """A chart whose Observation keys repeat each other, as an EHR that ignores the templates'
    code filters sends it, with one copy of a matching resource changed."""
    observations = _observations()
    labs = copy.deepcopy(observations)
    labs["entry"][1]["resource"]["valueQuantity"] = {"value": 3, "unit": "{score}"}
    return {
        "patient": {"resourceType": "Patient", "id": PATIENT, "birthDate": "1970-01-01"},
        "conditions": _conditions(),
        "observations": observations,
        "labs": labs,
        "findings": copy.deepcopy(observations),
        "findingvalues": _bundle(*_odd_entries()),
        "medications": _bundle(),
        "procedures": None,
        "servicerequests": _orders(),
    }


def _summary(record: PatientRecord) -> dict[str, Any]:
    """What the record holds and what its building counted (the audit's and metrics' counts)."""
    return {
        "entries": record.entries,
        "skipped": record.skipped,
        "validated": record.models_built,
        "repaired": record.repaired,
        "unreadable": sorted(record.unreadable.values()),
        "patient": (record.patient_known, record.birth_date),
    }


def _by_key(service: ServiceDefinition, prefetch: Mapping[str, Any]) -> list[Sequence[Any]]:
    """Each key's resources as a hook call hands them to the record: as classified."""
    read = classify_all(service.prefetch, prefetch)
    return [
        read[key].resources for key in service.prefetch if read[key].state is PrefetchState.data
    ]


def _read_once(
    service: ServiceDefinition, prefetch: Mapping[str, Any], memo: MatchMemo
) -> dict[str, Any]:
    return _summary(
        build_record(
            memo.valuesets,
            NOW,
            PATIENT,
            (),
            by_key=_by_key(service, prefetch),
            windows=service.policy.condition_windows,
            limb_symptoms=service.limb_symptoms,
            matching=memo,
        )
    )


def _builder(service: ServiceDefinition, memo: MatchMemo) -> RecordBuilder:
    """A record builder for the chart's patient at NOW, with a fresh validation memo."""
    return RecordBuilder(
        NOW,
        PATIENT,
        service.policy.condition_windows,
        service.limb_symptoms,
        validation=ValidationMemo(),
        matching=memo,
    )


def _offered(
    service: ServiceDefinition, prefetch: Mapping[str, Any], memo: MatchMemo
) -> dict[str, Any]:
    """The record as if nothing were sifted: every listed resource offered to add(), the
    Patients first."""
    resources = [raw for listed in _by_key(service, prefetch) for raw in list(listed)]
    builder = _builder(service, memo)
    for raw in resources:
        if raw.get("resourceType") == "Patient":
            builder.add_patient(raw)
    for raw in resources:
        builder.add(raw)
    return _summary(builder.finish(()))


@pytest.fixture
def service(catalogue: Catalogue) -> ServiceDefinition:
    return catalogue.services["back-to-foot"]


def test_reading_the_entries_once_builds_the_record_offering_every_resource_builds(
    catalogue: Catalogue, service: ServiceDefinition
) -> None:
    """Cold, then with the memo remembering the noise (when the sift drops it unread): the
    same entries, skipped and invalid counts, validations, repairs and Patient."""
    read_once, offered = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(3):
        assert _read_once(service, _prefetch(), read_once) == _offered(
            service, _prefetch(), offered
        )
    assert read_once.unmatched  # the sift had noise to drop


def test_the_record_keeps_what_the_chart_says_whichever_path_reads_it(
    catalogue: Catalogue, service: ServiceDefinition
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    for _ in range(2):
        read = _read_once(service, _prefetch(), memo)
        entries, skipped = read["entries"], read["skipped"]
        ids = [(e.resource_type, e.id) for e in entries]
        # Outcome entries are never read; another patient's Condition is counted, not kept.
        assert ("Condition", "in-outcome") not in ids
        assert ("Condition", "other-match") not in ids
        assert skipped["Condition"] >= 2  # another patient's, and the text-only one
        # Included and oddly searched entries are read; refuted ones are not kept.
        assert {("Condition", "included"), ("Condition", "string-search")} <= set(ids)
        assert ("Condition", "refuted") not in ids
        # A noise Observation's id taken by a matching one later: the matching one is kept,
        # once, whichever of the repeating keys sent it first.
        assert ids.count(("Observation", "lab-1")) == 1
        assert ids.count(("Observation", "pain")) == 1
        assert ("Observation", "by-value") in ids
        assert ("Observation", "by-words") in ids
        assert ("Observation", "by-display") in ids
        assert ("Condition", "lower-case-icd") in ids
        assert ("Condition", "member-elsewhere") not in ids
        assert ("ServiceRequest", "order-by-performer") in ids
        assert ("ServiceRequest", "order-noise") not in ids


def test_the_first_copy_of_a_resource_sent_under_several_keys_is_the_one_kept(
    catalogue: Catalogue, service: ServiceDefinition
) -> None:
    memo = MatchMemo(catalogue.valuesets)
    for _ in range(2):
        entries = _read_once(service, _prefetch(), memo)["entries"]
        pain = next(e for e in entries if e.id == "pain")
        assert pain.value == 8  # the observations key's, not the changed copy under labs


def test_a_bundle_is_classified_without_listing_its_entries() -> None:
    bundle = _bundle(_match(_condition("c1", NOISE_CONDITION)), *_odd_entries())
    read = classify(bundle)
    assert read.state is PrefetchState.data
    assert isinstance(read.resources, BundleResources)
    assert read.resources.entries is bundle["entry"]
    # Listed when asked, exactly as classification reads the entries.
    assert [r["id"] for r in read.resources] == [
        "c1",
        "string-search",
        "included",
        "no-search",
        "scored",
        "e1",
    ]


def test_a_bundle_of_outcomes_only_still_needs_a_fetch_and_an_empty_one_has_no_data() -> None:
    outcomes = _bundle(
        {"resource": _condition("x", RADICULOPATHY), "search": {"mode": "outcome"}},
        _match({"resourceType": "OperationOutcome", "issue": []}),
        "garbage",
    )
    assert classify(outcomes).state is PrefetchState.needs_fetch
    assert classify(outcomes).errored
    assert classify(_bundle("garbage", None)).state is PrefetchState.no_data


# --------------------------------------------------------------------------- any entries

_CONCEPTS: list[Any] = [
    RADICULOPATHY,
    NOISE_LAB,
    NOISE_CONDITION,
    PAIN,
    {**NOISE_CONDITION, "text": "Numb hand"},
    {"coding": [{"code": "cond-0001"}], "text": "Numb hand"},
    {"coding": [{"system": None, "code": "cond-0001", "display": "Condition 1 (synthetic)"}]},
    {"coding": NOISE_CONDITION["coding"] * 2},
    {"coding": NOISE_CONDITION["coding"][0]},
    {"coding": []},
    {"text": "sciatica"},
    {"coding": [{"system": NOISE, "code": 7}]},
    {"coding": "x"},
    "M54.16",
    None,
]
_TYPES: list[Any] = [
    *("Condition", "Observation", "ServiceRequest", "Patient", "Encounter", "OperationOutcome"),
    7,
    None,
]
_SEARCHES: list[Any] = [
    {"mode": "match"},
    {"mode": "outcome"},
    {"mode": "include"},
    {"mode": "match", "score": 1},
    "outcome",
    None,
]


@st.composite
def _any_entry(draw: st.DrawFn) -> Any:
    """An entry of a Bundle as any EHR may send it: a resource of a type the record reads or
    not, its main concept matching, noise, or of another shape, with its other coded field
    or not, in an entry of any search mode, or something that is no entry at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, 7, "garbage", ["resource"], {"fullUrl": "x"}]))
    resource_type = draw(st.sampled_from(_TYPES))
    resource: dict[str, Any] = {
        "resourceType": resource_type,
        "id": draw(st.sampled_from(["r1", "r2", "noise-1", PATIENT, 3])),
        "status": "final" if resource_type == "Observation" else "active",
        "subject": {"reference": draw(st.sampled_from([f"Patient/{PATIENT}", "Patient/p2"]))},
    }
    if draw(st.booleans()):
        resource["code"] = copy.deepcopy(draw(st.sampled_from(_CONCEPTS)))
    if draw(st.integers(0, 3)) == 0:
        other = "valueCodeableConcept" if resource_type == "Observation" else "performerType"
        resource[other] = copy.deepcopy(draw(st.sampled_from(_CONCEPTS)))
    entry: dict[str, Any] = {"resource": resource if draw(st.integers(0, 9)) else "Condition/1"}
    search = draw(st.sampled_from([*_SEARCHES, "absent"]))
    if search != "absent":
        entry["search"] = copy.deepcopy(search)
    return entry


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_any_entry(), max_size=8), min_size=1, max_size=3))
def test_any_entries_sifted_build_the_record_every_resource_offered_builds(
    catalogue: Catalogue, keys: list[list[Any]]
) -> None:
    """Whether the sift sorts an entry at once or asks the general path, the record and its
    counts are the ones offering each resource classification lists gives: cold, then with
    the memos remembering."""
    service = catalogue.services["back-to-foot"]
    names = ["conditions", "observations", "servicerequests"]
    prefetch = {
        "patient": {"resourceType": "Patient", "id": PATIENT, "birthDate": "1970-01-01"},
        **{name: _bundle(*entries) for name, entries in zip(names, keys, strict=False)},
    }
    read_once, offered = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(2):
        assert _read_once(service, copy.deepcopy(prefetch), read_once) == _offered(
            service, copy.deepcopy(prefetch), offered
        )


@settings(max_examples=200, deadline=None)
@given(_any_entry())
def test_one_entry_is_read_as_listing_the_bundle_reads_it(entry: Any) -> None:
    listed = BundleResources([entry]).listed()
    assert entry_resource(entry) is (listed[0] if listed else None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_any_entry(), min_size=1, max_size=10))
def test_any_entries_left_undecoded_build_the_record_decoded_ones_build(
    catalogue: Catalogue, entries: list[Any]
) -> None:
    """The sift judges an undecoded entry by its head and reads it whole before sorting it."""
    service = catalogue.services["back-to-foot"]
    body = orjson.dumps({"prefetch": {**_prefetch(), "conditions": _bundle(*entries)}})
    raw_memo, decoded_memo = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    for _ in range(2):
        undecoded = parse_json(body, raw_from=0)["prefetch"]
        assert type(undecoded["conditions"]["entry"][0]) is msgspec.Raw
        assert _read_once(service, undecoded, raw_memo) == _read_once(
            service, orjson.loads(body)["prefetch"], decoded_memo
        )


def _sifted(
    service: ServiceDefinition, memo: MatchMemo, source: Sequence[Any]
) -> tuple[list[int], list[int]]:
    """Which resources the sift sorts (by identity, in order): the Patients and the others."""
    builder = _builder(service, memo)
    patients, pending = builder.sift([source])
    return [id(r) for r in patients], [id(r) for r in pending]


@st.composite
def _runs_of_entries(draw: st.DrawFn) -> list[Any]:
    """Entries in runs of one resource after another, as a searchset sends one type in a row,
    with runs of other types, of no type and of no resource between them."""
    runs = draw(st.lists(st.tuples(_any_entry(), st.integers(1, 3)), min_size=1, max_size=6))
    return [copy.deepcopy(entry) for entry, times in runs for _ in range(times)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_runs_of_entries())
def test_the_sift_of_a_bundle_sorts_what_sifting_its_listed_resources_one_by_one_sorts(
    catalogue: Catalogue, entries: list[Any]
) -> None:
    """The Bundle's pass, which looks a type's fields up again only when the type changes,
    keeps the very resources that judging each listed resource alone keeps, cold and with the
    memo remembering the noise."""
    service = catalogue.services["back-to-foot"]
    memo = MatchMemo(catalogue.valuesets)
    bundle = BundleResources(entries)
    for _ in range(2):
        assert _sifted(service, memo, bundle) == _sifted(service, memo, bundle.listed())
        build_record(
            memo.valuesets,
            NOW,
            PATIENT,
            bundle.listed(),
            windows=service.policy.condition_windows,
            matching=memo,
        )


def test_a_type_looked_up_for_one_entry_does_not_decide_the_next_ones(
    catalogue: Catalogue, service: ServiceDefinition
) -> None:
    """Noise after a resource of no type, of a type no record is built from, a Patient or an
    Observation read by its value is judged by its own type's fields: dropped when remembered,
    kept when its type reads another coded field it has; a coding with no string system is
    kept. The record is the one offering every resource builds."""
    noise = _condition("noise-1", NOISE_CONDITION)
    entries = [
        _match(noise),
        _match({"resourceType": None, "id": "n", "code": NOISE_CONDITION}),
        _match({**noise, "id": "noise-2"}),
        _match({"resourceType": "Encounter", "id": "e1", "code": NOISE_CONDITION}),
        _match({**noise, "id": "noise-3"}),
        _match({"resourceType": "Patient", "id": PATIENT}),
        _match(_finding("by-value", NOISE_CONDITION, RADICULOPATHY)),
        _match({**noise, "id": "noise-4", "valueCodeableConcept": RADICULOPATHY}),
        _match(_observation("lab-1", NOISE_CONDITION)),
        _match(_order("order-by-performer", NOISE_CONDITION, performerType=RADICULOPATHY)),
        _match(_order("order-noise", NOISE_CONDITION)),
        _match(_condition("no-system", {"coding": [{"code": "cond-0001"}]})),
        _match(
            _condition(
                "null-system", {"coding": [{**NOISE_CONDITION["coding"][0], "system": None}]}
            )
        ),
    ]
    memo, offered = MatchMemo(catalogue.valuesets), MatchMemo(catalogue.valuesets)
    prefetch = {"patient": _prefetch()["patient"], "conditions": _bundle(*entries)}
    for _ in range(2):
        assert _read_once(service, copy.deepcopy(prefetch), memo) == _offered(
            service, copy.deepcopy(prefetch), offered
        )
    bundle = BundleResources(entries)
    _, pending = _sifted(service, memo, bundle)
    kept = [e["resource"].get("id") for e in entries if id(e["resource"]) in pending]
    # noise-4 is a Condition: the value it carries after an Observation's is no field of its.
    assert kept == ["by-value", "order-by-performer", "no-system", "null-system"]
