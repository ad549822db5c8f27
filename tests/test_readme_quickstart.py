"""The README's quickstart works as written: its shell commands, read from README.md, run against a
real ``cds demo`` process that takes its port from ``CDS_PORT``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from cds.settings import PROJECT_ROOT
from tests.chromium import TIMEOUT_MS, chromium, page_errors
from tests.served import free_port

README = PROJECT_ROOT / "README.md"
DOCUMENTED_BASE = "http://127.0.0.1:8080"
CDS = Path(sys.executable).with_name("cds")


def quickstart_commands() -> list[str]:
    """The shell commands of the README's quickstart, in order: each ``sh`` block's commands
    (backslash continuations joined) and each inline ``.venv/bin/...`` command. ``make``
    commands are left out: ``make demo`` is the process under test, ``make test`` this suite."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quickstart") :]
    section = section[: section.index("\n## ", 1)]
    commands: list[str] = []
    for block, inline in re.findall(r"```sh\n(.*?)```|`(\.venv/bin/[^`]+)`", section, re.S):
        if inline:
            commands.append(inline)
            continue
        joined = re.sub(r"\\\n\s*", "", block)
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return [c for c in commands if not c.startswith(("make ", "#"))]


def page_to_open() -> str:
    """The address step 1 of the quickstart tells the reader to open in a browser."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^1\. Open <(http://[^>]+)>", text, re.M)
    assert found, "the quickstart's step 1 names no page to open"
    return found[1]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """``cds demo`` as a user starts it, moved by CDS_PORT alone; its base URL."""
    port = free_port()
    environment = {
        **os.environ,
        "CDS_PORT": str(port),
        "CDS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
    }
    log = tmp_path / "demo.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CDS), "demo"], cwd=PROJECT_ROOT, env=environment, stdout=sink, stderr=sink
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"cds demo exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "cds demo did not answer /healthz within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def user_directory(tmp_path: Path) -> Path:
    """A scratch directory that looks like the checkout to the README's relative paths."""
    scratch = tmp_path / "checkout"
    (scratch / ".venv" / "bin").mkdir(parents=True)
    (scratch / ".venv" / "bin" / "cds").symlink_to(CDS)
    (scratch / "tests").symlink_to(PROJECT_ROOT / "tests")
    return scratch


def test_the_quickstart_names_the_commands_this_test_runs() -> None:
    commands = quickstart_commands()
    assert any("/playground/patients/" in c for c in commands)
    assert any("-X POST" in c and "/cds-services/back-to-foot" in c for c in commands)
    assert any(c.startswith(".venv/bin/cds evaluate ") for c in commands)


def test_the_readme_quickstart_commands_work_against_cds_demo(
    demo: str, user_directory: Path
) -> None:
    outputs = []
    for command in quickstart_commands():
        run = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command.replace(DOCUMENTED_BASE, demo)],
            cwd=user_directory,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"{command}\n{run.stderr}"
        outputs.append(run.stdout)
    answers = [json.loads(out) for out in outputs if out.strip()]
    # The curl call and the offline evaluation both answer S06 (cauda equina) with RF-01.
    assert len(answers) == 2
    for answer in answers:
        assert "RF-01" in [card["source"]["topic"]["code"] for card in answer["cards"]]


@pytest.mark.browser
def test_the_page_the_quickstart_opens_is_the_playground_in_chromium(
    demo: str, tmp_path: Path
) -> None:
    with chromium(tmp_path / "chromium-profile") as browser:
        page = browser.new_page()
        errors = page_errors(page)
        page.goto(page_to_open().replace(DOCUMENTED_BASE, demo))
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=TIMEOUT_MS)
        assert page.url == f"{demo}/playground"
        expect(page).to_have_title("footpath-cds playground")
        assert errors == []
