"""bench.paired: two apps in two processes take turns on rounds of real calls, and each pair of
rounds is compared by its own ratio."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import orjson
import pytest

from bench import paired
from bench.http import Signer
from bench.paired import Side, measure, paired_summary, report, side


def test_the_summary_is_the_median_of_each_pairs_own_ratio() -> None:
    # The second side is dearer in two pairs of three; the medians of each side alone (2.0 and
    # 3.0) would say 1.5x, the pairs' own ratios say 2x.
    summary = paired_summary([1.0, 2.0, 4.0], [2.0, 3.0, 1.0])
    assert summary["ratio"] == 1.5
    summary = paired_summary([1.0, 2.0, 4.0, 1.0], [2.0, 4.0, 1.0, 3.0])
    assert summary["ratio"] == 2.0
    assert summary["first_ms"] == 1.5
    assert summary["second_ms"] == 2.5
    assert summary["second_cheaper"] == 1
    assert summary["pairs"] == 4
    low, high = summary["ratio_middle_half"]
    assert low <= summary["ratio"] <= high


def test_one_pair_is_its_own_middle_half() -> None:
    assert paired_summary([2.0], [1.0])["ratio_middle_half"] == [0.5, 0.5]


@pytest.mark.parametrize(("first", "second"), [([], []), ([1.0], [1.0, 2.0])])
def test_a_summary_needs_as_many_rounds_of_each_side(
    first: list[float], second: list[float]
) -> None:
    with pytest.raises(ValueError, match="as many rounds"):
        paired_summary(first, second)


def test_a_side_is_the_floor_the_service_or_the_service_at_a_commit() -> None:
    assert side("floor") == Side("floor")
    assert side("service") == Side("service")
    assert side("service@main") == Side("service", "main")
    assert str(side("service@a1b2c3")) == "service@a1b2c3"
    for wrong in ("floor@main", "service@", "server", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="not a side"):
            side(wrong)


def test_the_floor_and_the_service_take_turns_on_real_calls() -> None:
    payload = measure([Side("floor"), Side("service")], ["small"], pairs=2, calls=10)
    small = payload["shapes"]["small"]
    assert small["pairs"] == 2
    assert all(a > 0 and b > 0 for a, b in small["rounds"])
    # The floor verifies and parses; the service also evaluates, and answers its four cards.
    assert small["ratio"] > 1
    assert payload["cards"] == {"floor": 0, "service": 4}
    assert payload["commits"] == {}
    assert "small" in report(payload)


def _head() -> str:
    return subprocess.run(
        ["git", "-C", str(paired.ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_commit_runs_from_its_own_checkout_which_is_removed_afterwards(tmp_path: Path) -> None:
    keys = tmp_path / "jwks.json"
    keys.write_bytes(orjson.dumps(Signer("RS384").jwks()))
    with paired.running(Side("service", "HEAD"), tmp_path, keys) as worker:
        assert worker.commit == _head()
        assert worker.source == tmp_path / "tree" / "cds"
    assert not (tmp_path / "tree").exists()
    listed = subprocess.run(
        ["git", "-C", str(paired.ROOT), "worktree", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(tmp_path / "tree") not in listed


def test_this_tree_runs_as_it_is() -> None:
    payload = measure([Side("service", "HEAD"), Side("service")], ["small"], 1, calls=5)
    assert payload["commits"] == {"service@HEAD": _head()}
    assert payload["cards"] == {"service@HEAD": 4, "service": 4}


def test_a_commit_that_does_not_exist_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="cannot check out 'no-such-commit'"):
        measure([Side("service", "no-such-commit"), Side("service")], ["small"], 1, calls=5)


def test_a_worker_that_stops_shows_its_log(tmp_path: Path) -> None:
    keys = tmp_path / "missing-jwks.json"
    # The service refuses to start without its issuer's keys, and says so in its log.
    with pytest.raises(RuntimeError, match=r"service stopped \(1\)(?s:.*)no such JWKS file"):
        paired.Worker(Side("service"), paired.ROOT, keys, tmp_path / "worker.log")
