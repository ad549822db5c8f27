"""Regenerate rules/valuesets/*.yaml from the clinical valuesets.json, keeping provenance.

Run from the project root with the clinical team's current value-set document (rerunnable; it
overwrites the generated files):
    .venv/bin/python scripts/import_valuesets.py path/to/valuesets.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "rules" / "valuesets"
GENERATED_BY = (
    "scripts/import_valuesets.py from the clinical team's value-set document (do not edit by hand)"
)
SHIPPED = frozenset({"VERIFIED", "VERIFIED (secondary)"})
SNOMED = "http://snomed.info/sct"
NUCC = "http://nucc.org/provider-taxonomy"

# Subsets that rules.md section 4 names by member codes; every code is picked from the source
# file, so a subset can never hold a code the clinical team did not verify.
SUBSETS: dict[str, tuple[str, str, list[str]]] = {
    "ces-core": (
        "VS-CES",
        "Cauda equina syndrome itself (RF-01 trigger 1)",
        ["192970008", "12454008", "G83.4"],
    ),
    "ces-sphincter": (
        "VS-CES",
        "New sphincter disturbance (rest of VS-CES; RF-01 trigger 2)",
        [
            "267064002",
            "236648008",
            "165232002",
            "72042002",
            "R33.8",
            "R33.9",
            "R32",
            "R15.9",
            "R39.11",
            "R39.14",
            "N31.9",
        ],
    ),
    "motor-leg": (
        "VS-MOTOR",
        "Weakness members of VS-MOTOR that name the lower limb (RF-02)",
        ["102568007", "249945007", "309249007"],
    ),
    "motor-unsited": (
        "VS-MOTOR",
        "Weakness members of VS-MOTOR that count for RF-02 only with a lower-limb bodySite",
        ["713514005", "26544005"],
    ),
    "hipmimic-sciatic": (
        "VS-HIPMIMIC",
        "Sciatic-nerve members of VS-HIPMIMIC (RB-03)",
        ["129179000", "52585001", "247390002", "G57.00", "G57.01", "G57.02", "G57.03"],
    ),
    "distal-tibial": (
        "VS-DISTAL",
        "Tarsal tunnel, plantar and medial popliteal members of VS-DISTAL (MIM-02)",
        ["47374004", "G57.5", "G57.6", "G57.4"],
    ),
    "ncs-full": (
        "VS-NCS",
        "Full nerve conduction studies (95905 preconfigured arrays do not count; rules.md RB-03)",
        ["95907", "95908", "95909", "95910", "95911", "95912", "95913"],
    ),
    "ncs-array": (
        "VS-NCS",
        "Preconfigured-array nerve conduction (OS-02 trigger C)",
        ["95905"],
    ),
    "sensory-foot": (
        "VS-SENSORY",
        "Foot paraesthesia/numbness members of VS-SENSORY (MIM-02)",
        ["309087008", "309538000"],
    ),
    "sensory-r20": (
        "VS-SENSORY",
        "R20.* skin-sensation members of VS-SENSORY: plantar for MIM-02 only with a foot body site",
        ["R20.0", "R20.1", "R20.2", "R20.3", "R20.8", "R20.9"],
    ),
    "pain-score": ("VS-OBS", "Pain 0-10 scores (section 3.3)", ["72514-3", "38208-5", "75893-8"]),
    "hba1c": ("VS-OBS", "HbA1c laboratory tests (section 3.3)", ["4548-4", "17856-6", "4549-2"]),
    "body-weight": ("VS-OBS", "Body weight (section 3.3)", ["29463-7", "3141-9", "3142-7"]),
    "glucose": ("VS-OBS", "Glucose (AAN-DSP)", ["2345-7"]),
    "metformin": (
        "VS-MEDS",
        "Metformin products (B12-01); ingredient text match for unmapped products",
        ["860975"],
    ),
    "gabapentinoid": (
        "VS-MEDS",
        "Gabapentinoid products (OS-04); ingredient text match for unmapped products",
        ["483438"],
    ),
    "lspine-compressive": (
        "VS-LSPINE",
        "Stenosis, spondylolisthesis and herniation members of VS-LSPINE (RB-02 stenosis branch)",
        [
            "202708005",
            "20021007",
            "73589001",
            "M51.26",
            "M51.27",
            "18347007",
            "370471003",
            "76107001",
            "M48.061",
            "M48.062",
            "M48.07",
            "M99.33",
            "274152003",
            "4046000",
            "307138004",
            "M43.16",
            "M43.17",
        ],
    ),
    "site-unspecified": (
        "VS-RADIC, VS-LSPINE",
        "Spine codes naming no site: they count only with another lumbar finding (section 5)",
        ["72274001", "M54.10", "73589001", "36427004", "76107001", "77547008"],
    ),
    "lmri-lumbar": (
        "VS-LMRI",
        "Lumbar-specific MRI codes of VS-LMRI (without the spine-unspecific SNOMED procedure)",
        [
            "72148",
            "72149",
            "72158",
            "24968-0",
            "30679-5",
            "30678-7",
            "24967-2",
            "36111-3",
            "36100-6",
            "24977-1",
            "30854-4",
            "30855-1",
            "42698-1",
        ],
    ),
    "referral-podiatry": (
        "VS-REFERRAL",
        "Podiatry referral (section 5.2)",
        ["308451001", "306351008", "306352001", "703975002"],
    ),
    "referral-spine": (
        "VS-REFERRAL",
        "Orthopaedic spine, spinal surgery and neurosurgery referral (section 5.2)",
        ["308481009", "183881003", "770695002", "308482002", "183882005"],
    ),
    "referral-neurophysiology": (
        "VS-REFERRAL",
        "Clinical neurophysiology and neurology referral for NCS/EMG (section 5.2)",
        ["306276006", "308474002", "183901002"],
    ),
    "referral-pain": ("VS-REFERRAL", "Pain management referral (section 5.2)", ["306265007"]),
    "referral-physio": (
        "VS-REFERRAL",
        "Physiotherapy referral (section 5.2)",
        ["308447003", "306358002", "306359005", "716634006", "416999007", "78429003"],
    ),
    "referral-vascular": (
        "VS-REFERRAL",
        "Vascular surgery referral (section 5.2)",
        ["307777008", "183891009"],
    ),
}

# performerType codes (valuesets.json "performerType") per referral subset, from rules.md 5.2.
PERFORMERS: dict[str, list[tuple[str, str]]] = {
    "referral-podiatry": [(NUCC, "213E00000X")],
    "referral-spine": [
        (SNOMED, "394801008"),
        (SNOMED, "394610002"),
        (NUCC, "207X00000X"),
        (NUCC, "207XS0117X"),
        (NUCC, "207T00000X"),
    ],
    "referral-neurophysiology": [
        (SNOMED, "394591006"),
        (SNOMED, "394809005"),
        (NUCC, "2084N0400X"),
        (NUCC, "208100000X"),
    ],
    "referral-pain": [(SNOMED, "394882004"), (NUCC, "208VP0000X"), (NUCC, "208VP0014X")],
    "referral-physio": [(SNOMED, "394602003"), (NUCC, "225100000X")],
    "referral-vascular": [(SNOMED, "408463005")],
}

# Concepts without a verified code: matched by case-insensitive text (rules.md B12-01, OS-04).
TEXT_MATCH: dict[str, list[str]] = {
    "metformin": ["metformin"],
    "gabapentinoid": ["gabapentin", "pregabalin"],
    "b12-result": ["b12", "cobalamin"],
}

# Which resource types a text match may read (so "metformin" in a Condition text never counts).
TEXT_MATCH_ON: dict[str, list[str]] = {
    "metformin": ["MedicationRequest", "MedicationStatement"],
    "gabapentinoid": ["MedicationRequest", "MedicationStatement"],
    "b12-result": ["Observation"],
}

# Codes inside a prefix that must not match (rules.md RF-03: Z85.828 is basal/squamous skin cancer).
CARVE_OUTS: dict[str, list[dict[str, str]]] = {
    "cancer": [
        {
            "system": "http://hl7.org/fhir/sid/icd-10-cm",
            "code": "Z85.828",
            "reason": (
                "rules.md RF-03 (a) and the VS-CANCER note: other skin malignancy "
                "is not a spinal metastasis risk"
            ),
        }
    ],
}


def short_id(vs_id: str) -> str:
    return vs_id.removeprefix("VS-").lower()


def entry(code: dict[str, Any]) -> dict[str, Any]:
    return {
        "system": code["system"],
        "code": code["code"],
        "display": code["display"],
        "match": code["match"],
        "status": code["status"],
        "verifiedAgainst": list(code["verifiedAgainst"]),
        "note": code.get("note", ""),
    }


def left_out(code: dict[str, Any]) -> dict[str, Any]:
    return {
        "system": code["system"],
        "code": code["code"],
        "display": code.get("display") or "",
        "status": code["status"],
        "reason": f"status {code['status']}: not shipped as a matching code (rules.md section 5.3)",
        "note": code.get("note", ""),
    }


def performer_entries(source: dict[str, Any], subset: str) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], str] = {}
    for group, codes in source["performerType"].items():
        system = NUCC if group.startswith("nucc") else SNOMED
        origin = (
            "C80 practice setting (FHIR c80-practice-codes)"
            if system == SNOMED
            else "NUCC taxonomy (consensus-verified, secondary)"
        )
        for code, display in codes.items():
            found[(system, code)] = f"{display}|{origin}"
    out = []
    for system, code in PERFORMERS.get(subset, []):
        display, origin = found[(system, code)].split("|")
        out.append(
            {
                "system": system,
                "code": code,
                "display": display,
                "match": "exact",
                "status": "VERIFIED" if system == SNOMED else "VERIFIED (secondary)",
                "verifiedAgainst": [origin],
                "note": "performerType",
            }
        )
    return out


def document(
    vs_id: str,
    title: str,
    derived_from: str,
    codes: list[dict[str, Any]],
    excluded: list[dict[str, Any]],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": vs_id,
        "title": title,
        "source": derived_from,
        "generatedBy": GENERATED_BY,
        "codes": codes,
    }
    if vs_id in TEXT_MATCH:
        doc["textMatch"] = TEXT_MATCH[vs_id]
        doc["textMatchOn"] = TEXT_MATCH_ON[vs_id]
    if vs_id in CARVE_OUTS:
        doc["carveOut"] = CARVE_OUTS[vs_id]
    doc["excluded"] = excluded
    return doc


def build(source: dict[str, Any]) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    by_id = {vs["id"]: vs for vs in source["valueSets"]}
    for vs in source["valueSets"]:
        shipped = [entry(c) for c in vs["codes"] if c["status"] in SHIPPED]
        excluded = [left_out(c) for c in vs["codes"] if c["status"] not in SHIPPED]
        vid = short_id(vs["id"])
        docs[vid] = document(vid, vs["title"], vs["id"], shipped, excluded)
    for vid, (parent, title, members) in SUBSETS.items():
        # A subset may pick from several parents ("VS-RADIC, VS-LSPINE").
        pool = {c["code"]: c for p in parent.split(", ") for c in by_id[p]["codes"]}
        codes = [entry(pool[m]) for m in members if pool[m]["status"] in SHIPPED]
        excluded = [left_out(pool[m]) for m in members if pool[m]["status"] not in SHIPPED]
        if vid in ("metformin", "gabapentinoid"):
            names = TEXT_MATCH[vid]
            excluded += [
                left_out(c)
                for c in by_id["VS-MEDS"]["codes"]
                if c["status"] not in SHIPPED and any(n in c.get("note", "") for n in names)
            ]
        codes += performer_entries(source, vid)
        docs[vid] = document(vid, title, parent, codes, excluded)
    b12 = [c for c in by_id["VS-OBS"]["codes"] if c["code"] == "2132-9"]
    docs["b12-result"] = document(
        "b12-result",
        "Vitamin B12 (cobalamin) result: local lab codes (ships empty) plus a text match",
        "VS-OBS",
        [],
        [
            {
                **left_out(c),
                "reason": (
                    f"status {c['status']}: confirm against the LOINC table, "
                    "then map the local B12 orderable here"
                ),
            }
            for c in b12
        ],
    )
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} path/to/valuesets.json", file=sys.stderr)
        return 2
    path = Path(argv[1])
    source = json.loads(path.read_text(encoding="utf-8"))
    OUT.mkdir(parents=True, exist_ok=True)
    for vid, doc in sorted(build(source).items()):
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
        (OUT / f"{vid}.yaml").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
