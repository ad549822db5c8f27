"""Write the synthetic demo patients (demo/patients/*.json and index.json) for the playground."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "demo" / "patients"
# Every date is written relative to this day; the demo runs with CDS_FIXED_NOW on it.
DEMO_DAY = date(2026, 6, 1)
DEMO_NOW = "2026-06-01T12:00:00Z"
USER_ID = "Practitioner/demo-clinician"

SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CPT = "http://www.ama-assn.org/go/cpt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

Resource = dict[str, Any]


def day(days_before: int) -> str:
    """The ISO date ``days_before`` days before the demo day."""
    return (DEMO_DAY - timedelta(days=days_before)).isoformat()


def coding(system: str, code: str, display: str) -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


@dataclass
class Chart:
    """One demo patient's resources, every id prefixed with the patient id so ids stay unique."""

    pid: str
    resources: list[Resource] = field(default_factory=list)
    counter: int = 0

    def _id(self, kind: str) -> str:
        self.counter += 1
        return f"{self.pid}-{kind}-{self.counter}"

    @property
    def subject(self) -> Resource:
        return {"reference": f"Patient/{self.pid}"}

    def patient(self, given: str, family: str, gender: str, birth: str) -> None:
        self.resources.append(
            {
                "resourceType": "Patient",
                "id": self.pid,
                "meta": {"tag": [{"system": "urn:footpath-cds:demo", "code": "synthetic"}]},
                "name": [{"use": "official", "family": family, "given": [given]}],
                "gender": gender,
                "birthDate": birth,
            }
        )

    def condition(
        self,
        code: Resource,
        onset: str | None,
        *,
        clinical: str | None = "active",
        verification: str = "confirmed",
        body_site: str | None = None,
        abatement: str | None = None,
        category: bool = True,
    ) -> None:
        resource: Resource = {"resourceType": "Condition", "id": self._id("condition")}
        if clinical is not None:
            resource["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": clinical}]}
        resource["verificationStatus"] = {
            "coding": [{"system": VERIFICATION, "code": verification}]
        }
        if category:
            resource["category"] = [
                {"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}
            ]
        resource["code"] = code
        if body_site is not None:
            # Laterality from text: no SNOMED body-structure code is verified for this project.
            resource["bodySite"] = [{"text": body_site}]
        resource["subject"] = self.subject
        if onset is not None:
            resource["onsetDateTime"] = onset
            resource["recordedDate"] = onset
        if abatement is not None:
            resource["abatementDateTime"] = abatement
        self.resources.append(resource)

    def observation(
        self,
        loinc: str,
        display: str,
        value: float,
        unit: str,
        when: str,
        *,
        status: str = "final",
        category: str = "vital-signs",
    ) -> None:
        self.resources.append(
            {
                "resourceType": "Observation",
                "id": self._id("observation"),
                "status": status,
                "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
                "code": coding(LOINC, loinc, display),
                "subject": self.subject,
                "effectiveDateTime": when,
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )

    def procedure(self, code: Resource, when: str, status: str = "completed") -> None:
        self.resources.append(
            {
                "resourceType": "Procedure",
                "id": self._id("procedure"),
                "status": status,
                "code": code,
                "subject": self.subject,
                "performedDateTime": when,
            }
        )

    def medication(self, medication: Resource, authored: str, status: str = "active") -> None:
        self.resources.append(
            {
                "resourceType": "MedicationRequest",
                "id": self._id("medication"),
                "status": status,
                "intent": "order",
                "medicationCodeableConcept": medication,
                "subject": self.subject,
                "authoredOn": authored,
            }
        )

    def report(self, text: str, when: str) -> None:
        self.resources.append(
            {
                "resourceType": "DiagnosticReport",
                "id": self._id("report"),
                "status": "final",
                "code": {"text": text},
                "subject": self.subject,
                "effectiveDateTime": when,
            }
        )

    def encounter(self, when: str) -> None:
        self.resources.append(
            {
                "resourceType": "Encounter",
                "id": self._id("encounter"),
                "status": "finished",
                "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": self.subject,
                "period": {"start": f"{when}T09:00:00Z", "end": f"{when}T09:20:00Z"},
            }
        )

    def bundle(self) -> Resource:
        entries = []
        for resource in self.resources:
            ref = f"{resource['resourceType']}/{resource['id']}"
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'footpath-demo/' + ref)}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": ref},
                }
            )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# Codes below are shipped verified codes of rules/valuesets/ or named by the clinical
