"""Seamless switching (无感切换): from a client's access token to a browser session.

Two requests:

- ``POST /sso/transfer-ticket`` (bearer access token of the gateway, RFC 6750 errors;
  form field ``target``): a client whose registration allows it (``transfer_tickets``)
  gets a one-time URL ``/sso/transfer?ticket=…&target=…`` for one target;
- ``GET /sso/transfer?ticket=…&target=…`` in the web-view (a browser with none of our
  cookies): the ticket is used up, a gateway session is made for the same person at the
  same level, and the browser goes on to the target, whose own ``/authorize`` (or the
  proxy's hand-over, or ``/go``) then finds the session and shows no login page.

A target is one of (:func:`transfer_target`): a registered client's ``initiate_login_uri``
or a page under it (OIDC's third-party-initiated login: the RP's page that starts its own
login); a ``/go/{item}?region=…`` link of the issuer for an item in the catalogue; or a
page on a proxied system's own host (the issuer's scheme and port). Anything else is
refused when the ticket is asked for and again when it is used, so the transfer is never an
open redirect. A ticket used with another target than it was minted for is used up and
refused.

The session copies the identity of the token's grant — ``acr`` and ``auth_time`` as the
original authentication made them (never higher), ``amr`` with ``transfer`` appended so
RPs can tell — and the token it was minted with must still be good (its grant and the
token itself not revoked, the session it was issued in not ended). A browser that already
has a session of another person is refused and keeps it: a URL someone sent must not
change whom the browser acts as (login CSRF); one of the same person at that level or
above is kept as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import audit_event
from gateway.config import ClientConfig, Systems
from gateway.errors import PageError, ProtocolError
from gateway.login.transfer_tickets import Ticket, TransferTickets
from gateway.metrics.recorder import Metrics
from gateway.oidc.active import ActiveTokens
from gateway.oidc.bearer import BearerTokens, bearer_error
from gateway.oidc.clients import ClientRegistry
from gateway.sessions import SessionManager
from gateway.urls import normalized_url, origin_on, url_under

__all__ = ["TICKET_PATH", "TRANSFER_METHOD", "TRANSFER_PATH", "Transfer", "transfer_target"]

TICKET_PATH = "/sso/transfer-ticket"
TRANSFER_PATH = "/sso/transfer"
TRANSFER_METHOD = "transfer"
"""Appended to ``amr``: this session came from a client's token, not a login here."""

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache", "Referrer-Policy": "no-referrer"}
_REGION_CODE_LEN = 6


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` in normal form; "" if it is not a URL we take."""
    normal = normalized_url(url)
    if normal is None:
        return ""
    parts = urlsplit(normal)
    return f"{parts.scheme}://{parts.netloc}"


def _go_link(path: str, query: str, systems: Systems) -> bool:
    """``/go/{item}`` for an item in the catalogue, with at most a six-digit ``region``."""
    item = unquote(path[len("/go/"):])
    if not item or "/" in item or systems.item(item) is None:
        return False
    if not query:
        return True
    name, _, value = query.partition("=")
    return name == "region" and len(value) == _REGION_CODE_LEN and value.isdigit()


def _on_system_host(url: str, systems: Systems, issuer: str) -> str | None:
    """``url`` in normal form if it is a page on a proxied system's own host, served with
    the issuer's scheme and port (as the hand-over requires); else None."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url) or "\\" in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    if host not in systems.by_host() or parts.username or parts.password:
        return None
    origin = origin_on(issuer, host)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return None
    # The path and query normalised by the issuer's rules (the same listener serves both).
    issuer_origin = _origin(issuer)
    query = f"?{parts.query}" if parts.query else ""
    rest = normalized_url(issuer_origin + (parts.path or "/") + query) if issuer_origin else None
    return None if rest is None else origin + rest[len(issuer_origin):]


def transfer_target(url: str, *, clients: Iterable[ClientConfig], systems: Systems,
                    issuer: str) -> str | None:
    """``url`` in normal form if a transfer may lead there, else None (module docstring)."""
    if "#" in url:
        return None
    on_host = _on_system_host(url, systems, issuer)
    if on_host is not None:
        return on_host
    normal = normalized_url(url)
    if normal is None:
        return None
    if any(c.initiate_login_uri and url_under(normal, c.initiate_login_uri) for c in clients):
        return normal
    parts = urlsplit(normal)
    origin = _origin(normal)
    if origin == _origin(issuer) and parts.path.startswith("/go/"):
        return normal if _go_link(parts.path, parts.query, systems) else None
    return None


def _refused(reason: str, **fields: str) -> PageError:
    """The one page every refused transfer shows; the log line carries its reference."""
    page = PageError("链接已失效", "该登录链接无效、已过期或已被使用，请返回小程序重新打开该服务。",
                     status=400)
    audit_event("transfer.ticket.redeem", "failure", reason=reason, ref=page.ref, **fields)
    return page


class Transfer:
    def __init__(self, *, tickets: TransferTickets, bearer: BearerTokens,
                 clients: ClientRegistry, active: ActiveTokens, sessions: SessionManager,
                 systems: Systems, issuer: str, metrics: Metrics | None = None) -> None:
        self.tickets = tickets
        self.bearer = bearer
        self.metrics = metrics or Metrics()
        self.clients = clients
        self.active = active
        self.sessions = sessions
        self.systems = systems
        self.issuer = issuer

    def _target(self, url: str) -> str | None:
        return transfer_target(url, clients=(c.config for c in self.clients),
                               systems=self.systems, issuer=self.issuer)

    async def _ticket_for(self, request: Request) -> Ticket:
        """The access token's grant and client (a bearer token, or a DPoP-bound one with
        its proof), and the form's target; RFC 6750/9449 errors."""
        claims, client, grant = await self.bearer.check(request)
        if not client.config.transfer_tickets:
            raise bearer_error("insufficient_scope",
                               "This client may not ask for transfer tickets.", 403)
        form = await request.form()
        raw = form.get("target")
        target = self._target(raw) if isinstance(raw, str) else None
        if target is None:
            raise ProtocolError("invalid_request", "target is not a registered transfer target.")
        jti = claims.get("jti")
        return Ticket(grant_id=grant.grant_id, client_id=client.client_id,
                      subject=grant.identity.subject, target=target,
                      token_id=jti if isinstance(jti, str) else "",
                      token_sub=str(claims.get("sub", "")))

    async def mint(self, request: Request) -> Response:
        """``POST /sso/transfer-ticket``: a one-time URL into a browser for one target."""
        ticket = await self._ticket_for(request)
        value = await self.tickets.mint(ticket)
        query = urlencode({"ticket": value, "target": ticket.target})
        url = f"{self.issuer}{TRANSFER_PATH}?{query}"
        audit_event("transfer.ticket.issue", "success", subject=ticket.subject,
                    client=ticket.client_id, target=ticket.target)
        return JSONResponse({"transfer_url": url, "expires_in": self.tickets.ttl},
                            headers=_NO_STORE)

    async def enter(self, request: Request) -> Response:
        """``GET /sso/transfer?ticket=…&target=…``: the ticket becomes this browser's
        session, then the target. Any failure: a Chinese page, no session, no redirect."""
        target = self._target(request.query_params.get("target", ""))
        if target is None:  # bad input changes nothing: the ticket stays unused
            raise _refused("target not registered")
        ticket = await self.tickets.take(request.query_params.get("ticket", ""))
        if ticket is None:
            raise _refused("ticket unknown, expired or used")
        if ticket.target != target:  # used up all the same: a tampered URL is spent
            raise _refused("ticket for another target", client=ticket.client_id)
        client = self.clients.get(ticket.client_id)
        # The token it was minted with must still be good: grant, token and session live.
        grant = await self.active.grant_of_access_token(ticket.token_claims())
        if client is None or not client.config.transfer_tickets or grant is None:
            raise _refused("grant or client no longer valid", client=ticket.client_id)
        original = grant.identity
        amr = original.amr if TRANSFER_METHOD in original.amr else (*original.amr,
                                                                       TRANSFER_METHOD)
        identity = original.with_auth(acr=original.acr, amr=amr, auth_time=original.auth_time)
        response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
        current = await self.sessions.load(request)
        if current is not None and current.identity.subject != identity.subject:
            # Someone else is logged in here: a URL someone sent must not swap the person
            # this browser acts as (login CSRF). Nothing changes; they log out first.
            raise _refused("browser has another person's session", client=ticket.client_id,
                           sid=current.sid)
        if current is not None and current.identity.level >= identity.level:
            session = current  # already here at this level or above: keep it as it is
        else:
            session = await self.sessions.start(identity, response, current=current)
            self.metrics.login("transfer_ticket", "webview", identity.acr)
        audit_event("transfer.ticket.redeem", "success", subject=identity.subject,
                    client=ticket.client_id, acr=identity.acr, sid=session.sid, target=target)
        return response
