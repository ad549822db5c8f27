"""The one import site of fhir.resources (R4B models for R4 data): lenient parsing of FHIR JSON."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

logger = logging.getLogger(__name__)

# --- Parsing ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ParseReport:
    """How many resources parsed, and how many were skipped, counted by resourceType."""

    parsed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    remembered: int = 0  # outcomes (valid or not) answered from the validation memo

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
    """Whether ``value`` nests deeper than ``limit`` containers (level by level: no recursion,
    and no per-node bookkeeping, which made this a tenth of a chart's validation cost)."""
    level = [value]
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                below += [c for c in item.values() if isinstance(c, dict | list)]
            elif isinstance(item, list):
                below += [c for c in item if isinstance(c, dict | list)]
        level = below
        depth += 1
    return False


def _few_containers(serialized: bytes | None) -> bool:
    """Whether the JSON text holds at most MAX_RESOURCE_DEPTH opening brackets, so it cannot
    nest deeper. Brackets inside strings only over-count, which errs towards walking."""
    if serialized is None:
        return False
    return serialized.count(b"{") + serialized.count(b"[") <= MAX_RESOURCE_DEPTH


def _validate(
    raw: dict[str, Any], serialized: bytes | None = None
) -> tuple[Any | None, str | None]:
    """The model of ``raw`` (a dict with a string resourceType), or why it is not valid R4.

    ``serialized`` (the JSON of ``raw``, when the caller has it) spares the depth walk for the
    common resource with few containers: counting bytes in C beats walking dicts in Python.
    """
    if not _few_containers(serialized) and depth_exceeds(raw, MAX_RESOURCE_DEPTH):
        return None, f"nests deeper than {MAX_RESOURCE_DEPTH} levels"
    cls = model_class(raw["resourceType"])
    if cls is None:
        return None, "not an R4 resource type"
    try:
        return cls.model_validate(raw), None
    except ValidationError as exc:
        # The error text quotes input values (patient data), so only the field paths are kept.
        paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        return None, "invalid at " + ", ".join(paths[:5])


def _problem(raw: dict[str, Any], serialized: bytes | None = None) -> str | None:
    return _validate(raw, serialized)[1]


VALID: Final = ""
"""What the memo remembers for a resource that validated (a problem is never empty)."""


class ValidationMemo:
    """Remembers validation outcomes by the resource's exact content, least recently used first.

    An EHR resends the same chart on every hook call (each chart open, each order selection),
    and validating a resource costs ~0.15 ms against ~3 us to digest it. The outcome is a pure
    function of the content, so a hit answers exactly what validating again would; the memo
    holds 16-byte digests and short reasons, never patient data.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._outcomes: OrderedDict[bytes, str] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._outcomes)

    def clear(self) -> None:
        self._outcomes.clear()

    def resize(self, max_entries: int) -> None:
        self.max_entries = max_entries
        while len(self._outcomes) > max(max_entries, 0):
            self._outcomes.popitem(last=False)

    def check(self, raw: dict[str, Any]) -> tuple[str | None, bool]:
        """Why ``raw`` is not valid R4 (None when it is), and whether memory answered."""
        if self.max_entries <= 0:
            return _problem(raw), False
        try:
            serialized = orjson.dumps(raw)
        except (TypeError, orjson.JSONEncodeError):
            # Not JSON-serializable (or nested past orjson's limit): validate without memo.
            return _problem(raw), False
        key = hashlib.blake2b(serialized, digest_size=16).digest()
        known = self._outcomes.get(key)
        if known is not None:
            self.hits += 1
            # With several evaluation slots another thread may have just evicted it.
            with contextlib.suppress(KeyError):
                self._outcomes.move_to_end(key)
            return known or None, True
        self.misses += 1
        found = _problem(raw, serialized)
        self._outcomes[key] = found or VALID
        if len(self._outcomes) > self.max_entries:
            self._outcomes.popitem(last=False)
        return found, False


DEFAULT_MEMO_ENTRIES: Final[int] = 20_000
memo = ValidationMemo(DEFAULT_MEMO_ENTRIES)
"""The process's memo; ``cds.app.create_app`` sizes it from CDS_VALIDATION_MEMO_SIZE."""


def _is_resource(raw: Any, report: ParseReport) -> bool:
    """Whether ``raw`` is a dict with a string resourceType; counts and logs it when not."""
    if isinstance(raw, dict) and isinstance(raw.get("resourceType"), str):
        return True
    report.skip("(unknown)", None, "not a FHIR resource")
    return False


def _counted(raw: dict[str, Any], report: ParseReport, problem: str | None) -> bool:
    """Count ``raw`` as parsed, or as skipped for ``problem``; whether it is valid."""
    if problem is not None:
        report.skip(raw["resourceType"], raw.get("id"), problem)
        return False
    report.parsed += 1
    return True


def is_valid(raw: Any, report: ParseReport | None = None) -> bool:
    """Whether ``raw`` is a valid R4 resource, without keeping its model; invalid ones are
    counted and logged in ``report`` (the same as :func:`parse_resource`)."""
    report = report if report is not None else ParseReport()
    if not _is_resource(raw, report):
        return False
    problem, remembered = memo.check(raw)
    report.remembered += remembered
    return _counted(raw, report, problem)


def parse_resource(raw: Any, report: ParseReport | None = None) -> Any | None:
    """The R4B model of ``raw``, or None when it is not valid R4 (DSTU2/STU3-shaped, malformed).

    One bad resource never fails a request (house rule 5); ``report`` counts what was skipped.
    """
    report = report if report is not None else ParseReport()
    if not _is_resource(raw, report):
        return None
    model, problem = _validate(raw)
    return model if _counted(raw, report, problem) else None


def parse_resources(raws: Iterable[Any], report: ParseReport | None = None) -> list[Any]:
    """The valid R4B models among ``raws``, in order; invalid ones are skipped and counted."""
    report = report if report is not None else ParseReport()
    models = (parse_resource(raw, report) for raw in raws)
    return [model for model in models if model is not None]
