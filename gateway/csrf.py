"""Double-submit CSRF tokens for the gateway's own forms (login, logout, step-up).

A random ``HttpOnly`` ``SameSite=Strict`` cookie whose value must come back in the form: a
cross-site post carries neither, so login CSRF and forced logouts fail. Under https it is
``__Host-roam_csrf`` (:mod:`gateway.cookies`), so a sibling host cannot plant one, and two
cookies of its name are read as none.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from gateway.cookies import cookie_value, host_cookie_name
from gateway.errors import PageError
from gateway.ids import new_id

__all__ = ["COOKIE", "FIELD", "Csrf"]

COOKIE = "roam_csrf"
FIELD = "csrf_token"


class Csrf:
    def __init__(self, *, secure: bool) -> None:
        self.secure = secure
        self.cookie_name = host_cookie_name(COOKIE, secure=secure)

    def _cookie(self, request: Request) -> str:
        return cookie_value(request.headers.get("cookie", ""), self.cookie_name)

    def token(self, request: Request) -> str:
        """The token for a form on this page (the browser's cookie, or a new one)."""
        return self._cookie(request) or new_id(24)

    def set_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(self.cookie_name, token, path="/", httponly=True,
                            samesite="strict", secure=self.secure)

    def check(self, request: Request, sent: object) -> None:
        cookie = self._cookie(request)
        if not cookie or not isinstance(sent, str) or not hmac.compare_digest(
                sent.encode(), cookie.encode()):
            raise PageError("页面已过期", "页面已过期或来源不明，请返回重新操作。", status=400)
