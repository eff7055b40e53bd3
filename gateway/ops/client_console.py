"""The console's page for registered clients (``/ops/clients``): what waits for a decision,
approving (all or part: narrowing the claims and the level) or refusing it, and inviting
the systems of a city or county to register.

- ``GET /ops/clients``: every registered client, those waiting first, with what each asks
  for beyond its approval and its last decisions (no self-refresh: an operator types here).
- ``POST /ops/clients/decide`` (form: ``client_id``, ``decision`` approve|reject,
  ``reason``, the ``scope`` and ``claim`` boxes ticked, ``level``, and ``seen``: the
  request's version shown, so a client that changed it meanwhile is not approved unseen)
  and ``POST /ops/clients/invite`` (``region``, ``days``, ``uses``; the token is shown
  once, on the answer's page).
- ``GET /ops/api/clients``, ``POST /ops/api/clients/decide`` (JSON ``{client_id,
  decision, reason, claims?, scopes?, level?, seen?}``) and ``POST /ops/api/clients/invite``
  (``{region, expires_in, uses}``), with the CSRF token in ``X-CSRF-Token``.

Deciding and inviting are for the operator role; a viewer sees the list. Every decision
names the operator of the console session, and is audited by the review itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from gateway.audit import audit_event
from gateway.csrf import Csrf
from gateway.ops.console import MAX_REASON, Pages, api_request, form_request, json_error
from gateway.ops.console_sessions import ConsoleSession, ConsoleSessions

__all__ = ["ClientConsole", "Registrations"]

_NO_STORE = {"Cache-Control": "no-store"}
_REGION = re.compile(r"^\d{2}(\d{2}){0,2}$")


class Registrations(Protocol):
    """What the page shows and changes (``gateway.oidc.client_review.ClientReview``); a
    refused decision raises ``ValueError`` with a message for the operator."""

    async def listing(self) -> list[dict[str, Any]]: ...

    async def approve(self, client_id: str, *, by: str, reason: str,
                      scopes: Iterable[str] | None = None,
                      claims: Iterable[str] | None = None,
                      level: str | None = None, seen: int | None = None) -> object: ...

    async def reject(self, client_id: str, *, by: str, reason: str) -> object: ...

    async def invite(self, region: str, *, expires_in: int, uses: int, by: str) -> str: ...


class ClientConsole:
    def __init__(self, *, sessions: ConsoleSessions, registrations: Registrations,
                 pages: Pages, csrf: Csrf) -> None:
        self.sessions = sessions
        self.registrations = registrations
        self.pages = pages
        self.csrf = csrf

    # --- the page ---------------------------------------------------------------------------

    async def page(self, request: Request, *, notice: str = "", error: str = "",
                   invited: dict[str, Any] | None = None, status: int = 200) -> Response:
        session = await self.sessions.load(request)
        if session is None:
            return RedirectResponse("/ops/login", status_code=303, headers=_NO_STORE)
        token = self.csrf.token(request)
        response = self.pages.render("ops_clients.html", {
            "clients": await self.registrations.listing(), "operator": session.operator,
            "may_change": session.may_change, "csrf_token": token,
            "notice": notice or ("操作已生效。" if request.query_params.get("done") else ""),
            "error": error, "invited": invited}, status=status)
        response.headers.update(_NO_STORE)
        self.csrf.set_cookie(response, token)
        return response

    async def decide_form(self, request: Request) -> Response:
        read = await form_request(request, self.sessions, self.csrf)
        if isinstance(read, Response):
            return read
        session, form = read
        values: dict[str, Any] = {k: form.get(k) for k in ("client_id", "decision", "reason",
                                                           "level")}
        values["claims"] = [c for c in form.getlist("claim") if isinstance(c, str)]
        values["scopes"] = [c for c in form.getlist("scope") if isinstance(c, str)]
        seen = form.get("seen")
        values["seen"] = int(seen) if isinstance(seen, str) and seen.isdigit() else -1
        try:
            await self._decide(session, values)
        except PermissionError as denied:
            return await self.page(request, error=str(denied), status=403)
        except ValueError as refused:
            return await self.page(request, error=str(refused), status=400)
        return RedirectResponse("/ops/clients?done=1", status_code=303, headers=_NO_STORE)

    async def invite_form(self, request: Request) -> Response:
        read = await form_request(request, self.sessions, self.csrf)
        if isinstance(read, Response):
            return read
        session, form = read
        try:
            days, uses = int(str(form.get("days") or "7")), int(str(form.get("uses") or "1"))
        except ValueError:
            return await self.page(request, error="有效期和次数须为整数。", status=400)
        region = str(form.get("region") or "")
        try:
            token = await self._invite(session, region, days * 86400, uses)
        except PermissionError as denied:
            return await self.page(request, error=str(denied), status=403)
        except ValueError as refused:
            return await self.page(request, error=str(refused), status=400)
        return await self.page(request, invited={"token": token, "region": region,
                                                 "days": days, "uses": uses})

    # --- the JSON API -----------------------------------------------------------------------

    async def api_list(self, request: Request) -> Response:
        if await self.sessions.load(request) is None:
            return json_error("login_required", "An operator's console session is required.",
                              401)
        return JSONResponse({"clients": await self.registrations.listing()},
                            headers=_NO_STORE)

    async def api_decide(self, request: Request) -> Response:
        return await self._api(request, self._api_decide)

    async def api_invite(self, request: Request) -> Response:
        return await self._api(request, self._api_invite)

    async def _api_decide(self, session: ConsoleSession, body: dict[str, Any]
                          ) -> dict[str, Any]:
        await self._decide(session, body)
        return {"ok": True}

    async def _api_invite(self, session: ConsoleSession, body: dict[str, Any]
                          ) -> dict[str, Any]:
        expires_in, uses = body.get("expires_in", 7 * 86400), body.get("uses", 1)
        if not isinstance(expires_in, int) or not isinstance(uses, int):
            raise ValueError("expires_in and uses must be integers")
        token = await self._invite(session, str(body.get("region", "")), expires_in, uses)
        return {"initial_access_token": token, "expires_in": expires_in, "uses": uses}

    async def _api(self, request: Request, act: Any) -> Response:
        read = await api_request(request, self.sessions, self.csrf)
        if isinstance(read, Response):
            return read
        session, body = read
        try:
            answer = await act(session, body)
        except PermissionError as denied:
            return json_error("forbidden", str(denied), 403)
        except ValueError as refused:
            return json_error("invalid_request", str(refused), 400)
        return JSONResponse(answer, headers=_NO_STORE)

    # --- shared -------------------------------------------------------------------------------

    def _may_change(self, session: ConsoleSession, action: str) -> None:
        if not session.may_change:
            audit_event(action, "denied", subject=session.operator, reason="viewer")
            raise PermissionError("只读账号不能审批或邀请，请使用运维账号。")

    async def _decide(self, session: ConsoleSession, values: dict[str, Any]) -> None:
        self._may_change(session, "client.decide")
        client_id, decision = values.get("client_id"), values.get("decision")
        reason = values.get("reason") or ""
        if not isinstance(client_id, str) or decision not in ("approve", "reject") \
                or not isinstance(reason, str) or not reason.strip() \
                or len(reason) > MAX_REASON:
            raise ValueError("缺少应用、决定或说明（说明不超过 200 字）。")
        by = f"ops:{session.operator}"
        if decision == "reject":
            await self.registrations.reject(client_id, by=by, reason=reason.strip())
            return
        claims, scopes, level = values.get("claims"), values.get("scopes"), values.get("level")
        if (claims is not None and not _strings(claims)) or (scopes is not None and not _strings(
                scopes)) or level not in (None, "", "L1", "L2", "L3", "L4"):
            raise ValueError("claims、scopes 须为字符串列表，level 须为 L1–L4。")
        await self.registrations.approve(client_id, by=by, reason=reason.strip(),
                                         scopes=scopes, claims=claims, level=level or None)

    async def _invite(self, session: ConsoleSession, region: str, expires_in: int,
                      uses: int) -> str:
        self._may_change(session, "operator.clients.invite")
        if not _REGION.match(region):
            raise ValueError("区划代码须为 2、4 或 6 位数字（如 4301、430102）。")
        if not 0 < expires_in <= 365 * 86400 or not 0 < uses <= 1000:
            raise ValueError("有效期须在 1 天到 365 天之间，次数须在 1 到 1000 之间。")
        return await self.registrations.invite(region.ljust(6, "0"), expires_in=expires_in,
                                               uses=uses, by=f"ops:{session.operator}")


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)
