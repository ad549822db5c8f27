"""The one import site of fhir.resources (R4B models for R4 data): lenient parsing of FHIR JSON."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# --- Parsing ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ParseReport:
    """How many resources parsed, and how many were skipped, counted by resourceType."""

    parsed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def skip(self, resource_type: str, resource_id: object, why: str) -> None:
        """Count one skipped resource; logs its type and id only, never its content."""
        self.skipped[resource_type] += 1
        shown_id = resource_id if isinstance(resource_id, str) else "?"
        logger.info("skipped FHIR resource %s/%s: %s", resource_type, shown_id, why)


def model_class(resource_type: str) -> Any | None:
    """The R4B model class for ``resource_type``; None for types R4B lacks (MedicationOrder)."""
    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError):
        return None


# Only the few resources the value sets can match are validated, so walking them is cheap.
MAX_RESOURCE_DEPTH = 64


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` nests deeper than ``limit`` containers (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict | list):
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def parse_resource(raw: Any, report: ParseReport | None = None) -> Any | None:
    """The R4B model of ``raw``, or None when it is not valid R4 (DSTU2/STU3-shaped, malformed).

    One bad resource never fails a request (house rule 5); ``report`` counts what was skipped.
    """
    report = report if report is not None else ParseReport()
    if not isinstance(raw, dict) or not isinstance(raw.get("resourceType"), str):
        report.skip("(unknown)", None, "not a FHIR resource")
        return None
    resource_type: str = raw["resourceType"]
    if depth_exceeds(raw, MAX_RESOURCE_DEPTH):
        report.skip(resource_type, raw.get("id"), f"nests deeper than {MAX_RESOURCE_DEPTH} levels")
        return None
    cls = model_class(resource_type)
    if cls is None:
        report.skip(resource_type, raw.get("id"), "not an R4 resource type")
        return None
    try:
        model = cls.model_validate(raw)
    except ValidationError as exc:
        # The error text quotes input values (patient data), so only the field paths are logged.
        paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        report.skip(resource_type, raw.get("id"), "invalid at " + ", ".join(paths[:5]))
        return None
    report.parsed += 1
    return model


def parse_resources(raws: Iterable[Any], report: ParseReport | None = None) -> list[Any]:
    """The valid R4B models among ``raws``, in order; invalid ones are skipped and counted."""
    report = report if report is not None else ParseReport()
    models = (parse_resource(raw, report) for raw in raws)
    return [model for model in models if model is not None]
