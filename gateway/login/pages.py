"""The login page: Chinese, CSRF-protected, and it keeps the parked authorization request.

A failed attempt re-renders the page with the same ``r`` so the deep link is not lost. A
login by a different person in a browser that still holds a session logs that session
out everywhere first: RPs must not keep the previous person logged in. Every attempt
first takes a slot of its client address's failed-login window (``login.throttle``): a
client that has used it up is answered 429 before any password is checked.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit import audit_event
from gateway.csrf import FIELD, Csrf
from gateway.errors import LockedOut, LoginError
from gateway.login.lockout import minutes
from gateway.login.source import PasswordSource
from gateway.login.throttle import SourceThrottle
from gateway.metrics.recorder import Metrics
from gateway.oidc.authorize import Authorizer, first_param
from gateway.oidc.logout import SessionLogout
from gateway.pages import Pages
from gateway.privacy import mask_username
from gateway.sessions import SessionManager
from gateway.store.base import Kind

__all__ = ["LoginPages"]

_PHONE = re.compile(r"^1[3-9][0-9]{9}$")


class LoginPages:
    def __init__(
        self,
        *,
        source: PasswordSource,
        authorizer: Authorizer,
        sessions: SessionManager,
        logout: SessionLogout,
        pages: Pages,
        csrf: Csrf,
        throttle: SourceThrottle,
        metrics: Metrics | None = None,
        source_name: str = "",
    ) -> None:
        self.source = source
        self.metrics = metrics or Metrics()
        self.source_name = source_name  # [login] source, as the metrics name it
        self.throttle = throttle
        self.authorizer = authorizer
        self.sessions = sessions
        self.logout = logout
        self.pages = pages
        self.csrf = csrf

    async def show(self, request: Request) -> Response:
        if "r" not in request.query_params and "next" in request.query_params:
            # A deep link (the proxy, /go) asks for a login: park it like an OIDC request.
            pending_id = await self.authorizer.park_next(request.query_params["next"])
            return RedirectResponse(f"/login?r={pending_id}", status_code=303)
        pending = await self.authorizer.find_pending(request.query_params.get("r"))
        hint = first_param(pending.pairs, "login_hint") or ""
        # Only a phone number is pre-filled: an ID number never appears on a page.
        username = hint if _PHONE.match(hint) else ""
        return self._render(request, pending.id, pending.pairs, username=username)

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        pending_id = str(form.get("r") or "")
        self.csrf.check(request, form.get(FIELD))
        pending = await self.authorizer.find_pending(pending_id)
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        client_id = first_param(pending.pairs, "client_id")
        address = self.throttle.address(request.scope)
        if username and password:  # an empty form checks nothing and costs nothing
            slot = await self.throttle.reserve(address)
            if slot.refused:
                self.metrics.login_failure(self.source_name, "web", "throttled")
                audit_event("login", "denied", subject=mask_username(username),
                            client=client_id, source=address, reason="throttled",
                            retry_after=slot.retry_after)
                message = (f"当前网络登录失败次数过多，已暂停登录，请 {minutes(slot.retry_after)} "
                           "分钟后再试。")
                return self._render(request, pending.id, pending.pairs, status=429,
                                    error=message, retry_after=slot.retry_after)
        try:
            identity = await self.source.authenticate(username, password)
        except LockedOut as exc:
            self.metrics.login_failure(self.source_name, "web", "locked")
            audit_event("login", "locked", subject=mask_username(username), client=client_id,
                        source=address, retry_after=exc.retry_after)
            message = (f"登录失败次数过多，账户已临时锁定，请 {minutes(exc.retry_after)} "
                       "分钟后再试。")
            return self._render(request, pending.id, pending.pairs, status=429, error=message,
                                retry_after=exc.retry_after)
        except LoginError as exc:
            self.metrics.login_failure(self.source_name, "web", "password")
            audit_event("login", "failure", subject=mask_username(username), client=client_id,
                        source=address)
            return self._render(request, pending.id, pending.pairs, status=401, error=str(exc))
        await self.throttle.succeeded(address)
        if pending.next is not None:
            await self.authorizer.store.destroy(Kind.PARKED_REQUEST, pending.id)
            response = RedirectResponse(pending.next, status_code=303)
        else:
            response = RedirectResponse(f"/authorize/resume?r={pending.id}", status_code=303)
        current = await self.sessions.load(request)
        if current is not None and current.identity.subject != identity.subject:
            await self.logout.end(current, reason="another person logged in")
            current = None
        session = await self.sessions.start(identity, response, current=current)
        if pending.next is None:
            await self.authorizer.note_login(pending, session)  # its prompt=login, max_age
        self.metrics.login(self.source_name, "web", identity.acr)
        audit_event("login", "success", subject=identity.subject, client=client_id,
                    source=address, acr=identity.acr, sid=session.sid, method="password")
        return response

    def _render(self, request: Request, pending_id: str, pairs: list[tuple[str, str]], *,
                username: str = "", error: str = "", status: int = 200,
                retry_after: int = 0) -> Response:
        client = self.authorizer.clients.get(first_param(pairs, "client_id"))
        csrf = self.csrf.token(request)
        response = self.pages.render(
            "login.html",
            {
                "action": "/login",
                "request_id": pending_id,
                "csrf_token": csrf,
                "client_name": client.config.client_name if client else "",
                "username": username,
                "error": error,
            },
            status=status,
        )
        self.csrf.set_cookie(response, csrf)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response
