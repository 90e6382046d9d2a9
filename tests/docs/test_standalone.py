"""The repository stands on its own: its files refer to nothing outside it.

Only the one check that compares the published signature vectors with their binding copy
(``tests/docs/test_signature_vectors.py``, run by ``.ci/run``) may look beside the checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.vectors import REPO_ROOT

#: Files allowed to name the folder beside the checkout: the comparison and CI, and this test.
MAY_LOOK_OUTSIDE = frozenset(
    {".ci/run", "tests/docs/test_signature_vectors.py", "tests/docs/test_standalone.py"}
)
#: Ways of pointing at the spec folder that developers keep beside the checkout.
OUTSIDE_REFERENCES = ("../shared", "shared/spec", "CONTRACT.md")
#: The Markdown a reader of the repository follows links in.
MARKDOWN = ("README.md", "SECURITY.md", "docs/*.md", "receivers/*/README.md", "bench/*.md")

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|href=\"([^\"]+)\"")
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def _repository_files() -> list[str]:
    """Tracked files and new ones not ignored, as git lists them (relative paths)."""
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout; the file list comes from git")
    listed = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode("utf-8")
    return [name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to ``-``."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text("utf-8"))
    return {_slug(heading) for heading in _HEADING.findall(text)}


def test_no_file_refers_outside_the_repository() -> None:
    """README, SECURITY.md, docs, receivers and code point at the repository's own docs."""
    offenders = []
    for name in _repository_files():
        if name in MAY_LOOK_OUTSIDE:
            continue
        try:
            text = (REPO_ROOT / name).read_text("utf-8")
        except UnicodeDecodeError:
            continue  # binary
        offenders += [f"{name}: {ref}" for ref in OUTSIDE_REFERENCES if ref in text]
    assert offenders == []


def test_markdown_links_resolve_inside_the_repository() -> None:
    """Every relative link in the Markdown names a file of the repository, and its anchor exists."""
    pages = sorted({page for pattern in MARKDOWN for page in REPO_ROOT.glob(pattern)})
    assert REPO_ROOT / "docs" / "webhooks.md" in pages
    broken = []
    for page in pages:
        for match in _LINK.finditer(_FENCE.sub("", page.read_text("utf-8"))):
            link = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", link):
                continue  # https:, mailto:
            target_text, _, anchor = link.partition("#")
            target = (page.parent / target_text).resolve() if target_text else page
            where = f"{page.relative_to(REPO_ROOT)}: {link}"
            if not target.is_relative_to(REPO_ROOT) or not target.exists():
                broken.append(f"{where} (no such file in the repository)")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                broken.append(f"{where} (no such heading)")
    assert broken == []


def test_readme_security_and_examples_link_the_webhook_docs() -> None:
    """The pages a tenant's developer starts from send them to docs/webhooks.md."""
    for page in ("README.md", "SECURITY.md", "receivers/node/README.md", "receivers/go/README.md"):
        text = (REPO_ROOT / page).read_text("utf-8")
        assert re.search(r"\]\((\.\./)*docs/webhooks\.md[#)]", text), page
