"""The published signing cases: ``docs/signature-vectors.json`` (docs/webhooks.md §2).

``$VIZOCHOK_SIGNATURE_VECTORS`` names another file to check against instead (for instance a
newer copy of the vectors), and an explicit ``path`` argument wins over both.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
#: The copy in the repository, published for tenants to test their own verifiers.
VECTORS_PATH: Final = REPO_ROOT / "docs" / "signature-vectors.json"
#: Names a vectors file that replaces ``VECTORS_PATH``.
VECTORS_ENV: Final = "VIZOCHOK_SIGNATURE_VECTORS"


def vectors_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$VIZOCHOK_SIGNATURE_VECTORS`` if set, else ``VECTORS_PATH``.

    Raises ``FileNotFoundError`` naming the file and where its name came from.
    """
    if path is not None:
        chosen, source = Path(path), "the path given"
    elif override := os.environ.get(VECTORS_ENV):
        chosen, source = Path(override), f"${VECTORS_ENV}"
    else:
        chosen, source = VECTORS_PATH, "the repository's default"
    if not chosen.is_file():
        raise FileNotFoundError(f"signature vectors not found at {chosen} ({source})")
    return chosen


def load_vectors(path: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every case of the vectors file chosen by :func:`vectors_path`."""
    vectors: list[dict[str, Any]] = json.loads(vectors_path(path).read_text("utf-8"))["vectors"]
    return vectors
