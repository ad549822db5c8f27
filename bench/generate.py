"""Deterministic synthetic patient-view requests for back-to-foot, from 50 to 20,000 resources."""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from cds.catalogue import load_catalogue
from cds.errors import ConfigError
from cds.settings import Settings

Resource = dict[str, Any]

SIZES: Final[Mapping[str, int]] = {"small": 50, "typical": 500, "heavy": 5_000, "huge": 20_000}
SERVICE_ID: Final = "back-to-foot"
# The same instant the tests pin (tests/conftest.py FIXED_NOW): the benches pin the server to it
# so the windows in rules.md (30 days, 6 weeks, 12 months) select the same resources every run.
NOW: Final = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PATIENT_ID: Final = "bench-patient"
EHR_BASE: Final = "https://ehr.example.org/fhir"
# Resources the value sets can match carry this id prefix, so tests can count them.
RELEVANT_PREFIX: Final = "rel-"
# Noise is coded only in this project-owned system: no invented codes in real code systems.
NOISE_SYSTEM: Final = "https://footpath-cds.example.org/CodeSystem/synthetic-noise"

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

# The prefetch suggested in rules.md 3.7; used when the catalogue cannot be loaded.
DEFAULT_PREFETCH: Final[Mapping[str, str]] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": (
        "Observation?patient={{context.patientId}}&code=http://loinc.org|72514-3,"
        "http://loinc.org|38208-5,http://loinc.org|75893-8,http://loinc.org|4548-4,"
        "http://loinc.org|2132-9,http://loinc.org|29463-7,http://loinc.org|3141-9"
    ),
    "medreqs": "MedicationRequest?patient={{context.patientId}}&status=active",
    "procedures": "Procedure?patient={{context.patientId}}",
    "servicerequests": "ServiceRequest?patient={{context.patientId}}",
    "reports": "DiagnosticReport?patient={{context.patientId}}",
}

# Share of the noise per resource type: a chart is mostly vitals and labs.
NOISE_SHARE: Final[Mapping[str, float]] = {
    "Observation": 0.68,
    "Condition": 0.08,
    "MedicationRequest": 0.07,
    "MedicationStatement": 0.03,
    "Procedure": 0.07,
    "ServiceRequest": 0.04,
    "DiagnosticReport": 0.06,
    "Encounter": 0.05,
}

# (code, display, UCUM unit, low, high) of synthetic vital signs and labs.
VITALS: Final = (
    ("vital-heart-rate", "Heart rate (synthetic)", "/min", 52.0, 104.0),
    ("vital-systolic", "Systolic blood pressure (synthetic)", "mm[Hg]", 98.0, 168.0),
    ("vital-diastolic", "Diastolic blood pressure (synthetic)", "mm[Hg]", 58.0, 102.0),
    ("vital-resp-rate", "Respiratory rate (synthetic)", "/min", 11.0, 22.0),
    ("vital-temperature", "Body temperature (synthetic)", "Cel", 36.1, 38.2),
    ("vital-spo2", "Oxygen saturation (synthetic)", "%", 91.0, 100.0),
    ("vital-height", "Body height (synthetic)", "cm", 171.0, 173.0),
    ("vital-bmi", "Body mass index (synthetic)", "kg/m2", 24.0, 31.0),
)
LABS: Final = (
    ("lab-sodium", "Sodium (synthetic)", "mmol/L", 133.0, 146.0),
    ("lab-potassium", "Potassium (synthetic)", "mmol/L", 3.3, 5.4),
    ("lab-creatinine", "Creatinine (synthetic)", "mg/dL", 0.6, 1.5),
    ("lab-urea", "Urea nitrogen (synthetic)", "mg/dL", 6.0, 24.0),
    ("lab-hemoglobin", "Hemoglobin (synthetic)", "g/dL", 11.5, 17.0),
    ("lab-wbc", "Leukocytes (synthetic)", "10*3/uL", 3.5, 11.5),
    ("lab-platelets", "Platelets (synthetic)", "10*3/uL", 140.0, 420.0),
    ("lab-alt", "Alanine aminotransferase (synthetic)", "U/L", 8.0, 60.0),
    ("lab-ldl", "LDL cholesterol (synthetic)", "mg/dL", 60.0, 190.0),
    ("lab-tsh", "Thyrotropin (synthetic)", "m[IU]/L", 0.3, 5.2),
    ("lab-crp", "C reactive protein (synthetic)", "mg/L", 0.1, 14.0),
    ("lab-vitd", "Vitamin D (synthetic)", "ng/mL", 12.0, 60.0),
)


