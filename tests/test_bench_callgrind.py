"""bench.callgrind reads a callgrind output file into instructions by the library that ran them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import callgrind
from tests.real_parts import under_valgrind

# Two objects, names defined once and used by id after, a call whose inclusive cost line
# (after calls=) is the callee's own already, and relative positions (+n, -n, *).
ONE_POSITION = """\
# callgrind format
version: 1
positions: line
events: Ir
summary: 175

ob=(1) /opt/python/lib/libpython3.11.so.1.0
fl=(1) Python/ceval.c
fn=(1) _PyEval_EvalFrameDefault
10 100
+2 20
cob=(2) /srv/venv/lib/python3.11/site-packages/orjson/orjson.cpython-311-x86_64-linux-gnu.so
cfn=(2) loads
calls=1 5
* 50
ob=(2)
fn=(2)
5 40
-1 10
ob=(1)
fn=(3) dict_lookup
7 5
"""

# The same costs with two position columns and Ir as the second event.
TWO_POSITIONS = """\
positions: instr line
events: Dr Ir
ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fn=(1) memcpy
0x10 3 9 30
+4 +1 1 12
calls=2 0x20 4
0x11 3 7 70
ob=(2) /opt/python/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so
fn=(2) scanner
0x30 1 2 8
"""


def test_each_functions_own_cost_is_summed_by_the_library_it_was_loaded_from() -> None:
    assert callgrind.instructions_by_object(ONE_POSITION) == {
        "libpython3.11.so.1.0": 125,
        "orjson": 50,
    }


def test_the_instructions_column_is_found_past_the_positions_whatever_the_events_order() -> None:
    assert callgrind.instructions_by_object(TWO_POSITIONS) == {"libc.so.6": 42, "python/_json": 8}


def test_a_file_that_does_not_count_instructions_is_refused() -> None:
    with pytest.raises(ValueError, match="not a callgrind output file"):
        callgrind.instructions_by_object("positions: line\nevents: Dr\nob=x\n1 2\n")
    with pytest.raises(ValueError, match="not a callgrind output file"):
        callgrind.instructions_by_object("a text file\n")


@pytest.mark.parametrize(
    ("object_file", "name"),
    [
        (
            "/srv/venv/lib/python3.11/site-packages/msgspec/_core.cpython-311-x86_64-linux-gnu.so",
            "msgspec/_core",
        ),
        (
            "/srv/venv/lib/python3.11/site-packages/orjson/orjson.cpython-311-x86_64-linux-gnu.so",
            "orjson",
        ),
        (
            "/srv/venv/lib/python3.11/site-packages/cryptography/hazmat/bindings/_rust.abi3.so",
            "cryptography/_rust",
        ),
        ("/srv/venv/lib/python3.11/site-packages/_yaml.cpython-311-x86_64-linux-gnu.so", "_yaml"),
        (
            "/opt/python/lib/python3.11/lib-dynload/_datetime.cpython-311-x86_64-linux-gnu.so",
            "python/_datetime",
        ),
        ("/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6", "libsqlite3.so.0.8.6"),
        ("???", "???"),
    ],
)
def test_a_library_is_named_by_what_it_is_without_the_machines_paths(
    object_file: str, name: str
) -> None:
    assert callgrind.library(object_file) == name


def test_the_sums_by_library_add_up_to_callgrinds_own_total(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    text = under_valgrind(callgrind.command(out), out, "import json; json.dumps(list(range(99)))")
    [total] = [int(line.split()[1]) for line in text.splitlines() if line.startswith("summary:")]
    by_library = callgrind.instructions_by_object(text)
    assert sum(by_library.values()) == total
    # The interpreter (in its own library or in the executable) and the C library at least.
    assert len(by_library) >= 2
    assert "libc.so.6" in by_library
