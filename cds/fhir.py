"""The one import site of fhir.resources (R4B models for R4 data): lenient parsing of FHIR JSON."""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any, Final

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from cds.fhir_repair import Definitions, Repair, replay
from cds.logs import log_fields

logger = logging.getLogger(__name__)

# --- Parsing ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ParseReport:
    """What reading resources found: how many parsed, which were skipped and which elements were
    reshaped (``cds.fhir_repair``), counted by resourceType; logged in aggregate by :meth:`log`."""

    parsed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    remembered: int = 0  # outcomes (valid or not) answered from the validation memo
    # (resourceType, element path) -> elements reshaped in resources that then validated.
    repaired: Counter[tuple[str, str]] = field(default_factory=Counter)
    _skips_to_log: Counter[tuple[str, str]] = field(default_factory=Counter, init=False, repr=False)
    _repairs_to_log: Counter[tuple[str, str]] = field(
        default_factory=Counter, init=False, repr=False
    )

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def repaired_total(self) -> int:
        return sum(self.repaired.values())

    def skip(self, resource_type: str, why: str) -> None:
        """Count one skipped resource; ``why`` names element paths, never an id or a value."""
        self.skipped[resource_type] += 1
        self._skips_to_log[resource_type, why] += 1

    def reshaped(self, resource_type: str, repairs: Iterable[Repair]) -> None:
        """Count the elements reshaped in one resource that then validated."""
        for repair in repairs:
            self.repaired[resource_type, repair.path] += 1
            self._repairs_to_log[resource_type, repair.path] += 1

    def log(self) -> None:
        """One line per (type, reason) skipped and per (type, element) reshaped, with its count,
        for what came since the last call. A resource id is patient data (a Patient's id is the
        patient id, any other id links to one), so none is logged."""
        for (resource_type, why), count in sorted(self._skips_to_log.items()):
            logger.info(
                "FHIR resources skipped",
                extra=log_fields(resource_type=resource_type, reason=why, count=count),
            )
        for (resource_type, path), count in sorted(self._repairs_to_log.items()):
            logger.info(
                "FHIR elements reshaped to their R4 cardinality",
                extra=log_fields(resource_type=resource_type, element=path, count=count),
            )
        self._skips_to_log.clear()
        self._repairs_to_log.clear()

    def skip_uncoded(self, resource_type: str) -> None:
        """Count one resource whose concept is text only (no coding to match, rules.md 3.1)."""
        self.skipped[resource_type] += 1
        logger.info("skipped FHIR resource %s: text only, no coding", resource_type)


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


@dataclass(frozen=True, slots=True)
class Readout:
    """What reading one resource as R4 gave: the JSON to read, or why it cannot be read."""

    doc: dict[str, Any] | None  # the resource itself, or its reshaped copy; None: unreadable
    problem: str | None = None  # why it is unreadable: element paths, never a value
    repairs: tuple[Repair, ...] = ()  # the reshaping that made ``doc`` valid
    model: Any | None = None  # the R4B model, when validation built one


def _validate(
    raw: dict[str, Any], definitions: Definitions, serialized: bytes | None = None
) -> Readout:
    """``raw`` (a dict with a string resourceType) read as R4, reshaped where only the shape of
    an element is wrong (``cds.fhir_repair``, looking R4 cardinality up in ``definitions``); the
    reshaping runs only when validation fails.

    ``serialized`` (the JSON of ``raw``, when the caller has it) spares the depth walk for the
    common resource with few containers: counting bytes in C beats walking dicts in Python.
    """
    if not _few_containers(serialized) and depth_exceeds(raw, MAX_RESOURCE_DEPTH):
        return Readout(None, f"nests deeper than {MAX_RESOURCE_DEPTH} levels")
    resource_type = raw["resourceType"]
    cls = model_class(resource_type)
    if cls is None:
        return Readout(None, "not an R4 resource type")
    try:
        return Readout(raw, model=cls.model_validate(raw))
    except ValidationError as exc:
        fixed = definitions.repair(cls, raw, exc)
    if isinstance(fixed, list):
        # The error text quotes input values (patient data), so only element paths are kept.
        return Readout(None, "invalid at " + ", ".join(fixed[:5]))
    return Readout(fixed.doc, repairs=fixed.repairs, model=fixed.model)


