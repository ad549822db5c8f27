"""The normalized entries of a PatientRecord and the queries the rules ask of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from cds.record.dates import Duration, age_in_years
from cds.record.laterality import Side, is_foot, is_lower_limb, is_lumbar
from cds.record.units import convert

Kind = Literal["condition", "finding", "measurement", "procedure", "order", "report", "medication"]
# Where a `done` clause looks: an Observation (finding or measurement) counts as done too.
DoneKind = Literal["procedure", "order", "report", "observation"]
OBSERVATION_KINDS: frozenset[Kind] = frozenset({"finding", "measurement"})
BodySite = Literal["lower-limb", "foot", "lumbar"]

# The kinds the queries list, as ``of_kinds`` remembers them.
_CONDITIONS: tuple[Kind, ...] = ("condition",)
_WITH_FINDINGS: tuple[Kind, ...] = ("condition", "finding")
_MEASUREMENTS: tuple[Kind, ...] = ("measurement",)
_MEDICATIONS: tuple[Kind, ...] = ("medication",)

ACTIVE_CLINICAL = frozenset({"active", "recurrence", "relapse"})
NOT_CONFIRMED = "differential"


@dataclass(frozen=True, slots=True)
class ConditionWindows:
    """How recent a Condition must be to count, from the catalogue's clinical policy."""

    # Rules.md 3.2: a Condition with no clinicalStatus is active only with evidence this recent.
    undated_active: Duration
    # Rules.md 8.2: an encounter diagnosis is a visit's code, not a problem list entry; it is
    # recent for this long from its evidence date, whatever clinical status it was left with.
    encounter_diagnosis: Duration


@dataclass(frozen=True, slots=True)
class Entry:
    """One validated, value-set-matched resource, reduced to what the rules read."""

    resource_type: str
    id: str
    kind: Kind
    valuesets: frozenset[str]
    display: str
    date: datetime | None
    performer_valuesets: frozenset[str] = frozenset()
    reason_valuesets: frozenset[str] = frozenset()
    side: Side | None = None
    body_site: str = ""
    clinical_status: str | None = None
    verification: str | None = None
    abatement: datetime | None = None
    has_abatement: bool = False
    value: float | None = None
    unit: str | None = None
    draft: bool = False
    # A finding stated absent (valueBoolean false, a negative interpretation) is kept only as
    # proof that the observation was made (a monofilament test), never as a present symptom.
    present: bool = True
    encounter_diagnosis: bool = False
    # Sets this entry belongs to only through a site-unspecified spine code (rules.md 5); they
    # are dropped when the record holds no other lumbar finding.
    unsited: frozenset[str] = frozenset()

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"

    def in_sets(self, wanted: frozenset[str]) -> bool:
        return not self.valuesets.isdisjoint(wanted)

    def site_is(self, site: BodySite) -> bool:
        if site == "lower-limb":
            return is_lower_limb(self.body_site)
        return is_foot(self.body_site) if site == "foot" else is_lumbar(self.body_site)