def service_prefetch() -> dict[str, str]:
    """The back-to-foot prefetch templates from the catalogue, or rules.md's when it won't load."""
    settings = Settings()
    try:
        catalogue = load_catalogue(settings.rules_dir, settings.cards_dir, settings.topic_system)
    except (ConfigError, OSError):
        return dict(DEFAULT_PREFETCH)
    service = catalogue.services.get(SERVICE_ID)
    return dict(service.prefetch) if service is not None else dict(DEFAULT_PREFETCH)


def _when(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="seconds")


def _day(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).date().isoformat()


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _subject() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def _meta(rng: random.Random, days_ago: float) -> dict[str, Any]:
    return {"versionId": str(rng.randint(1, 4)), "lastUpdated": _when(days_ago - rng.random())}


def _condition(
    cid: str,
    concept: dict[str, Any],
    onset_days: float,
    *,
    clinical: str = "active",
    abated_days: float | None = None,
    body_site: str | None = None,
) -> Resource:
    resource: Resource = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": _status(CLINICAL, clinical),
        "verificationStatus": _status(VERIFICATION, "confirmed"),
        "category": [_status(CONDITION_CATEGORY, "problem-list-item")],
        "code": concept,
        "subject": _subject(),
        "onsetDateTime": _when(onset_days),
        "recordedDate": _when(onset_days - 1),
    }
    if body_site is not None:
        resource["bodySite"] = [{"text": body_site}]
    if abated_days is not None:
        resource["abatementDateTime"] = _when(abated_days)
    return resource