Outcome = str | tuple[Repair, ...]
"""What the memo keeps per content: VALID, the problem, or the reshaping that makes it valid."""

VALID: Final = ""
"""What the memo remembers for a resource that validated as sent (a problem is never empty)."""


def _outcome(readout: Readout) -> Outcome:
    if readout.problem is not None:
        return readout.problem
    return readout.repairs or VALID


DEFAULT_MEMO_ENTRIES: Final[int] = 20_000


class ValidationMemo:
    """Remembers validation outcomes by the resource's exact content, least recently used first.

    An EHR resends the same chart on every hook call (each chart open, each order selection),
    and validating a resource costs ~0.15 ms against ~3 us to digest it. The outcome is a pure
    function of the content, so a hit answers exactly what validating again would; the memo
    holds 16-byte digests, short reasons and element paths, never patient data. A resource
    that needed reshaping is reshaped again from the remembered repairs, without validating.

    One app owns one (``cds.caches.EvaluationCaches``, sized from CDS_VALIDATION_MEMO_SIZE) and
    passes it in; nothing in this module remembers anything between calls.
    """

    def __init__(self, max_entries: int = DEFAULT_MEMO_ENTRIES) -> None:
        self.max_entries = max_entries
        self._outcomes: OrderedDict[bytes, Outcome] = OrderedDict()
        # R4 cardinality by element path, for reshaping; looked up only when validation fails.
        self.definitions = Definitions(model_class)
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
        """Why ``raw`` cannot be read as R4 (None when it can), and whether memory answered."""
        readout, remembered = self.read(raw)
        return readout.problem, remembered

    def digest(self, raw: Mapping[str, Any]) -> bytes | None:
        """The key ``raw``'s outcome is remembered by (16 bytes of its JSON's SHA-256); None when
        it is not remembered: the memo is off, or ``raw`` is not JSON-serializable (or nests past
        orjson's limit). A caller that needs the key for its own memo passes it to :meth:`read`,
        so the resource is serialized and digested once."""
        if self.max_entries <= 0:
            return None
        try:
            # SHA-256 cut to 16 bytes, not BLAKE2b: CPUs hash it in hardware (SHA-NI), at
            # about half BLAKE2b's cost here for a resource of a few hundred bytes.
            return sha256(orjson.dumps(raw)).digest()[:16]
        except (TypeError, orjson.JSONEncodeError):
            return None

    def known_valid(self, key: bytes) -> bool:
        """Whether the resource digested to ``key`` is remembered to validate as sent: then it is
        counted as a hit, as :meth:`read` would count it, and nothing else is made. Any other
        outcome (not remembered, a problem, a reshaping) is False and counts nothing: the
        caller then reads the resource with :meth:`read`."""
        if self._outcomes.get(key) != VALID:
            return False
        self.hits += 1
        try:  # noqa: SIM105 - as in read(): a bare try costs nothing on the hit path
            self._outcomes.move_to_end(key)
        except KeyError:
            pass
        return True

    def read(self, raw: dict[str, Any], key: bytes | None = None) -> tuple[Readout, bool]:
        """``raw`` read as R4 (see :func:`_validate`), and whether memory answered; ``key`` is
        :meth:`digest` of ``raw`` when the caller has it."""
        if key is None:
            key = self.digest(raw)
            if key is None:
                return _validate(raw, self.definitions), False
        known = self._outcomes.get(key)
        if known is not None:
            readout = _recall(raw, known)
            if readout is not None:
                self.hits += 1
                # With several evaluation slots another thread may have just evicted it; a bare
                # try costs nothing here, contextlib.suppress a microsecond on every hit.
                try:  # noqa: SIM105
                    self._outcomes.move_to_end(key)
                except KeyError:
                    pass
                return readout, True
        self.misses += 1
        # A miss costs a validation (~0.15 ms): serializing again for the depth check is noise.
        readout = _validate(raw, self.definitions, orjson.dumps(raw))
        self._outcomes[key] = _outcome(readout)
        if len(self._outcomes) > self.max_entries:
            self._outcomes.popitem(last=False)
        return readout, False


