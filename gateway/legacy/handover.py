"""The hop that gives a proxied system's own host a session (:mod:`gateway.host_sessions`).

Two halves, on two origins:

- on the system's host, :meth:`Handover.begin` (no host session yet: set a state cookie,
  go to the issuer), :meth:`Handover.finish` (``/.roam/callback``: the code becomes a
  host session) and :meth:`Handover.end` (``/.roam/logout``);
- on the issuer, :meth:`Handover.start` (``/sso/handover``): with a session at the
  system's level — login or step-up first, coming back here — a one-time code goes back
  to the system's host, and only to a host that system is served on.

Both halves are audit events (``handover.issue``, ``handover.redeem``), never the code.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.audit import audit_event
from gateway.config import SystemConfig, Systems
from gateway.cookies import cookie_value
from gateway.errors import PageError
from gateway.host_sessions import CALLBACK_PATH, HostSessions, is_state
from gateway.ids import new_id
from gateway.legacy.access import NO_STORE, Gate, Refusal
from gateway.urls import host_name, local_path, origin_on

__all__ = ["HANDOVER_PATH", "HOP", "Handover"]

HANDOVER_PATH = "/sso/handover"
"""On the issuer: where a system's host sends a browser that has no host session."""

HOP = {**NO_STORE, "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
"""Every answer of the hop: never cached, never followed inside a frame (a page of another
system must not run the hop in a hidden frame and then act in it as the person)."""


class Handover:
    def __init__(self, *, systems: Systems, hosts: HostSessions, gate: Gate,
                 issuer: str) -> None:
        self.systems = systems
        self.hosts = hosts
        self.gate = gate
        self.issuer = issuer

    # -- on the system's host -------------------------------------------------------------

    def begin(self, system: SystemConfig, host: str, back_to: str) -> Response:
        """Send a browser without a host session to the issuer for one; ``back_to`` is the
        path (and query) on ``host`` it came for."""
        state = new_id(24)
        query = urlencode({"system": system.id, "state": state,
                           "next": origin_on(self.issuer, host) + back_to})
        response = RedirectResponse(f"{self.issuer}{HANDOVER_PATH}?{query}", status_code=303,
                                    headers=HOP)
        self.hosts.set_state(response, state)
        return response

    async def finish(self, request: Request, system: SystemConfig, host: str) -> Response:
        """``/.roam/callback?code=…&next=…``: the issuer's code becomes this host's session
        (for this browser only: the code must match its state cookie)."""
        params = request.query_params
        taken = await self.hosts.take(params.get("code", ""), system=system.id, host=host,
                                      cookies=request.headers.get("cookie", ""))
        if taken is None:
            audit_event("handover.redeem", "failure", system=system.id, host=host,
                        reason="code unknown, used, expired or for another browser")
            raise PageError("登录已失效",
                            "进入该系统的登录凭据无效或已使用，请返回重新打开该系统。",
                            status=400)
        audit_event("handover.redeem", "success", subject=taken.session.identity.subject,
                    system=system.id, host=host, sid=taken.session.sid)
        response = RedirectResponse(local_path(params.get("next")) or "/", status_code=303,
                                    headers=HOP)
        self.hosts.set_cookie(response, taken.cookie)
        self.hosts.clear_state(response, taken.state)
        return response

    async def end(self, request: Request, system: SystemConfig) -> Response:
        """``/.roam/logout``: this host's session ends, then the issuer's logout page."""
        await self.hosts.end(cookie_value(request.headers.get("cookie", ""),
                                          self.hosts.cookie_name), system=system.id)
        response = RedirectResponse(f"{self.issuer}/logout", status_code=303, headers=NO_STORE)
        self.hosts.clear_cookie(response)
        return response

    # -- on the issuer --------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        """``/sso/handover?system=…&next=…&state=…``: a code for the system's host, after a
        login or step-up here when needed."""
        params = request.query_params
        system = self.systems.get(params.get("system", ""))
        if system is None or not system.hosts:
            raise PageError("未找到该系统", "您要进入的业务系统不存在或未配置独立域名。",
                            status=400)
        host, back_to = self._target(params.get("next", ""), system)
        state = params.get("state", "")
        if host is None or not is_state(state):
            raise PageError("请求无效", "进入业务系统的地址不正确，请返回重新打开该系统。",
                            status=400)
        admitted = self.gate.admit(await self.gate.sessions.load(request), system)
        if isinstance(admitted, Refusal):  # log in or step up here, then come back
            here = f"{HANDOVER_PATH}?{request.url.query}"
            return self.gate.redirect(admitted, here)
        code = await self.hosts.hand_over(admitted, system=system.id, host=host, state=state)
        audit_event("handover.issue", "success", subject=admitted.identity.subject,
                    system=system.id, host=host, sid=admitted.sid)
        query = urlencode({"code": code, "next": back_to})
        return RedirectResponse(f"{origin_on(self.issuer, host)}{CALLBACK_PATH}?{query}",
                                status_code=303, headers=HOP)

    def _target(self, url: str, system: SystemConfig) -> tuple[str | None, str]:
        """The host of ``url`` when it is a page of ``system`` (one of its hosts, the
        issuer's scheme and port), and the page's path and query; else ``(None, "")``."""
        if not url or any(ord(c) < 33 or ord(c) == 127 for c in url) or "\\" in url:
            return None, ""
        try:
            parts = urlsplit(url)
            origin = f"{parts.scheme}://{parts.netloc}"
        except ValueError:
            return None, ""
        host = host_name(parts.netloc)
        if (host not in system.hosts or parts.username or parts.password or parts.fragment
                or origin != origin_on(self.issuer, host)):
            return None, ""
        path = local_path(parts.path or "/") or "/"
        return host, path + (f"?{parts.query}" if parts.query else "")
