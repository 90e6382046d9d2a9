"""The contract's fixed signing cases, read from ../shared/spec beside the checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: ``shared/`` stands beside the checkout (``../shared`` from the repository root).
VECTORS_PATH = Path(__file__).resolve().parents[3] / "shared" / "spec" / "signature-vectors.json"


def load_vectors() -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text("utf-8"))["vectors"]
    return vectors
