"""The bridge between Starlette and authlib: requests in, RFC 6749 JSON replies out.

authlib must never touch the ASGI stream itself: Starlette reads the body (the query of a
GET, the form of a POST), and authlib gets an :class:`HttpRequest` made of the parameters,
the headers, the URL discovery publishes and a ``StoreWork`` for what it needs from the
store. What authlib answers comes back as a :class:`Reply`, written as JSON no cache keeps.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request
from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.errors import ProtocolError
from gateway.oidc.work import StoreWork

__all__ = [
    "FORM",
    "MAX_FORM",
    "NO_STORE",
    "REPEATABLE",
    "HttpRequest",
    "Reply",
    "add_query",
    "check_basic_credentials",
    "form_params",
    "json_reply",
    "published_url",
    "request_params",
]

log = logging.getLogger("roam.oauth")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024
"""The largest back-end form read (a token request with a client assertion is a few
kilobytes)."""
REPEATABLE = frozenset({"audience", "resource"})  # RFC 8693 §2.1, RFC 8707


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {key: values[0] for key, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class HttpRequest(OAuth2Request):  # type: ignore[misc]
    """An already-read HTTP request: authlib gets parameters, never the ASGI stream."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        *,
        query: Sequence[tuple[str, str]] = (),
        form: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(method, uri, headers=headers)
        self.work = StoreWork()
        self._args = dict(query)
        self._form = dict(form)
        self.payload = _Payload([*query, *form])

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Reply:
    """What authlib hands back: status, JSON-able body (or ""), and headers."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "location":
                return value
        return None


def add_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def published_url(issuer: str, request: Request) -> str:
    """The URL of this endpoint as discovery publishes it, for authlib's checks.

    Not the URL the request came in on: behind a proxy that ends TLS that one is plain
    http for an internal host name, which authlib refuses as insecure transport. The
    query is not part of it: parameters reach authlib already parsed.
    """
    return issuer + str(request.scope.get("path", "/"))


async def request_params(request: Request) -> list[tuple[str, str]]:
    """The query of a GET, the form of a POST (OIDC allows both at /authorize, /logout)."""
    if request.method != "POST":
        return list(request.query_params.multi_items())
    form = await request.form()
    return [(k, v) for k, v in form.multi_items() if isinstance(v, str)]


async def form_params(request: Request) -> list[tuple[str, str]]:
    """The body of a back-end POST (token, revocation, introspection): a form, nothing
    else, of at most ``MAX_FORM`` bytes. Parsed with ``parse_qsl`` rather than Starlette's
    multipart parser: these endpoints are hot (a fifth of an introspection's CPU went to
    parsing its form) and never take anything but a small urlencoded body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise ProtocolError("invalid_request", f"The request body must be {FORM}.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise ProtocolError("invalid_request", "The request body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ProtocolError("invalid_request", "The form is not UTF-8.") from None
    seen: set[str] = set()
    for name, _ in pairs:  # RFC 6749 §3.2: no parameter twice (RFC 8693's lists aside)
        if name in seen and name not in REPEATABLE:
            raise ProtocolError("invalid_request", f"The parameter {name!r} is repeated.")
        seen.add(name)
    return pairs


class JsonReply(JSONResponse):
    """A protocol endpoint's JSON, written by orjson: the same compact UTF-8 as
    Starlette's ``json.dumps``, in a twentieth of the time (a token response is answered
    hundreds of times a second)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_reply(reply: Reply) -> JSONResponse:
    """authlib's (status, body, headers) as JSON that no cache keeps."""
    headers = {name: value for name, value in reply.headers
               if name.lower() != "content-type"}
    headers.update(NO_STORE)
    return JsonReply(reply.body, status_code=reply.status, headers=headers)


def check_basic_credentials(headers: Mapping[str, str]) -> None:
    """Refuse ``Authorization: Basic`` that is not base64 of UTF-8 ``client_id:secret``
    (RFC 6749 §2.3.1, RFC 7617) with ``401 invalid_client``, before anything is read.

    authlib's parser fails on bad UTF-8 (a 500) and passes over bad base64 or a missing
    colon, letting another method (``none``, a form secret) authenticate instead: a
    client that sent credentials no one can read has failed to authenticate.
    """
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        text = credentials.strip()
        decoded = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        client_id, colon, _ = decoded.decode("utf-8").partition(":")
    except (binascii.Error, ValueError):  # UnicodeError is a ValueError
        client_id, colon = "", ""
    if not (client_id and colon):
        log.info("client authentication refused: unreadable Basic credentials")
        raise ProtocolError("invalid_client", "The Basic credentials cannot be read.",
                            status=401, headers={"WWW-Authenticate": 'Basic realm="roam"'})
