"""bench.instructions counts what a call costs under valgrind, the service against the floor.

The end-to-end run is slow (each app starts under valgrind, about a minute), so it counts
twenty small calls only: enough to show the tool works and its numbers hang together."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from bench import instructions, results
from tests.real_parts import require_valgrind, under_valgrind


def test_a_cachegrind_files_totals_are_read_by_event(tmp_path: Path) -> None:
    out = tmp_path / "cachegrind.out"
    totals = instructions.summary(under_valgrind(instructions.cachegrind(out), out, "pass"))
    assert {"Ir", "I1mr", "D1mr", "D1mw"} <= set(totals)
    assert totals["Ir"] > totals["I1mr"] > 0


def test_a_file_without_events_and_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="not a cachegrind output file"):
        instructions.summary("desc: a text file\n")
    with pytest.raises(ValueError, match="not a cachegrind output file"):
        instructions.summary("events: Ir I1mr\nsummary: 10\n")


def test_per_call_is_the_difference_between_the_runs_over_the_extra_calls() -> None:
    low = {"Ir": 1_000, "I1mr": 10, "ILmr": 1, "D1mr": 20, "D1mw": 5, "DLmr": 2, "DLmw": 1}
    high = {"Ir": 4_000, "I1mr": 40, "ILmr": 4, "D1mr": 50, "D1mw": 35, "DLmr": 5, "DLmw": 7}
    assert instructions.per_call(low, high, 3) == {
        "instructions": 1_000,
        "i1_misses": 10,
        "d1_misses": 20,
    }
    with pytest.raises(ValueError, match="more calls"):
        instructions.per_call(low, high, 0)


def test_a_run_with_more_calls_that_counts_less_is_refused_rather_than_divided() -> None:
    low = {"Ir": 1_000, "I1mr": 50, "D1mr": 20, "D1mw": 5}
    high = {"Ir": 4_000, "I1mr": 40, "D1mr": 50, "D1mw": 35}
    with pytest.raises(ValueError, match=r"counted no more i1_misses: .* count more calls"):
        instructions.per_call(low, high, 3)


@pytest.fixture
def run_as_on_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a real run under valgrind writes its results, the run set up as CI runs it."""
    require_valgrind()
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    # As on CI, whatever the shell here says: .pyc files written is how a pair of runs once
    # came to count different work.
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    return tmp_path


def test_the_service_and_the_floor_are_counted_per_call_with_their_ratios(
    run_as_on_ci: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert instructions.main(["--shapes", "small", "--calls", "5", "25", "--jobs", "2"]) == 0
    [written] = run_as_on_ci.glob("instructions-against-floor-*.json")
    row = orjson.loads(written.read_bytes())["shapes"]["small"]
    floor, service = row["floor"], row["service"]
    assert floor["calls"] == service["calls"] == [5, 25]
    # A call verifies an RS384 token and parses 56 KiB at least: millions of instructions.
    assert 1_000_000 < floor["instructions"] < service["instructions"]
    assert service["i1_misses"] > floor["i1_misses"] > 0
    assert row["ratio"]["instructions"] == round(service["instructions"] / floor["instructions"], 2)
    assert "small" in capsys.readouterr().out


def test_a_pair_of_runs_that_did_different_work_ends_the_tool_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def unequal_pair(*_: object) -> dict[str, object]:
        return {
            "shapes": {
                "small": {
                    "floor": instructions.per_call(
                        {"Ir": 10, "I1mr": 9, "D1mr": 1, "D1mw": 1},
                        {"Ir": 20, "I1mr": 3, "D1mr": 2, "D1mw": 2},
                        2,
                    )
                }
            }
        }

    # Real runs that differ like this cannot be had on demand: the pair's totals stand in for
    # them, and per_call judges them as it judges real ones.
    monkeypatch.setattr(shutil, "which", lambda _: "/usr/bin/valgrind")
    monkeypatch.setattr(instructions, "measure", unequal_pair)
    assert instructions.main(["--shapes", "small"]) == 1
    error = capsys.readouterr().err
    assert "counted no more i1_misses" in error
    assert "count more calls" in error


def test_per_call_by_library_is_each_librarys_difference_over_the_extra_calls() -> None:
    low = {"libpython3.11.so.1.0": 1_000, "orjson": 300, "libc.so.6": 50, "python/_json": 9}
    high = {"libpython3.11.so.1.0": 7_000, "orjson": 600, "libc.so.6": 47, "libsqlite3.so.0": 30}
    # Largest first; a library the calls ran nothing in is left out, and one that counted a
    # little less in the longer run (its start differed) stays, below zero.
    assert list(instructions.per_call_by_library(low, high, 3).items()) == [
        ("libpython3.11.so.1.0", 2_000),
        ("orjson", 100),
        ("libsqlite3.so.0", 10),
        ("libc.so.6", -1),
        ("python/_json", -3),
    ]


def test_a_pair_by_library_whose_longer_run_counted_no_more_is_refused() -> None:
    low = {"libpython3.11.so.1.0": 7_000, "orjson": 600}
    high = {"libpython3.11.so.1.0": 6_000, "orjson": 1_500}
    with pytest.raises(ValueError, match=r"counted no more instructions: .* count more calls"):
        instructions.per_call_by_library(low, high, 3)
    with pytest.raises(ValueError, match="more calls than the low one"):
        instructions.per_call_by_library(low, low, 0)


def test_the_report_by_library_names_the_largest_of_each_app_and_sums_the_rest() -> None:
    floor = {"libpython3.11.so.1.0": 1_600_000, "orjson": 720_000, "tiny": 400}
    service = {"libpython3.11.so.1.0": 5_300_000, "msgspec/_core": 9_000, "orjson": 900_000}
    shown = instructions.report_by_library(
        {
            "shapes": {
                "small": {
                    "floor": {"calls": [5, 25], "libraries": floor},
                    "service": {"calls": [5, 25], "libraries": service},
                }
            }
        },
        top=2,
    )
    lines = [line.split() for line in shown.splitlines()]
    assert lines[2] == ["libpython3.11.so.1.0", "1,600", "5,300"]
    assert lines[3] == ["orjson", "720", "900"]
    # The service's third and the floor's below a thousand are summed, not named.
    assert lines[4] == ["everything", "else", "0", "9"]
    assert lines[5] == ["total", "2,320", "6,209"]


def test_by_library_the_service_and_the_floor_are_counted_per_call(
    run_as_on_ci: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--by-library", "--shapes", "small", "--calls", "5", "25", "--jobs", "2"]
    assert instructions.main(argv) == 0
    [written] = run_as_on_ci.glob("instructions-by-library-*.json")
    row = orjson.loads(written.read_bytes())["shapes"]["small"]
    floor, service = row["floor"]["libraries"], row["service"]["libraries"]
    assert row["floor"]["calls"] == row["service"]["calls"] == [5, 25]
    # Both parse the body with orjson; the service runs more of everything else.
    assert floor["orjson"] > 0
    assert service["orjson"] > 0
    assert 1_000_000 < sum(floor.values()) < sum(service.values())
    shown = capsys.readouterr().out
    assert "small: library" in shown
    assert "total" in shown


def test_without_valgrind_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "")
    assert instructions.main(["--shapes", "small"]) == 2
    assert "apt-get install valgrind" in capsys.readouterr().err
