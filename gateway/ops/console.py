"""The operators' console: ``/ops`` (status page), its login, and the JSON admin API.

- ``GET|POST /ops/login``: name, password and TOTP code (:class:`OperatorLogin`), CSRF
  protected; success starts a console session (:class:`ConsoleSessions`).
- ``GET /ops``: systems grouped by city and county, each instance's health, circuit,
  latency, error rate, last check and recent transitions (:class:`Board`); it reloads
  itself every ``REFRESH`` seconds (a meta refresh: the pages' CSP runs no scripts).
- ``POST /ops/rotation``: take an instance out of rotation or put it back — the form
  on the page (CSRF field), for the operator role only, audited.
- ``GET /ops/api/status`` and ``POST /ops/api/rotation`` (JSON ``{system, instance,
  in_rotation, reason}``, the CSRF token in ``X-CSRF-Token``): the same for scripts.
- ``POST /ops/logout``.

Without a console session, pages go to the login and the API answers 401 JSON.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import audit_event
from gateway.csrf import FIELD, Csrf
from gateway.errors import PageError
from gateway.ops.console_sessions import ConsoleSession, ConsoleSessions
from gateway.ops.operators import OperatorLogin, OpsLoginRefused

__all__ = ["MAX_REASON", "REFRESH", "Board", "Console", "Pages", "UnknownTarget", "api_request",
           "form_request", "json_error"]


REFRESH = 15  # seconds between the status page's reloads
_NO_STORE = {"Cache-Control": "no-store"}
MAX_REASON = 200


class UnknownTarget(LookupError):
    """No such system or instance."""


class Board(Protocol):
    """What the console shows and changes (gateway/ops/board.py)."""

    async def status(self) -> dict[str, Any]:
        """Every system by city and county, with its instances' state (JSON-ready)."""

    async def set_rotation(self, system_id: str, instance: str, in_rotation: bool, *,
                           by: str, reason: str) -> None:
        """Take ``instance`` out of rotation or put it back; :class:`UnknownTarget`."""


class Pages(Protocol):
    def render(self, template: str, context: dict[str, Any], *,
               status: int = 200) -> Response: ...


def json_error(error: str, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description},
                        status_code=status, headers=_NO_STORE)


async def form_request(request: Request, sessions: ConsoleSessions, csrf: Csrf
                       ) -> tuple[ConsoleSession, FormData] | Response:
    """A page's form that changes something: its console session and the form (its CSRF
    field checked: ``PageError`` if wrong), or the way to the login page."""
    session = await sessions.load(request)
    if session is None:
        return RedirectResponse("/ops/login", status_code=303, headers=_NO_STORE)
    form = await request.form()
    csrf.check(request, form.get(FIELD))
    return session, form


async def api_request(request: Request, sessions: ConsoleSessions, csrf: Csrf
                      ) -> tuple[ConsoleSession, dict[str, Any]] | Response:
    """A JSON API call that changes something: its console session and its body (a JSON
    object), or the JSON error to answer — no session 401, no CSRF header 403."""
    session = await sessions.load(request)
    if session is None:
        return json_error("login_required", "An operator's console session is required.", 401)
    try:
        csrf.check(request, request.headers.get("x-csrf-token"))
        body = await request.json()
    except PageError:
        return json_error("invalid_request", "X-CSRF-Token is missing or wrong.", 403)
    except ValueError:
        return json_error("invalid_request", "The body must be JSON.", 400)
    if not isinstance(body, dict):
        return json_error("invalid_request", "The body must be a JSON object.", 400)
    return session, body


