"""``bench/RESULTS.md`` in sections, each rewritten by the rows that produced it.

A run of some rows (``--only``) replaces its own sections and keeps the others as the last
run left them.  A section sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``;
text before the first marker (a file from before the markers) is kept as the ``sync``
section, which the synchronous table writes.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
TITLE = "# Benchmark results"
#: Sections in the order the file shows them; others follow in the order they came.
ORDER = (
    "sync",
    "overhead",
    "events",
    "events-publish",
    "events-latency",
    "events-memory",
    "event-workers",
    "events-log",
)
_SECTION = re.compile(r"<!-- bench:([a-z-]+) -->\n(.*?)<!-- /bench:\1 -->\n?", re.DOTALL)


def _sections(text: str) -> dict[str, str]:
    found = {m.group(1): m.group(2).strip("\n") for m in _SECTION.finditer(text)}
    before = text[: m.start()] if (m := _SECTION.search(text)) else text
    before = before.strip("\n").removeprefix(TITLE).strip("\n")
    if before and "sync" not in found:
        found["sync"] = before
    return found


def write_section(name: str, body: str, path: Path = RESULTS) -> None:
    """Replace section ``name`` of the results file with ``body`` (Markdown), keep the rest."""
    sections = _sections(path.read_text()) if path.exists() else {}
    sections[name] = body.strip("\n")
    names = [n for n in ORDER if n in sections] + [n for n in sections if n not in ORDER]
    out = [TITLE, ""]
    for n in names:
        out += [f"<!-- bench:{n} -->", sections[n], f"<!-- /bench:{n} -->", ""]
    path.write_text("\n".join(out))
