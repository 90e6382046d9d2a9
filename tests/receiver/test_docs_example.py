"""The "Receiving webhooks" example in README.md works when pasted.

The first ``python`` block is written to ``shop.py``, imported as a module (as
``uvicorn shop:app`` would), served on 127.0.0.1 and called by the real dispatcher.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from vizochok_dispatch.receiver.testing import serve_on_loopback

from ._support import REPO_ROOT, SECRET, TENANT, dispatcher_for

DOC = REPO_ROOT / "README.md"

pytestmark = pytest.mark.loopback


def example_code() -> str:
    """The first fenced ``python`` block under the "Receiving webhooks" heading.

    Found by heading, so the test keeps working when the section moves into README.md
    (then only ``DOC`` changes).
    """
    text = DOC.read_text("utf-8")
    heading = text.find("## Receiving webhooks")
    assert heading >= 0, f"{DOC.name} has no 'Receiving webhooks' section"
    match = re.compile(r"```python\n(.*?)\n```", re.DOTALL).search(text, heading)
    assert match is not None, "README.md has no python block after the heading"
    return match.group(1)


def test_the_example_is_short() -> None:
    """The README example stays readable: at most ~25 non-blank lines."""
    lines = [line for line in example_code().splitlines() if line.strip()]
    assert len(lines) <= 25


async def test_the_pasted_example_serves_the_dispatcher(tmp_path: Path, monkeypatch) -> None:
    """The example, pasted into shop.py, verifies and answers all three webhooks."""
    path = tmp_path / "shop.py"
    path.write_text(example_code(), "utf-8")
    monkeypatch.setenv("VIZOCHOK_WEBHOOK_SECRET", f"{SECRET},whsec_old_secret_being_rolled")
    spec = importlib.util.spec_from_file_location("shop", path)
    assert spec is not None
    assert spec.loader is not None
    shop = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "shop", shop)
    spec.loader.exec_module(shop)

    async with serve_on_loopback(shop.app) as base, dispatcher_for(base) as dispatcher:
        products = await dispatcher.check_products(
            TENANT, skus=["milk-001", "caviar-001"], store_id="store-1"
        )
        added = await dispatcher.cart_add(
            TENANT,
            store_id="store-1",
            session_id="u-1",
            sku="milk-001",
            name="Молоко",
            quantity=2,
            price="45.90",
        )
        refused = await dispatcher.cart_add(
            TENANT,
            store_id="store-1",
            session_id="u-1",
            sku="caviar-001",
            name="Ікра",
            quantity=1,
            price=999,
        )
        loaded = await dispatcher.load_cart(TENANT, store_id="store-1", session_id="u-1")

    assert [(o.sku, o.price) for o in products.available] == [("milk-001", Decimal("45.90"))]
    assert products.unavailable == ("caviar-001",)
    assert added.as_payload() == {"ok": True}
    assert refused.as_payload() == {"ok": False, "reason": "out_of_stock"}
    assert loaded.loaded
    assert [(i.sku, i.quantity, i.price) for i in loaded.items] == [
        ("milk-001", Decimal(2), Decimal("45.90"))
    ]
