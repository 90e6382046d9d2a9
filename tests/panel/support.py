"""Helpers of the admin panel tests: signing in over HTTP, reading forms' tokens."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

#: Debian's chromium: the tests drive it with playwright (its own download does not work
#: here).  ``VIZOCHOK_REQUIRE_BROWSER=1`` (CI) fails instead of skipping when it is missing.
CHROMIUM = os.environ.get("VIZOCHOK_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("VIZOCHOK_REQUIRE_BROWSER") == "1"

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def chromium_or_skip() -> str:
    """The chromium executable; skips (or fails under ``VIZOCHOK_REQUIRE_BROWSER=1``)."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    try:
        import playwright  # noqa: F401, PLC0415 - optional: the dev extra installs it
    except ImportError:
        found = None
    if found is None:
        reason = "needs chromium (apt-get install chromium) and playwright (the dev extra)"
        if REQUIRE_BROWSER:
            pytest.fail(reason + " (VIZOCHOK_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return found


def csrf_of(html: str) -> str:
    """The CSRF token of the first form in a page."""
    found = _TOKEN.search(html)
    assert found is not None, "the page has no form token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign ``client`` in with ``key``; the session's CSRF token."""
    form = await client.get("/panel/sign-in")
    answer = await client.post(
        "/panel/sign-in", data={"csrf_token": csrf_of(form.text), "api_key": key}
    )
    assert answer.status_code == 303, answer.text
    page = await client.get("/panel/webhooks")
    assert page.status_code == 200
    return csrf_of(page.text)
