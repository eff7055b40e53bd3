"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at ``/logout``.

authlib validates the request (``id_token_hint`` signature, ``client_id`` against its
``aud``, ``post_logout_redirect_uri`` against the registration); Roam adds the issuer
check, the confirmation page and the logout itself. A hint that is missing, or that names
another session than this browser's (stale), gets a confirmation page: a bare link must
not be able to log a citizen out. An unregistered ``post_logout_redirect_uri`` is an
error page and logs nobody out.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.csrf import FIELD, Csrf
from gateway.errors import PageError
from gateway.keys import KeyRing
from gateway.oidc.bridge import HttpRequest, published_url, request_params
from gateway.oidc.logout import SessionLogout
from gateway.oidc.server import RoamAuthorizationServer
from gateway.pages import Pages
from gateway.sessions import Session, SessionManager

__all__ = ["PASSED_ON", "EndSession"]

log = logging.getLogger("roam.logout")

PASSED_ON = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales",
             "logout_hint")


class _Validator(EndSessionEndpoint):  # type: ignore[misc]
    def __init__(self, server: RoamAuthorizationServer, keys: KeyRing) -> None:
        super().__init__(server)
        self.keys = keys

    def get_server_jwks(self) -> dict[str, Any]:
        return self.keys.jwks()

    def get_algorithms(self) -> list[str]:
        return sorted(self.keys.algs)  # never "none", never HMAC

    def is_post_logout_redirect_uri_legitimate(self, request: Any, uri: str, client: Any,
                                               logout_hint: str | None) -> bool:
        # Without a hint the person confirms on our page first, and the URI is registered
        # for the client named by client_id: redirecting there afterwards is safe.
        return client is not None


class EndSession:
    def __init__(self, *, server: RoamAuthorizationServer, keys: KeyRing, issuer: str,
                 sessions: SessionManager, logout: SessionLogout, pages: Pages,
                 csrf: Csrf) -> None:
        self.validator = _Validator(server, keys)
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
        checked = self._validate(request, pairs)  # one signature check: inline is cheapest
        hint = checked.id_token_claims
        asked_redirect = data.get("post_logout_redirect_uri")
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

    def _validate(self, request: Request, pairs: list[tuple[str, str]]) -> EndSessionRequest:
        oauth_request = HttpRequest(request.method, published_url(self.issuer, request),
                                    dict(request.headers),
                                    query=[(k, v) for k, v in pairs if k in PASSED_ON])
        try:
            checked: EndSessionRequest = self.validator.validate_request(oauth_request)
        except OAuth2Error as error:
            raise PageError("退出请求有误", error.description or error.error) from None
        claims = checked.id_token_claims
        if claims is not None and claims.get("iss") != self.issuer:
            raise PageError("退出请求有误", "id_token_hint 不是本平台签发的。")
        return checked

    @staticmethod
    def _needs_confirmation(hint: dict[str, Any] | None, session: Session) -> bool:
        if hint is None:
            return True
        if hint.get("sub") != session.identity.subject:
            return True
        return "sid" in hint and hint["sid"] != session.sid  # a hint from an older session

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
