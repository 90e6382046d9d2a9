"""The package layout by domain: no module imports from a subpackage above it (README, "Where
things are")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vizochok_dispatch"

#: What each subpackage may import of the package besides itself; the top-level leaves
#: ``_exceptions`` and ``_version`` are open to all.
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    # Metrics and spans: fed by the others, imports none of them.
    "observe": set(),
    "http": {"contract"},
    "tenants": {"contract", "http"},
    # Event webhooks stand beside the synchronous ones; the Dispatcher owns ``d.events``.
    "events": {"contract", "http", "tenants", "observe"},
    "webhooks": {"contract", "http", "tenants", "events", "observe"},
    "receiver": {"contract"},
    "admin": {"contract", "http", "tenants", "events", "webhooks", "observe"},
    "demo": {
        *("contract", "http", "tenants", "events", "webhooks", "admin", "receiver", "observe"),
        "",
    },
}
LEAVES = {"_exceptions", "_version"}


def package_imports(path: Path) -> set[str]:
    """The first name below ``vizochok_dispatch`` of every import in ``path`` ("" for the root)."""
    parts = list(path.relative_to(PACKAGE).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("vizochok_dispatch"):
                target = node.module.split(".")[1:]
            else:
                continue
            if target:
                found.add(target[0])
            else:  # ``from .. import name``: each name is a module or a public name of the root
                found.update(
                    alias.name if alias.name.startswith("_") else "" for alias in node.names
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vizochok_dispatch."):
                    found.add(alias.name.split(".")[1])
    return found


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_a_subpackage_imports_nothing_above_it(subpackage):
    """Each subpackage imports only the ones its ``__init__`` docstring allows."""
    allowed = ALLOWED[subpackage] | LEAVES | {subpackage}
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name or 'the package root'}"
        for path in sorted((PACKAGE / subpackage).rglob("*.py"))
        for name in package_imports(path) - allowed
    }
    assert not wrong, sorted(wrong)


def test_the_root_holds_only_the_public_api_and_its_leaves():
    """Top-level modules are the public ``__init__``, the CLI (``_cli`` and its ``events``
    group) and the shared leaves only."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules == {"__init__", "_cli", "_events_cli", *LEAVES}
    assert {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} == set(ALLOWED)