class Console:
    def __init__(self, *, login: OperatorLogin, sessions: ConsoleSessions, board: Board,
                 pages: Pages, csrf: Csrf) -> None:
        self.login = login
        self.sessions = sessions
        self.board = board
        self.pages = pages
        self.csrf = csrf

    # --- login and logout -----------------------------------------------------------------

    def _login_page(self, request: Request, error: str = "", name: str = "",
                    status: int = 200) -> Response:
        token = self.csrf.token(request)
        response = self.pages.render("ops_login.html", {
            "csrf_token": token, "error": error, "name": name}, status=status)
        self.csrf.set_cookie(response, token)
        return response

    async def login_page(self, request: Request) -> Response:
        if await self.sessions.load(request) is not None:
            return RedirectResponse("/ops", status_code=303)
        return self._login_page(request)

    async def log_in(self, request: Request) -> Response:
        form = await request.form()
        self.csrf.check(request, form.get(FIELD))
        name, password, code = (form.get(k) for k in ("name", "password", "code"))
        fields = [v if isinstance(v, str) else "" for v in (name, password, code)]
        try:
            operator = await self.login.check(*fields)
        except OpsLoginRefused as refused:
            response = self._login_page(request, refused.message, fields[0][:64],
                                        status=429 if refused.retry_after else 400)
            if refused.retry_after:
                response.headers["Retry-After"] = str(refused.retry_after)
            return response
        response = RedirectResponse("/ops", status_code=303, headers=_NO_STORE)
        await self.sessions.start(operator, response)
        return response

    async def log_out(self, request: Request) -> Response:
        form = await request.form()
        self.csrf.check(request, form.get(FIELD))
        response = RedirectResponse("/ops/login", status_code=303, headers=_NO_STORE)
        session = await self.sessions.load(request)
        if session is not None:
            await self.sessions.end(session, response)
            audit_event("operator.logout", "success", subject=session.operator)
        else:
            self.sessions.clear(response)
        return response

    # --- the page ---------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        session = await self.sessions.load(request)
        if session is None:
            return RedirectResponse("/ops/login", status_code=303, headers=_NO_STORE)
        token = self.csrf.token(request)
        response = self.pages.render("ops_status.html", {
            "board": await self.board.status(), "operator": session.operator,
            "may_change": session.may_change, "csrf_token": token, "refresh": REFRESH,
            "notice": request.query_params.get("done", "")[:100]})
        self.csrf.set_cookie(response, token)
        return response

    async def rotation_form(self, request: Request) -> Response:
        read = await form_request(request, self.sessions, self.csrf)
        if isinstance(read, Response):
            return read
        session, form = read
        values = {k: form.get(k) for k in ("system", "instance", "in_rotation", "reason")}
        await self._rotate(session, values, page=True)
        return RedirectResponse("/ops?done=1", status_code=303, headers=_NO_STORE)

    # --- the JSON API -------------------------------------------------------------------------

    async def api_status(self, request: Request) -> Response:
        if await self.sessions.load(request) is None:
            return json_error("login_required", "An operator's console session is required.",
                               401)
        return JSONResponse(await self.board.status(), headers=_NO_STORE)

    async def api_rotation(self, request: Request) -> Response:
        read = await api_request(request, self.sessions, self.csrf)
        if isinstance(read, Response):
            return read
        session, body = read
        try:
            await self._rotate(session, body, page=False)
        except PageError as error:
            return json_error("invalid_request" if error.status == 400 else "forbidden"
                               if error.status == 403 else "not_found", error.detail,
                               error.status)
        return JSONResponse({"ok": True}, headers=_NO_STORE)

    async def _rotate(self, session: ConsoleSession, values: dict[str, Any], *,
                      page: bool) -> None:
        if not session.may_change:
            audit_event("operator.rotation", "denied", subject=session.operator,
                        reason="viewer")
            raise PageError("无权操作", "只读账号不能调整实例，请使用运维账号。", status=403)
        system, instance = values.get("system"), values.get("instance")
        wanted, reason = values.get("in_rotation"), values.get("reason") or ""
        if page and isinstance(wanted, str):
            wanted = {"true": True, "false": False}.get(wanted)
        if not isinstance(system, str) or not isinstance(instance, str) \
                or not isinstance(wanted, bool) or not isinstance(reason, str) \
                or len(reason) > MAX_REASON:
            raise PageError("请求无效", "缺少系统、实例或操作，或说明过长。", status=400)
        try:
            await self.board.set_rotation(system, instance, wanted, by=session.operator,
                                          reason=reason.strip() or ("恢复" if wanted else "维护"))
        except UnknownTarget:
            raise PageError("没有该实例", "找不到该系统或实例。", status=404) from None
