"""OpenAPI says the truth (issue 9, section 3): what `null` the server takes, its limits, every
status each operation can answer in the error shape, and a fully typed test-fire report."""

from __future__ import annotations

from typing import Any

import pytest

from vizochok_dispatch.admin._event_schemas import FREE_FORM
from vizochok_dispatch.tenants._config import (
    MAX_SECRET_CHARS,
    MAX_TIMEOUT_SECONDS,
    MAX_URL_CHARS,
    MIN_OWN_SECRET_CHARS,
    MIN_TIMEOUT_SECONDS,
)

from .support import CALLS, PROMOTE, ROLL, ROTATE, TEST_FIRE, WEBHOOKS, Admin, bearer

ERROR_REF = "#/components/schemas/ErrorResponse"
ENDPOINT_SECRET = "/api/v1/admin/event-endpoints/{endpoint_id}/secret"
ENDPOINT_TEST = "/api/v1/admin/event-endpoints/{endpoint_id}/test"
RETRY = "/api/v1/admin/deliveries/{delivery_id}/retry"
RECOVER = "/api/v1/admin/event-endpoints/{endpoint_id}/recover"
#: What each operation can answer besides 200 (README "Errors"), and nothing else.
STATUSES = {
    ("get", WEBHOOKS): {401, 409, 413, 500, 503},
    ("patch", WEBHOOKS): {401, 413, 415, 422, 500, 503},
    ("post", ROTATE): {401, 409, 413, 415, 422, 500, 503},
    ("post", ROLL): {401, 409, 413, 415, 422, 500, 503},
    ("post", PROMOTE): {401, 409, 413, 500, 503},
    ("post", TEST_FIRE): {401, 409, 413, 415, 422, 429, 500, 503},
    ("post", "/api/v1/admin/webhooks/check"): {401, 409, 413, 415, 422, 429, 500, 503},
    ("get", CALLS): {401, 413, 422, 500, 503},
    ("get", "/api/v1/admin/event-endpoints"): {401, 413, 500, 503},
    ("post", "/api/v1/admin/event-endpoints"): {401, 413, 415, 422, 500, 503},
    ("get", "/api/v1/admin/event-endpoints/{endpoint_id}"): {401, 404, 413, 422, 500, 503},
    ("patch", "/api/v1/admin/event-endpoints/{endpoint_id}"): {401, 404, 413, 415, 422, 500, 503},
    ("delete", "/api/v1/admin/event-endpoints/{endpoint_id}"): {401, 404, 413, 422, 500, 503},
    ("post", f"{ENDPOINT_SECRET}/roll"): {401, 404, 413, 415, 422, 500, 503},
    ("post", f"{ENDPOINT_SECRET}/promote"): {401, 404, 409, 413, 422, 500, 503},
    ("post", f"{ENDPOINT_SECRET}/rotate"): {401, 404, 413, 415, 422, 500, 503},
    ("get", "/api/v1/admin/event-types"): {401, 413, 500, 503},
    ("get", "/api/v1/admin/deliveries"): {401, 413, 422, 500, 503},
    ("get", "/api/v1/admin/deliveries/{delivery_id}"): {401, 404, 413, 422, 500, 503},
    ("post", ENDPOINT_TEST): {401, 404, 413, 415, 422, 429, 500, 503},
    ("post", RETRY): {401, 404, 409, 413, 422, 500, 503},
    ("post", RECOVER): {401, 404, 409, 413, 415, 422, 500, 503},
}
#: The request body schema of each operation that takes one, with where its fields go.
BODIES = {
    "WebhookConfigUpdate": ("PATCH", WEBHOOKS),
    "SecretRotateRequest": ("POST", ROTATE),
    "SecretRollRequest": ("POST", ROLL),
    "WebhookTestRequest": ("POST", TEST_FIRE),
    "EventEndpointTestRequest": ("POST", ENDPOINT_TEST.replace("{endpoint_id}", "ep_x")),
    "EventRecoverRequest": ("POST", RECOVER.replace("{endpoint_id}", "ep_x")),
    "WebhookCheckRequest": ("POST", "/api/v1/admin/webhooks/check"),
}


@pytest.fixture
def spec(admin: Admin) -> dict[str, Any]:
    return admin.app.openapi()


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["components"]["schemas"][name]
    return schema


def _allows_null(prop: dict[str, Any]) -> bool:
    if prop.get("type") == "null" or prop.get("nullable") is True:
        return True
    return any(_allows_null(option) for option in prop.get("anyOf", []) + prop.get("oneOf", []))


async def test_null_is_documented_exactly_where_the_server_takes_it(
    admin: Admin, spec: dict[str, Any]
) -> None:
    """OpenAPI: a request field allows null in the schema if and only if the server takes it."""
    issued, _ = await admin.configured("shop-a")
    checked = 0
    for name, (method, path) in BODIES.items():
        schema = _schema(spec, name)
        assert "nullable" not in str(schema), "OpenAPI 3.1 says null with type: null"
        for field, prop in schema["properties"].items():
            response = await admin.client.request(
                method, path, headers=bearer(issued.key), json={field: None}
            )
            refused = response.status_code == 422 and any(
                entry["field"] == field and entry["message"] == "must not be null"
                for entry in response.json()["error"]["fields"]
            )
            assert _allows_null(prop) is not refused, (name, field, response.text)
            checked += 1
    assert checked >= 9
    update = _schema(spec, "WebhookConfigUpdate")["properties"]
    assert not _allows_null(update["products_url"])
    assert _allows_null(update["cart_get_url"])


