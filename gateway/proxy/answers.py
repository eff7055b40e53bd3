"""The proxy's own answers, for what never reached an upstream or failed there.

A person gets a page (or a redirect to log in or step up); a program gets JSON with a
reference id, never a redirect. Which one is decided by :func:`is_navigation`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.config import SystemConfig
from gateway.errors import PageError, StoreError
from gateway.legacy.access import NO_STORE, Refusal
from gateway.legacy.failover import Failover
from gateway.pages import Pages
from gateway.proxy.upstream import UpstreamError

__all__ = ["MiB", "ProxyAnswers", "is_navigation"]

log = logging.getLogger("roam.proxy")

MiB = 1024 * 1024


def is_navigation(request: Request) -> bool:
    """A top-level browser navigation (a person will see the answer), not XHR/fetch."""
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode.lower() == "navigate"
    if request.headers.get("x-requested-with"):
        return False
    return "text/html" in request.headers.get("accept", "").lower()


class ProxyAnswers:
    def __init__(self, *, pages: Pages, max_body: int) -> None:
        self.pages = pages
        self.max_body = max_body

    def refused(self, request: Request, refusal: Refusal, location: str) -> Response:
        """The gate's refusal: a person navigating is sent to ``location`` (the login or
        step-up page, which comes back afterwards); a program gets 401 or 403 JSON."""
        if is_navigation(request):
            if request.method in ("GET", "HEAD"):
                return RedirectResponse(location, status_code=303, headers=NO_STORE)
            if refusal.step == "login":
                return self.pages.error(PageError(
                    "需要登录", "登录状态已失效，请重新打开页面并登录。", status=401))
            return self.pages.error(PageError(
                "需要更高级别的身份认证", "该业务需要更高级别的身份认证，请重新打开页面完成认证。",
                status=403))
        if refusal.step == "login":
            login = location.partition("?")[0]
            return JSONResponse(
                {"error": "login_required",
                 "error_description": f"A gateway session is required; log in at {login} "
                                      "first."},
                status_code=401,
                headers={**NO_STORE, "WWW-Authenticate": 'Session realm="roam"'})
        acr = refusal.acr
        return JSONResponse(
            {"error": "insufficient_user_authentication",
             "error_description": f"This system requires assurance level {acr} or higher.",
             "acr_values": acr},
            status_code=403,
            headers={**NO_STORE, "WWW-Authenticate":
                     f'Session realm="roam", error="insufficient_user_authentication", '
                     f'acr_values="{acr}"'})

    def too_large(self, request: Request) -> Response:
        mib = self.max_body / MiB
        return self.fail(request, 413, "payload_too_large", "提交的内容过大",
                          f"提交的内容超过了 {mib:g} MB 的上限。")

    def upstream_error(self, request: Request, status: int, system: SystemConfig,
                        instance: str, exc: UpstreamError) -> Response:
        if status == 504:
            page = PageError("业务系统响应超时", f"{system.name}暂时没有响应，请稍后再试。",
                             status=504)
            code = "gateway_timeout"
        elif status == 503:  # every connection the instance may have stayed busy
            page = PageError("业务系统繁忙", f"{system.name}当前访问人数较多，请稍后再试。",
                             status=503)
            code = "temporarily_unavailable"
        else:
            page = PageError("业务系统暂时无法访问", f"暂时无法连接{system.name}，请稍后再试。",
                             status=502)
            code = "bad_gateway"
        log.warning("proxy upstream failed", extra={
            "error": code, "ref": page.ref, "system": system.id, "instance": instance,
            "cause": f"{type(exc).__name__}: {exc}"})
        answer = self._answer(request, page, code)
        if status == 503:
            answer.headers["Retry-After"] = "5"
        return answer

    def no_instance(self, request: Request, system: SystemConfig, failover: Failover | None,
                    *, recovering: bool = False) -> Response:
        """No instance of the system may be used now: a person's page view goes on through
        ``/go`` a level up (``failover``); anything else gets 503 with ``Retry-After`` —
        also while every instance left is half-open and its one trial runs elsewhere
        (``recovering``)."""
        if (failover is not None and not recovering and is_navigation(request)
                and request.method in ("GET", "HEAD")):
            return failover.elsewhere(system)
        detail = "正在恢复" if recovering else "暂时无法访问"
        answer = self.fail(request, 503, "temporarily_unavailable", "业务系统暂时无法访问",
                           f"{system.name}{detail}，请稍后再试。")
        answer.headers["Retry-After"] = "5"
        return answer

    def not_allowed(self, request: Request, methods: Sequence[str]) -> Response:
        answer = self.fail(request, 405, "method_not_allowed", "请求方式不受支持",
                           f"业务系统代理只接受 {', '.join(methods)} 请求。")
        answer.headers["Allow"] = ", ".join(methods)
        return answer

    def unavailable(self, request: Request, exc: StoreError) -> Response:
        """The store failed (e.g. Redis down): 503, try again shortly."""
        page = PageError("服务暂时不可用", "认证服务的存储暂时不可用，请稍后再试。", status=503)
        log.error("proxy store failure", extra={"ref": page.ref, "path": request.url.path,
                                                "cause": str(exc)})
        answer = self._answer(request, page, "temporarily_unavailable")
        answer.headers["Retry-After"] = "5"
        return answer

    def internal_error(self, request: Request) -> Response:
        """For an exception nothing expected: logged with its traceback and the ref."""
        page = PageError("系统错误", "认证服务出现内部错误，请稍后再试。", status=500)
        log.exception("proxy internal error", extra={"ref": page.ref,
                                                     "path": request.url.path})
        return self._answer(request, page, "server_error")

    def fail(self, request: Request, status: int, code: str, title: str,
              detail: str) -> Response:
        return self._answer(request, PageError(title, detail, status=status), code)

    def _answer(self, request: Request, page: PageError, code: str) -> Response:
        """The page for a person, ``{"error": code, "ref": ...}`` for a program."""
        if is_navigation(request):
            return self.pages.error(page)
        return JSONResponse({"error": code, "ref": page.ref}, status_code=page.status,
                            headers=NO_STORE)
