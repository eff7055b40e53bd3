"""Starlette ↔ authlib glue: reading parameters and writing RFC 6749 JSON replies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from gateway.errors import ProtocolError
from gateway.oidc.requests import Reply

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


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
    """The body of a back-end POST (token, revocation, introspection): a form, nothing else."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise ProtocolError("invalid_request", f"The request body must be {FORM}.")
    return await request_params(request)


def json_reply(reply: Reply) -> JSONResponse:
    """authlib's (status, body, headers) as JSON that no cache keeps."""
    headers = {name: value for name, value in reply.headers
               if name.lower() != "content-type"}
    headers.update(NO_STORE)
    return JSONResponse(reply.body, status_code=reply.status, headers=headers)
