"""Double-submit CSRF tokens for the gateway's own forms (login, logout, step-up).

A random ``HttpOnly`` ``SameSite=Strict`` cookie whose value must come back in the form: a
cross-site post carries neither, so login CSRF and forced logouts fail.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import PageError
from gateway.ids import new_id

__all__ = ["COOKIE", "FIELD", "Csrf"]

COOKIE = "roam_csrf"
FIELD = "csrf_token"


class Csrf:
    def __init__(self, *, secure: bool) -> None:
        self.secure = secure

    def token(self, request: Request) -> str:
        """The token for a form on this page (the browser's cookie, or a new one)."""
        return request.cookies.get(COOKIE) or new_id(24)

    def set_cookie(self, response: Response, token: str) -> None:
        response.set_cookie(COOKIE, token, path="/", httponly=True, samesite="strict",
                            secure=self.secure)

    def check(self, request: Request, sent: object) -> None:
        cookie = request.cookies.get(COOKIE, "")
        if not cookie or not isinstance(sent, str) or not hmac.compare_digest(
                sent.encode(), cookie.encode()):
            raise PageError("页面已过期", "页面已过期或来源不明，请返回重新操作。", status=400)
