"""The weekly breakdown the dashboard draws: the report's counts per ISO week, from the same
queries as the period's, adding up to them; `cds report --by week` prints it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from cds.migrations import upgrade
from cds.report import check_weekly, render_table
from cds.settings import Settings
from cds.store import RuleStats, Store
from cds.store.rule_report import MAX_WEEKS, week_edges
from tests import feedback_weeks as fw


def _counts(stats: RuleStats) -> dict[str, int]:
    return {key: getattr(stats, key) for key in fw.PERIOD["RB-02", "2.0.0"]}


@pytest.fixture
async def filled(store: Store) -> Store:
    await fw.fill(store)
    return store


def test_the_weeks_of_a_period_are_its_iso_weeks_cut_at_its_bounds() -> None:
    start = datetime(2026, 3, 4, 12, tzinfo=UTC)  # a Wednesday noon, 2026-W10
    end = datetime(2026, 3, 17, 6, tzinfo=UTC)  # a Tuesday morning, 2026-W12
    assert week_edges(start, end) == [
        start,
        datetime(2026, 3, 9, tzinfo=UTC),
        datetime(2026, 3, 16, tzinfo=UTC),
        end,
    ]


def test_a_period_inside_one_week_is_one_week() -> None:
    start, end = datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)
    assert week_edges(start, end) == [start, end]
    assert week_edges(fw.START, datetime(2026, 3, 9, tzinfo=UTC)) == [
        fw.START,
        datetime(2026, 3, 9, tzinfo=UTC),
    ]


def test_a_period_of_more_than_a_year_of_weeks_is_refused_by_week() -> None:
    start = datetime(2025, 1, 6, tzinfo=UTC)
    assert len(week_edges(start, datetime(2026, 1, 5, tzinfo=UTC))) == 53
    with pytest.raises(ValueError, match=f"at most {MAX_WEEKS} ISO weeks"):
        check_weekly(start, datetime(2026, 1, 13, tzinfo=UTC))


@pytest.mark.anyio
async def test_each_week_counts_its_calls_and_the_cards_first_shown_in_it(filled: Store) -> None:
    report = await filled.weekly_rule_report(None, fw.START, fw.END)
    assert [w.week for w in report.weeks] == fw.WEEKS
    assert [(w.start, w.end) for w in report.weeks] == [
        (fw.START, datetime(2026, 3, 9, tzinfo=UTC)),
        (datetime(2026, 3, 9, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC)),
        (datetime(2026, 3, 16, tzinfo=UTC), fw.END),
    ]
    weekly = {
        w.week: {(s.rule_id, s.rule_version): _counts(s) for s in w.rules} for w in report.weeks
    }
    assert weekly == fw.WEEKLY


@pytest.mark.anyio
async def test_the_weekly_report_holds_the_period_report_unchanged(filled: Store) -> None:
    period = await filled.rule_report(None, fw.START, fw.END)
    weekly = await filled.weekly_rule_report(None, fw.START, fw.END)
    assert weekly.rules == period.rules
    assert weekly.unmatched_feedback == period.unmatched_feedback == fw.UNMATCHED_FEEDBACK
    assert {(s.rule_id, s.rule_version): _counts(s) for s in period.rules} == fw.PERIOD
    reasons = {
        (s.rule_id, s.rule_version): [(r.code, r.display, r.count) for r in s.top_override_reasons]
        for s in period.rules
    }
    assert reasons == fw.REASONS


@pytest.mark.anyio
async def test_the_weeks_add_up_to_the_period_but_for_patients(filled: Store) -> None:
    report = await filled.weekly_rule_report(None, fw.START, fw.END)
    for stats in report.rules:
        key = (stats.service_id, stats.rule_id, stats.rule_version)
        weeks = [
            s
            for w in report.weeks
            for s in w.rules
            if (s.service_id, s.rule_id, s.rule_version) == key
        ]
        for field in (
            "times_shown",
            "would_fire",
            "cards",
            "no_response",
            "accepted",
            "overridden",
        ):
            assert sum(getattr(s, field) for s in weeks) == getattr(stats, field), (key, field)
        reasons = sum(r.count for s in weeks for r in s.top_override_reasons)
        assert reasons == sum(r.count for r in stats.top_override_reasons)


@pytest.mark.anyio
async def test_one_service_s_weekly_report_leaves_the_others_out(filled: Store) -> None:
    report = await filled.weekly_rule_report("foot-to-back", fw.START, fw.END)
    assert report.rules == []
    assert [w.rules for w in report.weeks] == [[], [], []]


def _cds_report(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    env["CDS_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "cds.cli", "report", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cds_report_json(settings: Settings, *args: str) -> dict[str, Any]:
    """What `cds report --json ARGS` prints for the store at ``settings``."""
    done = _cds_report(settings, "--json", *args)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.anyio
async def test_cds_report_by_week_prints_the_weekly_report_as_json(
    filled: Store, store_settings: Settings
) -> None:
    expected = await filled.weekly_rule_report(None, fw.START, fw.END)
    printed = cds_report_json(
        store_settings, "--by", "week", "--since", fw.SINCE, "--until", fw.UNTIL
    )
    assert printed == expected.model_dump(mode="json")
    assert [w["week"] for w in printed["weeks"]] == fw.WEEKS
    without = cds_report_json(store_settings, "--since", fw.SINCE, "--until", fw.UNTIL)
    assert "weeks" not in without
    assert without == {k: v for k, v in printed.items() if k != "weeks"}


@pytest.mark.anyio
async def test_the_weekly_table_has_one_line_per_week_and_rule(filled: Store) -> None:
    table = render_table(await filled.weekly_rule_report(None, fw.START, fw.END))
    lines = table.splitlines()
    start = lines.index("Per ISO week (UTC; the first and last cut at the period's bounds):")
    header = re.split(r"\s{2,}", lines[start + 2])
    assert header[:4] == ["week", "service", "rule", "version"]
    rows = [
        dict(zip(header, re.split(r"\s{2,}", line), strict=True))
        for line in lines[start + 4 :]
        if line.startswith("2026-W")
    ]
    assert [(r["week"], r["rule"], r["version"]) for r in rows] == [
        (week, rule, version) for week in fw.WEEKS for rule, version in sorted(fw.WEEKLY[week])
    ]
    w11 = next(
        r for r in rows if (r["week"], r["rule"], r["version"]) == ("2026-W11", "RB-01", "1.0.0")
    )
    assert (w11["shown"], w11["cards"], w11["patients"], w11["accept rate"]) == (
        "1",
        "0",
        "1",
        "\u2013",
    )


@pytest.mark.anyio
async def test_cds_report_refuses_a_period_too_long_to_break_down_by_week(
    store_settings: Settings,
) -> None:
    await upgrade(store_settings)
    done = _cds_report(
        store_settings, "--by", "week", "--since", "2024-01-01", "--until", "2025-12-31"
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"cds report: error: A period broken down by week spans at most {MAX_WEEKS} ISO weeks; "
        "choose a shorter one.\n"
    )