# scenarios (docs/clinical-specification.md); unrelated noise uses text-only concepts, which no
# value set can match.
RADIC_LUMBAR = coding(ICD10, "M54.16", "Radiculopathy, lumbar region")
PAIN_LEFT_FOOT = coding(ICD10, "M79.672", "Pain in left foot")
PAIN_RIGHT_FOOT = coding(ICD10, "M79.671", "Pain in right foot")
PARESTHESIA = coding(ICD10, "R20.2", "Paresthesia of skin")
PAIN_SCORE = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
WEIGHT = ("29463-7", "Body weight")
GLUCOSE = ("2345-7", "Glucose [Mass/volume] in Serum or Plasma")
HBA1C = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")
PLANTAR_FASCIITIS_ICD = coding(ICD10, "M72.2", "Plantar fascial fibromatosis")
STENOSIS = coding(ICD10, "M48.062", "Spinal stenosis, lumbar region with neurogenic claudication")
MRI_LUMBAR = coding(
    CPT, "72148", "MRI, spinal canal and contents, lumbar; without contrast material"
)


def s01() -> Chart:
    chart = Chart("demo-s01")
    chart.patient("Adam", "Fernside", "male", "1980-03-14")
    chart.condition(RADIC_LUMBAR, day(70))
    chart.condition(PARESTHESIA, day(60), body_site="Left foot")
    chart.condition(PAIN_LEFT_FOOT, day(60))
    chart.procedure(coding(SNOMED, "91251008", "Physical therapy procedure"), day(40))
    chart.observation(*PAIN_SCORE, 7, "{score}", day(6), category="survey")
    return chart


def s02() -> Chart:
    chart = Chart("demo-s02")
    chart.patient("Bella", "Heelworth", "female", "1988-01-22")
    chart.condition(PLANTAR_FASCIITIS_ICD, day(92))
    chart.condition(PAIN_RIGHT_FOOT, day(92))
    return chart


def s03() -> Chart:
    chart = Chart("demo-s03")
    chart.patient("Carla", "Stennard", "female", "1965-02-11")
    chart.condition(STENOSIS, day(365))
    chart.condition(coding(SNOMED, "202882003", "Plantar fasciitis"), day(151))
    chart.condition(
        coding(SNOMED, "90673000", "Burning sensation"), day(21), body_site="Both soles"
    )
    chart.condition(coding(SNOMED, "62507009", "Pins and needles"), day(21), body_site="Both soles")
    return chart


def s04() -> Chart:
    chart = Chart("demo-s04")
    chart.patient("Derek", "Sugden", "male", "1959-02-20")
    chart.condition(
        coding(ICD10, "E11.42", "Type 2 diabetes mellitus with diabetic polyneuropathy"), day(2200)
    )
    chart.medication(
        coding(
            RXNORM, "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"
        ),
        day(2190),
    )
    chart.condition(coding(ICD10, "R20.0", "Anesthesia of skin"), day(60), body_site="Both feet")
    chart.procedure(coding(SNOMED, "401191002", "Diabetic foot examination"), day(730))
    return chart


def s06() -> Chart:
    chart = Chart("demo-s06")
    chart.patient("Elena", "Caudwell", "female", "1974-04-03")
    chart.condition(
        coding(ICD10, "M51.16", "Intervertebral disc disorders with radiculopathy, lumbar region"),
        day(42),
    )
    chart.condition(coding(ICD10, "M54.41", "Lumbago with sciatica, right side"), day(28))
    chart.condition(coding(ICD10, "M54.42", "Lumbago with sciatica, left side"), day(4))
    chart.condition(coding(ICD10, "R33.9", "Retention of urine, unspecified"), day(3))
    return chart


def s07() -> Chart:
    chart = Chart("demo-s07")
    chart.patient("Fiona", "Errata", "female", "1982-09-30")
    chart.condition(PAIN_RIGHT_FOOT, day(14))
    # FHIR con-5: an entered-in-error Condition carries no clinicalStatus.
    chart.condition(RADIC_LUMBAR, day(20), clinical=None, verification="entered-in-error")
    chart.condition(
        coding(ICD10, "M51.26", "Other intervertebral disc displacement, lumbar region"),
        day(40),
        verification="refuted",
    )
    return chart


