"""Entry point of ``python -m vizochok_dispatch.demo``."""

from __future__ import annotations

import sys

try:
    from ._run import main
except ModuleNotFoundError as exc:  # uvicorn / starlette come with the ``server`` extra
    sys.stderr.write(
        f"the demo needs {exc.name}: pip install 'vizochok-dispatch[server]' (or `make demo`)\n"
    )
    raise SystemExit(2) from None

raise SystemExit(main())