def _quantity_observation(
    oid: str, concept: dict[str, Any], *, category: str, days_ago: float, value: float, unit: str
) -> Resource:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [_status(OBSERVATION_CATEGORY, category)],
        "code": concept,
        "subject": _subject(),
        "effectiveDateTime": _when(days_ago),
        "issued": _when(days_ago - 0.01),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def relevant_resources() -> dict[str, list[Resource]]:
    """The clinically relevant part of the chart, by resource type (codes from valuesets.json).

    Lumbar radiculopathy for 10 weeks, new left-foot paresthesia and foot pain, severe recent pain
    scores, a 5.5 % weight loss (medians, rules.md 3.3), type 2 diabetes on metformin: several
    rules fire.
    """
    r = RELEVANT_PREFIX
    conditions = [
        _condition(
            f"{r}radiculopathy",
            {
                "coding": [
                    {"system": ICD10, "code": "M54.16", "display": "Radiculopathy, lumbar region"},
                    {"system": SNOMED, "code": "128196005", "display": "Lumbar radiculopathy"},
                ],
                "text": "Lumbar radiculopathy",
            },
            70,
            body_site="Lumbar spine",
        ),
        _condition(
            f"{r}paresthesia",
            _concept(ICD10, "R20.2", "Paresthesia of skin"),
            21,
            body_site="Left foot",
        ),
        _condition(f"{r}foot-pain", _concept(ICD10, "M79.672", "Pain in left foot"), 25),
        _condition(
            f"{r}low-back-pain", _concept(ICD10, "M54.50", "Low back pain, unspecified"), 400
        ),
        _condition(f"{r}diabetes", _concept(SNOMED, "44054006", "Type 2 diabetes mellitus"), 2_100),
        _condition(
            f"{r}old-sciatica",
            _concept(SNOMED, "23056005", "Sciatica"),
            1_500,
            clinical="resolved",
            abated_days=1_300,
        ),
    ]
    pain = _concept(
        LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"
    )
    weight = _concept(LOINC, "29463-7", "Body weight")
    observations = [
        _quantity_observation(
            f"{r}pain-{i}", pain, category="survey", days_ago=days, value=score, unit="{score}"
        )
        for i, (days, score) in enumerate(((60, 6.0), (28, 7.0), (5, 8.0)))
    ]
    observations += [
        _quantity_observation(
            f"{r}weight-{i}", weight, category="vital-signs", days_ago=days, value=kg, unit="kg"
        )
        for i, (days, kg) in enumerate(
            ((360, 84.0), (300, 83.6), (240, 82.1), (180, 80.9), (90, 79.4), (10, 77.6))
        )
    ]
    observations.append(
        _quantity_observation(
            f"{r}hba1c",
            _concept(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
            category="laboratory",
            days_ago=120,
            value=7.1,
            unit="%",
        )
    )
    metformin = "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"
    medications = [
        {
            "resourceType": "MedicationRequest",
            "id": f"{r}metformin",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(RXNORM, "860975", metformin),
            "subject": _subject(),
            "authoredOn": _when(2_000),
            "dosageInstruction": [{"text": "500 mg once daily with the evening meal"}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"{r}pregabalin",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(
                RXNORM, "483438", "pregabalin 100 MG Oral Capsule"
            ),
            "subject": _subject(),
            "authoredOn": _when(40),
            "dosageInstruction": [{"text": "100 mg twice daily"}],
        },
    ]
    procedures = [
        {
            "resourceType": "Procedure",
            "id": f"{r}physio",
            "status": "completed",
            "code": _concept(SNOMED, "91251008", "Physical therapy procedure"),
            "subject": _subject(),
            "performedDateTime": _when(700),
        }
    ]
    orders = [
        {
            "resourceType": "ServiceRequest",
            "id": f"{r}physio-referral",
            "status": "completed",
            "intent": "order",
            "code": _concept(SNOMED, "308447003", "Referral to physiotherapist (procedure)"),
            "subject": _subject(),
            "authoredOn": _when(650),
        }
    ]
    mri = "MRI, spinal canal and contents, lumbar; without contrast material"
    reports = [
        {
            "resourceType": "DiagnosticReport",
            "id": f"{r}lumbar-mri",
            "status": "final",
            "code": _concept(CPT, "72148", mri),
            "subject": _subject(),
            "effectiveDateTime": _when(900),
            "issued": _when(899),
            "conclusion": "Degenerative change at L4-L5 without nerve root compression.",
        }
    ]
    return {
        "Condition": conditions,
        "Observation": observations,
        "MedicationRequest": medications,
        "Procedure": procedures,
        "ServiceRequest": orders,
        "DiagnosticReport": reports,
    }


def _noise_code(kind: str, number: int, label: str) -> dict[str, Any]:
    code, display = f"{kind}-{number:04d}", f"{label} {number} (synthetic)"
    return {"coding": [{"system": NOISE_SYSTEM, "code": code, "display": display}]}


def _noise_observation(rng: random.Random, oid: str, category: str | None = None) -> Resource:
    is_lab = category == "laboratory" or (category is None and rng.random() < 0.4)
    code, display, unit, low, high = rng.choice(LABS if is_lab else VITALS)
    days = rng.uniform(0, 3_650)
    value = round(rng.uniform(low, high), 1)
    resource = _quantity_observation(
        oid,
        {"coding": [{"system": NOISE_SYSTEM, "code": code, "display": display}]},
        category="laboratory" if is_lab else "vital-signs",
        days_ago=days,
        value=value,
        unit=unit,
    )
    del resource["issued"]  # most vitals and many labs carry no separate issued instant
    if is_lab:
        span = high - low
        normal_low, normal_high = round(low + span * 0.1, 1), round(high - span * 0.1, 1)
        flag = "L" if value < normal_low else "H" if value > normal_high else None
        if flag is not None:  # many labs flag only abnormal results
            resource["interpretation"] = [_status(INTERPRETATION, flag)]
        resource["referenceRange"] = [{"text": f"{normal_low}-{normal_high} {unit}"}]
    return resource


def _noise_condition(rng: random.Random, cid: str) -> Resource:
    onset = rng.uniform(30, 7_000)
    resolved = rng.random() < 0.45
    resource = _condition(
        cid,
        _noise_code("cond", rng.randint(1, 300), "Condition"),
        onset,
        clinical="resolved" if resolved else "active",
        abated_days=onset * rng.uniform(0.2, 0.9) if resolved else None,
    )
    return resource


def _noise_medication(rng: random.Random, mid: str, resource_type: str) -> Resource:
    days = rng.uniform(1, 3_000)
    dose = rng.choice((5, 10, 20, 25, 40, 50, 100, 250, 500))
    resource: Resource = {
        "resourceType": resource_type,
        "id": mid,
        "status": "active",
        "medicationCodeableConcept": _noise_code("med", rng.randint(1, 150), "Medication"),
        "subject": _subject(),
        "dosage" if resource_type == "MedicationStatement" else "dosageInstruction": [
            {
                "sequence": 1,
                "text": f"{dose} mg by mouth once daily",
                "doseAndRate": [
                    {"doseQuantity": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
    }
    if resource_type == "MedicationRequest":
        resource["intent"] = "order"
        resource["authoredOn"] = _when(days)
        resource["requester"] = {"reference": f"Practitioner/n-pr-{rng.randint(1, 30)}"}
    else:
        resource["effectiveDateTime"] = _when(days)
    return resource


def _noise_procedure(rng: random.Random, pid: str) -> Resource:
    days = rng.uniform(1, 5_000)
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": rng.choice(("completed", "completed", "completed", "not-done")),
        "code": _noise_code("proc", rng.randint(1, 200), "Procedure"),
        "subject": _subject(),
        "encounter": {"reference": f"Encounter/n-enc-{rng.randint(1, 400)}"},
        "performedPeriod": {"start": _when(days), "end": _when(days - 0.02)},
        "performer": [{"actor": {"reference": f"Practitioner/n-pr-{rng.randint(1, 30)}"}}],
    }


def _noise_order(rng: random.Random, sid: str) -> Resource:
    days = rng.uniform(1, 3_000)
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": rng.choice(("completed", "completed", "active", "revoked")),
        "intent": "order",
        "code": _noise_code("order", rng.randint(1, 120), "Order"),
        "subject": _subject(),
        "authoredOn": _when(days),
        "requester": {"reference": f"Practitioner/n-pr-{rng.randint(1, 30)}"},
    }


def _noise_report(rng: random.Random, did: str) -> Resource:
    days = rng.uniform(1, 3_650)
    return {
        "resourceType": "DiagnosticReport",
        "id": did,
        "status": "final",
        "category": [_status("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB")],
        "code": _noise_code("panel", rng.randint(1, 60), "Panel"),
        "subject": _subject(),
        "effectiveDateTime": _when(days),
        "issued": _when(days - 0.2),
        "result": [
            {"reference": f"Observation/n-obs-{rng.randint(1, 9_999)}"}
            for _ in range(rng.randint(1, 3))
        ],
        "conclusion": "Synthetic panel within the expected range.",
    }


def _noise_encounter(rng: random.Random, eid: str) -> Resource:
    days = rng.uniform(1, 3_650)
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [_noise_code("visit", rng.randint(1, 20), "Visit")],
        "subject": _subject(),
        "period": {"start": _when(days), "end": _when(days - 0.03)},
    }


NOISE: Final[Mapping[str, Callable[[random.Random, str], Resource]]] = {
    "Observation": _noise_observation,
    "Condition": _noise_condition,
    "MedicationRequest": lambda rng, i: _noise_medication(rng, i, "MedicationRequest"),
    "MedicationStatement": lambda rng, i: _noise_medication(rng, i, "MedicationStatement"),
    "Procedure": _noise_procedure,
    "ServiceRequest": _noise_order,
    "DiagnosticReport": _noise_report,
    "Encounter": _noise_encounter,
}


def _patient(rng: random.Random) -> Resource:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "meta": _meta(rng, 30),
        "identifier": [
            {"system": "https://ehr.example.org/mrn", "value": f"{rng.randrange(10**8)}"}
        ],
        "active": True,
        "name": [{"use": "official", "family": "Synthetic", "given": ["Bench"]}],
        "gender": "female",
        "birthDate": "1968-04-17",
    }


def _resource_type(template: str) -> str:
    return template.split("?", 1)[0].split("/", 1)[0]


def _searchset(template: str, resources: list[Resource]) -> Resource:
    query = template.replace("{{context.patientId}}", PATIENT_ID)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{EHR_BASE}/{query}"}],
        "entry": [
            {
                "fullUrl": f"{EHR_BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _query(template: str) -> dict[str, list[str]]:
    """A search template's parameters other than the patient, each as its comma-separated values."""
    _, _, query = template.partition("?")
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in ("patient", "subject"):
            params[name.split(":", 1)[0]] = value.split(",")
    return params


def _codes_of(resource: Resource, element: str) -> set[str]:
    values = resource.get(element)
    concepts = values if isinstance(values, list) else [values]
    found: set[str] = set()
    for concept in concepts:
        for coding in concept.get("coding", []) if isinstance(concept, dict) else []:
            found.update({coding["code"], f"{coding['system']}|{coding['code']}"})
    return found


# The search parameters an EHR that ignores the templates' filters leaves out: every resource of
# the type comes back, whatever its code, value or category (status is still honoured).
UNFILTERED_PARAMETERS: Final = frozenset({"code", "value-concept", "category"})


# An unfiltered body holds this many times the entries of its size (repeats included).
UNFILTERED_ENTRIES: Final = 1.4


def _parameters(template: str, unfiltered: bool) -> dict[str, list[str]]:
    params = _query(template)
    if unfiltered:
        params = {k: v for k, v in params.items() if k not in UNFILTERED_PARAMETERS}
    return params


def matches(resource: Resource, template: str, *, unfiltered: bool = False) -> bool:
    """Whether a FHIR server would return ``resource`` for ``template`` (code, category, status);
    with ``unfiltered``, as a server that ignores the code, value and category parameters.

    Parameters other than these are not modelled and never exclude anything.
    """
    for name, wanted in _parameters(template, unfiltered).items():
        if name == "code":
            element = "code" if "code" in resource else "medicationCodeableConcept"
            have = _codes_of(resource, element)
        elif name == "category":
            have = _codes_of(resource, "category")
        elif name == "status":
            have = {str(resource.get("status"))}
        else:
            continue
        if have.isdisjoint(wanted):
            return False
    return True


def _noise_for(
    template: str, rng: random.Random, serial: Iterator[int], unfiltered: bool = False
) -> Resource:
    """One noise resource a server would return for ``template``."""
    resource_type = _resource_type(template)
    params = _parameters(template, unfiltered)
    resource = (
        _noise_observation(rng, f"n-{next(serial)}", params.get("category", [None])[0])
        if resource_type == "Observation"
        else NOISE[resource_type](rng, f"n-{next(serial)}")
    )
    if "status" in params and resource.get("status") not in params["status"]:
        resource["status"] = params["status"][0]
    return resource


def _interleaved(
    rng: random.Random, noise: list[Resource], relevant: list[Resource]
) -> list[Resource]:
    """``noise`` (in random order) with ``relevant`` at random places, in their own order: the
    cards list evidence in the chart's order, which is then the same for every chart size and
    shape (the unfiltered chart's cards are the filtered one's, byte for byte)."""
    noise = list(noise)
    rng.shuffle(noise)
    places = set(rng.sample(range(len(noise) + len(relevant)), len(relevant)))
    pending, rest = iter(relevant), iter(noise)
    return [next(pending) if i in places else next(rest) for i in range(len(noise) + len(relevant))]


def _noise_counts(
    total: int, templates: Mapping[str, str], unfiltered: bool = False
) -> dict[str, int]:
    """Noise per prefetch key: by resource type share, only where noise can match the search.

    A key searching by code gets no noise (noise codes are synthetic, so a server would return
    none); its type's share goes to the other keys of that type, or to every other key.
    """
    eligible: dict[str, list[str]] = {}
    for key, template in templates.items():
        resource_type = _resource_type(template)
        params = _parameters(template, unfiltered)
        if "?" in template and resource_type in NOISE and "code" not in params:
            eligible.setdefault(resource_type, []).append(key)
    if unfiltered:
        # Every key of a type answers the same unfiltered search: the first holds its share,
        # and make_request copies it to the others.
        eligible = {t: keys[:1] for t, keys in eligible.items()}
    shares = {
        key: NOISE_SHARE[resource_type] / len(keys)
        for resource_type, keys in eligible.items()
        for key in keys
    }
    if not shares:
        return {}
    scale = sum(shares.values())
    counts = {key: int(total * share / scale) for key, share in shares.items()}
    counts[max(shares, key=shares.__getitem__)] += total - sum(counts.values())
    return counts


def make_request(
    size: str,
    seed: int = 7,
    prefetch: Mapping[str, str] | None = None,
    *,
    unfiltered: bool = False,
) -> dict[str, Any]:
    """A complete patient-view request of about ``SIZES[size]`` resources, the same for a seed.

    Each searchset holds what a FHIR server would answer for its template: the relevant
    resources that match its code, category and status parameters, plus matching noise.

    ``unfiltered`` is an EHR that applies none of the templates' code, value or category
    filters: every key of a type holds every resource of that type (so every Observation key
    holds every Observation, vital signs included), and the body holds about
    ``UNFILTERED_ENTRIES`` times ``SIZES[size]`` entries, repeats included: the heavy one is
    about the 4.6 MiB of the unfiltered chart measured in issue #18, under the 5 MiB body limit.
    """
    total = SIZES[size]
    templates = dict(prefetch) if prefetch is not None else service_prefetch()
    rng = random.Random(f"{size}:{seed}" + (":unfiltered" if unfiltered else ""))
    relevant = relevant_resources()
    chosen = {
        key: [
            r for r in relevant.get(_resource_type(t), []) if matches(r, t, unfiltered=unfiltered)
        ]
        for key, t in templates.items()
        if "?" in t
    }
    distinct = {(r["resourceType"], r["id"]) for rs in chosen.values() for r in rs}
    noise = max(total - len(distinct) - 1, 0)
    if unfiltered:
        noise = _distinct_noise(int(noise * UNFILTERED_ENTRIES), templates)
    counts = _noise_counts(noise, templates, unfiltered)
    serial = iter(range(1, 10**9))
    values: dict[str, Any] = {}
    shared: dict[str, list[Resource]] = {}  # unfiltered: each type's noise, in every key of it
    for key, template in templates.items():
        resource_type = _resource_type(template)
        if "?" in template:
            if unfiltered and resource_type in shared:
                made = list(shared[resource_type])
            else:
                made = [
                    _noise_for(template, rng, serial, unfiltered) for _ in range(counts.get(key, 0))
                ]
                shared[resource_type] = list(made)
            values[key] = _searchset(template, _interleaved(rng, made, chosen[key]))
        elif resource_type == "Patient":
            values[key] = _patient(rng)
        else:
            values[key] = None  # a read the generator has no resource for: "no data" (P-12)
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "context": {"userId": "Practitioner/bench-clinician", "patientId": PATIENT_ID},
        "prefetch": values,
    }


def _distinct_noise(entries: int, templates: Mapping[str, str]) -> int:
    """How many distinct noise resources make about ``entries`` entries when every search key
    of a type repeats all of that type's noise (an unfiltered EHR)."""
    keys: dict[str, int] = {}
    for template in templates.values():
        resource_type = _resource_type(template)
        if "?" in template and resource_type in NOISE:
            keys[resource_type] = keys.get(resource_type, 0) + 1
    present = {t: share for t, share in NOISE_SHARE.items() if t in keys}
    scale = sum(present.values())
    per_resource = sum(share / scale * keys[t] for t, share in present.items())
    return int(entries / per_resource)


def resources_of(request: Mapping[str, Any]) -> Iterator[Resource]:
    """Every resource in a request's prefetch, Bundle entries unwrapped."""
    for value in (request.get("prefetch") or {}).values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            yield from (entry["resource"] for entry in value.get("entry", []))
        else:
            yield value


def relevant_count(request: Mapping[str, Any]) -> int:
    """How many resources a value set can match, plus the Patient: the most worth parsing."""
    return len(
        {
            (r["resourceType"], r.get("id"))
            for r in resources_of(request)
            if r["resourceType"] == "Patient" or str(r.get("id", "")).startswith(RELEVANT_PREFIX)
        }
    )


def request_bytes(size: str, seed: int = 7, *, unfiltered: bool = False) -> bytes:
    """The request as the bytes a CDS Client would POST."""
    return orjson.dumps(make_request(size, seed, unfiltered=unfiltered))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES, key=SIZES.__getitem__), default="typical")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--unfiltered",
        action="store_true",
        help="an EHR that ignores the templates' code, value and category filters",
    )
    parser.add_argument("--out", type=Path, help="file to write (standard output when omitted)")
    args = parser.parse_args(argv)
    body = request_bytes(args.size, args.seed, unfiltered=args.unfiltered)
    if args.out is None:
        sys.stdout.buffer.write(body)
    else:
        args.out.write_bytes(body)
        count = sum(1 for _ in resources_of(orjson.loads(body)))
        print(f"{args.out}: {count} resources, {len(body) / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
