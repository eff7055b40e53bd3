"""The guard for outbound calls to URLs that clients register (an SSRF channel).

A client registers a back-channel logout URI, a JWKS URI or a sector-identifier URI and
the gateway then calls it from inside the province's network. Without a guard that is a
way to reach the metadata service, Redis, or an intranet admin page. Like
node-oidc-provider, Roam refuses every special-use address unless the operator allowed
its network in ``[outbound] allowed_networks`` (the demo and tests allow loopback).

Every call is pinned (:meth:`OutboundPolicy.pin`): the name is resolved once, the
addresses are checked, and the connection goes to a checked address, with the name kept
for the ``Host`` header and for TLS (SNI and the certificate's name, through httpx's
``sni_hostname`` extension). The HTTP client never resolves the name again, so a hostile
DNS server cannot answer a public address to the check and an internal one to the
connection (DNS rebinding). Deployments should still block special-use egress at the
network layer.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from gateway.config import OutboundSection
from gateway.errors import RoamError

__all__ = ["OutboundPolicy", "OutboundRefused", "Pinned", "Resolver", "is_special"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Resolves ``(host, port)`` to IP address strings; injectable so tests never touch DNS.
Resolver = Callable[[str, int], Awaitable[Iterable[str]]]

# Spelled out because ``ipaddress`` differs between Python patch releases (3.11 still
# calls NAT64, 6to4, site-local and the 2024 documentation prefix "global").
_SPECIAL_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, incl. the 169.254.169.254 metadata service
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. 255.255.255.255
        "::/128",
        "::1/128",
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments (Teredo, ORCHID, ...)
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a 6to4 or NAT64 address will really reach, if any."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _unmap(address: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` *is* ``a.b.c.d`` on the wire: judge it as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _special_one(address: IPAddress) -> bool:
    if any(address in n for n in _SPECIAL_NETWORKS if n.version == address.version):
        return True
    return (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_link_local
        or address.is_loopback
        or address.is_unspecified
    )


def is_special(address: IPAddress) -> bool:
    """True for any address that is not plainly a public unicast host. A 6to4 or NAT64
    address is judged by the IPv4 address it reaches, and only by that: Python releases
    with the 2024 ``ipaddress`` fixes (3.11.10+, and distributions' patched builds) call
    the whole 6to4 and NAT64 prefixes non-global, older ones do not."""
    address = _unmap(address)
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _special_one(embedded)
    return _special_one(address)


class OutboundRefused(RoamError):
    """The guard refused an outbound URL; the message says why (no secrets in it)."""


@dataclass(frozen=True)
class Pinned:
    """A checked URL, bound to the address that was checked: ``url`` names the address,
    ``headers`` and ``extensions`` carry the name for the ``Host`` header and for TLS."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class OutboundPolicy:
    """Decides whether the gateway may call a client-registered URL.

    Built from ``[outbound]``: ``allowed_networks`` lets special-use networks through
    (the demo and tests allow loopback) and ``timeout`` is the per-call budget, used for
    name resolution here and for the request by callers.
    """

    def __init__(
        self,
        section: OutboundSection | None = None,
        *,
        resolver: Resolver | None = None,
    ) -> None:
        section = section or OutboundSection()
        self.timeout = section.timeout
        self.retry_for = section.retry_for
        self.allowed_networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in section.allowed_networks
        )
        self._resolve: Resolver = resolver or _system_resolver

    def allows_address(self, address: IPAddress) -> bool:
        """True if this address may be called: public, or inside an allowed network."""
        candidates = [address, _unmap(address)]
        if isinstance(candidates[1], ipaddress.IPv6Address):
            embedded = _embedded_ipv4(candidates[1])
            if embedded is not None:
                candidates.append(embedded)
        for candidate in candidates:
            for network in self.allowed_networks:
                if network.version == candidate.version and candidate in network:
                    return True
        return not is_special(address)

    async def check(self, url: str) -> None:
        """Raise ``OutboundRefused`` unless ``url`` may be called now (:meth:`pin`)."""
        await self.pin(url)

    async def pin(self, url: str) -> Pinned:
        """``url`` bound to an address it resolves to now; ``OutboundRefused`` unless it
        may be called.

        Every address the host resolves to must pass, not just the first (a resolver that
        mixes an internal address in is refused outright). Plain http is only for
        loopback hosts (the demo and tests).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
            host = parts.hostname
            target = httpx.URL(url)
        except (ValueError, httpx.InvalidURL) as error:
            raise OutboundRefused(f"malformed URL ({error})") from error
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundRefused(f"scheme {scheme or '(none)'!r} is not http(s)")
        if not host:
            raise OutboundRefused("URL has no host")
        if port is None:
            port = 443 if scheme == "https" else 80

        addresses = await self._addresses(host, port)
        if scheme == "http" and not all(_unmap(a).is_loopback for a in addresses):
            raise OutboundRefused(f"plain http to non-loopback host {host}")
        for address in addresses:
            if not self.allows_address(address):
                raise OutboundRefused(f"host {host} resolves to special-use address {address}")
        address = addresses[0]
        name = target.raw_host.decode("ascii")  # IDNA-encoded, as TLS and Host want it
        extensions: dict[str, Any] = {"sni_hostname": name} if scheme == "https" else {}
        return Pinned(url=str(target.copy_with(host=str(address))),
                      headers={"Host": target.netloc.decode("ascii")},  # no userinfo in it
                      extensions=extensions)

    @contextlib.asynccontextmanager
    async def stream(self, http: httpx.AsyncClient, method: str, pinned: Pinned,
                     **options: Any) -> AsyncIterator[httpx.Response]:
        """``http.stream`` to a pinned URL: never a redirect, within the policy's
        timeout; ``options`` as httpx takes them (``data``, ``headers``)."""
        # a connection made for this name serves no other name: the pool knows it only by
        # its address, and another name's request must not skip its own TLS check
        headers = {**options.pop("headers", {}), **pinned.headers, "Connection": "close"}
        async with http.stream(method, pinned.url, headers=headers,
                               extensions=pinned.extensions, timeout=self.timeout,
                               follow_redirects=False, **options) as answer:
            yield answer

    async def read(self, http: httpx.AsyncClient, url: str, *, limit: int
                   ) -> tuple[bytes, httpx.Headers]:
        """A client-registered document, if :meth:`pin` allows ``url``: the body of a
        ``200`` (read no further than ``limit`` bytes, streamed) and its headers.
        ``OutboundRefused`` for a refused URL, another status or a longer body;
        ``httpx.HTTPError`` when it cannot be had."""
        pinned = await self.pin(url)
        async with self.stream(http, "GET", pinned) as answer:
            if answer.status_code != 200:
                raise OutboundRefused(f"answered {answer.status_code}")
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise OutboundRefused(f"more than {limit} bytes")
            return bytes(body), answer.headers

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]  # a literal needs no DNS
        except ValueError:
            pass
        try:
            with anyio.fail_after(self.timeout):
                found = list(await self._resolve(host, port))
        except TimeoutError as error:
            raise OutboundRefused(f"resolving {host} timed out") from error
        except (OSError, UnicodeError, ValueError) as error:
            raise OutboundRefused(f"cannot resolve {host}") from error
        if not found:
            raise OutboundRefused(f"{host} resolves to no address")
        addresses: list[IPAddress] = []
        for text in found:
            try:
                addresses.append(ipaddress.ip_address(text))
            except ValueError as error:
                raise OutboundRefused(f"{host} resolves to a non-IP address") from error
        return addresses