def s08() -> Chart:
    chart = Chart("demo-s08")
    chart.patient("George", "Oldham", "male", "1970-12-05")
    chart.condition(
        coding(ICD10, "M54.32", "Sciatica, left side"),
        day(943),
        clinical="resolved",
        abatement=day(730),
    )
    chart.condition(PLANTAR_FASCIITIS_ICD, day(47))
    chart.observation(*PAIN_SCORE, 9, "{score}", day(1096), category="survey")
    return chart


def s11() -> Chart:
    chart = Chart("demo-s11")
    chart.patient("Henry", "Pearson", "male", "1991-07-19")
    chart.condition(coding(SNOMED, "129179000", "Piriformis syndrome"), day(35))
    chart.condition(coding(ICD10, "M54.32", "Sciatica, left side"), day(35))
    chart.condition(
        coding(SNOMED, "309087008", "Paresthesia of foot"), day(21), body_site="Left foot"
    )
    return chart


def s13() -> Chart:
    chart = Chart("demo-s13")
    chart.patient("Irene", "Vasquez-Demo", "female", "1969-05-08")
    chart.condition(
        coding(ICD10, "I83.811", "Varicose veins of right lower extremity with pain"), day(629)
    )
    chart.condition(
        coding(ICD10, "R20.8", "Other disturbances of skin sensation"),
        day(14),
        body_site="Right foot",
    )
    return chart


def s14a() -> Chart:
    chart = Chart("demo-s14a")
    chart.patient("Jack", "Imager", "male", "1986-01-15")
    chart.condition(coding(ICD10, "M54.41", "Lumbago with sciatica, right side"), day(10))
    return chart


def s14a_draft_order() -> Resource:
    return {
        "resourceType": "ServiceRequest",
        "id": "demo-s14a-draft-mri",
        "status": "draft",
        "intent": "order",
        "code": MRI_LUMBAR,
        "subject": {"reference": "Patient/demo-s14a"},
        "authoredOn": DEMO_DAY.isoformat(),
    }


def s15() -> Chart:
    chart = Chart("demo-s15")
    chart.patient("Karen", "Lumbarton", "female", "1977-10-02")
    # Synthea writes Conditions without category.
    chart.condition(coding(SNOMED, "278860009", "Chronic low back pain"), day(2649), category=False)
    for month, score in enumerate([4, 3, 5, 2, 3, 4, 2, 5, 3, 4, 3, 2]):
        chart.observation(*PAIN_SCORE, score, "{score}", day(15 + 30 * month), category="survey")
    chart.procedure(coding(SNOMED, "91251008", "Physical therapy procedure"), day(400))
    return chart


TEXT_ONLY_CONDITIONS = [
    "Essential hypertension",
    "Hyperlipidaemia",
    "Gastro-oesophageal reflux disease",
    "Seasonal allergic rhinitis",
    "Hypothyroidism",
]
TEXT_ONLY_MEDICATIONS = ["Amlodipine 5 mg oral tablet", "Atorvastatin 20 mg oral tablet"]


def add_noise(chart: Chart, *, years: int, base_weight: float, seed: float) -> None:
    """Hundreds of resources no rule reads as a finding: vitals, normal labs, text-only problems."""
    for text in TEXT_ONLY_CONDITIONS:
        chart.condition({"text": text}, day(1500 + len(text) * 10))
    chart.condition({"text": "Acute bronchitis"}, day(900), clinical="resolved", abatement=day(880))
    for text in TEXT_ONLY_MEDICATIONS:
        chart.medication({"text": text}, day(1400))
    chart.medication({"text": "Amoxicillin 500 mg capsule"}, day(900), status="completed")
    for week in range(52 * years):
        # Weight wanders by well under 1 kg: no weight-loss signal, only volume.
        weight = round(base_weight + 0.4 * math.sin(week / 3 + seed), 1)
        chart.observation(*WEIGHT, weight, "kg", day(3 + 7 * week))
    for month in range(12 * years):
        glucose = round(92 + 8 * math.sin(month + seed))
        chart.observation(*GLUCOSE, glucose, "mg/dL", day(5 + 30 * month), category="laboratory")
        chart.encounter(day(5 + 30 * month))
    for quarter in range(4 * years):
        hba1c = round(5.4 + 0.15 * math.sin(quarter + seed), 1)
        chart.observation(*HBA1C, hba1c, "%", day(6 + 91 * quarter), category="laboratory")
        chart.report("Lipid panel", day(6 + 91 * quarter))
    chart.procedure({"text": "Influenza vaccination"}, day(240))
    chart.procedure({"text": "Screening colonoscopy"}, day(1300))


