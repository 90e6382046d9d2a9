"""The Node.js and Go example verifiers pass the contract's vectors (run as subprocesses)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ._support import REPO_ROOT, load_vectors, vectors_path

EXAMPLES = REPO_ROOT / "examples"
#: Set (as CI should) to turn a missing ``node`` or ``go`` into a failure instead of a skip.
REQUIRE_ENV = "VIZOCHOK_REQUIRE_EXAMPLE_TOOLCHAINS"


def _tool(name: str) -> str:
    """The tool's path; skip (or fail, under ``REQUIRE_ENV``) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; the {name} example is unchecked"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message} ({REQUIRE_ENV} is set)")
        pytest.skip(message)
    return path


def _run(command: list[str], cwd: os.PathLike[str] | str, env: dict[str, str]) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    return output


def test_node_verifier_passes_every_vector() -> None:
    """examples/node/test_vectors.js accepts and refuses exactly as the vectors say."""
    node = _tool("node")
    output = _run([node, "test_vectors.js", str(vectors_path())], EXAMPLES / "node", {})
    cases = len(load_vectors())
    assert f"{cases + 6} passed, 0 failed" in output
    assert output.count("ok - vector:") == cases


def test_go_verifier_passes_every_vector(tmp_path: Path) -> None:
    """examples/go's ``go test`` passes every vector (offline: no module downloads)."""
    go = _tool("go")
    env = {
        "VIZOCHOK_SIGNATURE_VECTORS": str(vectors_path()),
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
    }
    if not any(os.environ.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp_path / "gocache")  # go refuses to run without a cache dir
    output = _run([go, "test", "-count=1", "-v", "./..."], EXAMPLES / "go", env)
    assert output.count("--- PASS: TestEveryVector/") == len(load_vectors())
    assert "FAIL" not in output
