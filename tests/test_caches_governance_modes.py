"""The app's caches decide a rule's governance mode once per rule and day: always what the
catalogue's records and site settings say, on each day around an effective period's edges, past
the days remembered, and never written into the catalogue (which other apps may share)."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import date, timedelta

from cds.caches import EvaluationCaches
from cds.catalogue import Catalogue
from cds.governance.records import Governance
from cds.governance.schema import RuleGovernance
from tests.test_governance import _record

START, END = date(2026, 12, 6), date(2026, 12, 8)


def _caches(catalogue: Catalogue, **site: object) -> EvaluationCaches:
    records = {
        "RB-01": RuleGovernance.model_validate(
            _record(effective={"start": START.isoformat(), "end": END.isoformat()})
        ),
        "RB-02": RuleGovernance.model_validate(_record(id="RB-02", status="draft")),
    }
    governance = Governance(records, {rid: f"rules/governance/{rid}.yaml" for rid in records})
    return EvaluationCaches.for_catalogue(
        replace(catalogue, governance=replace(governance, **site))  # type: ignore[arg-type]
    )


def test_each_day_gets_its_rules_modes_in_any_order_and_again_after_many_days(
    catalogue: Catalogue,
) -> None:
    caches = _caches(catalogue)
    days = [START + timedelta(days=d) for d in (-1, 0, 2, 3, 1, -1, 3, 0, 10, 20, 30, 40, 0)]
    for day in days:
        assert caches.mode("RB-01", day) == ("on" if START <= day <= END else "off"), day
        assert caches.mode("RB-02", day) == "shadow"
        assert caches.mode("XX-99", day) == "off"
        for rule_id in ("RB-01", "RB-02", "XX-99"):
            assert caches.mode(rule_id, day) == caches.catalogue.governance.mode(rule_id, day)


def test_the_site_settings_of_the_catalogue_count_and_the_catalogue_is_only_read(
    catalogue: Catalogue,
) -> None:
    caches = _caches(catalogue, site_modes={"RB-01": "shadow"})
    before = pickle.dumps(caches.catalogue.governance)
    assert caches.mode("RB-01", START) == "shadow"
    assert caches.mode("RB-01", START - timedelta(days=1)) == "off"
    assert pickle.dumps(caches.catalogue.governance) == before
    caches.clear()
    assert caches.mode("RB-01", START) == "shadow"


def test_a_days_modes_hold_only_the_rules_decided_that_day_and_each_is_what_mode_decided(
    catalogue: Catalogue,
) -> None:
    caches = _caches(catalogue)
    assert caches.modes(START) == {}
    for day in (START - timedelta(days=1), START, END + timedelta(days=1)):
        decided = {rule_id: caches.mode(rule_id, day) for rule_id in ("RB-01", "XX-99")}
        assert caches.modes(day) == decided
        assert "RB-02" not in caches.modes(day)


def test_a_days_modes_looked_up_before_the_days_remembered_run_out_stay_that_days(
    catalogue: Catalogue,
) -> None:
    caches = _caches(catalogue)
    held = caches.modes(START)
    for later in range(1, 10):
        caches.mode("RB-01", START + timedelta(days=later))
    assert caches.mode("RB-01", START) == "on"
    assert caches.modes(START).get("RB-01") == "on"
    assert all(held.get(rule_id, mode) == mode for rule_id, mode in caches.modes(START).items())