def noisy_stenosis() -> Chart:
    chart = Chart("demo-noisy-stenosis")
    chart.patient("Leo", "Manyrecords", "male", "1968-08-08")
    add_noise(chart, years=3, base_weight=84.0, seed=0.5)
    chart.condition(STENOSIS, day(450))
    chart.condition(PARESTHESIA, day(21), body_site="Left foot")
    # Old and erroneous findings that must not count: an entered-in-error severe pain score and
    # sciatica resolved years ago.
    chart.observation(
        *PAIN_SCORE, 9, "{score}", day(5), status="entered-in-error", category="survey"
    )
    chart.observation(*PAIN_SCORE, 3, "{score}", day(120), category="survey")
    chart.condition(
        coding(ICD10, "M54.32", "Sciatica, left side"),
        day(2400),
        clinical="resolved",
        abatement=day(2200),
    )
    return chart


def noisy_varicose() -> Chart:
    chart = Chart("demo-noisy-varicose")
    chart.patient("Maria", "Plentiful", "female", "1963-03-03")
    add_noise(chart, years=3, base_weight=71.0, seed=2.0)
    chart.condition(
        coding(ICD10, "I83.811", "Varicose veins of right lower extremity with pain"), day(800)
    )
    chart.condition(
        coding(SNOMED, "90673000", "Burning sensation"), day(12), body_site="Right toes"
    )
    chart.condition(
        coding(ICD10, "M51.26", "Other intervertebral disc displacement, lumbar region"),
        day(300),
        verification="refuted",
    )
    chart.condition(PAIN_RIGHT_FOOT, day(1200), clinical="resolved", abatement=day(1100))
    return chart


SCIATICA_RIGHT = coding(ICD10, "M54.41", "Lumbago with sciatica, right side")


def weight_wobble() -> Chart:
    """Weighed every six weeks for a year, wobbling +-3 % around 80 kg: scale noise, no loss."""
    chart = Chart("demo-weight-wobble")
    chart.patient("Nadia", "Scales", "female", "1969-05-05")
    chart.condition(SCIATICA_RIGHT, day(40))
    for i, kg in enumerate([80, 78, 82, 79, 81, 77.5, 80.5, 79.5]):
        chart.observation(*WEIGHT, kg, "kg", day(362 - 45 * i))
    chart.observation(*WEIGHT, 81, "kg", day(3))
    return chart


def weight_loss_in_noise() -> Chart:
    """Monthly weights wobbling around 84 kg, then the last two weeks around 78.5 kg."""
    chart = Chart("demo-weight-loss")
    chart.patient("Oscar", "Thinning", "male", "1958-09-09")
    chart.condition(SCIATICA_RIGHT, day(50))
    for i, kg in enumerate([84, 86.5, 81.5, 85.5, 82, 86, 83, 81.8, 85, 84.5]):
        chart.observation(*WEIGHT, kg, "kg", day(330 - 30 * i))
    for days, kg in ((15, 80.5), (11, 77), (7, 79.5), (2, 78)):
        chart.observation(*WEIGHT, kg, "kg", day(days))
    return chart


@dataclass(frozen=True)
class Entry:
    build: Callable[[], Chart]
    file: str
    name: str
    scenario: str
    hook: str
    expected: list[str]
    description: str
    draft_orders: Callable[[], list[Resource]] = list


