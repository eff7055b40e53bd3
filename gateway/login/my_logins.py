"""我的登录: the citizen's own view of their session, and "log out of every system".

It lists the relying parties the session logged into and the proxied systems it entered
(their own hosts' sessions), which "log out of every system" all ends, and the
mini-program identities (WeChat, Alipay) bound to the person, each removable. It shows both
levels: what this login did (``acr``, with the methods) and how far the
account was verified (``verified_level``), so a person sees why a service asks for more.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.assurance import LEVEL_NAMES
from gateway.audit import audit_event
from gateway.binding.bindings import Bindings
from gateway.config import Systems
from gateway.csrf import FIELD, Csrf
from gateway.host_sessions import HostSessions
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.logout import SessionLogout
from gateway.pages import Pages
from gateway.privacy import mask_name
from gateway.sessions import SessionManager

__all__ = ["MyLogins", "mask_openid"]

CHANNEL_NAMES = {"wechat": "微信小程序", "alipay": "支付宝小程序"}


def mask_openid(openid: str) -> str:
    """Enough of an openid to tell two bindings apart, not enough to name the account."""
    return openid[:3] + "****" + openid[-3:] if len(openid) >= 10 else "****"


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


class MyLogins:
    def __init__(self, *, sessions: SessionManager, logout: SessionLogout,
                 clients: ClientRegistry, pages: Pages, csrf: Csrf,
                 hosts: HostSessions | None = None, proxied: Systems | None = None,
                 bindings: Bindings | None = None) -> None:
        self.sessions = sessions
        self.logout = logout
        self.clients = clients
        self.pages = pages
        self.csrf = csrf
        self.hosts = hosts  # sessions on proxied systems' own hosts, listed too
        self.proxied = proxied
        self.bindings = bindings  # the person's bound mini-program identities

    async def show(self, request: Request) -> Response:
        session = await self.sessions.load(request)
        if session is None:
            return self.pages.render("logged_out.html", {
                "message": "您当前没有统一身份认证登录。"})
        systems = []
        seen: set[str] = set()
        for link in await self.sessions.links(session.sid):
            if link.client_id in seen:
                continue
            seen.add(link.client_id)
            client = self.clients.get(link.client_id)
            name = client.config.client_name if client else link.client_id
            systems.append({"client_id": link.client_id, "name": name,
                            "since": _when(link.created)})
        if self.hosts is not None:
            for system_id, made in sorted((await self.hosts.entered(session.sid)).items(),
                                          key=lambda item: item[1]):
                system = self.proxied.get(system_id) if self.proxied is not None else None
                systems.append({"system_id": system_id,
                                "name": system.name if system else system_id,
                                "since": _when(made)})
        identity = session.identity
        bound = [] if self.bindings is None else [
            {"key": b.key, "channel": CHANNEL_NAMES.get(b.identity.channel, b.identity.channel),
             "openid": mask_openid(b.identity.openid), "level": b.level,
             "since": _when(b.bound_at)}
            for b in await self.bindings.of_subject(identity.subject)]
        csrf = self.csrf.token(request)
        response = self.pages.render("my_logins.html", {
            "who": mask_name(str(identity.claims.get("name", ""))) or identity.subject,
            "acr": identity.acr or "-",
            "acr_name": LEVEL_NAMES.get(identity.acr, ""),
            "amr": " ".join(identity.amr),
            "verified_level": identity.verified_level or "-",
            "verified_name": LEVEL_NAMES.get(identity.verified_level, ""),
            "since": _when(identity.auth_time),
            "systems": systems,
            "bindings": bound,
            "csrf_token": csrf,
        })
        self.csrf.set_cookie(response, csrf)
        return response

    async def logout_all(self, request: Request) -> Response:
        form = await request.form()
        self.csrf.check(request, form.get(FIELD))
        session = await self.sessions.load(request)
        if session is not None:
            await self.logout.end(session, reason="my-logins")
        response = self.pages.render("logged_out.html", {
            "message": "您已退出全部系统：各市州、区县政务服务系统的登录均已结束。"})
        self.sessions.clear_cookie(response)
        return response

    async def unbind(self, request: Request) -> Response:
        """Remove one of the person's own bindings (POST with the CSRF token)."""
        form = await request.form()
        self.csrf.check(request, form.get(FIELD))
        session = await self.sessions.load(request)
        if session is None:
            return self.pages.render("logged_out.html", {
                "message": "您当前没有统一身份认证登录。"})
        key = form.get("binding")
        removed = (await self.bindings.remove(session.identity.subject, key)
                   if self.bindings is not None and isinstance(key, str) else None)
        if removed is not None:
            audit_event("binding.remove", "success", subject=session.identity.subject,
                        channel=removed.identity.channel, channel_sub=removed.identity.subject,
                        reason="my-logins")
        return RedirectResponse("/my/logins", status_code=303)
