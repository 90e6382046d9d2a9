"""Serve an ASGI app on 127.0.0.1 for a test or a demo: real sockets, no fixed port.

A tenant checks its receiver against the real :class:`~vizochok_dispatch.Dispatcher` this
way; the package's own loopback tests and ``python -m vizochok_dispatch.demo`` do the same.
Needs the ``server`` extra (uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

__all__ = ["serve_on_loopback"]


@contextlib.asynccontextmanager
async def serve_on_loopback(
    app: Any,  # noqa: ANN401 - any ASGI application uvicorn accepts
    *,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn in this event loop; yields its base URL, stops on exit.

    The socket is bound to port 0 before uvicorn starts, so the port is free by
    construction and no other test can take it.  Uvicorn's logging config is left alone.
    """
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every keep-alive request waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            http="h11",
            ws="none",
            lifespan="auto",
            timeout_graceful_shutdown=max(1, int(shutdown_timeout / 2)),
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            async with asyncio.timeout(startup_timeout):
                while not server.started:  # a readiness poll, not a timing assumption
                    if task.done():
                        await task
                        raise RuntimeError("the server stopped while starting")
                    await asyncio.sleep(0.01)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            try:
                async with asyncio.timeout(shutdown_timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                server.force_exit = True
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        sock.close()
