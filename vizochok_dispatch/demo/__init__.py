"""``python -m vizochok_dispatch.demo``: the dispatcher and the receiver kit, end to end.

A small grocery backend built on :mod:`vizochok_dispatch.receiver` runs under uvicorn on
127.0.0.1; the real :class:`~vizochok_dispatch.Dispatcher` (SQLite config store) calls it and
prints what happened.  Exit status 0 means every contract rule it checks held.

``main`` and ``run_demo`` load on first use, so ``python -m`` can say which extra is missing
instead of failing on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._run import main, run_demo


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the lazily loaded module defines
    """Load the scenario (and uvicorn with it) on first use."""
    if name in {"main", "run_demo"}:
        from . import _run  # noqa: PLC0415 - lazy on purpose: uvicorn is optional

        return getattr(_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["main", "run_demo"]