ENTRIES = [
    Entry(
        s01,
        "s01-persistent-radiculopathy.json",
        "Adam Fernside",
        "S01",
        "patient-view",
        ["RB-02"],
        "46 M, L5 radiculopathy 10 weeks, tingling left foot, PT done, pain 7/10.",
    ),
    Entry(
        s02,
        "s02-plantar-fasciitis.json",
        "Bella Heelworth",
        "S02",
        "patient-view",
        [],
        "38 F, isolated plantar fasciitis with heel pain; no neuro symptom, no back problem.",
    ),
    Entry(
        s03,
        "s03-stenosis-and-fasciitis.json",
        "Carla Stennard",
        "S03",
        "patient-view",
        ["RB-01", "RB-04"],
        "61 F, lumbar stenosis, plantar fasciitis, new burning soles.",
    ),
    Entry(
        s04,
        "s04-diabetic-feet.json",
        "Derek Sugden",
        "S04",
        "patient-view",
        ["DM-01", "B12-01"],
        "67 M, T2DM on metformin, numb feet, foot exam 2 years ago.",
    ),
    Entry(
        s06,
        "s06-cauda-equina.json",
        "Elena Caudwell",
        "S06",
        "patient-view",
        ["RF-01"],
        "52 F, disc herniation, bilateral sciatica, new urinary retention 3 days.",
    ),
    Entry(
        s07,
        "s07-entered-in-error.json",
        "Fiona Errata",
        "S07",
        "patient-view",
        [],
        "Foot pain; radiculopathy entered in error; disc herniation refuted.",
    ),
    Entry(
        s08,
        "s08-resolved-sciatica.json",
        "George Oldham",
        "S08",
        "patient-view",
        [],
        "Sciatica resolved 2 years ago; plantar fasciitis now; pain 9 three years ago.",
    ),
    Entry(
        s11,
        "s11-piriformis.json",
        "Henry Pearson",
        "S11",
        "patient-view",
        ["MIM-01", "RB-03"],
        "35 M, piriformis syndrome, left sciatica, tingling left foot.",
    ),
    Entry(
        s13,
        "s13-varicose-veins.json",
        "Irene Vasquez-Demo",
        "S13",
        "patient-view",
        ["MIM-03"],
        "57 F, varicose veins right leg, burning right toes.",
    ),
    Entry(
        s14a,
        "s14a-early-mri-order.json",
        "Jack Imager",
        "S14a",
        "order-sign",
        ["OS-01"],
        "40 M, acute LBP with sciatica 10 days; a lumbar MRI is being ordered.",
        lambda: [s14a_draft_order()],
    ),
    Entry(
        s15,
        "s15-chronic-low-back-pain.json",
        "Karen Lumbarton",
        "S15",
        "patient-view",
        [],
        "Synthea-like chronic low back pain, pain scores 2-5, no foot symptom.",
    ),
    Entry(
        noisy_stenosis,
        "noisy-stenosis.json",
        "Leo Manyrecords",
        "NOISY-1",
        "patient-view",
        ["RB-01"],
        "Hundreds of vitals and labs; lumbar stenosis with new tingling left foot.",
    ),
    Entry(
        noisy_varicose,
        "noisy-varicose.json",
        "Maria Plentiful",
        "NOISY-2",
        "patient-view",
        ["MIM-03"],
        "Hundreds of vitals and labs; varicose veins with burning right toes.",
    ),
    Entry(
        weight_wobble,
        "weight-wobble.json",
        "Nadia Scales",
        "WEIGHT-1",
        "patient-view",
        [],
        "57 F, right sciatica; nine weights over a year wobbling +-3 % around 80 kg: no red flag.",
    ),
    Entry(
        weight_loss_in_noise,
        "weight-loss-in-noise.json",
        "Oscar Thinning",
        "WEIGHT-2",
        "patient-view",
        ["RF-03"],
        "67 M, right sciatica; noisy weights around 84 kg, the last two weeks around 78.5 kg.",
    ),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    index: list[Resource] = []
    for entry in ENTRIES:
        chart = entry.build()
        (OUT / entry.file).write_text(json.dumps(chart.bundle(), indent=1) + "\n")
        item: Resource = {
            "id": chart.pid,
            "name": entry.name,
            "file": entry.file,
            "scenario": entry.scenario,
            "hook": entry.hook,
            "expectedRules": entry.expected,
            "description": entry.description,
            "resourceCount": len(chart.resources),
        }
        drafts = entry.draft_orders()
        if drafts:
            item["draftOrders"] = drafts
        index.append(item)
    body = {"demoNow": DEMO_NOW, "userId": USER_ID, "patients": index}
    (OUT / "index.json").write_text(json.dumps(body, indent=1) + "\n")


if __name__ == "__main__":
    main()
