"""Without ``VIZOCHOK_TEST_POSTGRES_URL`` the PostgreSQL cases skip with one explanatory line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL_ENV = "VIZOCHOK_TEST_POSTGRES_URL"
#: PostgreSQL cases spread over several files and several test functions.
POSTGRES_CASES = ("tests/store/test_config_rules.py", "tests/store/test_partial_updates.py")
PYTEST = ("-m", "pytest", "-ra", "-q", "-p", "no:cacheprovider", "-m", "postgres")


def test_postgres_skip_reason_is_printed_once() -> None:
    """``pytest -ra`` without PostgreSQL: one line gives the reason, with every skip counted."""
    env = {name: value for name, value in os.environ.items() if name != POSTGRES_URL_ENV}
    completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, *PYTEST, *POSTGRES_CASES],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    reasons = [line for line in output.splitlines() if f"{POSTGRES_URL_ENV} is not set" in line]
    assert len(reasons) == 1, output
    folded = re.search(r"SKIPPED \[(\d+)\]", reasons[0])
    total = re.search(r"(\d+) skipped", output)
    assert folded is not None, output
    assert total is not None, output
    assert int(folded.group(1)) == int(total.group(1)) > 10
