"""Browser fixtures for the end-to-end tests: a system Chromium driven by Playwright's sync API.

Playwright cannot download browsers here, so the tests launch Debian's ``/usr/bin/chromium``.

Playwright's sync API keeps an asyncio event loop running in the main thread for as long as it is
started, and Django's ORM refuses to run inside one (``SynchronousOnlyOperation``). The ``browser``
fixture therefore sets ``DJANGO_ALLOW_ASYNC_UNSAFE`` only while Playwright is running and restores the
previous value when it stops; it is module-scoped so the relaxation never leaks into other test modules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
DEFAULT_TIMEOUT_MS = 15_000


def _chromium_ok() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


def _try_install_chromium() -> None:
    """``apt-get update && apt-get install -y chromium``, only when running as root with apt-get present."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            result = subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return
        if result.returncode != 0:
            return


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of the system Chromium; installs it via apt when possible, else skips (fails on CI)."""
    if not _chromium_ok():
        _try_install_chromium()
    if not _chromium_ok():
        message = (
            f"e2e tests need Chromium at {CHROMIUM} (Playwright cannot download browsers here); "
            "install it with `apt-get install -y chromium`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_path: str, request: pytest.FixtureRequest) -> Browser:
    """A headless Chromium for this test module; it and Playwright are stopped in finalizers."""
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    playwright = sync_playwright().start()

    def stop_playwright() -> None:
        try:
            playwright.stop()
        finally:
            if previous is None:
                os.environ.pop(ASYNC_UNSAFE, None)
            else:
                os.environ[ASYNC_UNSAFE] = previous

    request.addfinalizer(stop_playwright)
    launched = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
    request.addfinalizer(launched.close)  # finalizers run last-in first-out: browser before Playwright
    return launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (own cookies and storage) per test."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
