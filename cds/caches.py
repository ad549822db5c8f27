"""What one app keeps between hook calls for evaluation, owned by the app and passed in.

Evaluation (``cds.engine.evaluate``) writes nothing anywhere else: no module of ``cds`` holds
a memo, and the catalogue (which several apps may share) is only read. Two apps never share
what they remember, and a test starts clean with a new app or a new ``EvaluationCaches``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

from cds.cards.evidence_memo import MAX_LINES, EvidenceLines
from cds.cards.prepared import PreparedCard, prepare_card
from cds.cards.render import CardFrame, card_frame
from cds.catalogue import Catalogue, ServiceDefinition
from cds.fhir import DEFAULT_MEMO_ENTRIES, ValidationMemo
from cds.governance.schema import Mode
from cds.record.entry_memo import MAX_ENTRIES as ENTRY_MEMO_ENTRIES
from cds.record.entry_memo import EntryMemo
from cds.record.matching import MatchMemo
from cds.rules import RuleSpec
from cds.rules.compiled import CompiledTrees
from cds.settings import DEFAULT_PUBLIC_BASE_URL
from cds.transparency.addresses import rule_page_url

# Days whose modes are remembered: the real day (and the next, at midnight); a fixed clock, as
# the demo's, asks for its own.
_DAYS_REMEMBERED = 4


@dataclass(frozen=True, eq=False)
class EvaluationCaches:
    """The memos and the prebuilt card frames one app's evaluations read and write.

    ``validation`` remembers validation outcomes by content (bounded by
    CDS_VALIDATION_MEMO_SIZE); ``matching`` remembers the value sets of codes, words and
    concepts (bounded); ``entries`` the record entry each matched resource made, by content
    (no more than ``validation``, off with it), and ``lines`` each such entry's evidence bullet
    on a card (as many, off with it); the card frames and the rules' compiled trees
    (``trees``) are built once here, for every rule of the catalogue, and only read after; so
    are the cards prepared in wire form from the frames (``card``).
    """

    catalogue: Catalogue
    validation: ValidationMemo
    matching: MatchMemo
    entries: EntryMemo
    _frames: Mapping[str, tuple[RuleSpec, CardFrame]]
    trees: CompiledTrees
    # Each rule's cards prepared in wire form (cds.cards.prepared); a rule missing here (or
    # whose template the wire models would refuse) renders through the models.
    _cards: Mapping[str, PreparedCard | None]
    lines: EvidenceLines
    # day -> rule id -> the catalogue's Governance.mode for them: a call asks for each rule of
    # its service, on the day of the calls before it or the next.
    _modes: dict[date, dict[str, Mode]] = field(default_factory=dict, init=False, repr=False)
    # service id -> (the service, the record's resource types it never fetches): the same for
    # every call to it (see ``unfetched``).
    _unfetched: dict[str, tuple[ServiceDefinition, frozenset[str]]] = field(
        default_factory=dict, init=False, repr=False
    )

    @classmethod
    def for_catalogue(
        cls,
        catalogue: Catalogue,
        validation_entries: int = DEFAULT_MEMO_ENTRIES,
        *,
        public_base_url: str = DEFAULT_PUBLIC_BASE_URL,
    ) -> EvaluationCaches:
        """Empty memos and every rule's card frame, for ``catalogue``; each card links to its
        rule's page under ``public_base_url`` (the app's CDS_PUBLIC_BASE_URL)."""
        frames = {
            key: (
                rule,
                card_frame(
                    catalogue.cards[rule.card],
                    rule.id,
                    rule.name,
                    catalogue.topic_system,
                    rule_page_url(public_base_url, rule.id),
                ),
            )
            for key, rule in catalogue.rules.items()
        }
        cards = {
            key: prepare_card(catalogue.cards[rule.card], frame, catalogue.valuesets)
            for key, (rule, frame) in frames.items()
        }
        return cls(
            catalogue,
            ValidationMemo(validation_entries),
            MatchMemo(catalogue.valuesets),
            EntryMemo(catalogue.valuesets, min(validation_entries, ENTRY_MEMO_ENTRIES)),
            MappingProxyType(frames),
            CompiledTrees(catalogue.rules.values()),
            MappingProxyType(cards),
            EvidenceLines(min(validation_entries, MAX_LINES)),
        )

    def frame(self, rule: RuleSpec) -> CardFrame | None:
        """The prebuilt frame of ``rule``'s cards; None for a rule the catalogue does not hold
        (a test's variant), whose frame the renderer builds for itself."""
        found = self._frames.get(rule.key)
        return found[1] if found is not None and found[0] is rule else None

    def card(self, rule: RuleSpec) -> PreparedCard | None:
        """``rule``'s cards prepared in wire form; None for a rule the catalogue does not hold,
        or one to render through the wire models."""
        if self.frame(rule) is None:
            return None
        return self._cards.get(rule.key)

    def modes(self, day: date) -> Mapping[str, Mode]:
        """The modes of ``day`` decided so far (by ``mode``), by rule id: a call looks each of
        its rules up here first, and asks ``mode`` only for one not yet decided. A day's
        mapping is only ever added to, so a rule found in it is ``mode(rule_id, day)``."""
        return self._day(day)

    def mode(self, rule_id: str, day: date) -> Mode:
        """``catalogue.governance.mode(rule_id, day)``, decided once per rule and day (a pure
        function of the catalogue's records and site settings, which are only read)."""
        modes = self._day(day)
        mode = modes.get(rule_id)
        if mode is None:
            mode = modes[rule_id] = self.catalogue.governance.mode(rule_id, day)
        return mode

    def _day(self, day: date) -> dict[str, Mode]:
        modes = self._modes.get(day)
        if modes is None:
            if len(self._modes) >= _DAYS_REMEMBERED:
                self._modes.clear()
            modes = self._modes[day] = {}
        return modes

    def unfetched(
        self, service: ServiceDefinition, types: Callable[[ServiceDefinition], frozenset[str]]
    ) -> frozenset[str]:
        """``types(service)``, the resource types ``service`` never fetches, decided once per
        service (a pure function of its prefetch templates, which are only read)."""
        known = self._unfetched.get(service.id)
        if known is None or known[0] is not service:
            known = self._unfetched[service.id] = (service, types(service))
        return known[1]

    def clear(self) -> None:
        """Forget everything remembered (the card frames are not memory: they stay)."""
        self.validation.clear()
        self.matching.clear()
        self.entries.clear()
        self.lines.clear()
        self._modes.clear()
