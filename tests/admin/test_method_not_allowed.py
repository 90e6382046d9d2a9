"""A 405 names, in `Allow`, every method the path serves (RFC 9110 §15.5.6), on every path."""

from __future__ import annotations

from .support import WEBHOOKS, Admin

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allow(header: str | None) -> set[str]:
    assert header is not None, "a 405 without Allow"
    return {method.strip() for method in header.split(",")}


async def test_every_405_lists_every_method_of_its_path(admin: Admin) -> None:
    """405: `Allow` is the set of the path's operations (GET and PATCH share /webhooks)."""
    paths = admin.app.openapi()["paths"]
    assert {method.upper() for method in paths[WEBHOOKS]} == {"GET", "PATCH"}
    for path, item in paths.items():
        served = {method.upper() for method in item}
        for method in METHODS:
            if method in served:
                continue
            response = await admin.client.request(method, path)
            assert response.status_code == 405, (method, path)
            assert _allow(response.headers.get("allow")) == served, (method, path)
            if method != "HEAD":
                assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_405_on_the_docs_lists_get_and_head(admin: Admin) -> None:
    """405: the documentation routes answer with their own methods too."""
    response = await admin.client.post("/openapi.json")
    assert response.status_code == 405
    assert _allow(response.headers.get("allow")) == {"GET", "HEAD"}


async def test_a_405_on_a_docs_asset_lists_get_and_head(admin: Admin) -> None:
    """405: the docs' static assets (a mount) answer GET and HEAD only, and say so."""
    response = await admin.client.post("/docs-assets/swagger-ui.css")
    assert response.status_code == 405
    assert _allow(response.headers.get("allow")) == {"GET", "HEAD"}
