"""What the dashboard shows, read from one ``WeeklyReport`` (what ``cds report --json --by week``
prints): per rule and version, the period's counts and the same counts per ISO week, every week
of the period present (a week whose calls never named the rule counts zero)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cds.dashboard.charts import Category, Series
from cds.store import RuleStats, WeeklyReport

# Colours from the Okabe-Ito palette (told apart with the common colour-vision deficiencies);
# the patterns and labels carry the meaning on their own.
SERIES = (
    Series("times_shown", "shown", "#0072B2", "solid"),
    Series("would_fire", "would fire (shadow)", "#E69F00", "hatch"),
    Series("snoozed", "snoozed", "#CC79A7", "lines"),
    Series("accepted", "accepted", "#009E73", "dots"),
    Series("overridden", "overridden", "#D55E00", "cross"),
)
ACCEPTANCE = Series("acceptance_rate", "acceptance rate", "#009E73", "solid")
OVERRIDES = Series("count", "overrides", "#D55E00", "cross")

# (RuleStats field, heading): the report's counts, in the order its table shows them.
COLUMNS = (
    ("times_shown", "Shown"),
    ("would_fire", "Would fire"),
    ("snoozed", "Snoozed"),
    ("cards", "Cards"),
    ("patients", "Patients"),
    ("no_response", "No response"),
    ("accepted", "Accepted"),
    ("overridden", "Overridden"),
)


@dataclass(frozen=True)
class Week:
    """One ISO week of the period, cut at the period's bounds."""

    key: str  # "2026-W23"
    start: datetime
    end: datetime

    @property
    def category(self) -> Category:
        return Category(self.key, self.key.partition("-")[2], f"{self.start:%d %b}".lstrip("0"))


@dataclass(frozen=True)
class RuleFigures:
    """One version of one rule: its counts for the period and for each week."""

    period: RuleStats
    weekly: tuple[RuleStats | None, ...]  # None: no call that week named the rule

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.period.service_id, self.period.rule_id, self.period.rule_version)

    @property
    def anchor(self) -> str:
        """An id for the rule's section, unique per service, rule and version."""
        parts = (*self.key[:2], f"v{self.key[2]}" if self.key[2] else "unversioned")
        return "--".join("".join(c if c.isalnum() or c in "._-" else "_" for c in p) for p in parts)

    @property
    def version(self) -> str:
        return self.period.rule_version or "unversioned"

    def count(self, field: str, week: int) -> int:
        stats = self.weekly[week]
        return int(getattr(stats, field)) if stats is not None else 0

    def feedback(self, week: int) -> tuple[int, int]:
        """(accepted, accepted + overridden) for the week: its acceptance rate's terms."""
        stats = self.weekly[week]
        return (stats.accepted, stats.feedback) if stats is not None else (0, 0)


@dataclass(frozen=True)
class Figures:
    report: WeeklyReport
    weeks: tuple[Week, ...]
    rules: tuple[RuleFigures, ...]


def figures(report: WeeklyReport) -> Figures:
    """The dashboard's figures for ``report``; every number is one of the report's."""
    weeks = tuple(Week(w.week, w.start, w.end) for w in report.weeks)
    by_week: dict[tuple[str, str, str | None], list[RuleStats | None]] = {}
    for stats in report.rules:
        by_week[stats.service_id, stats.rule_id, stats.rule_version] = [None] * len(weeks)
    for w, week in enumerate(report.weeks):
        for stats in week.rules:
            by_week[stats.service_id, stats.rule_id, stats.rule_version][w] = stats
    rules = tuple(
        RuleFigures(
            period=stats, weekly=tuple(by_week[stats.service_id, stats.rule_id, stats.rule_version])
        )
        for stats in report.rules
    )
    return Figures(report=report, weeks=weeks, rules=rules)
