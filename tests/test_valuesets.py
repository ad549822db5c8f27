"""Value sets: loading, exact and ICD-10-CM prefix matching, carve-outs, text, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cds.errors import ConfigError
from cds.settings import PROJECT_ROOT
from cds.valuesets import (
    ICD10CM,
    ValueSets,
    load_valuesets,
    normalize,
    read_valuesets,
)

SCT = "http://snomed.info/sct"


@pytest.fixture(scope="module")
def sets() -> ValueSets:
    return load_valuesets(PROJECT_ROOT / "rules" / "valuesets")


def test_icd_codes_compare_without_dots_and_case() -> None:
    assert normalize(ICD10CM, " m54.16 ") == "M5416"
    assert normalize(SCT, " 23056005 ") == "23056005"


def test_an_icd_code_without_dots_matches_the_dotted_entry(sets: ValueSets) -> None:
    assert sets["radic"].matches(ICD10CM, "M5416")


def test_descendants_match_by_prefix_after_the_fy2025_split(sets: ValueSets) -> None:
    assert sets["lspine"].matches(ICD10CM, "M51.369")
    assert sets["lspine"].matches(ICD10CM, "M51.36")


def test_an_exact_entry_does_not_match_its_children(sets: ValueSets) -> None:
    assert not sets["radic"].matches(ICD10CM, "M54.161")


def test_z85_828_is_carved_out_of_cancer_history(sets: ValueSets) -> None:
    assert sets["cancer"].matches(ICD10CM, "Z85.3")
    assert not sets["cancer"].matches(ICD10CM, "Z85.828")
    assert "cancer" not in sets.ids_for(ICD10CM, "Z85828")


def test_the_same_code_in_another_system_does_not_match(sets: ValueSets) -> None:
    assert not sets["radic"].matches(SCT, "M54.16")


def test_the_reverse_index_finds_every_set_of_a_code(sets: ValueSets) -> None:
    assert {"dm", "dmneuro"} <= sets.ids_for(ICD10CM, "E11.42")


def test_weakly_verified_b12_loinc_is_not_shipped_but_recorded(sets: ValueSets) -> None:
    assert not sets["b12-result"].exact
    doc = yaml.safe_load((PROJECT_ROOT / "rules/valuesets/b12-result.yaml").read_text())
    assert [e["code"] for e in doc["excluded"]] == ["2132-9"]
    assert sets["b12-result"].matches_text("Vitamin B12 serum")


def test_unverified_rxnorm_ingredients_are_excluded_with_a_reason() -> None:
    doc = yaml.safe_load((PROJECT_ROOT / "rules/valuesets/metformin.yaml").read_text())
    assert [c["code"] for c in doc["codes"]] == ["860975"]
    assert {e["code"]: e["status"] for e in doc["excluded"]} == {"6809": "UNVERIFIED"}


def test_every_shipped_code_is_verified_with_provenance(sets: ValueSets) -> None:
    for path in (PROJECT_ROOT / "rules" / "valuesets").glob("*.yaml"):
        for code in yaml.safe_load(path.read_text())["codes"]:
            assert code["status"] in {"VERIFIED", "VERIFIED (secondary)"}, path.name
            assert code["verifiedAgainst"], path.name


def _problems_of(tmp_path: Path, **fields: object) -> list[str]:
    """What reading a one-file value-set folder reports, the file being x.yaml with ``fields``."""
    folder = tmp_path / "rules" / "valuesets"
    folder.mkdir(parents=True)
    document = {"id": "x", "title": "t", "source": "VS-X", "generatedBy": "hand", **fields}
    (folder / "x.yaml").write_text(yaml.safe_dump(document))
    return read_valuesets(folder, tmp_path)[1]


def test_an_unverified_code_in_a_file_is_a_config_error(tmp_path: Path) -> None:
    unverified = {
        "system": SCT,
        "code": "1",
        "display": "d",
        "match": "exact",
        "status": "UNVERIFIED",
        "verifiedAgainst": ["nothing"],
    }
    problems = _problems_of(tmp_path, codes=[unverified])
    assert problems == [
        "rules/valuesets/x.yaml: codes[0].status: 'UNVERIFIED' codes are not shipped; "
        "move the code to 'excluded' with its reason"
    ]
    with pytest.raises(ConfigError):
        load_valuesets(tmp_path / "rules" / "valuesets")


def test_text_matching_reads_only_the_resource_types_a_set_names(sets: ValueSets) -> None:
    assert sets.ids_for_text("Observation", "Vitamin B12, serum") == {"b12-result"}
    assert sets.ids_for_text("Observation", "COBALAMIN level") == {"b12-result"}
    assert sets.ids_for_text("Condition", "Vitamin B12 deficiency") == frozenset()
    assert sets.ids_for_text("MedicationRequest", "Pregabalin 75 mg") == {"gabapentinoid"}
    assert sets.ids_for_text("MedicationRequest", "Metformin and pregabalin") == {
        "gabapentinoid",
        "metformin",
    }
    assert sets.ids_for_text("Observation", "Sodium, serum") == frozenset()


def test_lookups_only_read_the_value_sets(sets: ValueSets) -> None:
    """What a lookup remembers belongs to the app (cds.record.matching.MatchMemo): the value
    sets, which several apps may share, answer the same from their indexes every time."""
    indexes = (dict(sets._exact), dict(sets._prefix), dict(sets._text))
    first = sets.ids_for(ICD10CM, "M54.16")
    assert sets.ids_for(ICD10CM, "m5416") == first
    assert "b12-result" in sets.ids_for_text("Observation", "Vitamin B12")
    assert (dict(sets._exact), dict(sets._prefix), dict(sets._text)) == indexes


def test_a_blank_or_multi_line_text_word_is_a_config_error(tmp_path: Path) -> None:
    problems = _problems_of(
        tmp_path, codes=[], textMatch=["ok", "two\nlines"], textMatchOn=["Observation"]
    )
    assert problems == ["rules/valuesets/x.yaml: textMatch: words must be non-blank single lines"]


@pytest.mark.parametrize("code", ["C61", "C50.911", "C4A.9", "C7A.00", "C7B.01", "C91.00", "c349"])
def test_every_icd10cm_c_category_counts_as_cancer(sets: ValueSets, code: str) -> None:
    assert sets["cancer"].matches(ICD10CM, code)


@pytest.mark.parametrize("code", ["D03.9", "D49.0", "Z80.0", "Z85.828"])
def test_in_situ_benign_family_history_and_skin_history_are_not_cancer(
    sets: ValueSets, code: str
) -> None:
    assert not sets["cancer"].matches(ICD10CM, code)


def test_the_c_prefix_is_icd10cm_only(sets: ValueSets) -> None:
    assert not sets["cancer"].matches(SCT, "C61")


@pytest.mark.parametrize("code", ["B02.2", "B02.21", "B02.23", "B02.29"])
def test_post_herpetic_nerve_involvement_is_phn(sets: ValueSets, code: str) -> None:
    assert sets["phn"].matches(ICD10CM, code)


@pytest.mark.parametrize("code", ["B02.7", "B02.9", "B02.1"])
def test_other_zoster_is_not_phn(sets: ValueSets, code: str) -> None:
    assert not sets["phn"].matches(ICD10CM, code)
