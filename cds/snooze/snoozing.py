"""Which of a hook call's cards are snoozed, and the snoozes a feedback post sets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Final, Protocol, TypeVar

from cds.cards.render import override_system
from cds.catalogue import Catalogue
from cds.errors import StoreUnavailable
from cds.governance import Governance
from cds.logs import log_fields
from cds.snooze.reasons import snoozing_reasons
from cds.store import Store
from cds.store.models import FeedbackItem
from cds.store.snoozes import NewSnooze, SnoozeStore, StoredSnooze

log = logging.getLogger("cds.snooze")

# A lookup that takes longer than this is given up and the call's cards are shown: a slow
# database must never hold a clinician's cards back, nor hide one.
LOOKUP_SECONDS: Final = 1.0
# Expired snoozes are purged at most this often per process, after feedback that sets some.
PURGE_INTERVAL_SECONDS: Final = 600.0


class CardShown(Protocol):
    """What the lookup needs of a card the call would show (the engine's ``IssuedCard``)."""

    @property
    def card_uuid(self) -> str: ...
    @property
    def rule_id(self) -> str: ...


C = TypeVar("C", bound=CardShown)


class Snoozing:
    """Snoozes for one app: the rules' snoozing reasons and periods, over the shared table.

    A snooze ends at the earlier of the end it was given (the override's time plus the period
    in force then) and the override's time plus the period in force now: a period shortened
    later (by the site) ends running snoozes sooner, and a longer one never extends them.
    """

    def __init__(
        self,
        store: SnoozeStore,
        reasons: Mapping[str, frozenset[str]],
        governance: Governance,
        reason_system: str,
    ) -> None:
        self._store = store
        self.reasons = reasons  # rule id -> the override codes that snooze its cards
        self._governance = governance
        self._reason_system = reason_system
        self._next_purge = 0.0

    @classmethod
    def for_catalogue(cls, store: Store, catalogue: Catalogue) -> Snoozing:
        """The catalogue's snoozing reasons and its governance's periods, over ``store``."""
        return cls(
            SnoozeStore(store),
            snoozing_reasons(catalogue.rules, catalogue.cards),
            catalogue.governance,
            override_system(catalogue.topic_system),
        )

    async def close(self) -> None:
        await self._store.close()

    def candidates(self, cards: Sequence[C]) -> list[C]:
        """The cards that could be snoozed: those of rules with a snoozing reason."""
        return [card for card in cards if card.rule_id in self.reasons]

    async def hidden(
        self, service_id: str, patient_hash: str, cards: Collection[CardShown], now: datetime
    ) -> set[str]:
        """The uuids of ``cards`` snoozed at ``now``: one indexed query, none for no card.

        Fails open: with the database unreachable or slow, every card is shown."""
        if not cards or self._store.down:
            return set()  # a known outage: no 5 s wait for a connection on every call
        uuids = {card.card_uuid for card in cards}
        # A lookup read on the loop's own thread (a SQLite file) cannot be interrupted by a
        # timer, and would only pay for setting and cancelling one.
        limit = nullcontext() if self._store.on_the_loop else asyncio.timeout(LOOKUP_SECONDS)
        try:
            async with limit:
                stored = await self._store.active(patient_hash, service_id, uuids, now)
        except (StoreUnavailable, TimeoutError):
            return set()  # the store's outage watch logs and counts the outage
        except Exception as exc:
            log.error(  # noqa: TRY400 - the type is what helps; the frames may quote rows
                "snooze lookup failed; the call's cards are shown",
                extra=log_fields(service=service_id, error_type=type(exc).__name__),
            )
            return set()
        return {snooze.card_uuid for snooze in stored if now < self.ends(snooze)}

    def ends(self, snooze: StoredSnooze) -> datetime:
        """When ``snooze`` ends under the period in force now (see the class)."""
        return min(snooze.expires_at, snooze.snoozed_at + self._period(snooze.rule_id))

    def _period(self, rule_id: str) -> timedelta:
        # A rule gone from the catalogue snoozes nothing any more.
        if rule_id not in self._governance.records:
            return timedelta(0)
        return self._governance.snooze_period(rule_id)

    async def record(
        self, service_id: str, items: Sequence[FeedbackItem], received_at: datetime
    ) -> int:
        """Snooze each card the feedback overrode with one of its rule's snoozing reasons; how
        many cards were snoozed. Feedback on a card the service did not issue (or issued before
        snoozes existed, with no patient hash) snoozes nothing."""
        overrides = [item for item in items if self._may_snooze(item)]
        if not overrides:
            return 0
        issued = await self._store.issued_to(service_id, {item.card for item in overrides})
        new: dict[tuple[str, str], NewSnooze] = {}
        for item in overrides:
            card, code = issued.get(item.card), item.override_code
            if card is None or card.patient_hash is None or code is None:
                continue
            if code not in self.reasons.get(card.rule_id, ()):
                continue
            # The override's own time, but never later than we received it.
            at = min(item.outcome_timestamp, received_at)
            ends = at + self._governance.snooze_period(card.rule_id)
            earlier = new.get((card.patient_hash, item.card))
            if ends <= received_at or (earlier is not None and earlier.snoozed_at >= at):
                continue
            new[card.patient_hash, item.card] = NewSnooze(
                patient_hash=card.patient_hash,
                service_id=service_id,
                card_uuid=item.card,
                rule_id=card.rule_id,
                override_code=code,
                snoozed_at=at,
                expires_at=ends,
            )
        await self._store.snooze(list(new.values()))
        await self._purge(received_at)
        return len(new)

    def _may_snooze(self, item: FeedbackItem) -> bool:
        # A reason of another code system is not one our cards offered.
        return (
            item.outcome == "overridden"
            and item.override_code is not None
            and item.override_system in (None, self._reason_system)
        )

    async def _purge(self, now: datetime) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + PURGE_INTERVAL_SECONDS
        await self._store.purge_expired(now)