def _recall(raw: dict[str, Any], known: Outcome) -> Readout | None:
    """The readout a remembered outcome stands for; None when its repairs no longer apply."""
    if known == VALID:  # the usual outcome first
        return Readout(raw)
    if isinstance(known, str):
        return Readout(None, known)
    doc = replay(raw, known)
    return Readout(doc, repairs=known) if doc is not None else None


def _is_resource(raw: Any, report: ParseReport) -> bool:
    """Whether ``raw`` is a dict with a string resourceType; counts it when not."""
    if isinstance(raw, dict) and isinstance(raw.get("resourceType"), str):
        return True
    report.skip("(unknown)", "not a FHIR resource")
    return False


def _counted(raw: dict[str, Any], report: ParseReport, readout: Readout) -> Readout:
    """Count ``raw`` as parsed (and its repairs), or as skipped for its problem."""
    if readout.problem is not None:
        report.skip(raw["resourceType"], readout.problem)
    else:
        report.parsed += 1
        if readout.repairs:
            report.reshaped(raw["resourceType"], readout.repairs)
    return readout


NOT_A_RESOURCE: Final = Readout(None, "not a FHIR resource")


def read_resource(
    raw: Any, report: ParseReport, memo: ValidationMemo, key: bytes | None = None
) -> Readout:
    """``raw`` read as R4 through ``memo``: ``doc`` is the JSON to read (``raw`` itself when
    valid, a reshaped copy when only the shape of elements was wrong), None with the problem
    when it cannot be read; counted in ``report`` (the caller logs it with ``report.log()``).
    ``key`` is ``memo.digest(raw)`` when the caller has it. No model is kept."""
    if not _is_resource(raw, report):
        return NOT_A_RESOURCE
    readout, remembered = memo.read(raw, key)
    report.remembered += remembered
    return _counted(raw, report, readout)


def is_valid(raw: Any, report: ParseReport | None = None) -> bool:
    """Whether ``raw`` can be read as R4, reshaped if need be (see :func:`read_resource`)."""
    own = report is None
    report = report if report is not None else ParseReport()
    found = read_resource(raw, report, ValidationMemo(0)).doc is not None
    if own:
        report.log()
    return found


def parse_resource(raw: Any, report: ParseReport | None = None) -> Any | None:
    """The R4B model of ``raw`` (reshaped where only shapes were wrong), or None when it is not
    R4 (DSTU2/STU3-shaped, malformed). One bad resource never fails a request (house rule 5);
    ``report`` counts what was skipped or reshaped, and is logged here when not given."""
    own = report is None
    report = report if report is not None else ParseReport()
    model = None
    if _is_resource(raw, report):
        model = _counted(raw, report, _validate(raw, Definitions(model_class))).model
    if own:
        report.log()
    return model


def resource_problem(raw: dict[str, Any]) -> str | None:
    """Why ``raw``, a resource this service wrote, is not valid R4 as it stands (nothing
    reshaped: the service's own output must be right); None when it is valid."""
    cls = model_class(str(raw.get("resourceType")))
    if cls is None:
        return f"'{raw.get('resourceType')}' is not an R4 resource type"
    try:
        cls.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
    return None


def parse_resources(raws: Iterable[Any], report: ParseReport | None = None) -> list[Any]:
    """The valid R4B models among ``raws``, in order; invalid ones are skipped and counted."""
    own = report is None
    report = report if report is not None else ParseReport()
    models = [model for raw in raws if (model := parse_resource(raw, report)) is not None]
    if own:
        report.log()
    return models
