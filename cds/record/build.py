"""Build a PatientRecord from raw FHIR JSON: index codings first, validate only what can match."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Final, Protocol, cast

import orjson

from cds.fhir import ParseReport, ValidationMemo, read_resource
from cds.record.dates import add_years, parse_datetime, period_start
from cds.record.drafts import DraftReading, draft_reading
from cds.record.entry_memo import Dropped, EntryMemo
from cds.record.laterality import (
    combine,
    is_outside_lower_limb,
    record_side,
    side_of_code,
    side_of_text,
)
from cds.record.matching import CODE_FIELDS, MatchMemo, coding_list, one_coding_key
from cds.record.model import ConditionWindows, Entry, Kind, PatientRecord
from cds.record.units import quantity_unit
from cds.subjects import OTHER_PATIENT, SubjectCheck, is_other_patient
from cds.valuesets import NO_SETS, ValueSets

Raw = Mapping[str, Any]

DROPPED_VERIFICATION = frozenset({"refuted", "entered-in-error"})
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
COUNTED_ORDER = frozenset({"active", "on-hold", "completed"})
ABSENT_INTERPRETATION = frozenset({"NEG", "ND", "A-", "absent"})
SITE_UNSPECIFIED = "site-unspecified"
LUMBAR_CONTEXT = frozenset({"radic", "lspine", "lbp"})
Matched = tuple[frozenset[str], frozenset[str], frozenset[str]]
"""(sets of the main code, of an Observation's value, of a ServiceRequest's performerType)."""
Found = tuple[tuple[str, str], Entry, bytes | None]
"""(resource type and id, the entry, the resource's digest when it was taken)."""
# Per type a record is built from: the main coded field, and the other one (an Observation's
# value, a ServiceRequest's performer; None for none) whose presence sends a resource past the
# sift, since the main concept alone does not say what add() makes of it.
_SIFTED_FIELDS: Final[Mapping[str, tuple[str, str | None]]] = MappingProxyType(
    {t: (fields[0], fields[1] if len(fields) > 1 else None) for t, fields in CODE_FIELDS.items()}
)
# The same as a plain dict, read by the sift for every entry of a chart (a mapping proxy's
# lookup costs one more call), with Patient, which the sift keeps whatever it holds: its other
# field is the one every resource judged has (its resourceType was read), so its main concept
# is never read.
_SIFTED_FIELDS_OF: Final[dict[str, tuple[str, str | None]]] = {
    **_SIFTED_FIELDS,
    "Patient": ("", "resourceType"),
}
# What the sift's last looked-up type is before any: equal to no JSON value (a resourceType of
# null must not pass for it).
_NO_TYPE: Final = object()


class BundleEntries(Protocol):
    """A Bundle's resources as prefetch reads them (``cds.data.prefetch.BundleResources``):
    the entries as sent, and the resource an entry holds when it is read."""

    @property
    def entries(self) -> Sequence[Any]: ...

    def resource_of(self, entry: Any) -> dict[str, Any] | None: ...

    def heads(self) -> Iterator[Any]: ...  # each entry as far as the sift reads it, in order

    @property
    def raw(self) -> bool: ...  # whether the heads are not the entries themselves


def _codings(concept: object) -> list[tuple[str, str]]:
    if not isinstance(concept, dict):
        return []
    out = []
    for coding in coding_list(concept):
        if isinstance(coding, dict):
            system, code = coding.get("system"), coding.get("code")
            if isinstance(system, str) and isinstance(code, str):
                out.append((system, code))
    return out


def _texts(concept: object) -> list[str]:
    if not isinstance(concept, dict):
        return []
    texts = [concept.get("text")] + [
        c.get("display") for c in coding_list(concept) if isinstance(c, dict)
    ]
    return [t for t in texts if isinstance(t, str) and t]


def _status(concept: object) -> str | None:
    # Status codes are read without their system: feeds often omit it on these bound codes.
    if not isinstance(concept, dict):
        return None
    for coding in coding_list(concept):
        if isinstance(coding, dict) and isinstance(coding.get("code"), str):
            return str(coding["code"])
    text = concept.get("text")
    return text.lower() if isinstance(text, str) else None


def _display(concept: object, fallback: str) -> str:
    """What an entry is called: the first display after the text, else the text (or the only
    display), else ``fallback``."""
    if isinstance(concept, dict):
        codings = concept.get("coding")
        if type(codings) is list and len(codings) == 1 and isinstance(codings[0], dict):
            # The usual concept of one coding, read without building the list of texts: its
            # display comes second after a text or alone, so it wins either way.
            display = codings[0].get("display")
            if isinstance(display, str) and display:
                return display
            text = concept.get("text")
            return text if isinstance(text, str) and text else fallback
    texts = _texts(concept)
    if len(texts) > 1:
        return texts[1]
    return texts[0] if texts else fallback


def _text_only(concept: object) -> bool:
    """A CodeableConcept with text but no coding (a free-text problem)."""
    return isinstance(concept, dict) and not _codings(concept) and bool(_texts(concept))


def _encounter_diagnosis(categories: object) -> bool:
    """Rules.md 8.2: categorised as an encounter diagnosis and not also a problem list item."""
    if not isinstance(categories, list):
        return False
    # Read without the system, like the status codes: feeds often omit it on bound codes.
    codes = {
        coding.get("code")
        for concept in categories
        if isinstance(concept, dict)
        for coding in coding_list(concept)
        if isinstance(coding, dict)
    }
    return "encounter-diagnosis" in codes and "problem-list-item" not in codes


def _remembered_unmatched(memo: MatchMemo, resource_type: str, concept: Any) -> bool:
    """Whether ``concept``, the main concept of a ``resource_type``, is one coding the memo
    remembers to match no value set (``MatchMemo.unmatched``); any other shape is not."""
    try:
        (coding,) = concept["coding"]
        known = memo.unmatched.get(coding["code"])
    except (TypeError, KeyError, ValueError):
        return False
    return known is not None and (
        (resource_type, coding.get("system"), coding.get("display"), concept.get("text")) in known
    )


def _sent_unmatched(memo: MatchMemo, resource_type: str, sent: bytes) -> bool:
    """Whether the main concept sent as the JSON ``sent`` is remembered to match no value set
    (:func:`_remembered_unmatched` of it decoded). The memo also remembers the bytes
    (``MatchMemo.remember_sent``) when the answer is known for good: the concept is remembered
    unmatched, or remembered to match a set (which it always will)."""
    try:
        concept = orjson.loads(sent)
    except orjson.JSONDecodeError:
        return False
    if _remembered_unmatched(memo, resource_type, concept):
        memo.remember_sent(resource_type, sent, concept, unmatched=True)
        return True
    if _remembered_matching(memo, resource_type, concept):
        memo.remember_sent(resource_type, sent, concept, unmatched=False)
    return False


def _remembered_matching(memo: MatchMemo, resource_type: str, concept: Any) -> bool:
    """Whether ``concept``, one coding, is remembered to match a value set
    (``MatchMemo.concepts``, keyed as ``ConceptMatcher.main`` keys it)."""
    try:
        (coding,) = concept["coding"]
        found = memo.concepts.get(one_coding_key(resource_type, concept, coding))
    except (TypeError, KeyError, ValueError, AttributeError):
        return False
    return found is not None and bool(found[0] or found[1])


class RecordBuilder:
    """Indexes raw resources against the value sets and keeps the ones a rule can read.

    What it remembers across calls is in the memos it is given (the app's, ``cds.caches``):
    ``validation`` for validation outcomes, ``matching`` for the sets of codes and words,
    ``entries`` (when given) for the entry each matched resource made.
    """

    def __init__(
        self,
        now: datetime,
        patient_id: str,
        windows: ConditionWindows,
        limb_symptoms: frozenset[str] = NO_SETS,
        *,
        validation: ValidationMemo,
        matching: MatchMemo,
        entries: EntryMemo | None = None,
    ) -> None:
        self.valuesets = matching.valuesets
        self.limb_symptoms = limb_symptoms
        self.record = PatientRecord(now=now, patient_id=patient_id, windows=windows)
        self.report = ParseReport()
        self._validation = validation
        # Off (size 0) when not given: this call then remembers nothing for the next.
        self._entries = entries if entries is not None else EntryMemo(self.valuesets, 0)
        self._seen: set[tuple[str, str]] = set()
        # (type, id) -> the resource add() kept under it, as sent (not drafts, not anonymous).
        self._kept: dict[tuple[str, str], object] = {}
        self._reason_refs: dict[str, list[str]] = {}
        self._match = matching.matcher()
        self._subjects = SubjectCheck(patient_id)

    def _validated(self, raw: object, digest: bytes | None) -> Raw | None:
        """The JSON to read for ``raw`` (itself, or reshaped to R4's cardinality), or None,
        read (from the validation memo or by validating) by ``read_resource``; an unreadable
        resource is remembered by identity, for the caller to find its prefetch key.
        ``digest`` is the memo's key for ``raw`` when it was taken already. The caller counts
        the model."""
        readout = read_resource(raw, self.report, self._validation, digest)
        if readout.doc is None:
            self.record.unreadable[id(raw)] = readout.problem or "cannot be read"
        return readout.doc

    # ------------------------------------------------------------------ entry points

    def add_patient(self, raw: Raw) -> None:
        if is_other_patient(raw, self.record.patient_id):
            self.report.skip("Patient", OTHER_PATIENT)
            return
        self.record.models_built += 1
        doc = self._validated(raw, None)
        if doc is None:
            return
        self.record.patient_known = True
        birth = parse_datetime(doc.get("birthDate"))
        self.record.birth_date = birth.date() if birth else None
        deceased_flag = doc.get("deceasedBoolean") is True
        self.record.deceased = deceased_flag or doc.get("deceasedDateTime") is not None

    def sift(self, sources: Iterable[Iterable[object]]) -> tuple[list[Raw], list[Raw]]:
        """The Patients among the resources of ``sources`` (each a prefetch key's, in order),
        and the others :meth:`add` may keep: without the resources whose one-coding main
        concept is remembered to match no value set, for which :meth:`add` would do nothing at
        all (no count, no log, no validation).

        Most of a big chart leaves here after a few dict reads and one memo lookup; anything
        else (an Observation's value, a ServiceRequest's performer, a Condition whose coding
        is not a string system and code, a concept not yet remembered) goes the whole way. A
        Bundle's resources not yet listed (:class:`BundleEntries`) are read from its entries
        in the same pass.
        """
        patients: list[Raw] = []
        pending: list[Raw] = []
        for source in sources:
            # Duck-typed: a runtime Protocol check costs 8 us, for each key of every call.
            if hasattr(source, "resource_of"):
                self._sift_entries(cast("BundleEntries", source), patients, pending)
            else:
                for raw in source:
                    self._sift_one(raw, patients, pending)
        return patients, pending

    def _sift_entries(self, bundle: BundleEntries, patients: list[Raw], pending: list[Raw]) -> None:
        """:meth:`_sift_one` for each resource of ``bundle``, in one pass over its entries.

        An entry whose resource the sift drops is not looked at further: whether the entry is
        read at all (its search mode, an OperationOutcome) cannot change a resource :meth:`add`
        would do nothing for. Every other entry is read as prefetch reads it
        (``bundle.resource_of``); one read whole by the checks below is sorted at once, since
        :meth:`_sift_one` would ask the same of the same dicts. Entries the request left
        undecoded go through :meth:`_sift_undecoded`.
        """
        if bundle.raw:
            self._sift_undecoded(bundle, patients, pending)
            return
        fields_of = _SIFTED_FIELDS_OF.get
        unmatched = self._match.memo.unmatched.get
        resource_of = bundle.resource_of
        # A searchset holds one type: its fields are looked up again only when an entry's type
        # differs from the last type found (a string, or _NO_TYPE, which equals no JSON value:
        # only a string equals a string).
        last_type: object = _NO_TYPE
        main, other = "", None  # the fields of last_type
        # _remembered_unmatched inline (every entry of a chart passes here): any other shape
        # than a resource with a main concept of one coding with a code raises, and goes the
        # whole way. So does a coding without a system, which the memo never remembers: read
        # by subscript, not get().
        for entry in bundle.entries:
            try:
                resource = entry["resource"]
                resource_type = resource["resourceType"]
                if resource_type != last_type:
                    fields = fields_of(resource_type)
                    if fields is None:
                        continue  # a type no record is built from (last_type's fields stay)
                    main, other = fields
                    last_type = resource_type
                if other not in resource:
                    concept = resource[main]
                    (coding,) = concept["coding"]
                    known = unmatched(coding["code"])
                    if known is not None and (
                        (
                            resource_type,
                            coding["system"],
                            coding.get("display"),
                            concept.get("text"),
                        )
                        in known
                    ):
                        continue
            except (TypeError, KeyError, ValueError, RecursionError):
                raw = resource_of(entry)
                if raw is not None:
                    self._sift_one(raw, patients, pending)
                continue
            raw = resource_of(entry)
            if raw is None:
                continue
            if raw is resource and type(raw) is dict:
                # The very dict judged above, judged as _sift_one judges it: its resourceType
                # (a string, the only JSON value equal to one) is Patient or a type a record is
                # built from, and its main concept is not remembered to match nothing.
                (patients if resource_type == "Patient" else pending).append(raw)
            else:
                self._sift_one(raw, patients, pending)

    def _sift_undecoded(
        self, bundle: BundleEntries, patients: list[Raw], pending: list[Raw]
    ) -> None:
        """:meth:`_sift_entries` for entries left undecoded, each judged by its head
        (``bundle.heads``): the resource's type, and its main concept as the bytes sent.

        A concept sent in the very bytes of one the memo judged before (``MatchMemo.sent``)
        drops its entry, or sends it on, after one lookup; any other concept is decoded alone
        and judged as a decoded one is (:func:`_remembered_unmatched`). An entry not dropped
        is read whole (``bundle.resource_of``) and goes through :meth:`_sift_one`.
        """
        fields_of = _SIFTED_FIELDS_OF.get
        memo = self._match.memo
        sent_of = memo.sent
        resource_of = bundle.resource_of
        last_type: object = _NO_TYPE
        main, other = "", None  # the fields of last_type
        sent: dict[bytes, bool] = {}  # what is known of last_type's concepts by their bytes
        for entry, head in zip(bundle.entries, bundle.heads(), strict=True):
            try:
                resource = head["resource"]
                resource_type = resource["resourceType"]
                if resource_type != last_type:
                    fields = fields_of(resource_type)
                    if fields is None:
                        continue  # a type no record is built from (last_type's fields stay)
                    main, other = fields
                    # The dict the memo adds to (kept when another entry's concept is
                    # remembered); one the memo forgot since then still holds only true answers.
                    sent = sent_of.setdefault(resource_type, {})
                    last_type = resource_type
                if other not in resource:
                    concept = bytes(resource[main])
                    unmatched = sent.get(concept)
                    if unmatched or (
                        unmatched is None and _sent_unmatched(memo, resource_type, concept)
                    ):
                        continue
            except (TypeError, KeyError, ValueError, RecursionError):
                # ValueError: also a head msgspec could not decode (msgspec.DecodeError).
                pass
            raw = resource_of(entry)
            if raw is not None:
                self._sift_one(raw, patients, pending)

    def _sift_one(self, raw: object, patients: list[Raw], pending: list[Raw]) -> None:
        """Sort ``raw`` into ``patients`` or ``pending``, unless :meth:`add` would do nothing
        for it: a type no record is built from, or a main concept remembered to match no set."""
        if not isinstance(raw, dict):
            return  # add() reads dicts only
        resource_type = raw.get("resourceType")
        if type(resource_type) is not str:
            return
        if resource_type == "Patient":
            patients.append(raw)
            return
        fields = _SIFTED_FIELDS.get(resource_type)
        if fields is None:
            return
        if fields[1] in raw or not _remembered_unmatched(
            self._match.memo, resource_type, raw.get(fields[0])
        ):
            pending.append(raw)

    def add(self, raw: object, *, draft: bool = False) -> None:
        """Index one raw resource; unmatched ones are never validated (they cannot matter)."""
        if not draft and type(raw) is dict:
            resource_type, resource_id = raw.get("resourceType"), raw.get("id")
            if type(resource_type) is str and type(resource_id) is str:
                # The same resource under a second prefetch key (a chart's keys overlap): equal
                # to one kept, it matches the same sets and names the same patient, so the
                # duplicate check would drop it after all that; it is dropped here instead.
                kept = self._kept.get((resource_type, resource_id))
                if kept is not None and kept == raw:
                    return
        found = self._candidate(raw, draft=draft)
        if found is None:
            return
        key, _, digest = found
        self.record.models_built += 1
        if digest is not None and self._validation.known_valid(digest):
            # The usual repeat resource: counted as read_resource counts a remembered valid one
            # (``raw`` is a dict with a string resourceType: _candidate read it), nothing built.
            self.report.parsed += 1
            self.report.remembered += 1
        else:
            doc = self._validated(raw, digest)
            if doc is None:
                return
            if doc is not raw:
                # Reshaped: read it again as R4 shapes it (a wrapped bodySite or reasonCode).
                found = self._candidate(doc, draft=draft)
                if found is None:
                    return
        self._keep(found)
        if not draft and found[0] == key:
            self._kept[key] = raw

    def add_draft(self, index: int, raw: object) -> None:
        """Index one draft order as ``cds.record.drafts`` says it is read; one that must be
        readable and cannot be is recorded (by its ``index`` among the drafts given), never
        skipped in silence."""
        reading = draft_reading(raw)
        if reading is DraftReading.IGNORE:
            return
        if reading is DraftReading.IF_MATCHED and self._candidate(raw, draft=True) is None:
            return
        readout = read_resource(raw, self.report, self._validation)
        self.record.models_built += 1
        if readout.doc is None:
            self.record.unreadable_drafts.append((index, readout.problem or "cannot be read"))
            return
        self._keep(self._candidate(readout.doc, draft=True))

    def _keep(self, found: Found | None) -> None:
        if found is not None:
            key, entry, _ = found
            self._seen.add(key)
            self.record.entries.append(entry)

    def _candidate(self, raw: object, *, draft: bool) -> Found | None:
        """The entry ``raw`` would make when it matches a value set and is new; not validated.

        Every resource of a chart passes here and most leave with no set, so this first part
        stays flat: no call but the remembered lookups until something matched."""
        if not isinstance(raw, dict):
            return None
        resource_type = raw.get("resourceType")
        if not isinstance(resource_type, str):
            return None
        fields = CODE_FIELDS.get(resource_type)
        if fields is None:
            return None
        code_sets, named = self._match.main(resource_type, raw.get(fields[0]))
        value_sets = performer = NO_SETS
        # Text sets read the text of every coded field; their hits count as the code's. The
        # other coded fields repeat the same few concepts too, so they are remembered alike.
        if resource_type == "Observation" and "valueCodeableConcept" in raw:
            value_sets, named_value = self._match.main(resource_type, raw["valueCodeableConcept"])
            if named_value:
                named = named | named_value
        elif resource_type == "ServiceRequest":
            performer, named_performer = self._match.main(resource_type, raw.get("performerType"))
            if named_performer:
                named = named | named_performer
        if named:
            code_sets = code_sets | named
        if code_sets or value_sets or performer:
            return self._matched(raw, resource_type, (code_sets, value_sets, performer), draft)
        if resource_type == "Condition" and _text_only(raw.get("code")):
            # Rules.md 3.1: text is not matched in v1; counting it keeps the volume visible.
            self.report.skip_uncoded(resource_type)
        return None

    def _matched(self, raw: Raw, resource_type: str, matched: Matched, draft: bool) -> Found | None:
        """The entry of ``raw``, which matched value sets, unless it is not the patient's or
        was seen already; remembered by content where it depends on nothing else."""
        # Checked only where a rule could read it, like validity; counted like an invalid one.
        if self._subjects.names_other_patient(raw):
            self.report.skip(resource_type, OTHER_PATIENT)
            return None
        # Only a matching resource is worth the duplicate check (most of a chart is not).
        # The id inline (every matched resource passes): an anonymous one is named by its
        # place in the call.
        resource_id = raw.get("id")
        if not isinstance(resource_id, str):
            resource_id = f"anonymous-{len(self._seen)}"
        key: tuple[str, str] = (resource_type, resource_id)
        if key in self._seen:
            return None
        digest = None if draft else self._digest(raw)
        if digest is not None:
            remembered = self._entries.get((digest, self.limb_symptoms))
            if remembered is not None:
                return None if remembered is Dropped.DROPPED else (key, remembered, digest)
        entry = self._entry(raw, resource_type, key[1], matched, draft=draft)
        if entry is not None and SITE_UNSPECIFIED in entry.valuesets and not draft:
            entry = self._with_unsited(raw, entry, CODE_FIELDS[resource_type][0], matched)
        if digest is not None:
            self._entries.remember((digest, self.limb_symptoms), entry)
        return (key, entry, digest) if entry is not None else None

    def _digest(self, raw: Raw) -> bytes | None:
        """The key ``raw``'s entry is remembered by (the validation memo's digest), or None
        when the entry depends on more than the resource: an anonymous resource is named by its
        place in the call, an onset given as an age is read against this call's Patient. (A
        draft, dated by the call, is never asked for one.)"""
        if self._entries.max_entries <= 0 or type(raw.get("id")) is not str or "onsetAge" in raw:
            return None
        return self._validation.digest(raw)

    def _with_unsited(self, raw: Raw, entry: Entry, main: str, matched: Matched) -> Entry:
        """``entry`` with the sets it reaches only through a site-unspecified code marked."""
        code_sets, value_sets, _ = matched
        sited = self._sited(raw.get(main), code_sets)
        if entry.resource_type == "Observation":
            sited |= self._sited(raw.get("valueCodeableConcept"), value_sets)
        return replace(entry, unsited=entry.valuesets - sited)

    def _sited(self, concept: object, sets: frozenset[str]) -> frozenset[str]:
        """The sets of ``sets`` that ``concept`` reaches through codes that name a site."""
        if not isinstance(concept, dict) or SITE_UNSPECIFIED not in sets:
            return sets
        unsited = self.valuesets[SITE_UNSPECIFIED]
        sited = {
            **concept,
            "coding": [
                c
                for c in coding_list(concept)
                if not (
                    isinstance(c, dict)
                    and isinstance(c.get("system"), str)
                    and isinstance(c.get("code"), str)
                    and unsited.matches(c["system"], c["code"])
                )
            ],
        }
        return self._match.sets(sited)[0]

    def _place_unsited(self) -> None:
        """Rules.md 5: a site-unspecified spine code counts only with lumbar context, i.e. a
        lumbar body site on the same entry or another lumbar finding on record."""
        record = self.record
        if not any(e.unsited for e in record.entries):
            return
        context = any(
            not (e.valuesets - e.unsited).isdisjoint(LUMBAR_CONTEXT)
            and not e.draft
            and (e.kind == "finding" or record.condition_counts(e, differential=True))
            for e in record.entries
            if e.kind in ("condition", "finding")
        )
        for i, entry in enumerate(record.entries):
            if entry.unsited and not (context or entry.site_is("lumbar")):
                kept = (entry.valuesets - entry.unsited) | {SITE_UNSPECIFIED}
                reasons = entry.reason_valuesets - entry.unsited
                record.entries[i] = replace(entry, valuesets=kept, reason_valuesets=reasons)

    def finish(self, unavailable: Iterable[str]) -> PatientRecord:
        """Resolve site-unspecified codes and draft reasons, and return the record."""
        record = self.record
        self._place_unsited()
        if self._reason_refs:
            self._resolve_reasons()
        record.unavailable = frozenset(unavailable)
        record.skipped = dict(self.report.skipped)
        record.repaired = dict(self.report.repaired)
        record.validations_remembered = self.report.remembered
        self.report.log()
        return record

    def _resolve_reasons(self) -> None:
        """A draft's reasonReference counts through the indexed Condition it points to."""
        entries = self.record.entries
        by_ref = {e.reference: e for e in entries}
        for i, entry in enumerate(entries):
            refs = self._reason_refs.get(entry.reference, []) if entry.draft else []
            targets = [by_ref[r] for r in refs if r in by_ref]
            if targets:
                sets = entry.reason_valuesets.union(*(t.valuesets for t in targets))
                entries[i] = replace(entry, reason_valuesets=sets)

    # ------------------------------------------------------------------ per type

    def _entry(
        self, raw: Raw, resource_type: str, resource_id: str, matched: Matched, *, draft: bool
    ) -> Entry | None:
        code_sets, value_sets, performer = matched
        common: dict[str, Any] = {
            "resource_type": resource_type,
            "id": resource_id,
            "display": _display(raw.get(CODE_FIELDS[resource_type][0]), resource_type),
        }
        if resource_type == "Condition":
            return self._condition(raw, common, code_sets)
        if resource_type == "Observation":
            return self._observation(raw, common, code_sets, value_sets)
        if draft:
            return self._draft(raw, common, code_sets, performer)
        dated = _KIND_AND_DATE[resource_type](raw)
        if dated is None:
            return None
        kind, when = dated
        return Entry(
            **common,
            kind=kind,
            valuesets=code_sets,
            date=when,
            performer_valuesets=performer,
            body_site=" ".join(t for c in raw.get("bodySite") or () for t in _texts(c)),
        )

    def _draft(
        self, raw: Raw, common: dict[str, Any], code_sets: frozenset[str], performer: frozenset[str]
    ) -> Entry:
        reasons = self._match.sets(raw.get("reasonCode"))[0]
        # A site-unspecified reason code (M54.10) is weighed like a coded Condition (finish).
        concepts = [c for c in raw.get("reasonCode") or () if isinstance(c, dict)]
        unsited = reasons - frozenset().union(*(self._sited(c, reasons) for c in concepts))
        refs = [
            str(r["reference"])
            for r in raw.get("reasonReference") or ()
            if isinstance(r, dict) and isinstance(r.get("reference"), str)
        ]
        if refs:
            reference = f"{common['resource_type']}/{common['id']}"
            self._reason_refs.setdefault(reference, []).extend(refs)
        kind: Kind = "medication" if common["resource_type"] == "MedicationRequest" else "order"
        return Entry(
            **common,
            kind=kind,
            valuesets=code_sets,
            date=self.record.now,
            performer_valuesets=performer,
            reason_valuesets=reasons,
            draft=True,
            unsited=unsited,
        )

    def _condition(
        self, raw: Raw, common: dict[str, Any], code_sets: frozenset[str]
    ) -> Entry | None:
        verification = _status(raw.get("verificationStatus"))
        if verification in DROPPED_VERIFICATION:
            return None
        codes = _codings(raw.get("code"))
        sites = [t for c in raw.get("bodySite") or () for t in _texts(c)]
        code_sets = self._in_the_leg(code_sets, sites)
        if not code_sets:
            return None
        side = record_side([side_of_code(s, c) for s, c in codes], [side_of_text(t) for t in sites])
        abatement_keys = [k for k in raw if k.startswith("abatement")]
        abatement = parse_datetime(raw.get("abatementDateTime")) or period_start(
            raw.get("abatementPeriod")
        )
        return Entry(
            **common,
            kind="condition",
            valuesets=code_sets,
            date=self._onset(raw),
            side=side,
            body_site=" ".join(sites),
            clinical_status=_status(raw.get("clinicalStatus")),
            verification=verification,
            abatement=abatement,
            has_abatement=bool(abatement_keys),
            encounter_diagnosis=_encounter_diagnosis(raw.get("category")),
        )

    def _onset(self, raw: Raw) -> datetime | None:
        onset = parse_datetime(raw.get("onsetDateTime")) or period_start(raw.get("onsetPeriod"))
        age = raw.get("onsetAge")
        birth = self.record.birth_date
        if onset is None and isinstance(age, dict) and birth is not None:
            value = age.get("value")
            unit = age.get("code") or age.get("unit")
            if isinstance(value, int | float):
                years = value / 12 if unit in ("mo", "month", "months") else float(value)
                onset = add_years(_midnight(birth), years)
        return onset or parse_datetime(raw.get("recordedDate"))

    def _observation(
        self,
        raw: Raw,
        common: dict[str, Any],
        code_sets: frozenset[str],
        value_sets: frozenset[str],
    ) -> Entry | None:
        if raw.get("status") not in FINAL_OBSERVATION:
            return None
        when = _effective(raw)
        quantity = _quantity(raw)
        if quantity is not None:
            return Entry(
                **common,
                kind="measurement",
                valuesets=code_sets,
                date=when,
                value=float(quantity["value"]),
                unit=quantity_unit(quantity),
            )
        return self._finding(raw, common, code_sets | value_sets, when)

    def _finding(
        self, raw: Raw, common: dict[str, Any], sets: frozenset[str], when: datetime | None
    ) -> Entry | None:
        sites = _texts(raw.get("bodySite"))
        finding_sets = self._in_the_leg(sets, sites)
        if not finding_sets or raw.get("dataAbsentReason") is not None:
            return None
        interpretations = {c for i in raw.get("interpretation") or () for _, c in _codings(i)}
        absent = raw.get("valueBoolean") is False or not interpretations.isdisjoint(
            ABSENT_INTERPRETATION
        )
        return Entry(
            **common,
            kind="finding",
            valuesets=finding_sets,
            date=when,
            present=not absent,
            side=combine(side_of_text(t) for t in sites),
            body_site=" ".join(sites),
        )

    def _in_the_leg(self, sets: frozenset[str], sites: list[str]) -> frozenset[str]:
        """``sets`` without the limb-symptom sets when a body site puts the symptom elsewhere.

        Hand numbness is not a foot symptom: a symptom sited outside the lower limb never counts
        for the back-to-foot rules, whatever its code (an unsited one still does).
        """
        if self.limb_symptoms.isdisjoint(sets) or not sites:
            return sets
        # Every site must be elsewhere: one in the leg (or not recognised) keeps the symptom.
        if all(map(is_outside_lower_limb, sites)):
            return sets - self.limb_symptoms
        return sets


def _midnight(birth: date) -> datetime:
    return datetime(birth.year, birth.month, birth.day, tzinfo=UTC)


def _effective(raw: Raw) -> datetime | None:
    """When an Observation or a DiagnosticReport holds: its effective time, else when issued."""
    return (
        parse_datetime(raw.get("effectiveDateTime"))
        or period_start(raw.get("effectivePeriod"))
        or parse_datetime(raw.get("issued"))
    )


def _quantity(raw: Raw) -> dict[str, Any] | None:
    """An Observation's numeric value as a quantity, or None when it has none."""
    quantity = raw.get("valueQuantity")
    integer = raw.get("valueInteger")
    if quantity is None and isinstance(integer, int) and not isinstance(integer, bool):
        # A 0-10 score sent as valueInteger is a unit-less quantity: scores accept it, weights
        # and labs (which need a unit) do not. Ignoring it would let an older, higher score
        # stand in for the latest one (RB-02).
        quantity = {"value": integer}
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), int | float):
        return quantity
    return None


