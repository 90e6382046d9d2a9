"""A loopback TCP proxy that can stop answering: a database reachable but hung.

``StallProxy(host, port)`` listens on ``127.0.0.1:<proxy.port>`` and forwards to the target.
``stall()`` makes it stop forwarding: new connections are accepted and held silent, and bytes
arriving on connections already open are held back (in both directions) for as long as the
proxy lives, as after a failover that black-holes the old connections.  ``resume()`` makes
new connections forward again; the held ones stay held.  The proxy runs its own event loop in
a daemon thread, so it serves sync and async tests alike, and it stops by itself after
``lifetime_seconds`` (closing everything), whatever the test does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Self

_CHUNK = 64 * 1024


class StallProxy:
    """A TCP proxy on 127.0.0.1 in front of ``(host, port)``; see the module docstring."""

    def __init__(self, host: str, port: int, *, lifetime_seconds: float = 60.0) -> None:
        self.target = (host, port)
        self.lifetime_seconds = lifetime_seconds
        self.port = 0
        #: Connections accepted so far, and how many of them were held (never forwarded).
        self.accepted = 0
        self.held = 0
        self._stalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-proxy", daemon=True)

    # -- control (any thread) --------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the stall proxy did not start")
        return self

    def stall(self) -> None:
        """Stop forwarding: accept and hold, and hold back what arrives on open connections."""
        self._stalled = True

    def resume(self) -> None:
        """Forward new connections again (held ones stay held)."""
        self._stalled = False

    def close(self) -> None:
        """Stop the proxy and close every connection; idempotent."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the proxy's own loop ----------------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        writers: set[asyncio.StreamWriter] = set()
        tasks: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.add(writer)
            self.accepted += 1
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                if self._stalled:
                    self.held += 1
                    await self._stop_event().wait()  # accepted, never answered
                    return
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
                writers.add(upstream_writer)
                await asyncio.gather(
                    self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
                return  # closed by a peer, or by the proxy's shutdown
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.lifetime_seconds):
                await self._stop.wait()
        self._stop.set()  # releases the held connections
        server.close()
        for writer in list(writers):
            writer.transport.abort()  # ends the pumps
        if tasks:
            _, pending = await asyncio.wait(list(tasks), timeout=5)
            for task in pending:
                task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()

    def _stop_event(self) -> asyncio.Event:
        assert self._stop is not None
        return self._stop

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if self._stalled:  # hold it: the peer waits for an answer that never comes
                await self._stop_event().wait()
                return
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
