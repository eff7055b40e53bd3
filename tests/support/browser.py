"""Debian's Chromium, driven by Playwright: the real browser the page tests use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():  # fail, not skip: a skipped browser test proves nothing
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def fresh_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context: no cookies at the gateway or at any RP."""
    context = browser.new_context(locale="zh-CN")
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context: no cookies at the gateway or at any RP."""
    with fresh_page(browser) as fresh:
        yield fresh


def at(url: str, base: str, path: str) -> bool:
    """Whether ``url`` is ``path`` at the origin ``base`` (query ignored)."""
    parts, origin = urlsplit(url), urlsplit(base)
    return parts.netloc == origin.netloc and parts.path == path
