"""A page that plays the province's mini-program (湘易办) in a browser, for ``make demo``.

A person picks a fictional WeChat or Alipay user and follows the mini-program's life:
log in with a platform code (no password), bind the identity to a citizen by real name
(L2) and a simulated face scan (L3), log in again silently with a new code (now the
citizen's token), and open a city system "in the web-view" through a one-time URL
(无感切换). What the real app's backend does is :mod:`demo.miniprogram_client`; this
module keeps its state — the tokens stay here, in memory, keyed by a cookie of the page's
own — and answers the page's forms (post, then redirect back to ``/``).

The targets offered are what the gateway accepts as transfer targets
(gateway/login/transfer.py): each demo RP's ``initiate_login_uri``, the demo's ``/go``
links, and each proxied system's own host; each is labelled with the level it needs, so
the person knows when the gateway will ask for a step-up on the way.
"""

from __future__ import annotations

import contextlib
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from demo import DEMO_ARRIVALS
from demo.miniprogram_client import Login, MiniProgramBackend, Refused
from demo.miniprogram_pages import render
from demo.platforms import DEMO_ALIPAY_USERS, DEMO_WECHAT
from gateway.config import Config
from gateway.identity import level_rank
from gateway.login.directory import load_entries
from gateway.routing.resolve import Resolver, RouteError
from gateway.urls import origin_on

__all__ = ["Device", "Person", "Target", "User", "create_miniprogram_app", "miniprogram_app",
           "transfer_targets"]

COOKIE = "roam_demo_miniprogram"  # its own name: every demo app shares 127.0.0.1's cookies
MAX_DEVICES = 1000  # the oldest "phones" are forgotten past this many


@dataclass(frozen=True)
class User:
    """A fictional user of a mock platform."""

    channel: str  # "wechat" | "alipay"
    account: str  # openid / user_id
    nickname: str
    phone: bool = False  # the platform has a phone number to share (getPhoneNumber)

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.account}"


@dataclass(frozen=True)
class Person:
    """One of the demo directory's (fictional) people, offered to fill the bind form."""

    name: str
    id_number: str


@dataclass(frozen=True)
class Target:
    """A page the one-time URL may lead to, and the level it needs (``""``: none)."""

    key: str
    label: str
    url: str
    kind: str  # what it is, in a few words
    needs: str = ""


@dataclass
class Device:
    """One browser playing one phone: the page's memory of it."""

    user: User | None = None
    phone: bool = False  # the person shared their phone number at login
    login: Login | None = None
    bound: dict[str, Any] | None = None  # the gateway's answer to /channel/bind
    verification_id: str = field(default="", repr=False)
    history: list[tuple[User, str, str, str]] = field(default_factory=list)  # sub, acr, level
    transfer: dict[str, Any] | None = None  # the last one-time URL and its target
    flash: tuple[str, str] | None = None  # ("ok" | "error", message)


def transfer_targets(config: Config) -> list[Target]:
    """Where the demo's mini-program can switch to, clean arrivals first."""
    targets: list[Target] = []
    for client in config.clients:
        if client.initiate_login_uri:
            targets.append(Target(client.client_id, client.client_name, client.initiate_login_uri,
                                  "OIDC 业务系统", max(client.default_acr_values, default="")))
    resolver = Resolver(config.systems, config.regions)
    for item, region, what, where in DEMO_ARRIVALS:
        try:
            needs = resolver.resolve(item, region).system.min_acr or ""
        except RouteError:
            continue
        targets.append(Target(f"go:{item}:{region}", what, f"{config.issuer}/go/{item}"
                              f"?region={region}", f"精准到达 → {where}", needs))
    for system in config.systems:
        for host in system.hosts[:1]:
            targets.append(Target(f"host:{system.id}", system.name,
                                  origin_on(config.issuer, host) + "/",
                                  "旧系统，独立域名，经网关代理", system.min_acr or ""))
    return sorted(targets, key=lambda t: level_rank(t.needs))  # stable: clean ones first


def demo_users() -> list[User]:
    wechat = [User("wechat", u.openid, u.nickname or u.openid, bool(u.phone))
              for u in DEMO_WECHAT.users.values() if not u.risky]
    return wechat + [User("alipay", a, n) for a, n in DEMO_ALIPAY_USERS.items()]


