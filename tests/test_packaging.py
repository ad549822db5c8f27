"""The package builds cleanly: a real wheel, with its licence as an SPDX expression."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from cds.settings import PROJECT_ROOT


def test_the_wheel_builds_without_the_licence_deprecation_banner(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output
    assert "deprecated" not in output.lower()
    (wheel,) = tmp_path.glob("footpath_cds-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        assert "License-Expression: Apache-2.0" in archive.read(metadata).decode().splitlines()
