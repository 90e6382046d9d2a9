"""docs/signature-vectors.json: the repository's published signing cases (docs/webhooks.md §2).

The repository carries its own copy so that a plain clone can test signers and verifiers.
The binding copy lives in the ``shared/spec`` folder that developers and CI keep beside the
checkout; this is the one test that looks outside the repository, to prove the two agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.vectors import REPO_ROOT, VECTORS_ENV, VECTORS_PATH, load_vectors, vectors_path

#: The binding vectors, beside the checkout when it is a developer's or CI's.
BINDING_VECTORS = REPO_ROOT.parent / "shared" / "spec" / "signature-vectors.json"
#: Set (``.ci/run`` does) to turn a missing binding copy into a failure instead of a skip.
REQUIRE_ENV = "VIZOCHOK_REQUIRE_SHARED_VECTORS"


def _one_vector_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"vectors": [{"name": name, "valid": True}]}), "utf-8")
    return path


def test_published_vectors_agree_with_the_binding_copy() -> None:
    """docs/signature-vectors.json holds exactly the binding file's data (when it is there)."""
    if not BINDING_VECTORS.is_file():
        message = f"no binding vectors beside the checkout ({BINDING_VECTORS}); nothing to compare"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{message}, but {REQUIRE_ENV} is set", pytrace=False)
        pytest.skip(message)
    published = json.loads(VECTORS_PATH.read_text("utf-8"))
    binding = json.loads(BINDING_VECTORS.read_text("utf-8"))
    assert published == binding, (
        f"{VECTORS_PATH.relative_to(REPO_ROOT)} differs from {BINDING_VECTORS}: copy it again"
    )


def test_the_repository_copy_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an override the tests read docs/signature-vectors.json, inside the repository."""
    monkeypatch.delenv(VECTORS_ENV, raising=False)
    assert vectors_path() == REPO_ROOT / "docs" / "signature-vectors.json"
    cases = load_vectors()
    assert {case["valid"] for case in cases} == {True, False}


def test_the_environment_variable_overrides_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$VIZOCHOK_SIGNATURE_VECTORS names the file the tests read instead of the repository's."""
    chosen = _one_vector_file(tmp_path, "from-env")
    monkeypatch.setenv(VECTORS_ENV, str(chosen))
    assert vectors_path() == chosen
    assert [case["name"] for case in load_vectors()] == ["from-env"]


def test_an_explicit_path_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A path passed to load_vectors() is read even when the variable names another file."""
    monkeypatch.setenv(VECTORS_ENV, str(_one_vector_file(tmp_path, "from-env")))
    explicit = _one_vector_file(tmp_path, "explicit")
    assert [case["name"] for case in load_vectors(explicit)] == ["explicit"]


def test_a_missing_override_names_the_file_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable naming no file is an error saying which file and where the name came from."""
    missing = tmp_path / "nowhere.json"
    monkeypatch.setenv(VECTORS_ENV, str(missing))
    with pytest.raises(FileNotFoundError) as caught:
        load_vectors()
    assert str(missing) in str(caught.value)
    assert VECTORS_ENV in str(caught.value)