def create_miniprogram_app(*, issuer: str, wechat_url: str, alipay_url: str,
                           verification_url: str, users: list[User], people: list[Person],
                           targets: list[Target]) -> Starlette:
    """The page's app. ``alipay_url``: the mock Alipay's origin; ``verification_url``:
    the verification service the simulated face scan talks to."""
    devices: OrderedDict[str, Device] = OrderedDict()
    by_user = {u.key: u for u in users}
    by_target = {t.key: t for t in targets}
    backend: list[MiniProgramBackend] = []  # the lifespan's

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
            backend.append(MiniProgramBackend(http, issuer=issuer, wechat_url=wechat_url,
                                              alipay_url=alipay_url,
                                              verification_url=verification_url))
            yield
            backend.clear()

    def device_of(request: Request) -> tuple[str, Device]:
        key = request.cookies.get(COOKIE, "")
        device = devices.get(key)
        if device is None:
            key, device = secrets.token_urlsafe(24), Device()
            devices[key] = device
            while len(devices) > MAX_DEVICES:
                devices.popitem(last=False)
        devices.move_to_end(key)
        return key, device

    def back(key: str) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="lax", path="/")
        return response

    async def home(request: Request) -> Response:
        key, device = device_of(request)
        response = render(device, users=users, people=people, targets=targets)
        device.flash = None  # shown once
        response.set_cookie(COOKIE, key, httponly=True, samesite="lax", path="/")
        return response

    async def log_in(device: Device, user: User, *, phone: bool, again: bool = False) -> None:
        login = await backend[0].log_in(user.channel, user.account, phone=phone)
        device.user, device.phone, device.login, device.transfer = user, phone, login, None
        device.history.append((user, login.sub, str(login.claims.get("acr", "")),
                               login.verified_level))
        how = "已用新的登录凭证静默重新登录" if again else "登录成功"
        device.flash = ("ok", f"{how}：sub {login.sub}，本次认证 {login.claims.get('acr')}，"
                              f"账户核验等级 {login.verified_level}。")

    async def step(request: Request) -> Response:
        key, device = device_of(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        try:
            await steps[request.url.path](device, form)
        except Refused as refused:
            device.flash = ("error", refused.message + (f"（{refused.code}）"
                                                        if refused.code else ""))
        return back(key)

    async def do_login(device: Device, form: dict[str, str]) -> None:
        user = by_user.get(form.get("user", ""))
        if user is None:
            raise Refused("请选择一位演示用户。")
        device.bound, device.verification_id = None, ""
        await log_in(device, user, phone=form.get("phone") == "on" and user.phone)

    async def relogin(device: Device, form: dict[str, str]) -> None:
        if device.user is None:
            raise Refused("请先登录。")
        await log_in(device, device.user, phone=device.phone, again=True)
        device.verification_id = ""  # a face check belongs to the channel's own token

    async def bind(device: Device, form: dict[str, str]) -> None:
        login = _logged_in(device)
        answer = await backend[0].bind(login, form.get("name", ""), form.get("id_number", ""))
        device.bound, device.verification_id = answer, str(answer.get("verification_id", ""))
        device.flash = ("ok", f"实名核验通过：已绑定到居民 sub {answer.get('sub')}，"
                              f"核验等级 {answer.get('verified_level')}。")

    async def face(device: Device, form: dict[str, str]) -> None:
        login = _logged_in(device)
        if not device.verification_id or device.user is None:
            raise Refused("没有进行中的人脸核验，请先完成实名绑定。")
        outcome = "passed" if form.get("outcome") == "passed" else "failed"
        verification_id, device.verification_id = device.verification_id, ""  # single use
        try:
            await backend[0].scan_face(verification_id, outcome)
            answer = await backend[0].face(login, verification_id)
        except Refused:
            device.bound = None  # the check is spent: a new one starts with a new binding
            raise
        device.bound = answer
        await log_in(device, device.user, phone=device.phone, again=True)  # as the app would
        device.flash = ("ok", f"人脸核验通过，核验等级 {answer.get('verified_level')}。已用新的"
                              f"登录凭证静默重新登录：现在的令牌属于居民 sub {answer.get('sub')}。")

    async def transfer(device: Device, form: dict[str, str]) -> None:
        login = _logged_in(device)
        target = by_target.get(form.get("target", ""))
        if target is None:
            raise Refused("请选择要打开的服务。")
        answer = await backend[0].transfer_url(login, target.url)
        device.transfer = {"url": str(answer["transfer_url"]),
                           "expires_in": answer.get("expires_in"), "target": target}

    async def log_out(device: Device, form: dict[str, str]) -> None:
        device.user = device.login = device.bound = device.transfer = None
        device.verification_id = ""

    steps = {"/login": do_login, "/relogin": relogin, "/bind": bind, "/face": face,
              "/transfer": transfer, "/logout": log_out}
    return Starlette(lifespan=lifespan, routes=[
        Route("/", home, methods=["GET"]),
        *(Route(path, step, methods=["POST"]) for path in steps),
    ])


def _logged_in(device: Device) -> Login:
    if device.login is None:
        raise Refused("请先登录。")
    return device.login


def miniprogram_app(config: Config) -> Starlette:
    """The page for ``config`` as ``make demo`` wires it: channels on the mock platforms
    (demo.platforms), binding on the verification service (demo.verification)."""
    wechat, alipay = config.settings.channels.wechat, config.settings.channels.alipay
    binding = config.settings.binding
    if wechat is None or alipay is None or binding.verifier != "http":
        raise ValueError("the mini-program page needs both channels and the http verifier")
    entries = load_entries(config.path(config.settings.login.directory_file))
    people = [Person(str(e.claims.get("name", "")), e.id_number)
              for e in entries if e.kind.value == "natural"]
    return create_miniprogram_app(
        issuer=config.issuer, wechat_url=wechat.base_url,
        alipay_url=alipay.gateway_url.rsplit("/", 1)[0], verification_url=binding.base_url,
        users=demo_users(), people=people, targets=transfer_targets(config))
