"""A local run (``python -m devtools``: broker, moto, bridge, simulated LNSs) and Debian's chromium under Playwright.

The browser is the system's ``/usr/bin/chromium`` (``scripts/ensure-system-deps.sh`` installs it); Playwright
downloads no browser here. Set ``CONSOLE_SCREENSHOTS=<dir>`` to save the pages the tests visit (the README's
screenshots are made that way: ``CONSOLE_SCREENSHOTS=docs/screenshots pytest tests/console``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright

from devtools.ports import free_port

CHROMIUM: str = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
START_TIMEOUT_SECS = 90.0
STOP_TIMEOUT_SECS = 30.0
PAGE_TIMEOUT_MS = 30_000
BANNER_RE = re.compile(r"^\s*bridge: (http://\S+)")
CONNECTION_RE = re.compile(r"^\s*connection (\S+): (\w+)")


@dataclass(frozen=True)
class LocalRun:
    url: str
    token: str
    connection_id: str
    state_dir: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0)

    @property
    def ports(self) -> dict[str, int]:
        ports: dict[str, int] = json.loads((self.state_dir / "ports.json").read_text())
        return ports


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


@pytest.fixture(scope="package")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium. Install it with "
            "scripts/ensure-system-deps.sh (as root) or: sudo apt-get install chromium",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="package")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """``make run`` at 5 uplinks/s from 3 devices (no downlinks of its own), stopped with Ctrl-C after the tests."""
    state_dir = tmp_path_factory.mktemp("console-run") / "state"
    state_dir.mkdir(mode=0o700)
    # a port of its own for the bridge: the run prefers 8080, which another run on this machine may hold
    (state_dir / "ports.json").write_text(json.dumps({"http": free_port()}))
    command = [
        sys.executable, "-m", "devtools", "--state-dir", str(state_dir), "--devices", "3", "--rate", "5",
        "--downlink-every", "0", "--summary-every", "60", "--duration", "900",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    url = connection_id = None
    try:
        while url is None or connection_id is None:
            try:
                line = lines.get(timeout=START_TIMEOUT_SECS)
            except queue.Empty:
                raise RuntimeError("the local run printed nothing for a while:\n" + "".join(seen)) from None
            seen.append(line)
            if (match := BANNER_RE.match(line)) is not None:
                url = match.group(1)
            if (match := CONNECTION_RE.match(line)) is not None:
                connection_id = match.group(1)
            if process.poll() is not None:
                raise RuntimeError("the local run stopped:\n" + "".join(seen))
        token = (state_dir / "admin-token").read_text().strip()
        yield LocalRun(url, token, connection_id, state_dir)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="package")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    browser.clear_cookies()  # every test logs in itself
    opened = browser.new_page()
    try:
        yield opened
    finally:
        opened.close()


def log_in(page: Page, run: LocalRun) -> None:
    page.goto(f"{run.url}/console/login")
    page.fill("#token", run.token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{run.url}/console/connections")


def screenshot(page: Page, name: str) -> None:
    """Save the page as ``<CONSOLE_SCREENSHOTS>/<name>.png`` when that variable names a directory."""
    directory = os.environ.get("CONSOLE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)
