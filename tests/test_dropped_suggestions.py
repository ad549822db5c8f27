"""A card that fires but leaves out a suggestion says so, and why: the work is already done,
the patient is too young for it, or another suggestion fits the patient better."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hook_calls import (
    CPT,
    HookCalls,
    ago,
    born,
    icd,
    procedure,
    quantity,
    sciatica_with_tingling,
    suggestion_labels,
)
from tests.requests import SNOMED

pytestmark = pytest.mark.anyio
SERVICE = "back-to-foot"
PHYSIOTHERAPY = "Referral to physiotherapy"
EMERGENCY_MRI = "Emergency MRI lumbar spine without contrast (stat)"
CONTRAST_MRI = "MRI lumbar spine without and with contrast (urgent)"
PLAIN_MRI = "MRI lumbar spine without contrast (urgent; pregnancy, so no gadolinium)"
SURGICAL_MRI = "MRI lumbar spine without contrast, if candidate for surgery or epidural injection"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-wide, for the module's app (conftest's ``calls``)."""
    return "asyncio"


async def test_physiotherapy_in_the_last_six_months_keeps_the_card_but_not_the_referral(
    calls: HookCalls,
) -> None:
    offered = await calls.fired(SERVICE, conditions=sciatica_with_tingling())
    assert suggestion_labels(offered["RB-01"]) == [PHYSIOTHERAPY]
    physio = procedure("pt", SNOMED, "91251008", ago(60))
    done = await calls.fired(SERVICE, conditions=sciatica_with_tingling(), procedures=[physio])
    assert suggestion_labels(done["RB-01"]) == []
    assert "Physiotherapy or conservative care is already documented" in done["RB-01"]["detail"]


async def test_physiotherapy_older_than_six_months_is_offered_again(calls: HookCalls) -> None:
    physio = procedure("pt", SNOMED, "91251008", ago(200))
    fired = await calls.fired(SERVICE, conditions=sciatica_with_tingling(), procedures=[physio])
    assert suggestion_labels(fired["RB-01"]) == [PHYSIOTHERAPY]


def cauda_equina(onset: str) -> list[dict[str, Any]]:
    return [icd("ces", "G83.4", "Cauda equina syndrome", onset)]


async def test_a_lumbar_mri_after_the_red_flag_is_not_suggested_again_and_its_date_is_shown(
    calls: HookCalls,
) -> None:
    mri = procedure("mri", CPT, "72148", ago(1))
    fired = await calls.fired(SERVICE, conditions=cauda_equina(ago(3)), procedures=[mri])
    assert EMERGENCY_MRI not in suggestion_labels(fired["RF-01"])
    assert "A lumbar MRI dated after the red flag is on file" in fired["RF-01"]["detail"]
    assert f"({ago(1)[:10]})" in fired["RF-01"]["detail"]


async def test_a_lumbar_mri_before_the_red_flag_does_not_answer_it(calls: HookCalls) -> None:
    for when in (ago(5), ago(3)):  # before, and at the very moment of, the red flag
        mri = procedure("mri", CPT, "72148", when)
        fired = await calls.fired(SERVICE, conditions=cauda_equina(ago(3)), procedures=[mri])
        assert EMERGENCY_MRI in suggestion_labels(fired["RF-01"]), when


def back_pain_with_weight_loss(*more: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        icd("lbp", "M54.50", "Low back pain, unspecified", ago(30)),
        icd("loss", "R63.4", "Abnormal weight loss", ago(10)),
        *more,
    ]


async def test_weight_loss_alone_suggests_no_mri(calls: HookCalls) -> None:
    fired = await calls.fired(SERVICE, conditions=back_pain_with_weight_loss())
    assert suggestion_labels(fired["RF-03"]) == []
    assert "No contrast MRI is suggested for weight loss alone" in fired["RF-03"]["detail"]


async def test_cancer_history_suggests_the_contrast_mri(calls: HookCalls) -> None:
    cancer = icd("ca", "C61", "Malignant neoplasm of prostate", ago(700))
    fired = await calls.fired(SERVICE, conditions=back_pain_with_weight_loss(cancer))
    assert suggestion_labels(fired["RF-03"]) == [CONTRAST_MRI]


async def test_in_pregnancy_the_mri_is_suggested_without_contrast_and_the_card_says_why(
    calls: HookCalls,
) -> None:
    cancer = icd("ca", "C61", "Malignant neoplasm of prostate", ago(700))
    pregnant = icd("preg", "Z33.1", "Pregnant state, incidental", ago(60))
    fired = await calls.fired(SERVICE, conditions=back_pain_with_weight_loss(cancer, pregnant))
    assert suggestion_labels(fired["RF-03"]) == [PLAIN_MRI]
    assert "gadolinium is avoided in pregnancy" in fired["RF-03"]["detail"]


def persistent_sciatica() -> dict[str, list[dict[str, Any]]]:
    return {
        "conditions": [icd("radic", "M54.16", "Radiculopathy, lumbar region", ago(60))],
        "observations": [quantity("pain", "72514-3", 8, "{score}", ago(2))],
    }


async def test_the_surgical_mri_is_offered_from_the_eighteenth_birthday(calls: HookCalls) -> None:
    adult = await calls.fired(SERVICE, patient=born(18), **persistent_sciatica())
    assert SURGICAL_MRI in suggestion_labels(adult["RB-02"])
    minor = await calls.fired(SERVICE, patient=born(18, days_later=1), **persistent_sciatica())
    assert "RB-02" in minor
    assert SURGICAL_MRI not in suggestion_labels(minor["RB-02"])


async def test_the_b12_card_asks_for_an_hba1c_only_while_diabetes_is_not_known(
    calls: HookCalls,
) -> None:
    numb_feet = icd("pn", "G62.9", "Polyneuropathy, unspecified", ago(100))
    without = await calls.fired(SERVICE, conditions=[numb_feet])
    assert any("HbA1c" in label for label in suggestion_labels(without["B12-01"]))
    diabetes = icd("dm", "E11.9", "Type 2 diabetes mellitus without complications", ago(400))
    metformin = {
        "resourceType": "MedicationRequest",
        "id": "met",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "metformin 500 mg tablet"},
    }
    known = await calls.fired(SERVICE, conditions=[numb_feet, diabetes], medications=[metformin])
    assert not any("HbA1c" in label for label in suggestion_labels(known["B12-01"]))


async def test_an_unknown_age_keeps_a_red_flags_adult_mri_and_the_card_says_the_age_is_unknown(
    calls: HookCalls,
) -> None:
    cancer = icd("ca", "C61", "Malignant neoplasm of prostate", ago(700))
    no_birth_date = {"resourceType": "Patient", "id": "p1"}
    fired = await calls.fired(
        SERVICE, patient=no_birth_date, conditions=back_pain_with_weight_loss(cancer)
    )
    assert suggestion_labels(fired["RF-03"]) == [CONTRAST_MRI]
    assert "age is unknown" in fired["RF-03"]["detail"]
