"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``/logout``.

authlib validates the request (``client_id`` against the hint's ``aud``,
``post_logout_redirect_uri`` against the registration); the hint itself is checked by
``gateway.oidc.id_token_hint``, in place of authlib's signature-only check. Roam adds the
confirmation page and the logout itself. Only an ID token of ours for a registered client,
naming this browser's session (``sid``) and person, logs out without asking: a missing
hint, a hint from another session, or a token of another kind (an access token, a
connector's assertion captured by a legacy system) gets a confirmation page, and after a
rejected hint nobody is redirected. A forged hint or an unregistered
``post_logout_redirect_uri`` is an error page and logs nobody out.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.csrf import FIELD, Csrf
from gateway.errors import PageError, TokenError
from gateway.keys import KeyRing
from gateway.oidc.bridge import HttpRequest, published_url, request_params
from gateway.oidc.id_token_hint import IdTokenHints
from gateway.oidc.logout import SessionLogout
from gateway.oidc.server import RoamAuthorizationServer
from gateway.pages import Pages
from gateway.sessions import Session, SessionManager

__all__ = ["PASSED_ON", "EndSession"]

log = logging.getLogger("roam.logout")

PASSED_ON = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales",
             "logout_hint")
_AFTER_A_HINT = ("id_token_hint", "post_logout_redirect_uri", "state")
"""What a rejected hint takes with it: the request is in error, so no redirect (§4)."""


class _NotAnIdToken(InvalidRequestError):  # type: ignore[misc]
    """A token of ours, but not an ID token for a registered client."""


class _Validator(EndSessionEndpoint):  # type: ignore[misc]
    def __init__(self, server: RoamAuthorizationServer, hints: IdTokenHints) -> None:
        super().__init__(server)
        self.hints = hints

    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        # authlib's own check takes any JWT our keys signed, whatever its kind or audience
        # (tests/oidc/test_end_session.py fails if authlib stops calling this hook).
        try:
            claims = self.hints.claims(id_token_hint)
        except TokenError as error:
            raise InvalidRequestError(f"id_token_hint: {error}") from None
        if claims is None:
            raise _NotAnIdToken("id_token_hint is not an ID token for a registered client")
        return claims

    def resolve_client_from_id_token_claims(self, id_token_claims: dict[str, Any]) -> Any:
        return self.hints.client_of(id_token_claims)

    def is_post_logout_redirect_uri_legitimate(self, request: Any, uri: str, client: Any,
                                               logout_hint: str | None) -> bool:
        # Without a hint the person confirms on our page first, and the URI is registered
        # for the client named by client_id: redirecting there afterwards is safe.
        return client is not None


class EndSession:
    def __init__(self, *, server: RoamAuthorizationServer, keys: KeyRing, issuer: str,
                 sessions: SessionManager, logout: SessionLogout, pages: Pages,
                 csrf: Csrf) -> None:
        hints = IdTokenHints(keys=keys, issuer=issuer, clients=server.clients)
        self.validator = _Validator(server, hints)
        self.active = server.refresh.active  # the sub each client was told
        self.issuer = issuer
        self.sessions = sessions
        self.logout = logout
        self.pages = pages
        self.csrf = csrf

    async def handle(self, request: Request) -> Response:
        pairs = await request_params(request)
        data = dict(pairs)
        confirmed = request.method == "POST" and data.get("confirm") == "yes"
        if confirmed:
            self.csrf.check(request, data.get(FIELD))
        checked, pairs = self._validate(request, pairs)  # one signature: inline is cheapest
        hint = checked.id_token_claims
        asked_redirect = dict(pairs).get("post_logout_redirect_uri")
        if asked_redirect and checked.redirect_uri is None:
            raise PageError("退出地址未登记",
                            "应用提供的退出后跳转地址未登记（或无法确认发起退出的应用），"
                            "为保护您的账户，本次退出请求未执行。")
        session = await self.sessions.load(request)
        if session is not None and not confirmed and self._needs_confirmation(hint, session):
            return self._confirmation(request, checked, pairs)
        if session is not None:
            await self.logout.end(session, reason="rp-initiated")
        response = self._done(checked.redirect_uri)
        self.sessions.clear_cookie(response)
        return response

    def _validate(self, request: Request, pairs: list[tuple[str, str]]
                  ) -> tuple[EndSessionRequest, list[tuple[str, str]]]:
        """authlib's validation, and the parameters it stands for: a hint that is a token
        of ours but no ID token is dropped (with the redirect it would have allowed)."""
        pairs = [(k, v) for k, v in pairs if k in PASSED_ON]
        try:
            try:
                return self._validated(request, pairs), pairs
            except _NotAnIdToken:
                log.info("logout hint refused: not an ID token for a registered client")
                pairs = [(k, v) for k, v in pairs if k not in _AFTER_A_HINT]
                return self._validated(request, pairs), pairs
        except OAuth2Error as error:
            raise PageError("退出请求有误", error.description or error.error) from None

    def _validated(self, request: Request, pairs: list[tuple[str, str]]) -> EndSessionRequest:
        oauth_request = HttpRequest(request.method, published_url(self.issuer, request),
                                    dict(request.headers), query=pairs)
        checked: EndSessionRequest = self.validator.validate_request(oauth_request)
        return checked

    def _needs_confirmation(self, hint: dict[str, Any] | None, session: Session) -> bool:
        """Unless the hint names this very session and person (as its client knows the
        person), ask: a hint without a ``sid``, or from an older session, must not end
        this one."""
        if hint is None:
            return True
        aud = hint.get("aud")
        client_id = hint.get("azp") or (aud[0] if isinstance(aud, list) and aud else aud)
        seen = self.active.subjects.of_client_id(str(client_id), session.identity.subject)
        return hint.get("sub") != seen or hint.get("sid") != session.sid

    def _confirmation(self, request: Request, checked: EndSessionRequest,
                      pairs: list[tuple[str, str]]) -> Response:
        csrf = self.csrf.token(request)
        client = checked.client
        response = self.pages.render("logout_confirm.html", {
            "csrf_token": csrf,
            "client_name": client.config.client_name if client is not None else "",
            "params": [(k, v) for k, v in pairs if k in PASSED_ON],
        })
        self.csrf.set_cookie(response, csrf)
        return response

    def _done(self, redirect_uri: str | None) -> Response:
        if redirect_uri:
            return RedirectResponse(redirect_uri, status_code=303)
        return self.pages.render("logged_out.html", {
            "message": "您在各市州、区县政务服务系统的统一身份认证登录均已结束。"})
