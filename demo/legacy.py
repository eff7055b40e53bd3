"""Two small, real legacy systems for the demo: one behind ``signed-header``, one ``cas``.

Neither trusts the gateway blindly. The signed-header system checks every request with
``connectors.signed_header.verify`` (the reference check, with its own replay memory) and
answers 401 when the signature fails; it keeps no session, so it only ever shows what the
request it is answering proved. The CAS system is an ordinary CAS 3.0 client: no session
sends the browser to ``{gateway}/cas/login``, a ``?ticket=`` is validated server to server
at ``{gateway}/cas/p3/serviceValidate`` and the user kept in its own signed cookie.

Both show the name masked: they are demo pages, and a screen is no place for a full name.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.signed_header import SignatureError, verify
from gateway.privacy import mask_name

__all__ = ["create_cas_app", "create_signed_header_app"]

log = logging.getLogger("roam.demo.legacy")

_CAS = "{http://www.yale.edu/tp/cas}"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY"}
_STYLE = """
body { font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
       background: #f2f2f2; margin: 0; color: #222; }
header { background: #5b6770; color: #fff; padding: 12px 24px; font-size: 18px; }
main { max-width: 560px; margin: 40px auto; background: #fff; padding: 24px 28px;
       border: 1px solid #ccc; }
dt { color: #666; font-size: 13px; margin-top: 10px; }
dd { margin: 2px 0 0; font-size: 16px; }
.error { background: #fdecea; color: #8a1c1c; padding: 10px 12px; }
.muted { color: #666; font-size: 13px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    text = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f'<body><header id="system">{_e(title)}</header><main>{body}</main></body></html>'
    )
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def _user_page(title: str, *, how: str, name: str, sub: str, region: str,
               extra: str = "") -> HTMLResponse:
    body = (
        '<h1>业务系统</h1><p id="status">已登录</p><dl>'
        f'<dt>用户</dt><dd id="who">{_e(mask_name(name) if name else "（未提供姓名）")}</dd>'
        f'<dt>用户标识</dt><dd id="sub">{_e(sub)}</dd>'
        f'<dt>所属区划</dt><dd id="region">{_e(region)}</dd>'
        f'<dt>身份来源</dt><dd id="via">{_e(how)}</dd>'
        f"</dl>{extra}"
    )
    return _page(title, body)


def _raw_target(request: Request) -> str:
    """The path and query exactly as received (what the gateway signed)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{query}" if query else "")


def create_signed_header_app(*, title: str, secret: bytes | str, window: int = 300) -> Starlette:
    """A legacy system that believes only validly signed ``X-Roam-*`` headers.

    Every request but ``GET /healthz`` (the gateway's health checks) is verified (window
    ``window`` s, this app's own nonce memory); a bad, missing, stale or replayed
    signature gets a 401 Chinese page. ``app.state.seen_nonces``
    is the replay memory (tests read it).
    """
    seen_nonces: dict[str, float] = {}

    async def any_path(request: Request) -> Response:
        try:
            verified = verify(request.headers.items(), request.method, _raw_target(request),
                              secret=secret, window=window, now=time.time(),
                              seen_nonces=seen_nonces)
        except SignatureError as exc:
            log.info("%s: signed headers rejected: %s", title, exc)
            body = ('<h1>身份校验失败</h1><p class="error" role="alert" id="error">'
                    "请求未携带有效的统一身份认证签名，本系统拒绝访问。</p>"
                    f'<p class="muted">原因：<code id="reason">{_e(exc)}</code></p>'
                    '<p class="muted">请从湖南省政务服务统一身份认证平台进入本系统。</p>')
            return _page(title, body, status=401)
        claims = verified.claims
        return _user_page(
            title, how="签名请求头（signed-header），签名已校验",
            name=str(claims.get("name", "")), sub=verified.sub,
            region=str(claims.get("region", "")),
            extra=f'<p class="muted">认证等级 <span id="acr">{_e(verified.acr)}</span></p>')

    async def healthz(request: Request) -> Response:
        """The gateway's health checks (``health.path`` in systems.toml): unsigned."""
        return Response("ok", media_type="text/plain")

    app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"]),
                            Route("/{path:path}", any_path,
                                  methods=["GET", "HEAD", "POST", "PUT", "DELETE"])])
    app.state.seen_nonces = seen_nonces
    return app


def _parse_validation(text: str) -> tuple[str, dict[str, str], str]:
    """``(user, attributes, "")`` from a CAS 3.0 success, ``("", {}, code)`` otherwise."""
    try:
        root = ET.fromstring(text)  # noqa: S314 - the gateway's own response, no DTDs
    except ET.ParseError:
        return "", {}, "INVALID_RESPONSE"
    success = root.find(f"{_CAS}authenticationSuccess")
    if success is None:
        failure = root.find(f"{_CAS}authenticationFailure")
        code = failure.get("code") if failure is not None else None
        return "", {}, code or "INVALID_RESPONSE"
    user = success.findtext(f"{_CAS}user") or ""
    if not user:
        return "", {}, "INVALID_RESPONSE"
    attributes: dict[str, str] = {}
    holder = success.find(f"{_CAS}attributes")
    if holder is not None:
        for child in holder:
            if child.tag.startswith(_CAS):
                attributes[child.tag[len(_CAS):]] = child.text or ""
    return user, attributes, ""


def create_cas_app(*, title: str, gateway_url: str, base_url: str,
                   http: httpx.AsyncClient | None = None) -> Starlette:
    """A legacy system that is a CAS 3.0 client of the gateway, served at ``base_url``.

    Its service URL is ``{base_url}/``. The user it validated is kept in a signed cookie
    named after its port (the demo systems share 127.0.0.1, where cookies ignore ports);
    the name is masked before it goes in.
    """
    gateway_url = gateway_url.rstrip("/")
    base_url = base_url.rstrip("/")
    service = f"{base_url}/"
    login_url = f"{gateway_url}/cas/login?service={quote(service, safe='')}"
    validate_url = f"{gateway_url}/cas/p3/serviceValidate"

    async def validate(ticket: str) -> tuple[str, dict[str, str], str]:
        params = {"service": service, "ticket": ticket}
        if http is not None:
            resp = await http.get(validate_url, params=params)
        else:
            async with httpx.AsyncClient(timeout=10.0) as client:
                resp = await client.get(validate_url, params=params)
        if resp.status_code != 200:
            return "", {}, "INVALID_RESPONSE"
        return _parse_validation(resp.text)

    async def home(request: Request) -> Response:
        ticket = request.query_params.get("ticket")
        if ticket:
            request.session.clear()
            try:
                user, found, code = await validate(ticket)
            except httpx.HTTPError as exc:
                log.warning("%s: cannot reach the CAS server: %s", title, exc)
                return _page(title, '<h1>登录失败</h1><p class="error" role="alert">'
                             "统一身份认证平台暂时无法访问，请稍后再试。</p>", status=502)
            if not user:
                body = ('<h1>登录失败</h1><p class="error" role="alert" id="error">'
                        "票据校验未通过（票据无效、已使用或已过期），本系统拒绝登录。</p>"
                        f'<p class="muted">错误代码：<code id="error-code">{_e(code)}</code></p>'
                        '<p><a id="retry" href="/">重新登录</a></p>')
                return _page(title, body, status=401)
            request.session["user"] = {"sub": user, "name": mask_name(found.get("name", "")),
                                       "region": found.get("region", "")}
            return RedirectResponse("/", status_code=303)  # no ticket left in the address bar
        user_record: Any = request.session.get("user")
        if not isinstance(user_record, dict):
            return RedirectResponse(login_url, status_code=302)
        return _user_page(title, how="CAS 3.0 票据，已向统一身份认证平台校验",
                          name=str(user_record.get("name", "")),
                          sub=str(user_record.get("sub", "")),
                          region=str(user_record.get("region", "")))

    return Starlette(
        routes=[Route("/", home, methods=["GET"])],
        middleware=[Middleware(
            SessionMiddleware, secret_key=secrets.token_urlsafe(32),
            session_cookie=f"legacy_cas_{httpx.URL(base_url).port or 80}",
            max_age=8 * 3600, same_site="lax", https_only=base_url.startswith("https://"))],
    )
