"""Instructions by shared object, read from a callgrind output file.

cachegrind names a function it has no symbols for ``???``, and most of what a call runs outside
CPython (orjson, the RSA check, SQLite) has none, so its per-function figures cannot say which
library the instructions went to. callgrind records the object file each function was loaded
from (``ob=``); summing the functions' own cost by it answers that, and the sums add up to the
file's ``summary:`` line exactly (a test holds them to it).

The format (valgrind's "Callgrind Format Specification"): ``positions:`` says how many columns of
a cost line are positions before the events; ``ob=``, ``fn=`` and their ``c`` forms may define a
name once as ``(id) name`` and use ``(id)`` after; the cost line after a ``calls=`` line is the
inclusive cost of that call, already counted as the callee's own.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Final

# The name valgrind gives code it cannot place in an object file.
UNKNOWN: Final = "???"
_COMPRESSED: Final = re.compile(r"\((\d+)\)(?: (.*))?")
_COST_START: Final = frozenset("0123456789+-*")
_SITE_PACKAGES: Final = "site-packages"
_PYTHON_EXTENSIONS: Final = "lib-dynload"


def command(out: Path) -> list[str]:
    """The start of a command that runs a program under callgrind, its output to ``out``."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]


def instructions_by_object(callgrind_out: str) -> dict[str, int]:
    """The instructions each object file's own code executed (``Ir``), by :func:`library`'s
    name for the file, from a callgrind output file."""
    objects: dict[str, str] = {}  # by id, as the file defines them
    by_object: dict[str, int] = {}  # by library()'s name
    positions = 1
    column: int | None = None
    current = UNKNOWN
    inclusive_next = False
    for line in callgrind_out.splitlines():
        if not line:
            continue
        if line[0] in _COST_START:
            if inclusive_next:
                inclusive_next = False
            elif column is not None:
                fields = line.split()
                if len(fields) > column:
                    by_object[current] = by_object.get(current, 0) + int(fields[column])
            continue
        key, _, value = line.partition("=")
        if key == "ob":
            # Summed under library()'s name: two object files may be one library (SQLAlchemy's
            # two _util_cy builds).
            current = library(_name(value, objects))
        elif key == "cob":
            _name(value, objects)  # a callee's object may be defined here and used by id later
        elif key == "calls":
            inclusive_next = True
        elif line.startswith("positions:"):
            positions = len(line.split()) - 1
        elif line.startswith("events:"):
            events = line.split()[1:]
            if "Ir" in events:
                column = positions + events.index("Ir")
    if column is None:
        raise ValueError("not a callgrind output file with Ir: no events line that names it")
    return {name: cost for name, cost in by_object.items() if cost}


def library(object_file: str) -> str:
    """A short name for an object file that says what it is without the machine's paths: an
    installed package's extension as ``package/module`` (``msgspec/_core``; ``orjson`` where the
    two agree), one of Python's own as ``python/module``, a system library by its file name."""
    path = PurePosixPath(object_file)
    module = path.name.split(".")[0]
    if _SITE_PACKAGES in path.parts:
        inside = path.parts[path.parts.index(_SITE_PACKAGES) + 1 :]
        package = inside[0].split(".")[0] if inside else module
        return package if package == module else f"{package}/{module}"
    if _PYTHON_EXTENSIONS in path.parts:
        return f"python/{module}"
    return path.name or object_file


def _name(value: str, names: dict[str, str]) -> str:
    """The object file ``value`` names, learning an ``(id) name`` definition on the way."""
    compressed = _COMPRESSED.fullmatch(value)
    if compressed is None:
        return value
    number, defined = compressed.groups()
    if defined is not None:
        names[number] = defined
    return names.get(number, UNKNOWN)
