"""``/authorize``: decide between a silent code, the login page, and an error.

An unknown client or an unregistered redirect URI gets a Chinese error page and never a
redirect; every other error goes back to the client with ``error``, ``error_description``,
``state`` and ``iss`` (RFC 9207). A request that needs a login is parked in the store and
the person is sent to ``/login?r=…``; after login ``/authorize/resume?r=…`` picks it up
again, so the deep link survives failed attempts.

``prompt=login`` and ``max_age`` are met only by the primary factor (the password) done
for this very request: the login page notes, beside the parked request, which session
logged in for it at which ``auth_time`` (:meth:`Authorizer.note_login`). A step-up factor
never moves ``auth_time`` and never counts as that login.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oidc.core.errors import InteractionRequiredError, LoginRequiredError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit import audit_event
from gateway.errors import PageError, StoreError, new_reference
from gateway.identity import level_rank
from gateway.ids import new_id
from gateway.metrics.recorder import Metrics
from gateway.oidc.bridge import HttpRequest, Reply, add_query, published_url, request_params
from gateway.oidc.client_grants import LinkAhead
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.server import RoamAuthorizationServer, pending_grant
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind, Store
from gateway.urls import local_path

__all__ = [
    "DEFAULT_DESCRIPTIONS",
    "Authorizer",
    "Pending",
    "first_param",
    "requested_level",
]

log = logging.getLogger("roam.authorize")

# authlib leaves some errors without a description; clients log the description.
DEFAULT_DESCRIPTIONS = {
    "login_required": "No gateway session, and prompt=none forbids showing the login page.",
    "interaction_required": "The session cannot satisfy the request without user interaction.",
    "access_denied": "The request was denied.",
}


@dataclass(frozen=True)
class Pending:
    """A parked request waiting for a login: an authorization request, or a deep link
    (``next``, a path on the gateway such as ``/s/<system>/…``) to return to."""

    id: str
    pairs: list[tuple[str, str]]
    created: int
    next: str | None = None


def requested_level(pairs: Sequence[tuple[str, str]]) -> int:
    """The lowest level named in ``acr_values`` (any of them is acceptable), 0 if none."""
    values = [v for k, v in pairs if k == "acr_values" for v in v.split()]
    ranks = [level_rank(v) for v in values if level_rank(v)]
    return min(ranks) if ranks else 0


def _login_asked(session: Session, pairs: Sequence[tuple[str, str]]) -> bool:
    """Whether the request asks for the password again: ``prompt=login``, or a ``max_age``
    (unparsable: 0) that the session's last password entry is older than."""
    if "login" in (first_param(pairs, "prompt") or "").split():
        return True
    max_age = first_param(pairs, "max_age")
    if max_age is None:
        return False
    try:
        limit = int(max_age)
    except ValueError:
        limit = -1
    return limit < 0 or time.time() - session.identity.auth_time > limit


def first_param(pairs: Sequence[tuple[str, str]], key: str) -> str | None:
    for k, v in pairs:
        if k == key:
            return v
    return None


