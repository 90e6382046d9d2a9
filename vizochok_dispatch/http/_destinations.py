"""Where webhook requests may go: the SSRF guard.

Tenants choose the URLs we call, so a URL must never reach our own network.  An address is
allowed when it is in the deployment's allow-list (``VIZOCHOK_ALLOWED_NETWORKS``) or globally
routable, judged after unwrapping every form that embeds an IPv4 address in an IPv6 one
(IPv4-mapped, 6to4, Teredo, NAT64).  Hosts written as numbers (``2130706433``,
``0x7f000001``, ``127.1``) are read the way the C resolver reads them.

The check runs three times: on save (literal and numeric hosts, and ``localhost``; the admin
API also resolves the name then, so a tenant learns at once that its URL points inward), on
every attempt before sending (the same, cheaply, no DNS), and at connect time inside the
transport's resolver, which checks every address DNS returns and hands only checked ones to
the connection, so DNS rebinding cannot swap the address after the check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


#: Resolves a host name to address strings (``loop.getaddrinfo`` by default; tests inject one).
HostResolver = Callable[[str], Awaitable[Sequence[str]]]


async def system_resolve(host: str) -> list[str]:
    """The system resolver, off the event loop's thread (``getaddrinfo``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class BlockedAddressError(OSError):
    """A host resolved to an address the policy forbids (an ``OSError`` for aiohttp)."""


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if any(address in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    compat = int(address)  # the deprecated IPv4-compatible form ::a.b.c.d
    if compat >> 32 == 0 and compat > 1:
        found.append(ipaddress.IPv4Address(compat))
    return found


def parse_host_address(host: str) -> IPAddress | None:
    """The address a host names by itself (``127.1``, ``0x7f000001``, ``[::1]``), or ``None``."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))  # the C resolver's numeric forms
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Which addresses webhook requests may connect to."""

    allowed_networks: tuple[IPNetwork, ...] = ()

    def address_allowed(self, address: IPAddress) -> bool:
        """Allowed when listed, or when it and every address it embeds are global."""
        if any(address.version == net.version and address in net for net in self.allowed_networks):
            return True
        if not address.is_global or address.is_multicast:
            return False
        return all(self.address_allowed(inner) for inner in embedded_ipv4(address))

    def host_problem(self, host: str) -> str | None:
        """Why a host can be refused without DNS (a literal or local name), else ``None``."""
        name = host.lower().rstrip(".")
        address = parse_host_address(name)
        if address is not None:
            if self.address_allowed(address):
                return None
            return f"points to a non-public address ({address})"
        if name in _LOCAL_NAMES or name.endswith(".localhost"):
            loopback = ipaddress.IPv4Address("127.0.0.1")
            if self.address_allowed(loopback):
                return None
            return "points to this machine (localhost)"
        return None

    def url_problem(self, url: str) -> str | None:
        """:meth:`host_problem` for a URL's host."""
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return "is not a valid URL"
        return None if host is None else self.host_problem(host)

    async def resolved_url_problem(
        self, url: str, resolve: HostResolver, *, timeout_seconds: float = 2.0
    ) -> str | None:
        """The save-time DNS check: a name that resolves to any blocked address is refused.

        A name that does not resolve (now) is accepted: the connect-time check still guards
        every call.  The message does not echo the address, so the check cannot be used to
        read our internal DNS.
        """
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return None  # the static check reports it
        if not host or parse_host_address(host) is not None:
            return None  # a literal address: the static check already judged it
        try:
            async with asyncio.timeout(timeout_seconds):
                answers = await resolve(host)
        except (OSError, TimeoutError, UnicodeError, ValueError):
            return None
        for text in answers:
            try:
                address = ipaddress.ip_address(str(text).split("%", 1)[0])
            except ValueError:
                continue
            if not self.address_allowed(address):
                return "resolves to a non-public address"
        return None

    def check_addresses(self, host: str, addresses: Iterable[str]) -> None:
        """Raise :class:`BlockedAddressError` if any resolved address is forbidden."""
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.address_allowed(address):
                raise BlockedAddressError(f"{host} resolves to a non-public address ({address})")


def parse_networks(value: str | Sequence[str]) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, ::1/128"`` as networks; a bad entry raises ``ValueError``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner``, then refuses the host if any answer is forbidden.

    aiohttp connects to the addresses this returns, keeping the URL's host for the Host
    header and TLS SNI, so what was checked is what is connected to.
    """

    def __init__(self, policy: DestinationPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve, check every address, return them all or raise."""
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        self._policy.check_addresses(host, (result["host"] for result in results))
        return results

    async def close(self) -> None:
        """Close the inner resolver."""
        if self._inner is not None:
            await self._inner.close()
