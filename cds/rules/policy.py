"""The clinical policy every service shares: rules/policy/clinical.yaml."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cds.errors import ConfigError
from cds.record import ConditionWindows
from cds.record.dates import parse_duration
from cds.rules.schema import Dur, Indicator, SuggestionPriority
from cds.yaml_files import load_required_document

POLICY_FILE = "policy/clinical.yaml"  # under the rules directory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ClinicalPolicy(_Strict):
    """Windows the record reads Conditions by, suggestion priorities, and prefetch every service
    must require; clinical reviewers change them here, never in Python."""

    id: str
    undated_active_within: Dur = Field(alias="undatedActiveWithin")
    encounter_diagnosis_within: Dur = Field(alias="encounterDiagnosisWithin")
    indicator_priority: dict[Indicator, SuggestionPriority] = Field(alias="indicatorPriority")
    required_prefetch: list[str] = Field(alias="requiredPrefetch", min_length=1)

    @field_validator("undated_active_within", "encounter_diagnosis_within")
    @classmethod
    def _not_empty(cls, text: str) -> str:
        if parse_duration(text) == parse_duration("P0D"):
            raise ValueError("a window of zero counts nothing")
        return text

    @field_validator("indicator_priority")
    @classmethod
    def _every_indicator(
        cls, mapping: dict[Indicator, SuggestionPriority]
    ) -> dict[Indicator, SuggestionPriority]:
        missing = [i for i in get_args(Indicator) if i not in mapping]
        if missing:
            raise ValueError(f"give a priority for every indicator; missing: {', '.join(missing)}")
        return mapping

    @cached_property
    def condition_windows(self) -> ConditionWindows:
        return ConditionWindows(
            undated_active=parse_duration(self.undated_active_within),
            encounter_diagnosis=parse_duration(self.encounter_diagnosis_within),
        )

    def model_post_init(self, context: Any, /) -> None:
        # Filled at load, so a call never writes into a catalogue other calls share.
        self.condition_windows  # noqa: B018


def read_policy(rules_dir: Path, problems: list[str]) -> ClinicalPolicy | None:
    """The policy under ``rules_dir``; None (and the problems listed) when missing or invalid."""
    return load_required_document(
        rules_dir,
        POLICY_FILE,
        ClinicalPolicy,
        problems,
        "not found; the services read their clinical policy from it",
    )


def load_policy(rules_dir: Path) -> ClinicalPolicy:
    """The policy under ``rules_dir``; raises ``ConfigError`` naming each problem."""
    problems: list[str] = []
    policy = read_policy(rules_dir, problems)
    if policy is None or problems:
        raise ConfigError(problems)
    return policy
