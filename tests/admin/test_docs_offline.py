"""/docs and /redoc render with no internet access (issue 9, section 3): every script, style and
icon they load is served by the admin API itself, with the right content type."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from .support import Admin

BASE = "http://admin.test"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Assets(HTMLParser):
    """Every URL a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_load_only_local_assets_served_with_their_types(
    admin: Admin, page: str
) -> None:
    """Docs: each asset URL of the page is this server's, answers 200 with its content type."""
    response = await admin.client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    parser = _Assets()
    parser.feed(response.text)
    assert len(parser.urls) >= 2, parser.urls  # a script and a style (or icon) at least
    for url in parser.urls:
        absolute = urljoin(BASE + page, url)
        assert urlsplit(absolute).netloc == "admin.test", f"{page} loads {url} from elsewhere"
        asset = await admin.client.get(absolute)
        assert asset.status_code == 200, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
        assert len(asset.content) > 1000, url
    # Inline configuration may name other URLs: only this server's (or none) are allowed.
    named = re.findall(r"""["'](https?://[^"']+)["']""", response.text)
    assert [url for url in named if urlsplit(url).netloc != "admin.test"] == []


async def test_swagger_ui_sends_the_spec_to_no_validator(admin: Admin) -> None:
    """Docs: Swagger UI's online validator badge is off (it would send the spec away)."""
    response = await admin.client.get("/docs")
    assert '"validatorUrl": null' in response.text
    assert "/openapi.json" in response.text


async def test_the_docs_need_no_key_and_the_api_still_does(admin: Admin) -> None:
    """Docs: the pages and the spec are public; the operations keep their 401."""
    assert (await admin.client.get("/openapi.json")).status_code == 200
    assert (await admin.client.get("/api/v1/admin/webhooks")).status_code == 401
