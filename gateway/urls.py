"""URL and host rules shared by the config loader, the connectors and the endpoints.

Plain http is acceptable only on loopback (the demo and tests); every other URL the
gateway is told about is https. Host names are compared lower case and without a port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit

__all__ = ["HOST_NAME", "append_query", "check_url", "is_loopback_host", "is_loopback_http",
           "within_domain"]

HOST_NAME = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$"
"""A lower-case DNS host name with at least two labels (no port, no IP address)."""


def is_loopback_http(url: str) -> bool:
    """Whether ``url`` is plain http on a loopback host (the only place http is accepted)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def is_loopback_host(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1, localhost, *.localhost),
    whatever the scheme: where only a developer can be the user."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def within_domain(host: str, domain: str) -> bool:
    """Whether a cookie for ``domain`` is sent to ``host`` (RFC 6265 §5.1.3)."""
    return host == domain or host.endswith("." + domain)


def check_url(value: str, *, allow_fragment: bool = False) -> str:
    """``value`` if it is an absolute https URL (http on loopback), else ``ValueError``."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback_http(value):
        raise ValueError(f"{value!r} uses plain http on a non-loopback host")
    if parts.fragment and not allow_fragment:
        raise ValueError(f"{value!r} must not contain a fragment")
    return value


def append_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query, before any fragment; the rest is kept
    byte for byte (a CAS service URL must come back exactly as the system sent it)."""
    base, hash_, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}{urlencode(params)}{hash_}{fragment}"
