"""The gateway's cookies: their names under https, and reading one without ambiguity.

Under https a cookie that belongs to one host alone is named ``__Host-<name>``: browsers
then refuse it unless it is ``Secure``, ``Path=/`` and has no ``Domain``, so a sibling
host (a proxied system on ``gjj.example.gov.cn`` beside the issuer ``sso.example.gov.cn``)
can neither plant nor overwrite it. A cookie shared with a ``Domain`` can only be
``__Secure-``. Plain http (the demo on loopback) keeps the bare name.

A request that carries the same cookie name twice is ambiguous — one of the two may have
been planted for a parent domain or a shorter path by someone else — so :func:`cookie_value`
reads it as absent rather than guessing which one is ours.
"""

from __future__ import annotations

__all__ = ["cookie_value", "host_cookie_name"]


def host_cookie_name(name: str, *, secure: bool, domain: str | None = None) -> str:
    """``name`` as the browser must see it: ``__Host-`` under https for a host-only cookie,
    ``__Secure-`` under https with a ``domain``, unchanged over http."""
    if not secure:
        return name
    return f"__Secure-{name}" if domain else f"__Host-{name}"


def cookie_value(header: str, name: str) -> str:
    """Cookie ``name`` in a ``Cookie`` header; "" when absent or sent more than once.
    Surrounding quotes go, as with Starlette's ``request.cookies``."""
    found: str | None = None
    for part in header.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            if found is not None:
                return ""  # two of one name: a planted one cannot be told from ours
            found = value.strip()
    if found is None:
        return ""
    if len(found) >= 2 and found[0] == found[-1] == '"':
        found = found[1:-1]
    return found