@dataclass
class PatientRecord:
    """A normalized, indexed view of one patient at one instant (rules.md section 3)."""

    now: datetime
    patient_id: str
    windows: ConditionWindows
    birth_date: date | None = None
    deceased: bool = False
    patient_known: bool = False
    entries: list[Entry] = field(default_factory=list)
    unavailable: frozenset[str] = frozenset()  # resource types whose data could not be obtained
    models_built: int = 0  # resources checked as valid R4 (by model, or from the memo)
    validations_remembered: int = 0  # of those, answered from the validation memo
    skipped: dict[str, int] = field(default_factory=dict)
    # (resourceType, element path) -> elements reshaped to their R4 cardinality (fhir_repair).
    repaired: dict[tuple[str, str], int] = field(default_factory=dict)
    # id() of each resource passed in that could not be read even reshaped -> why (element
    # paths): the caller maps them back to the prefetch keys they came from.
    unreadable: dict[int, str] = field(default_factory=dict)
    # Draft orders that could not be read: (index among the drafts passed in, why).
    unreadable_drafts: list[tuple[int, str]] = field(default_factory=list)
    # What the queries compute once per record (rules ask some 25 queries a call): the entries
    # of each kinds asked for, listed from ``_listed_from`` (dropped when the entries are another
    # list or another length: a record is read once built, never changed in place), and the
    # windows' starts at ``now`` with the (now, windows) they were computed for.
    _listed: dict[tuple[str, ...], list[Entry]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _listed_from: list[Entry] | None = field(default=None, init=False, repr=False, compare=False)
    _listed_length: int = field(default=0, init=False, repr=False, compare=False)
    _starts: tuple[datetime, ConditionWindows, datetime, datetime] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # ------------------------------------------------------------------ availability

    def available(self, *resource_types: str) -> bool:
        """Whether every named resource type was obtained (absent data is then truly absent)."""
        return not self.unavailable or self.unavailable.isdisjoint(resource_types)

    def age(self) -> int | None:
        """Completed years, or None when the Patient or its birthDate is unknown."""
        if self.birth_date is None:
            return None
        return age_in_years(self.birth_date, self.now)

    # ------------------------------------------------------------------ queries

    def of_kinds(self, kinds: tuple[str, ...]) -> list[Entry]:
        """The entries of ``kinds`` (each an ``Entry.kind``, or ``observation`` for both
        Observation kinds), in the record's order; listed by the first query that asks."""
        entries = self.entries
        if self._listed_from is not entries or self._listed_length != len(entries):
            self._listed = {}
            self._listed_from = entries
            self._listed_length = len(entries)
        listed = self._listed.get(kinds)
        if listed is None:
            wanted = set(kinds)
            if "observation" in wanted:
                wanted |= OBSERVATION_KINDS
            listed = self._listed[kinds] = [e for e in entries if e.kind in wanted]
        return listed

    def _window_starts(self) -> tuple[datetime, datetime]:
        """When the encounter-diagnosis and the undated-active windows start, at ``now``."""
        starts = self._starts
        if starts is None or starts[0] is not self.now or starts[1] is not self.windows:
            windows, now = self.windows, self.now
            starts = self._starts = (
                now,
                windows,
                windows.encounter_diagnosis.before(now),
                windows.undated_active.before(now),
            )
        return starts[2], starts[3]

    def condition_counts(self, entry: Entry, *, differential: bool) -> bool:
        """Rules.md 3.2: whether a Condition is active for a rule (refuted/EIE never reach here)."""
        if entry.verification == NOT_CONFIRMED and not differential:
            return False
        if entry.abatement is not None and entry.abatement <= self.now:
            return False
        if entry.encounter_diagnosis and (
            entry.date is None or entry.date < self._window_starts()[0]
        ):
            return False
        if entry.clinical_status is None:
            # No status: active only without abatement and with recent evidence.
            return (
                not entry.has_abatement
                and entry.date is not None
                and entry.date >= self._window_starts()[1]
            )
        return entry.clinical_status in ACTIVE_CLINICAL

    def conditions(
        self,
        wanted: frozenset[str],
        *,
        differential: bool = False,
        history: bool = False,
        findings: bool = False,
    ) -> list[Entry]:
        """Conditions in ``wanted`` that count (or, with ``history``, any not refuted/EIE ones).

        With ``findings`` a present finding-type Observation also counts, dated by its effective.
        """
        # One pass over the kinds' entries (no list of those in ``wanted`` made first): a call
        # asks this of some 16 clauses.
        counted = []
        for e in self.of_kinds(_WITH_FINDINGS if findings else _CONDITIONS):
            if e.valuesets.isdisjoint(wanted):
                continue
            if (
                e.present
                if e.kind == "finding"
                else history or self.condition_counts(e, differential=differential)
            ):
                counted.append(e)
        return counted

    def measurements(self, wanted: frozenset[str], unit: str) -> list[tuple[Entry, float]]:
        """Quantitative Observations in ``wanted`` converted to ``unit``, newest first."""
        out = []
        for e in self.of_kinds(_MEASUREMENTS):
            if e.value is None or e.valuesets.isdisjoint(wanted):
                continue
            value = convert(e.value, e.unit, unit)
            if value is not None and e.date is not None:
                out.append((e, value))
        if len(out) > 1:
            out.sort(key=lambda pair: pair[0].date or self.now, reverse=True)
        return out

    def done(
        self,
        wanted: frozenset[str],
        kinds: Iterable[DoneKind],
        *,
        performer: bool = True,
        drafts: bool = True,
    ) -> list[Entry]:
        """Procedures, orders and reports in ``wanted`` (by code, or by performerType for orders).

        Draft orders of an order hook count as "being ordered now" (rules.md 3.4 exception).
        """
        out = []
        for e in self.of_kinds(kinds if isinstance(kinds, tuple) else tuple(kinds)):
            if e.draft and not drafts:
                continue
            if not e.valuesets.isdisjoint(wanted) or (
                performer and not e.performer_valuesets.isdisjoint(wanted)
            ):
                out.append(e)
        return out

    def medications(self, wanted: frozenset[str]) -> list[Entry]:
        """Active MedicationRequest/MedicationStatement entries (not drafts) in ``wanted``."""
        return [
            e
            for e in self.of_kinds(_MEDICATIONS)
            if not e.draft and not e.valuesets.isdisjoint(wanted)
        ]

    def drafts(self, wanted: frozenset[str], resource_type: str) -> list[Entry]:
        """Draft orders of this hook call, of ``resource_type``, whose code is in ``wanted``."""
        return [
            e
            for e in self.entries
            if e.draft and e.resource_type == resource_type and e.in_sets(wanted)
        ]

    def by_reference(self, reference: str) -> Entry | None:
        """The entry a relative reference points to, if it was indexed."""
        return next((e for e in self.entries if e.reference == reference), None)
