"""How the CLI fails: an unknown tenant the same way everywhere, exit codes as documented,
and a database that is down as one line (``serve`` included), never a traceback."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable

import click
import pytest
from click.testing import CliRunner, Result

from vizochok_dispatch._cli import EXIT_STATUS, main

from .support import KEY_1, absent

ENV = {"VIZOCHOK_SECRET_KEYS": KEY_1, "VIZOCHOK_DATABASE_URL": None}


def _commands_taking_a_tenant() -> list[tuple[str, ...]]:
    """Every CLI command with a TENANT argument, found in the CLI itself (so none is missed)."""
    found: list[tuple[str, ...]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, (*path, name))
        elif any(p.name == "tenant" for p in command.params if isinstance(p, click.Argument)):
            found.append(path)

    walk(main, ())
    return found


def _other_required(command: tuple[str, ...]) -> list[str]:
    """A placeholder for each required argument (after TENANT) and option of ``command``, so
    that only the tenant can be wrong."""
    found: click.Command = main
    for name in command:
        assert isinstance(found, click.Group)
        found = found.commands[name]
    extra: list[str] = []
    for param in found.params:
        if isinstance(param, click.Argument) and param.required and param.name != "tenant":
            extra.append("x")
        elif isinstance(param, click.Option) and param.required:
            extra += [param.opts[0], "x"]
    return extra


TENANT_COMMANDS = _commands_taking_a_tenant()


def test_the_commands_taking_a_tenant_are_found() -> None:
    """CLI: the walk finds the commands that take TENANT (the parametrisation is not empty)."""
    assert {("keys", "create"), ("keys", "list"), ("test-fire",)} <= set(TENANT_COMMANDS)
    assert {
        ("events", "endpoints", "list"),
        ("events", "endpoints", "create"),
        ("events", "endpoints", "disable"),
        ("events", "endpoints", "enable"),
        ("events", "publish"),
        ("events", "deliveries"),
    } <= set(TENANT_COMMANDS)


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(main, ["--database-url", database_url, *args], env=ENV)

    assert invoke("db", "upgrade").exit_code == 0
    assert invoke("tenants", "create", "Shop", "--id", "shop").exit_code == 0
    return invoke


@pytest.mark.parametrize("command", TENANT_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("tenant", ["nobody", "not an id", "line\nbreak"])
def test_an_unknown_tenant_is_one_line_and_exit_1_in_every_command(
    cli: Callable[..., Result], command: tuple[str, ...], tenant: str
) -> None:
    """CLI: every command taking TENANT answers an unknown one alike: exit 1, one line."""
    result = cli(*command, tenant, *_other_required(command))
    assert result.exit_code == 1
    assert result.stderr == f"Error: no tenant {tenant!r}\n"
    assert result.stdout == ""


def test_a_known_tenant_without_webhooks_is_not_unknown(cli: Callable[..., Result]) -> None:
    """CLI: test-fire of a tenant that exists but has no config reports not_configured."""
    result = cli("test-fire", "shop")
    assert result.exit_code == 1
    assert "not_configured" in result.stdout and "no tenant" not in result.stderr


def test_the_exit_codes_are_in_the_help() -> None:
    """CLI: --help documents exit codes 0, 1 and 2, and exits 0 itself."""
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert EXIT_STATUS.replace("\b\n", "").strip().splitlines()[0] in result.stdout
    for code in ("0  done", "1  refused or failed", "2  usage error"):
        assert code in result.stdout


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["--version"], 0),
        (["keys", "list", "--help"], 0),
        (["no-such-command"], 2),
        (["keys", "create"], 2),  # missing TENANT
        (["tenants", "list", "--no-such-option"], 2),
        (["serve", "--port", "70000"], 2),
        (["test-fire", "shop", "--webhook", "orders"], 2),
    ],
)
def test_the_documented_exit_codes_are_the_real_ones(args: list[str], code: int) -> None:
    """CLI: help and version exit 0, usage errors exit 2 (click's own), as documented."""
    result = CliRunner().invoke(main, args, env=ENV)
    assert result.exit_code == code, result.output
    if code == 2:
        assert "Usage:" in result.stderr and "Traceback" not in result.output


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["tenants", "list"]])
def test_a_database_that_is_down_is_one_line_and_exit_1(command: list[str]) -> None:
    """CLI: serve (a real process) and a command on a PostgreSQL that refuses connections
    exit 1 with one line on stderr, the password masked, no traceback."""
    password = "Db-Pw-" + secrets.token_hex(8)
    url = f"postgresql+asyncpg://vizochok:{password}@127.0.0.1:{_closed_port()}/vizochok"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIZOCHOK_")}
    env["VIZOCHOK_SECRET_KEYS"] = KEY_1
    done = subprocess.run(  # noqa: S603 - this interpreter, our own CLI, fixed arguments
        [
            sys.executable,
            "-c",
            "from vizochok_dispatch._cli import main; main()",
            "--database-url",
            url,
            *command,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, f"{len(lines)} lines on stderr"
    assert lines[0].startswith("Error: cannot open the config store at postgresql+asyncpg://")
    assert "127.0.0.1" in lines[0] and "***" in lines[0]
    assert absent(password, done.stderr, done.stdout)
    assert done.stdout == ""


def test_an_unusable_database_url_is_one_line_and_exit_1() -> None:
    """CLI: a database URL that does not parse exits 1 with one line, the password unseen."""
    password = "Db-Pw-" + secrets.token_hex(8)
    result = CliRunner().invoke(
        main,
        ["--database-url", f"postgresql+asyncpg://u:{password}@h:notaport/db", "tenants", "list"],
        env=ENV,
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "is not usable" in result.stderr
    assert absent(password, result.output)
