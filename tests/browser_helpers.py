"""Headless Debian Chromium for the browser tests (Playwright with ``executable_path``).

``make test`` installs Chromium (``make browser``) when it is missing. Loaded as a plugin by
``tests/conftest.py``, so the ``browser`` fixture is everywhere; a browser test module sets
``pytestmark = NEEDS_CHROMIUM``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (make browser)")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()
