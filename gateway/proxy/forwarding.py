"""Header rules for the proxy: what crosses the gateway, in each direction.

Pure functions over ``[(name, value), ...]`` lists (names in any case), so they can be
tested without a server:

- :func:`without_hop_by_hop` drops RFC 9110 §7.6.1 connection-specific headers:
  ``Connection`` and every header it names, ``Keep-Alive``, ``Proxy-*``, ``TE``,
  ``Trailer``, ``Transfer-Encoding``, ``Upgrade``;
- :func:`without_cookies` rewrites ``Cookie`` headers without the gateway's own cookies
  (its session must never reach a city system) and without any name sent twice;
- :func:`without_set_cookies` drops an upstream's ``Set-Cookie`` for those names (a system
  cannot overwrite or delete the gateway's session);
- :func:`without_underscores` drops headers with ``_`` in the name, as nginx does by
  default (``underscores_in_headers off``): ``X_Roam_Sub`` is ``X-Roam-Sub`` to many CGI
  and Java stacks, so it could pass for a header the gateway vouches for;
- :func:`forwarded_headers` replaces any client-sent ``X-Forwarded-For/Proto/Host/Prefix``
  with the gateway's own: the client's address, the scheme and host the gateway serves the
  system on (never the client's ``Host``), the path prefix;
- :func:`scoped_set_cookie` keeps an upstream's cookie to its own system: never a
  ``Domain`` (host-only, so a system cannot set cookies for its siblings or the issuer),
  and in path mode (``/s/<system>/`` on the issuer's origin, where every system shares one
  host) a name of its own, ``s.<system>.<name>``, and a ``Path`` under ``/s/<system>/``.
  The request side forwards only the cookies carrying that system's name prefix, the
  prefix removed: a system never receives another system's cookies (from their
  ``Set-Cookie``) nor the gateway's; and :func:`without_doubled_cookies` drops a name sent
  twice, so a cookie a sibling's script planted cannot shadow the system's own.

:func:`upstream_request_headers` is what the proxy runs per request: all of the request
side (plus ``Host`` and ``Expect`` dropped) in one pass over the ASGI header list, whose
names are lower case already (client-sent identity headers are the proxy's next step:
:func:`connectors.base.strip_client_identity`, the one place that defines them);
:func:`client_response_headers` is the response side in one pass, ready for ASGI. Their
tests hold them equal to the composition of the functions above.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

__all__ = [
    "HOP_BY_HOP",
    "Headers",
    "client_response_headers",
    "forwarded_headers",
    "path_cookie_prefix",
    "scoped_set_cookie",
    "upstream_request_headers",
    "without_cookies",
    "without_doubled_cookies",
    "without_hop_by_hop",
    "without_set_cookies",
    "without_underscores",
]

Headers = list[tuple[str, str]]

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
    "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})

_FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                        "x-forwarded-prefix"})
# What a client could claim about where a request came from or what it asked for, in the
# forms other proxies and frameworks read (RFC 7239 Forwarded, which Spring prefers over
# X-Forwarded-*; nginx's X-Real-IP; IIS's X-Original-URL/X-Rewrite-URL; method
# overrides): only the gateway speaks for that, and it speaks in X-Forwarded-* alone.
_CLAIMED = frozenset({
    "forwarded", "x-real-ip", "x-forwarded-port", "x-forwarded-ssl", "x-forwarded-scheme",
    "x-forwarded-server", "x-forwarded-uri", "x-original-url", "x-rewrite-url",
    "x-original-host", "x-host", "x-client-ip", "true-client-ip", "client-ip",
    "x-cluster-client-ip", "x-http-method-override", "x-http-method", "x-method-override",
})


def _named_by_connection(pairs: Iterable[tuple[str, str]]) -> set[str]:
    """The header names a ``Connection`` header lists (hop-by-hop too), lower case."""
    return {
        token.strip().lower()
        for name, value in pairs if name.lower() == "connection"
        for token in value.split(",") if token.strip()
    }


def without_hop_by_hop(headers: Iterable[tuple[str, str]]) -> Headers:
    """``headers`` without hop-by-hop headers, including those ``Connection`` names."""
    pairs = list(headers)
    named = _named_by_connection(pairs)
    return [
        (name, value) for name, value in pairs
        if (lower := name.lower()) not in HOP_BY_HOP
        and lower not in named
        and not lower.startswith("proxy-")
    ]


def _cookie_name(pair: str) -> str:
    return pair.split("=", 1)[0].strip()


def without_cookies(headers: Iterable[tuple[str, str]], names: Collection[str]) -> Headers:
    """``headers`` with every ``Cookie`` header rewritten without the cookies ``names``;
    a ``Cookie`` header left empty is dropped."""
    out: Headers = []
    for name, value in headers:
        if name.lower() != "cookie":
            out.append((name, value))
            continue
        kept = without_doubled_cookies([p.strip() for p in value.split(";")
                                        if p.strip() and _cookie_name(p) not in names])
        if kept:
            out.append((name, "; ".join(kept)))
    return out


def without_set_cookies(headers: Iterable[tuple[str, str]], names: Collection[str]) -> Headers:
    """``headers`` without any ``Set-Cookie`` that sets one of the cookies ``names``."""
    return [
        (name, value) for name, value in headers
        if not (name.lower() == "set-cookie" and _cookie_name(value.split(";", 1)[0]) in names)
    ]


def without_underscores(headers: Iterable[tuple[str, str]]) -> Headers:
    """``headers`` without those whose name holds ``_``."""
    return [(name, value) for name, value in headers if "_" not in name]


def forwarded_headers(headers: Iterable[tuple[str, str]], *, client: str | None, proto: str,
                      host: str, prefix: str) -> Headers:
    """``headers`` with the ``X-Forwarded-*`` set the gateway vouches for.

    Whatever a client sent as ``X-Forwarded-For/Proto/Host/Prefix`` — or in any other form
    a proxy or framework reads (``Forwarded``, ``X-Real-IP``, ``X-Original-URL``, a method
    override, …) — is dropped, never kept beside the gateway's: the gateway is where the
    request entered (its server does not trust them either), so ``For`` is the address it
    saw and ``Host`` is the host it serves the system on.
    """
    out = [(name, value) for name, value in headers
           if name.lower() not in _FORWARDED and name.lower() not in _CLAIMED]
    if client:
        out.append(("X-Forwarded-For", client))
    out.append(("X-Forwarded-Proto", proto))
    if host:
        out.append(("X-Forwarded-Host", host))
    if prefix:  # empty for a system on its own host: nothing to strip
        out.append(("X-Forwarded-Prefix", prefix))
    return out


_NOT_FORWARDED = HOP_BY_HOP | _FORWARDED | _CLAIMED | {"host", "expect"}


def upstream_request_headers(raw: Iterable[tuple[bytes, bytes]], *,
                             cookie_names: Collection[str], client: str | None, proto: str,
                             host: str, prefix: str, cookie_prefix: str = "",
                             cookie_name_prefixes: tuple[str, ...] = ()) -> Headers:
    """The client's ASGI headers as an upstream may see them, in one pass.

    Equal to ``forwarded_headers(without_cookies(without_underscores(drop host/expect(
    without_hop_by_hop(headers)))))``; ``raw`` names must be lower case, as ASGI gives them.
    The gateway's cookies are ``cookie_names`` and any name starting with one of
    ``cookie_name_prefixes``. With a ``cookie_prefix`` (path mode) only the cookies named
    with it go up, without it.
    """
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    named = _named_by_connection(pairs)
    out: Headers = []
    for name, value in pairs:
        if (name in _NOT_FORWARDED or name in named or name.startswith("proxy-")
                or "_" in name):
            continue
        if name == "cookie":
            if cookie_prefix:
                kept = [p.strip()[len(cookie_prefix):] for p in value.split(";")
                        if p.strip().startswith(cookie_prefix)]
            else:
                kept = [p.strip() for p in value.split(";")
                        if p.strip() and (cookie := _cookie_name(p)) not in cookie_names
                        and not cookie.startswith(cookie_name_prefixes)]
            kept = without_doubled_cookies(kept)
            if kept:
                out.append((name, "; ".join(kept)))
            continue
        out.append((name, value))
    if client:
        out.append(("X-Forwarded-For", client))
    out.append(("X-Forwarded-Proto", proto))
    if host:
        out.append(("X-Forwarded-Host", host))
    if prefix:
        out.append(("X-Forwarded-Prefix", prefix))
    return out


_NOT_RETURNED = HOP_BY_HOP | {"date"}


def client_response_headers(headers: Iterable[tuple[str, str]], *,
                            cookie_names: Collection[str], base: str,
                            prefix: str, cookie_prefix: str = "",
                            cookie_name_prefixes: tuple[str, ...] = (),
                            ) -> list[tuple[bytes, bytes]]:
    """An upstream's answer headers as the client may see them, as ASGI wants them.

    Equal to ``without_set_cookies(without_hop_by_hop(headers))`` without ``Date`` (the
    gateway's server sends its own: two would be invalid, and nginx drops the upstream's
    too), every ``Set-Cookie`` through :func:`scoped_set_cookie` (path mode: with
    ``cookie_prefix`` and under ``prefix``), a ``Location`` into ``base`` rewritten under
    ``prefix``, names lower-cased and both encoded (latin-1).
    """
    pairs = [(name.lower(), value) for name, value in headers]
    named = _named_by_connection(pairs)
    out: list[tuple[bytes, bytes]] = []
    for name, value in pairs:
        if name in _NOT_RETURNED or name in named or name.startswith("proxy-"):
            continue
        if name == "set-cookie":
            cookie = _cookie_name(value.split(";", 1)[0])
            if cookie in cookie_names or cookie.startswith(cookie_name_prefixes):
                continue
            value = scoped_set_cookie(value, name_prefix=cookie_prefix,
                                      path_prefix=prefix if cookie_prefix else "")
        if name == "location" and (value == base or value.startswith(base + "/")):
            value = prefix + (value[len(base):] or "/")
        out.append((name.encode("latin-1"), value.encode("latin-1")))
    return out



def without_doubled_cookies(pairs: list[str]) -> list[str]:
    """``name=value`` pairs without any name sent twice: a second cookie of a name is one
    that another host of the same site (or a script) planted for a parent domain or a
    longer path, and which of the two is the system's own cannot be told, so neither goes
    up (as the gateway reads its own doubled cookies as none)."""
    if len(pairs) < 2:
        return pairs
    names = [_cookie_name(pair) for pair in pairs]
    if len(set(names)) == len(names):
        return pairs
    doubled = {n for n in names if names.count(n) > 1}
    return [pair for pair, n in zip(pairs, names, strict=True) if n not in doubled]


def path_cookie_prefix(system_id: str) -> str:
    """The name prefix of a path-mode system's cookies in the browser."""
    return f"s.{system_id}."


def scoped_set_cookie(value: str, *, name_prefix: str = "", path_prefix: str = "") -> str:
    """An upstream's ``Set-Cookie`` value kept to its system: no ``Domain`` attribute;
    with ``name_prefix`` the name gets it, and with ``path_prefix`` the ``Path`` moves
    under it (``Path=/`` → ``Path=/s/<system>/``; no ``Path``: the browser's default, the
    request's own directory, is already under it)."""
    first, _, attributes = value.partition(";")
    kept: list[str] = []
    for attribute in attributes.split(";") if attributes else ():
        key, _, attr_value = attribute.partition("=")
        key = key.strip().lower()
        if key == "domain":
            continue
        if key == "path" and path_prefix:
            path = attr_value.strip()
            attribute = f" Path={path_prefix}{path if path.startswith('/') else '/'}"
        kept.append(attribute)
    if name_prefix:
        first = name_prefix + first.lstrip()
    return ";".join([first, *kept])
