"""The README keeps up with the code: every setting, admin route, error code and CLI command.

Each list is read from the code itself (``DispatchSettings``, the admin app's OpenAPI, the
``ApiError`` codes in ``vizochok_dispatch/admin``, the click command tree), so a new one that
the README does not document fails here rather than being found by a user.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from tests.support.vectors import REPO_ROOT
from vizochok_dispatch import DispatchSettings
from vizochok_dispatch._cli import main as cli
from vizochok_dispatch.admin import create_admin_app

README = REPO_ROOT / "README.md"
ADMIN = REPO_ROOT / "vizochok_dispatch" / "admin"
_PARAMETER = re.compile(r"\{[^}]*\}")
_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
_ERROR_CODE = re.compile(r"ApiError\(\s*(\d{3}),\s*\"([a-z_]+)\"")


def _readme() -> str:
    return README.read_text("utf-8")


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ")]


def _cells(row: str) -> list[str]:
    """A table row's cells, stripped; ``\\|`` inside a cell is a literal ``|``."""
    return [cell.strip().replace("\\|", "|") for cell in _UNESCAPED_PIPE.split(row)[1:-1]]


def _first_cells(text: str) -> list[str]:
    """The first cell of every Markdown table row."""
    return [_cells(row)[0] for row in _table_rows(text)]


def test_every_setting_has_a_row_in_a_settings_table() -> None:
    """Each DispatchSettings field is a VIZOCHOK_ row with a default and a meaning."""
    rows = {cells[0]: cells[1:] for cells in map(_cells, _table_rows(_readme()))}
    missing = []
    for name in DispatchSettings.model_fields:
        cells = rows.get(f"`VIZOCHOK_{name.upper()}`", [])
        if len(cells) < 2 or not all(cells[:2]):
            missing.append(f"VIZOCHOK_{name.upper()}")
    assert missing == []


def test_no_settings_row_names_a_setting_that_does_not_exist() -> None:
    """A VIZOCHOK_ row in a settings table is a DispatchSettings field (or the check's secret)."""
    known = {f"`VIZOCHOK_{name.upper()}`" for name in DispatchSettings.model_fields}
    rows = [cell for cell in _first_cells(_readme()) if re.fullmatch(r"`VIZOCHOK_[A-Z_]+`", cell)]
    assert sorted(set(rows) - known) == []


def _documented_routes() -> set[str]:
    """``METHOD /path`` in the first cell of a table row, path parameters as ``{}``."""
    routes = set()
    for cell in _first_cells(_readme()):
        match = re.fullmatch(r"`([A-Z]+) (/[^`]*)`", cell)
        if match:
            routes.add(f"{match[1]} {_PARAMETER.sub('{}', match[2])}")
    return routes


def test_every_admin_route_is_in_the_api_table(tmp_path: Path) -> None:
    """Each operation of the admin app's OpenAPI has a row in the README's API tables."""
    app = create_admin_app(DispatchSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db"))
    operations = {
        f"{method.upper()} {_PARAMETER.sub('{}', path)}"
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    }
    assert len(operations) >= 20
    assert sorted(operations - _documented_routes()) == []


def test_every_error_code_is_in_the_error_table() -> None:
    """Each code an admin route raises (ApiError) has a row with its status in README Errors."""
    text = _readme()
    start = text.index("\n### Errors\n")
    rows = _table_rows(text[start : text.index("\n### ", start + 1)])
    raised = {
        (status, code)
        for source in sorted(ADMIN.rglob("*.py"))
        for status, code in _ERROR_CODE.findall(source.read_text("utf-8"))
    }
    assert ("409", "endpoint_disabled") in raised
    missing = [
        f"{status} {code}"
        for status, code in sorted(raised)
        if not any(status in _cells(row)[0] and f"`{code}`" in row for row in rows)
    ]
    assert missing == []


def _commands(group: click.Group, prefix: str) -> list[str]:
    names = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


@pytest.mark.parametrize("command", _commands(cli, ""))
def test_every_cli_command_is_in_the_cli_tables(command: str) -> None:
    """Each vizochok-dispatch command (sub-commands included) starts a row of a CLI table."""
    words = command.split()
    cells = [cell.strip("`") for cell in _first_cells(_readme()) if cell.startswith("`")]
    # a row may list alternatives: `events endpoints disable|enable TENANT ENDPOINT_ID`
    assert any(
        cell.split()[: len(words) - 1] == words[:-1]
        and len(cell.split()) >= len(words)
        and words[-1] in cell.split()[len(words) - 1].split("|")
        for cell in cells
    ), command
