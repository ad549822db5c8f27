"""What the store takes in and gives back: audit rows, issued cards, feedback, rule report."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol, overload

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, computed_field

from cds.settings import Settings

Outcome = Literal["accepted", "overridden"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AuditRecord(_Frozen):
    """One hook call, without PHI: the patient appears only as a keyed hash."""

    hook_instance: str
    service_id: str
    hook: str
    rule_ids: list[str] = []
    # Rules in shadow (draft) whose trigger held: they would have fired, but showed no card.
    would_fire: list[str] = []
    # Rules whose card an earlier override snoozed: they fired, but that card was not shown.
    snoozed: list[str] = []
    # The version of each rule in rule_ids and would_fire, so both can be read per version.
    rule_versions: dict[str, str] = {}
    card_uuids: list[str] = []
    duration_ms: float = Field(ge=0)
    status: int = Field(ge=100, le=599)
    fhir_fetch_count: int = Field(default=0, ge=0)
    skipped_resource_count: int = Field(default=0, ge=0)
    # Elements read leniently (a single value where R4 repeats it, or the reverse).
    repaired_element_count: int = Field(default=0, ge=0)
    received_at: AwareDatetime
    patient_hash: str | None = None
    # The site settings the call ran with: their file's sha256, or "none" (CDS_SITE_CONFIG).
    site_digest: str | None = None


class IssuedCardLike(Protocol):
    """Anything the engine hands over for a card it returned (``IssuedCard`` or its own type)."""

    @property
    def card_uuid(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def service_id(self) -> str: ...
    @property
    def hook_instance(self) -> str: ...
    @property
    def suggestion_uuids(self) -> Sequence[str]: ...
    @property
    def issued_at(self) -> datetime: ...


# What one hook call leaves in the store: its audit row and the cards it returned.
Invocation = tuple[AuditRecord, Sequence[IssuedCardLike]]


class IssuedCard(_Frozen):
    """A card the service returned, kept so that feedback can be matched to its rule (C-07)."""

    card_uuid: str
    rule_id: str
    service_id: str
    hook_instance: str
    suggestion_uuids: list[str] = []
    issued_at: AwareDatetime


class FeedbackItem(_Frozen):
    """One feedback entry (F-03), flattened from the wire model by the caller."""

    card: str = Field(min_length=1)
    outcome: Outcome
    accepted_suggestion_ids: list[str] = []
    override_code: str | None = None
    override_system: str | None = None
    override_display: str | None = None
    user_comment: str | None = None
    outcome_timestamp: AwareDatetime


class FeedbackOutcome(_Frozen):
    """Counts for one feedback post; ``unmatched`` is the part of ``stored`` with unknown cards,
    ``unknown_suggestions`` the part whose accepted suggestions their card never had."""

    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0
    unknown_suggestions: int = 0


class OverrideReasonCount(_Frozen):
    system: str | None
    code: str
    display: str | None
    count: int


class RuleStats(_Frozen):
    """What one version of one rule showed in the report's period and what clinicians answered.

    A card's uuid repeats whenever the same patient's call shows it again, so ``times_shown``
    (calls that showed one of the rule's cards) and ``cards`` (distinct card uuids) differ.
    Rates are over the feedback received, never over cards shown: most cards get no answer.
    """

    rule_id: str
    # The rule's version those calls ran; None for calls audited before rules had versions.
    rule_version: str | None = None
    service_id: str
    times_shown: int
    # Calls in which the rule, in shadow, would have fired: no card, so no feedback either.
    would_fire: int = 0
    # Calls in which one of the rule's cards was snoozed by an earlier override: not shown.
    snoozed: int = 0
    cards: int
    patients: int
    accepted: int
    overridden: int
    # Distinct cards with no feedback at all (neither accepted nor overridden).
    no_response: int
    top_override_reasons: list[OverrideReasonCount] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def feedback(self) -> int:
        """Feedback items received on this rule's cards: the rates' denominator."""
        return self.accepted + self.overridden

    @computed_field  # type: ignore[prop-decorator]
    @property
    def acceptance_rate(self) -> float | None:
        """Share of the feedback received that accepted (None without feedback)."""
        return self.accepted / self.feedback if self.feedback else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def override_rate(self) -> float | None:
        """Share of the feedback received that overrode (None without feedback)."""
        return self.overridden / self.feedback if self.feedback else None


class RuleReport(_Frozen):
    """Per rule: cards shown by the calls received in [start, end), and the feedback on them."""

    service_id: str | None
    start: AwareDatetime
    end: AwareDatetime
    rules: list[RuleStats]
    unmatched_feedback: int = 0


class WeekStats(_Frozen):
    """One ISO week of a weekly report, cut at the report's bounds: each rule's counts for the
    calls received in [start, end); a card and its feedback count in the week it was first shown
    in (within the report's period), so the weeks add up to the period."""

    week: str  # ISO 8601 week date of start, e.g. "2026-W23"
    start: AwareDatetime
    end: AwareDatetime
    rules: list[RuleStats]


class WeeklyReport(RuleReport):
    """The report for the period, and the same counts per ISO week of it."""

    weeks: list[WeekStats]


@overload
def patient_hash(key: Settings | SecretStr | str | bytes, patient_id: str) -> str: ...
@overload
def patient_hash(key: Settings | SecretStr | str | bytes, patient_id: None) -> None: ...
def patient_hash(key: Settings | SecretStr | str | bytes, patient_id: str | None) -> str | None:
    """HMAC-SHA256 of the patient id: repeat views can be counted, the id cannot be recovered."""
    if patient_id is None:
        return None
    if isinstance(key, Settings):
        key = key.patient_hash_key
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode()
    digest = _keyed_hmac(key).copy()
    digest.update(patient_id.encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    # Every hook call hashes one id under the same key: copying a keyed HMAC skips the key
    # schedule that hmac.new repeats.
    return hmac.new(key, digestmod=hashlib.sha256)
