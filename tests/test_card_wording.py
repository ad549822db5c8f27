"""Card text speaks to clinicians: notes on a code's verification status are refused there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cds.cards.wording import card_wording_problems
from cds.catalogue import Catalogue, check
from cds.settings import PROJECT_ROOT
from tests.problem_lines import unplaced, unplaced_text

TOPIC = "https://footpath-cds.example.org/CodeSystem/rule"
RULES = PROJECT_ROOT / "rules"
CARDS = PROJECT_ROOT / "cards"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(RULES, tmp_path / "rules")
    shutil.copytree(CARDS, tmp_path / "cards")
    return tmp_path


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_no_shipped_card_mentions_a_codes_verification_status(catalogue: Catalogue) -> None:
    assert len(catalogue.cards) > 15
    problems = [
        p for card in catalogue.cards.values() for p in card_wording_problems(card, card.id)
    ]
    assert problems == []


def test_the_b12_card_tells_the_clinician_what_to_do_and_nothing_about_the_loinc_code(
    catalogue: Catalogue,
) -> None:
    card = catalogue.cards["b12-01"]
    assert "match it to your local serum B12 test" in card.detail
    assert "LOINC" not in card.detail
    assert "verified" not in card.detail


def test_the_b12_codes_verification_gap_stays_in_the_governance_data() -> None:
    assert "WEAKLY VERIFIED" in (RULES / "valuesets" / "b12-result.yaml").read_text()
    assert "LOINC 2132-9 is only weakly" in (RULES / "back-to-foot.yaml").read_text()


@pytest.mark.parametrize(
    ("path", "old", "new", "found"),
    [
        (
            "detail",
            "Check vitamin B12.**",
            "Check vitamin B12.** (The LOINC code is not yet verified for this service.)",
            "LOINC code is",
        ),
        (
            "summary",
            "without a recent B12 level",
            "without a recent B12 level (unverified code)",
            "unverified",
        ),
        (
            "suggestions[0].label",
            "label: Vitamin B12 (cobalamin) level, serum",
            "label: Vitamin B12 (cobalamin) level, serum - code pending verification",
            "verification",
        ),
        (
            "links[1].label",
            "label: ADA Standards of Care - metformin and vitamin B12",
            "label: ADA Standards of Care (codes verified)",
            "verified",
        ),
        (
            "suggestions[0].actions[0].serviceRequest.note",
            "note: Map to the local B12 orderable before use.",
            "note: SNOMED CT codes are weakly verified; map locally.",
            "SNOMED CT codes are",
        ),
    ],
)
def test_card_text_on_a_codes_verification_status_is_refused_with_file_and_path(
    tree: Path, path: str, old: str, new: str, found: str
) -> None:
    _replace(tree / "cards" / "b12-01.yaml", old, new)
    problems = unplaced(check(tree / "rules", tree / "cards", TOPIC))
    assert len(problems) == 1
    assert problems[0].startswith(
        f"cards/b12-01.yaml: {path}: mentions a code's verification status ('{found}')"
    )


def test_clinical_wording_that_merely_resembles_it_is_not_refused(tree: Path) -> None:
    _replace(
        tree / "cards" / "b12-01.yaml",
        "Check vitamin B12.**",
        "Check vitamin B12.** Verify the medication list and code the diagnosis as usual.",
    )
    assert unplaced(check(tree / "rules", tree / "cards", TOPIC)) == []


def test_cds_rules_check_exits_non_zero_and_names_the_card(tree: Path) -> None:
    _replace(
        tree / "cards" / "b12-01.yaml",
        "Check vitamin B12.**",
        "Check vitamin B12.** The LOINC code is not yet verified.",
    )
    env = {
        **os.environ,
        "CDS_RULES_DIR": str(tree / "rules"),
        "CDS_CARDS_DIR": str(tree / "cards"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "cds.cli", "rules", "check"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "cards/b12-01.yaml: detail: mentions a code's verification status" in unplaced_text(
        done.stdout + done.stderr
    )