def test_limits_are_machine_readable_and_are_the_ones_enforced(spec: dict[str, Any]) -> None:
    """OpenAPI: timeout 0.1 to 30 s, URLs of at most 2048 characters in URI format, secret sizes."""
    update = _schema(spec, "WebhookConfigUpdate")["properties"]
    assert update["timeout_seconds"]["type"] == "number"
    assert update["timeout_seconds"]["minimum"] == MIN_TIMEOUT_SECONDS == 0.1
    assert update["timeout_seconds"]["maximum"] == MAX_TIMEOUT_SECONDS == 30
    for field in ("products_url", "cart_url"):
        assert update[field]["format"] == "uri"
        assert update[field]["maxLength"] == MAX_URL_CHARS == 2048
    (string,) = [option for option in update["cart_get_url"]["anyOf"] if option["type"] != "null"]
    assert (string["format"], string["maxLength"]) == ("uri", MAX_URL_CHARS)
    assert update["secret"]["minLength"] == MIN_OWN_SECRET_CHARS
    assert update["secret"]["maxLength"] == MAX_SECRET_CHARS
    for prop in update.values():
        assert "default" not in prop, "leaving a field out keeps the stored value"
    assert _schema(spec, "WebhookConfigUpdate")["additionalProperties"] is False
    test = _schema(spec, "WebhookTestRequest")["properties"]
    assert (test["skus"]["minItems"], test["skus"]["maxItems"]) == (1, 20)


async def test_out_of_range_values_the_schema_refuses_are_refused(admin: Admin) -> None:
    """OpenAPI: the documented bounds are where the server draws the line."""
    issued, _ = await admin.configured("shop-a")
    for value, status in ((0.1, 200), (30, 200), (0.0999, 422), (30.001, 422)):
        response = await admin.client.patch(
            WEBHOOKS, headers=bearer(issued.key), json={"timeout_seconds": value}
        )
        assert response.status_code == status, (value, response.text)
    too_long = "https://shop-a.example/" + "p" * (MAX_URL_CHARS - 22)
    response = await admin.client.patch(
        WEBHOOKS, headers=bearer(issued.key), json={"cart_url": too_long}
    )
    assert response.status_code == 422


def test_every_operation_lists_every_status_it_answers(spec: dict[str, Any]) -> None:
    """OpenAPI: each operation lists its error statuses, each in the one error shape."""
    seen = {}
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue  # /healthz and /readyz take no key (tests/admin/test_operations.py)
        for method, operation in item.items():
            responses = operation["responses"]
            errors = {int(code) for code in responses if not code.startswith("2")}
            seen[method, path] = errors
            for code in errors:
                content = responses[str(code)]["content"]["application/json"]["schema"]
                assert content == {"$ref": ERROR_REF}, (method, path, code)
                assert responses[str(code)]["description"]
            assert responses["401"]["headers"]["WWW-Authenticate"]
    assert seen == STATUSES
    assert spec["paths"][TEST_FIRE]["post"]["responses"]["429"]["headers"]["Retry-After"]
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "FastAPI's own 422 shape is never sent"
    error = schemas["ErrorDetail"]["properties"]
    assert not _allows_null(error["fields"]), "fields is left out, never null"


def _untyped(schema: Any, spec: dict[str, Any], path: str, seen: set[str]) -> list[str]:
    """Every place under ``schema`` that says "any object" or "anything"."""
    if not isinstance(schema, dict):
        return []
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        seen.add(name)
        return _untyped(_schema(spec, name), spec, name, seen)
    found = []
    if FREE_FORM in schema:  # any JSON by design (a JSON Schema, an example), said so
        return []
    if not schema or (schema.get("type") == "object" and "properties" not in schema):
        found.append(path)
    if schema.get("additionalProperties") not in (None, False):
        found.append(f"{path} (additionalProperties)")
    for key in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            found += _untyped(option, spec, f"{path}.{key}[{index}]", seen)
    for name, prop in schema.get("properties", {}).items():
        found += _untyped(prop, spec, f"{path}.{name}", seen)
    if "items" in schema:
        found += _untyped(schema["items"], spec, f"{path}[]", seen)
    return found


def test_every_response_is_fully_typed(spec: dict[str, Any]) -> None:
    """OpenAPI: no response (the test-fire report included) has an untyped object anywhere."""
    report = spec["paths"][TEST_FIRE]["post"]["responses"]["200"]["content"]["application/json"]
    assert report["schema"]["discriminator"]["propertyName"] == "webhook"
    assert len(report["schema"]["oneOf"]) == 3
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                schema = response["content"]["application/json"]["schema"]
                assert _untyped(schema, spec, f"{method} {path} {code}", set()) == []
