"""A small, real relying party: a city system that logs in through the gateway.

It uses authlib's own Starlette client (discovery, PKCE S256, state, nonce, ID token
validation against the JWKS, ``iss``, ``aud``) and adds the RFC 9207 ``iss`` check that
authlib leaves to the application. Nothing here is hand-built protocol: if the gateway
drifts from the standard, this RP breaks, which is the point of the demo and its tests.

Its own session is Starlette's signed cookie, named per client: the demo RPs all run on
127.0.0.1 and cookies are not port-scoped, so a shared name would let one RP overwrite
another's. The cookie is signed, not encrypted, so it holds only masked personal data
(the raw ID token kept for ``id_token_hint`` carries no name, phone or ID number).

Logout works both ways. "退出登录" is RP-initiated logout at the gateway's
end_session_endpoint, which ends the gateway session and, through back-channel logout,
every other RP's. The RP's own ``/backchannel-logout`` receives those notices; as a
cookie cannot be cleared from the back channel, every browser request checks the
receiver's record and drops a session whose ``sid`` has ended.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
import warnings
from collections.abc import Mapping
from typing import Any

# authlib 1.9 prefers the httpx2 fork and says so when its httpx client is imported; its
# deprecate module installs an "always" filter when imported, so it goes first.
import authlib.deprecate  # noqa: F401
import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_uri
from joserfc.errors import JoseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from demo.backchannel import BackchannelReceiver
from gateway.privacy import mask_name

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.starlette_client import OAuth

__all__ = ["create_rp_app"]

log = logging.getLogger("roam.demo.rp")

#: What each assurance level means, as a citizen would read it.
LEVEL_NAMES = {"L1": "手机号/渠道验证", "L2": "实名", "L3": "实人", "L4": "证书/电子证照/柜台"}

#: Error codes a person may meet at /callback, explained in Chinese.
ERROR_TEXT = {
    "login_required": "统一身份认证平台上没有登录会话，需要登录后才能继续。",
    "interaction_required": "需要在统一身份认证平台上进一步操作（例如提升认证等级）。",
    "access_denied": "登录被拒绝或已取消。",
    "mismatching_state": "登录请求已失效或不是从本系统发起的，请重新登录。",
    "invalid_issuer": "登录结果不是来自本系统信任的认证平台，已拒绝。",
    "invalid_id_token": "身份令牌校验未通过，已拒绝。",
    "invalid_userinfo": "用户信息校验未通过，已拒绝。",
    "temporarily_unavailable": "统一身份认证平台暂时无法访问，请稍后再试。",
    "unmet_authentication_requirements": "统一身份认证平台无法达到本系统要求的认证等级。",
}

# Parameters a visitor may pass through /login to the gateway (e.g. ?prompt=none).
_PASS_THROUGH = ("prompt", "login_hint", "acr_values")

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the callback URL carries the code
    "X-Frame-Options": "DENY",
}

_STYLE = """
body { font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
       background: #f4f6f9; margin: 0; color: #1f2d3d; }
header { background: #1d4f91; color: #fff; padding: 14px 24px; font-size: 18px; }
main { max-width: 560px; margin: 40px auto; background: #fff; padding: 28px 32px;
       border-radius: 8px; box-shadow: 0 2px 10px rgba(0,0,0,.08); }
dt { color: #6b7785; font-size: 13px; margin-top: 12px; }
dd { margin: 2px 0 0; font-size: 16px; }
a.button, button { display: inline-block; margin-top: 20px; padding: 10px 22px;
       background: #1d4f91; color: #fff; border: 0; border-radius: 4px; font-size: 15px;
       text-decoration: none; cursor: pointer; }
.error { background: #fdecea; color: #8a1c1c; padding: 10px 12px; border-radius: 4px; }
.notice { background: #fff7e6; color: #874d00; padding: 10px 12px; border-radius: 4px; }
.ok { background: #e8f5e9; color: #1b5e20; padding: 10px 12px; border-radius: 4px; }
.requirement { background: #e6f0fb; color: #1d4f91; padding: 8px 12px; border-radius: 4px; }
a.button.secondary, button.secondary { background: #fff; color: #1d4f91;
       border: 1px solid #1d4f91; margin-left: 8px; }
form.inline { display: inline; }
.muted { color: #6b7785; font-size: 13px; }
code { background: #f0f2f5; padding: 1px 5px; border-radius: 3px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f'<body><header id="system">{_e(title)}</header><main>{body}</main></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def _error_page(title: str, code: str, detail: str = "", *, status: int = 400) -> HTMLResponse:
    explanation = ERROR_TEXT.get(code, "登录未能完成。")
    body = (
        "<h1>登录失败</h1>"
        f'<p class="error" role="alert">{_e(explanation)}</p>'
        f'<p>错误代码：<code id="error-code">{_e(code)}</code></p>'
        + (f'<p class="muted" id="error-detail">{_e(detail)}</p>' if detail else "")
        + '<a class="button" id="home" href="/">返回首页</a>'
    )
    return _page(title, body, status=status)


def _user_record(id_token: Mapping[str, Any], userinfo: Mapping[str, Any],
                 *, now: float) -> dict[str, Any]:
    """What the RP keeps in its cookie: masked name, no phone, no ID number."""
    name = userinfo.get("name")
    return {
        "sub": str(id_token["sub"]),
        "name": mask_name(name) if isinstance(name, str) and name else "",
        "acr": str(id_token.get("acr", "")),
        "amr": [str(m) for m in id_token.get("amr", [])],
        "auth_time": int(id_token.get("auth_time", 0)),
        "sid": str(id_token.get("sid", "")),
        "region": str(userinfo.get("region", "")),
        "login_at": now,  # a subject-wide back-channel logout ends only older sessions
    }


def _clock_time(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch))


class _LogoutCheck:
    """Drops the RP session whose gateway session ended (back-channel), on every request.

    Pure ASGI, inside ``SessionMiddleware`` so ``scope["session"]`` is loaded; the notice
    time stays in the session until the next login so a reload still explains it.
    """

    def __init__(self, app: ASGIApp, receiver: BackchannelReceiver) -> None:
        self.app = app
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            session = scope.get("session")
            user = session.get("user") if isinstance(session, dict) else None
            if isinstance(session, dict) and isinstance(user, dict):
                ended = self.receiver.logged_out_at(
                    sid=str(user.get("sid", "")), sub=str(user.get("sub", "")),
                    since=float(user.get("login_at", 0)))
                if ended is not None:
                    session.clear()
                    session["logged_out_at"] = ended
        await self.app(scope, receive, send)


def create_rp_app(
    *,
    title: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    base_url: str,
    token_endpoint_auth_method: str,
    scope: str = "openid profile region",
    required_acr: str | None = None,
) -> Starlette:
    """A relying-party web app for ``client_id`` served at ``base_url`` (no trailing /).

    ``required_acr`` only labels the page: the level itself is the client's registered
    ``default_acr_values``, which the gateway applies without the RP asking. The app's
    ``state.backchannel`` is its ``BackchannelReceiver`` (tests read what it received).
    """
    base_url = base_url.rstrip("/")
    redirect_uri = f"{base_url}/callback"
    home_uri = f"{base_url}/"  # registered as this client's post_logout_redirect_uri
    issuer = issuer.rstrip("/")
    my_logins = f"{issuer}/my/logins"
    oauth = OAuth()
    oauth.register(
        name="roam",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={
            "scope": scope,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": token_endpoint_auth_method,
            "timeout": 10.0,
        },
    )
    client = oauth.create_client("roam")

    async def jwks(force: bool) -> Mapping[str, Any]:
        keys: Mapping[str, Any] = await client.fetch_jwk_set(force=force)
        return keys

    receiver = BackchannelReceiver(issuer=issuer, client_id=client_id, jwks=jwks)
    requirement = (
        f'<p class="requirement" id="requirement">本系统要求 {_e(required_acr)} '
        f"{_e(LEVEL_NAMES.get(required_acr, ''))}认证；统一身份认证平台会在需要时"
        "引导您完成升级认证，无需重新登录。</p>"
        if required_acr else ""
    )
    links = (f'<p class="muted"><a id="my-logins" href="{_e(my_logins)}">我的登录</a>'
             "：查看统一身份认证会话已用于哪些系统。</p>")

    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            notices = ""
            ended = request.session.get("logged_out_at")
            if isinstance(ended, int | float):
                notices += (f'<p class="notice" id="logged-out-notice" role="status">'
                            f"您已于 {_clock_time(ended)} 在其他系统退出登录"
                            "（统一身份认证单点退出）</p>")
            state = request.query_params.get("state")
            expected = request.session.pop("logout_state", None)
            if state and isinstance(expected, str) and secrets.compare_digest(state, expected):
                notices += ('<p class="ok" id="logout-done" role="status">您已退出登录，'
                            "统一身份认证平台的会话已结束。</p>")
            body = (
                f'<h1>欢迎</h1>{notices}<p id="status">未登录</p>{requirement}'
                '<p class="muted">使用湖南政务服务统一身份认证登录后办理业务。</p>'
                '<a class="button" id="login" href="/login">登录</a>'
                f"{links}"
            )
            return _page(title, body)
        acr = user["acr"]
        level = LEVEL_NAMES.get(acr, "")
        body = (
            f'<h1>已登录</h1><p id="status">已登录</p>{requirement}<dl>'
            f'<dt>用户</dt><dd id="who">{_e(user["name"] or "（未提供姓名）")}</dd>'
            f'<dt>用户标识 (sub)</dt><dd id="sub">{_e(user["sub"])}</dd>'
            f'<dt>认证等级 (acr)</dt><dd><span id="acr">{_e(acr)}</span>'
            f'{"（" + _e(level) + "）" if level else ""}</dd>'
            f'<dt>认证方式 (amr)</dt><dd id="amr">{_e(" ".join(user["amr"]))}</dd>'
            f'<dt>所属区划</dt><dd id="region">{_e(user["region"])}</dd>'
            f'<dt>登录时间 (auth_time)</dt><dd id="auth-time">{_e(user["auth_time"])}</dd>'
            f'<dt>统一认证会话 (sid)</dt><dd id="sid">{_e(user["sid"])}</dd>'
            "</dl>"
            '<form class="inline" method="post" action="/logout">'
            '<button type="submit" id="logout">退出登录</button></form>'
            '<form class="inline" method="post" action="/logout/local">'
            '<button type="submit" class="secondary" id="logout-local">仅退出本系统</button>'
            "</form>"
            '<p class="muted">“退出登录”结束统一身份认证会话，并通知本次登录用过的全部系统；'
            "“仅退出本系统”只清除本系统的登录状态。</p>"
            f"{links}"
        )
        return _page(title, body)

    async def login(request: Request) -> Response:
        extra = {k: v for k in _PASS_THROUGH if (v := request.query_params.get(k))}
        try:
            return await client.authorize_redirect(request, redirect_uri, **extra)  # type: ignore[no-any-return]
        except httpx.HTTPError as exc:
            log.warning("%s: cannot reach the gateway's discovery document: %s", client_id, exc)
            return _error_page(title, "temporarily_unavailable", status=502)

    async def callback(request: Request) -> Response:
        try:
            metadata = await client.load_server_metadata()
            # RFC 9207: a provider that advertises `iss` in responses must send the right one
            # (authlib does not check it); this defeats mix-up attacks between providers.
            advertised = metadata.get("authorization_response_iss_parameter_supported")
            if advertised and request.query_params.get("iss") != metadata.get("issuer"):
                return _error_page(title, "invalid_issuer")
            token = await client.authorize_access_token(request)
            id_token = token.get("userinfo")
            if not id_token:
                return _error_page(title, "invalid_id_token", "令牌响应中没有 ID Token。")
            userinfo = await client.userinfo(token=token)
            if userinfo.get("sub") != id_token.get("sub"):  # OIDC Core §5.3.2
                return _error_page(title, "invalid_userinfo", "用户信息与 ID Token 不属于同一人。")
        except AuthlibBaseError as exc:  # error responses, state mismatch, token errors
            log.info("%s: callback error %s: %s", client_id, exc.error, exc.description)
            return _error_page(title, str(exc.error or "server_error"), exc.description or "")
        except JoseError as exc:  # the ID token failed signature or claims validation
            log.warning("%s: ID token rejected: %s", client_id, exc)
            return _error_page(title, "invalid_id_token", exc.error)
        except httpx.HTTPError as exc:
            log.warning("%s: gateway call failed: %s", client_id, exc)
            return _error_page(title, "temporarily_unavailable", status=502)
        for stale in ("logged_out_at", "logout_state"):  # a new login: no stale notice
            request.session.pop(stale, None)
        request.session["user"] = _user_record(id_token, userinfo, now=time.time())
        request.session["id_token"] = str(token["id_token"])  # the raw JWT: id_token_hint
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        """RP-initiated logout: end the gateway session (and so every RP's) too."""
        id_token = request.session.get("id_token")
        had_user = bool(request.session.get("user"))
        request.session.clear()  # this RP is logged out whatever the gateway says
        if not had_user or not isinstance(id_token, str):
            return RedirectResponse("/", status_code=303)
        try:
            metadata = await client.load_server_metadata()
        except httpx.HTTPError as exc:
            log.warning("%s: cannot reach the gateway for logout: %s", client_id, exc)
            return _error_page(title, "temporarily_unavailable", "本系统已退出，但统一身份"
                               "认证平台暂时无法访问，其他系统的登录可能仍然有效。", status=502)
        end_session = metadata.get("end_session_endpoint")
        if not isinstance(end_session, str) or not end_session:
            return RedirectResponse("/", status_code=303)
        state = secrets.token_urlsafe(16)
        request.session["logout_state"] = state
        target = add_params_to_uri(end_session, [
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", home_uri),
            ("state", state),
            ("client_id", client_id),
        ])
        return RedirectResponse(target, status_code=303)

    async def logout_local(request: Request) -> Response:
        """Leave this system only; the gateway session (and other RPs) stay logged in."""
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    app = Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login, methods=["GET"]),
            Route("/callback", callback, methods=["GET"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/logout/local", logout_local, methods=["POST"]),
            Route("/backchannel-logout", receiver.handle, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secrets.token_urlsafe(32),
                session_cookie=f"rp_{client_id}",
                max_age=8 * 3600,
                same_site="lax",
                https_only=base_url.startswith("https://"),
            ),
            Middleware(_LogoutCheck, receiver=receiver),
        ],
    )
    app.state.backchannel = receiver
    return app
