"""A scripted DNS for loopback tests: every name resolves to the address the script says."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class ScriptedResolver(AbstractResolver):
    """Answers each lookup with the next entry of the script, the last one repeating.

    An address answers every name with it (a tenant's name pointed inward, or rebinding
    when the script changes address); ``None`` fails the lookup as the system resolver does.
    """

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.lookups = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        if address is None:
            raise OSError(None, "resolution failed") from socket.gaierror(-2, "Name not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None
