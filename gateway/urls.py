"""URL and host rules shared by the config loader, the connectors and the endpoints.

Plain http is acceptable only on loopback (the demo and tests); every other URL the
gateway is told about is https. Host names are compared lower case and without a port.

A URL that must lie under a registered one (a CAS ``service``, a ticket ``target``) is
compared by :func:`url_under`: both normalised (:func:`normalized_url`: scheme and host
lower case, no default port, percent-encoding normalised as RFC 3986 §6.2.2 says), on a
path-segment boundary, and never with a dot segment (:func:`has_dot_segment`: ``.`` or
``..``, literal, percent-encoded once or twice, with ``\\`` for ``/`` or with ``;params``
as Tomcat, Jetty and Spring read ``..;``), which would let it climb out of the prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlencode, urlsplit

__all__ = [
    "HOST_NAME",
    "append_query",
    "check_url",
    "has_dot_segment",
    "host_name",
    "is_loopback_host",
    "is_loopback_http",
    "local_path",
    "normalized_url",
    "origin_on",
    "url_under",
    "within_domain",
]

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


def local_path(value: str | None) -> str | None:
    """``value`` if it is a path on this host (never another host): open-redirect guard."""
    if (not value or not value.startswith("/") or value.startswith("//")
            or "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        return None
    return value


def origin_on(issuer: str, host: str) -> str:
    """The origin of ``host`` served beside ``issuer``: the issuer's scheme and port (a
    system on a host of its own is served by the same listener)."""
    parts = urlsplit(issuer)
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"


def host_name(host_header: str) -> str:
    """``Host`` without its port, lower case (``[::1]:8000`` → ``[::1]``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


_DECODINGS = 3
"""How many times a path is percent-decoded looking for dot segments (``%25252e`` → ``.``):
a path still changing after that is refused as well."""


def has_dot_segment(path: str) -> bool:
    """Whether ``path`` (as sent, percent-encoded) holds a ``.`` or ``..`` segment once
    decoded, up to :data:`_DECODINGS` times: ``..``, ``%2e%2E``, ``%252e%252e``, ``..;x``
    (a path parameter), ``.%3b``, ``..\\``, ``%2f..%2f``. ``...`` and ``a.b`` are names."""
    if "." not in path and "%" not in path:  # most paths: no dot, plain or encoded
        return False
    decoded = path
    for _ in range(_DECODINGS):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        if unquote(decoded) != decoded:
            return True  # encoded deeper than anyone decodes in good faith
    for segment in decoded.replace("\\", "/").split("/"):
        if segment.partition(";")[0] in (".", ".."):
            return True
    return False


_ENCODED = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_KEPT = "!$&'()*+,;=:@/?%"  # reserved characters and escapes stay as they are


def _normal_encoding(text: str) -> str:
    """Percent-encodings of unreserved characters decoded, the others upper case; any
    other character outside US-ASCII encoded as UTF-8 (RFC 3986 §6.2.2.1-2, RFC 3987)."""
    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else "%" + match.group(1).upper()

    return _ENCODED.sub(one, quote(text, safe=_KEPT + "[]"))


def normalized_url(value: str) -> str | None:
    """``value`` as ``scheme://host[:port]/path[?query]`` in normal form (no fragment), or
    None unless it is an absolute https URL (plain http only on loopback) without user
    info, control characters, backslashes, stray ``%`` or dot segments."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value) or "\\" in value:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if (parts.scheme.lower() not in ("https", "http") or not host or "@" in parts.netloc
            or (parts.scheme.lower() == "http" and not is_loopback_http(value))):
        return None
    if "%" in _ENCODED.sub("", parts.path + parts.query) or has_dot_segment(parts.path):
        return None
    scheme = parts.scheme.lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != (443 if scheme == "https" else 80):
        netloc += f":{port}"
    path = _normal_encoding(parts.path) or "/"
    query = f"?{_normal_encoding(parts.query)}" if parts.query else ""
    return f"{scheme}://{netloc}{path}{query}"


def url_under(url: str, prefix: str) -> bool:
    """Whether ``url`` lies under the registered ``prefix``, both normalised: the same
    origin, and the prefix's path whole or up to a ``/`` (``/gjj`` covers ``/gjj``,
    ``/gjj/x`` and ``/gjj?y``, never ``/gjjx``); a prefix with a query covers only that
    path with that query, possibly followed by ``&…``."""
    target, base = normalized_url(url), normalized_url(prefix)
    if target is None or base is None:
        return False
    base_path, has_query, base_query = base.partition("?")
    path, _, query = target.partition("?")
    if has_query:
        return path == base_path and (query == base_query or query.startswith(base_query + "&"))
    return (path == base_path or path.startswith(base_path if base_path.endswith("/")
                                                 else base_path + "/"))