Dated = tuple[Kind, datetime | None]


def _procedure(raw: Raw) -> Dated | None:
    if raw.get("status") != "completed":
        return None
    return "procedure", (
        parse_datetime(raw.get("performedDateTime")) or period_start(raw.get("performedPeriod"))
    )


def _order(raw: Raw) -> Dated | None:
    if raw.get("status") not in COUNTED_ORDER:
        return None
    return "order", parse_datetime(raw.get("authoredOn"))


def _report(raw: Raw) -> Dated | None:
    if raw.get("status") not in FINAL_OBSERVATION:
        return None
    return "report", _effective(raw)


def _medication(raw: Raw) -> Dated | None:
    if raw.get("status") != "active":
        return None
    when = parse_datetime(raw.get("authoredOn")) or parse_datetime(raw.get("effectiveDateTime"))
    return "medication", when


# The entry kind and date of a recorded (not draft) resource of the other types; None when its
# status keeps it out of the record.
_KIND_AND_DATE: Final[Mapping[str, Callable[[Raw], Dated | None]]] = MappingProxyType(
    {
        "Procedure": _procedure,
        "ServiceRequest": _order,
        "DiagnosticReport": _report,
        "MedicationRequest": _medication,
        "MedicationStatement": _medication,
    }
)


def build_record(
    valuesets: ValueSets,
    now: datetime,
    patient_id: str,
    resources: Iterable[object],
    *,
    by_key: Iterable[Iterable[object]] = (),
    windows: ConditionWindows,
    drafts: Iterable[object] = (),
    unavailable: Iterable[str] = (),
    limb_symptoms: frozenset[str] = NO_SETS,
    validation: ValidationMemo | None = None,
    matching: MatchMemo | None = None,
    entries: EntryMemo | None = None,
) -> PatientRecord:
    """The PatientRecord for ``resources`` (raw JSON dicts), then those of ``by_key`` (each a
    prefetch key's, a Bundle's possibly unlisted: :class:`BundleEntries`), plus this hook
    call's draft orders.

    The Patient is read first, since Age-valued onsets need its birthDate. ``limb_symptoms``
    are the service's symptom sets that a body site outside the lower limb takes away;
    ``windows`` come from the catalogue's clinical policy. ``validation``, ``matching`` and
    ``entries`` are the app's memos (``cds.caches``); without them this call remembers only for
    itself.
    """
    if matching is None:
        matching = MatchMemo(valuesets)
    elif matching.valuesets is not valuesets:
        raise ValueError("the matching memo was built for other value sets")
    if entries is not None and entries.valuesets is not valuesets:
        raise ValueError("the entry memo was built for other value sets")
    builder = RecordBuilder(
        now,
        patient_id,
        windows,
        limb_symptoms,
        validation=validation if validation is not None else ValidationMemo(),
        matching=matching,
        entries=entries,
    )
    patients, pending = builder.sift([resources, *by_key])
    for patient in patients:
        builder.add_patient(patient)
    for resource in pending:
        builder.add(resource)
    for index, draft in enumerate(drafts):
        builder.add_draft(index, draft)
    return builder.finish(unavailable)
