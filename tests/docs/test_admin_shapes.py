"""docs/webhooks.md §7: every admin API request and answer shown is the API's own shape.

Each block labelled ``<!-- admin: MODEL -->`` is validated against ``MODEL`` in the admin
app's OpenAPI (``create_admin_app().openapi()``), and lists exactly the model's fields, so a
field added to, renamed in or dropped from the API fails here until §7 shows it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from vizochok_dispatch import DispatchSettings
from vizochok_dispatch.admin import create_admin_app

from .test_webhooks_doc import Block, _blocks, _section

ADMIN_BLOCKS = _blocks("admin")


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The admin app's OpenAPI description (no request is served)."""
    folder: Path = tmp_path_factory.mktemp("openapi")
    settings = DispatchSettings(database_url=f"sqlite+aiosqlite:///{folder}/x.db")
    return create_admin_app(settings).openapi()


def test_section_7_shows_the_event_routes_shapes() -> None:
    """§7 carries a request or answer of each event operation, and only in §7."""
    names = {block.name for block in ADMIN_BLOCKS}
    assert {
        "EventEndpointCreate",
        "EventEndpointPublic",
        "EventEndpointTestReport",
        "DeliveryPagePublic",
        "EventRecoveryReport",
    } <= names
    section = _section(7)
    assert all(f"<!-- admin: {block.name} -->" in section for block in ADMIN_BLOCKS)


@pytest.mark.parametrize("block", ADMIN_BLOCKS, ids=lambda block: block.name)
def test_admin_shape_is_the_apis(block: Block, openapi: dict[str, Any]) -> None:
    """The block validates against its OpenAPI schema and names every field of it, no other."""
    schemas = openapi["components"]["schemas"]
    assert block.name in schemas
    document = json.loads(block.text)
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{block.name}", "components": openapi["components"]}
    )
    assert [error.message for error in validator.iter_errors(document)] == []
    fields = set(schemas[block.name]["properties"])
    required = set(schemas[block.name].get("required", ()))
    # an answer's fields are all required, so it must show every one; a request its required
    assert required <= set(document) <= fields


def test_section_7_lists_every_tenant_route(openapi: dict[str, Any]) -> None:
    """Each /api/v1/admin operation of the OpenAPI appears in §7 as `METHOD /path`."""
    section = re.sub(r"\{[^}]*\}", "{}", _section(7))
    missing = [
        f"{method.upper()} {path}"
        for path, methods in openapi["paths"].items()
        if path.startswith("/api/v1/admin/")
        for method in methods
        if f"`{method.upper()} {re.sub(r'{[^}]*}', '{}', path)}`" not in section
    ]
    assert missing == []