class Authorizer:
    def __init__(
        self,
        *,
        server: RoamAuthorizationServer,
        clients: ClientRegistry,
        sessions: SessionManager,
        store: Store,
        issuer: str,
        request_ttl: int = 1800,
        metrics: Metrics | None = None,
    ) -> None:
        self.server = server
        self.metrics = metrics or Metrics()
        self.clients = clients
        self.sessions = sessions
        self.store = store
        self.issuer = issuer
        self.request_ttl = request_ttl  # how long a login page may stay open ([login])

    def return_target(self, value: str | None) -> str | None:
        """Where a parked deep link may send the person back to: a path on the gateway
        (a system on a host of its own is reached through ``/sso/handover``, a path here);
        anything else: None."""
        return local_path(value)

    async def authorize(self, request: Request) -> Response:
        pairs = await request_params(request)
        try:
            await self.clients.ensure(first_param(pairs, "client_id"))
            return await self._process(request, pairs, pending=None)
        except StoreError as exc:
            if "none" not in (first_param(pairs, "prompt") or "").split():
                raise  # a person may be looking: the error page, with Retry-After
            return self.unavailable(pairs, exc)

    def unavailable(self, pairs: Sequence[tuple[str, str]], exc: StoreError) -> Response:
        """A silent request (``prompt=none``) while the store does not answer: back to the
        client with ``temporarily_unavailable`` (RFC 6749 §4.1.2.1) instead of leaving the
        person on a gateway page no one asked to see. Only to a registered redirect URI
        (``client_for`` needs no store: clients are configured)."""
        self.client_for(pairs)
        ref = new_reference()
        log.error("store failure", extra={"ref": ref, "path": "/authorize", "cause": str(exc)})
        return self._redirect_error(pairs, "temporarily_unavailable",
                                    f"The service is temporarily unavailable; try again "
                                    f"shortly (ref {ref}).")

    def _redirect_error(self, pairs: Sequence[tuple[str, str]], error: str,
                        description: str) -> Response:
        """``error`` to the request's redirect URI, which the caller checked with
        ``client_for`` first: never redirect blindly."""
        redirect_uri = first_param(pairs, "redirect_uri") or ""
        params = {"error": error, "error_description": description}
        state = first_param(pairs, "state")
        if state:
            params["state"] = state
        params["iss"] = self.issuer
        log.info("authorize error", extra={"error": error, "description": description})
        return RedirectResponse(add_query(redirect_uri, params), status_code=302)

    async def resume(self, request: Request) -> Response:
        pending = await self.find_pending(request.query_params.get("r"))
        return await self._process(request, pending.pairs, pending=pending)

    async def find_pending(self, pending_id: str | None) -> Pending:
        data = await self.store.find(Kind.PARKED_REQUEST, pending_id) if pending_id else None
        if data is None or pending_id is None:
            raise PageError(
                "登录请求已失效",
                "该登录请求不存在或已过期，请返回您要办理业务的网站重新发起登录。",
                status=400,
            )
        pairs = [(str(k), str(v)) for k, v in data["pairs"]]
        return Pending(id=pending_id, pairs=pairs, created=int(data["created"]),
                       next=self.return_target(data.get("next")))

    async def park_next(self, next_path: str,
                        pairs: Sequence[tuple[str, str]] = ()) -> str:
        """Park a deep link (not an OIDC request) for the login page to return to."""
        path = self.return_target(next_path)
        if path is None:
            raise PageError("跳转地址无效", "登录后要返回的地址不是本平台的页面。")
        pending_id = new_id(24)
        await self.store.upsert(Kind.PARKED_REQUEST, pending_id,
                                {"pairs": [list(p) for p in pairs], "next": path,
                                 "created": int(time.time())},
                                self.request_ttl)
        return pending_id

    def client_for(self, pairs: Sequence[tuple[str, str]]) -> Client:
        """The registered client and a registered redirect URI, or an error page."""
        client = self.clients.get(first_param(pairs, "client_id"))
        if client is None:
            raise PageError("未知的应用", "发起登录的应用未在统一身份认证平台登记，无法继续。")
        redirect_uri = first_param(pairs, "redirect_uri")
        if not redirect_uri or not client.check_redirect_uri(redirect_uri):
            raise PageError(
                "回调地址未登记",
                f"应用“{client.config.client_name}”提供的回调地址未登记，为保护您的账户，登录已停止。",
            )
        if len([1 for k, _ in pairs if k in ("client_id", "redirect_uri")]) > 2:
            raise PageError("请求参数重复", "登录请求中 client_id 或 redirect_uri 出现多次。")
        return client

    def required_level(self, client: Client, pairs: Sequence[tuple[str, str]]) -> int:
        """The level this request needs: the client's registered floor or the request's ask."""
        floor = min((level_rank(v) for v in client.config.default_acr_values), default=0)
        return max(requested_level(pairs), floor)

    async def blocker(self, session: Session | None, client: Client,
                      pairs: Sequence[tuple[str, str]], pending: Pending | None) -> str:
        """'' if the session may answer this request silently, else why not: "nosession",
        "login" (the password again, for this request) or "level" (a step-up)."""
        if session is None:
            return "nosession"
        return await self._satisfies(session, client, pairs, pending)

    async def _satisfies(self, session: Session, client: Client,
                         pairs: Sequence[tuple[str, str]], pending: Pending | None) -> str:
        """'' if the session may answer this request silently, else why not.

        The login made for this very request satisfies ``prompt=login`` and ``max_age``
        (``auth_time`` is the password's: a step-up leaves it), but never a level: a
        level is reached by stepping up.
        """
        if _login_asked(session, pairs) and not await self._logged_in_for(pending, session):
            return "login"
        if session.identity.level < self.required_level(client, pairs):
            return "level"
        return ""

    async def note_login(self, pending: Pending, session: Session) -> None:
        """Remember that ``session`` just logged in (the primary factor) for this request:
        that, and nothing else, meets its ``prompt=login`` and ``max_age``. A record of its
        own, so a request already answered is never written back."""
        left = pending.created + self.request_ttl - int(time.time())
        await self.store.upsert(Kind.PARKED_LOGIN, pending.id,
                                {"sid": session.sid, "auth_time": session.identity.auth_time},
                                max(1, left))

    async def _logged_in_for(self, pending: Pending | None, session: Session) -> bool:
        """Whether the session's current authentication is the login made for ``pending``."""
        if pending is None:
            return False
        noted = await self.store.find(Kind.PARKED_LOGIN, pending.id)
        return noted == {"sid": session.sid, "auth_time": session.identity.auth_time}

    async def fail(self, pending: Pending, error: str, description: str) -> Response:
        """Send an error back to the client of a parked (already validated) request."""
        self.client_for(pending.pairs)  # re-checked: never redirect blindly
        await self.store.destroy(Kind.PARKED_REQUEST, pending.id)
        return self._redirect_error(pending.pairs, error, description)

    async def _process(
        self, request: Request, pairs: list[tuple[str, str]], *, pending: Pending | None
    ) -> Response:
        client = self.client_for(pairs)
        session, ahead = await asyncio.gather(self.sessions.load(request),
                                              self._link_ahead(request, client, pairs))
        blocker = await self.blocker(session, client, pairs, pending)
        end_user = None
        if session is not None and not blocker:
            end_user = pending_grant(session.identity, client.client_id, session.sid,
                                     self.sessions.deadline(session))

        oauth_request = HttpRequest(request.method, published_url(self.issuer, request),
                                    dict(request.headers), query=pairs)
        oauth_request.work.link_ahead = ahead
        outcome = await self._run_authlib(oauth_request, end_user, blocker)
        if isinstance(outcome, OAuth2Error):
            return self._error(outcome)
        if outcome is None:  # a login or a step-up is needed
            pending_id = pending.id if pending else await self._park(pairs)
            page = "stepup" if blocker == "level" else "login"
            return RedirectResponse(f"/{page}?r={pending_id}", status_code=303)
        location = outcome.location
        if outcome.status != 302 or location is None:  # pragma: no cover - authlib contract
            raise PageError("登录失败", "认证服务返回了无法处理的结果。", status=500)
        if pending is not None:
            await self.store.destroy(Kind.PARKED_REQUEST, pending.id)
        else:  # no page was shown on the way: a silent SSO hop
            self.metrics.silent_hop(client.client_id)
        if session is not None:
            # silent: the session was there already, no page was shown (single sign-on)
            audit_event("authorize.code", "success", subject=session.identity.subject,
                        client=client.client_id, sid=session.sid, acr=session.identity.acr,
                        silent=pending is None)
        return RedirectResponse(add_query(location, {"iss": self.issuer}), status_code=302)

    async def _link_ahead(self, request: Request, client: Client,
                          pairs: list[tuple[str, str]]) -> LinkAhead | None:
        """The link a code in the cookie's session would go under, read in the same round
        trip as the session (a silent hop's first two reads): nothing is trusted from it
        until the session is loaded and its secret matched."""
        sid = self.sessions.sid_of(request)
        if sid is None:
            return None
        offline = "offline_access" in (first_param(pairs, "scope") or "").split()
        return await LinkAhead.read(self.sessions, sid, client.client_id, offline=offline)

    async def _run_authlib(self, oauth_request: HttpRequest, end_user: Any,
                           blocker: str) -> Reply | OAuth2Error | None:
        """authlib validates; returns a reply, an error, or None when a login is needed."""
        try:
            grant = self.server.get_consent_grant(oauth_request, end_user=end_user)
        except LoginRequiredError as error:
            if blocker == "level":
                error = InteractionRequiredError(
                    description="The session's assurance level is below the requested acr.",
                    redirect_uri=error.redirect_uri, state=error.state)
            return error
        except OAuth2Error as error:
            return error
        if end_user is None:
            return None
        reply = await self.server.authorization_response(oauth_request, end_user, grant)
        if reply.status != 302:
            # authlib turned an error into a reply: rebuild it as the error it was.
            raise PageError("登录失败", str(reply.body), status=400)
        return reply

    async def _park(self, pairs: list[tuple[str, str]]) -> str:
        pending_id = new_id(24)
        await self.store.upsert(
            Kind.PARKED_REQUEST, pending_id,
            {"pairs": [list(p) for p in pairs], "created": int(time.time())},
            self.request_ttl)
        return pending_id

    def _error(self, error: OAuth2Error) -> Response:
        if not error.description:
            error.description = DEFAULT_DESCRIPTIONS.get(error.error, error.error)
        if error.redirect_uri:
            _status, _, headers = error()
            location = dict(headers)["Location"]
            log.info("authorize error", extra={"error": error.error,
                                               "description": error.description})
            return RedirectResponse(add_query(location, {"iss": self.issuer}), status_code=302)
        raise PageError("登录请求有误", f"{error.error}: {error.description or ''}".strip())
