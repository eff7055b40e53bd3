"""A small, real relying party: a city system that logs in through the gateway.

It uses authlib's own Starlette client (discovery, PKCE S256, state, nonce, ID token
validation against the JWKS, ``iss``, ``aud``) and adds the RFC 9207 ``iss`` check that
authlib leaves to the application. Nothing here is hand-built protocol: if the gateway
drifts from the standard, this RP breaks, which is the point of the demo and its tests.

Its own session is Starlette's signed cookie, named per client: both demo RPs run on
127.0.0.1 and cookies are not port-scoped, so a shared name would let one RP overwrite
the other's. The cookie is signed, not encrypted, so it holds only masked personal data.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.privacy import mask_name

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


def _user_record(id_token: Mapping[str, Any], userinfo: Mapping[str, Any]) -> dict[str, Any]:
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
    }


def create_rp_app(
    *,
    title: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    base_url: str,
    token_endpoint_auth_method: str,
    scope: str = "openid profile region",
) -> Starlette:
    """A relying-party web app for ``client_id`` served at ``base_url`` (no trailing /)."""
    base_url = base_url.rstrip("/")
    redirect_uri = f"{base_url}/callback"
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

    async def home(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            body = (
                '<h1>欢迎</h1><p id="status">未登录</p>'
                '<p class="muted">使用湖南政务服务统一身份认证登录后办理业务。</p>'
                '<a class="button" id="login" href="/login">登录</a>'
            )
            return _page(title, body)
        acr = user["acr"]
        level = LEVEL_NAMES.get(acr, "")
        body = (
            '<h1>已登录</h1><p id="status">已登录</p><dl>'
            f'<dt>用户</dt><dd id="who">{_e(user["name"] or "（未提供姓名）")}</dd>'
            f'<dt>用户标识 (sub)</dt><dd id="sub">{_e(user["sub"])}</dd>'
            f'<dt>认证等级 (acr)</dt><dd><span id="acr">{_e(acr)}</span>'
            f'{"（" + _e(level) + "）" if level else ""}</dd>'
            f'<dt>认证方式 (amr)</dt><dd id="amr">{_e(" ".join(user["amr"]))}</dd>'
            f'<dt>所属区划</dt><dd id="region">{_e(user["region"])}</dd>'
            f'<dt>登录时间 (auth_time)</dt><dd id="auth-time">{_e(user["auth_time"])}</dd>'
            f'<dt>统一认证会话 (sid)</dt><dd id="sid">{_e(user["sid"])}</dd>'
            "</dl>"
            '<form method="post" action="/logout">'
            '<button type="submit" id="logout">退出本系统</button></form>'
            '<p class="muted">退出只清除本系统的登录状态；统一身份认证平台的会话仍然有效。</p>'
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
        request.session["user"] = _user_record(id_token, userinfo)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/", status_code=303)

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/login", login, methods=["GET"]),
            Route("/callback", callback, methods=["GET"]),
            Route("/logout", logout, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secrets.token_urlsafe(32),
                session_cookie=f"rp_{client_id}",
                max_age=8 * 3600,
                same_site="lax",
                https_only=base_url.startswith("https://"),
            )
        ],
    )
