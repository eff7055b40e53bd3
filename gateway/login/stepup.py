"""Step-up authentication: raise a live session's assurance level without a new login.

When ``/authorize`` finds a session whose level (acr) is below what the request needs, it
parks the request and sends the browser to ``/stepup?r=…``. Here the person is asked only
for the missing factor — never the password again — one factor at a time, lowest level
first. Each success keeps the session and its ``sid`` (RPs keep recognising it), rotates
the cookie secret, appends the factor to ``amr`` (RFC 8176) and sets ``acr`` to what the
methods now reach (``gateway.assurance``: never above the account's verified level);
``auth_time`` stays the password's, so a step-up never passes for a new login
(``prompt=login``, ``max_age``: a request that needs one goes to the login page first).
When the level is reached the browser goes on to ``/authorize/resume``. A level no factor
can reach — above the account's verified level, or L4 (a certificate or the counter) —
goes back to the RP as ``unmet_authentication_requirements`` (OpenID Connect Core 1.0
§3.1.2.6).

The factors themselves are ``StepUpFactor``s; the demo's simulated ones are in
``login.factors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.assurance import LEVEL_NAMES, METHOD_LEVELS, PRIMARY_METHODS, level_of
from gateway.audit import audit_event
from gateway.csrf import FIELD, Csrf
from gateway.errors import LockedOut, LoginError, PageError
from gateway.identity import LEVELS, Identity, level_rank
from gateway.oidc.authorize import Authorizer, Pending, requested_level
from gateway.oidc.clients import Client
from gateway.pages import Pages
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind

__all__ = ["LEVEL_NAMES", "StepUpFactor", "StepUpPages"]


class StepUpFactor(Protocol):
    """One extra factor; what level it reaches is ``gateway.assurance``'s to say."""

    name: str  # the RFC 8176 ``amr`` value it adds ("sms", "face")
    template: str  # its page, rendered with the context ``begin`` returns

    def available(self, identity: Identity) -> bool:
        """Whether this person can do the factor at all (a phone to text, a photo to match)."""

    async def begin(self, session: Session) -> dict[str, Any]:
        """Prepare the factor (send a code, issue a challenge); the page's context."""

    async def verify(self, session: Session, form: Mapping[str, str]) -> None:
        """Return on success; raise ``LoginError`` (Chinese, shown) or ``LockedOut``."""


class StepUpPages:
    """``GET``/``POST /stepup``: ask for the next missing factor, then continue the request."""

    def __init__(
        self,
        *,
        authorizer: Authorizer,
        sessions: SessionManager,
        pages: Pages,
        csrf: Csrf,
        factors: Sequence[StepUpFactor],
    ) -> None:
        names = [f.name for f in factors]
        if len(set(names)) != len(names):
            raise ValueError(f"step-up factor names must be unique: {names}")
        unknown = [n for n in names if n not in METHOD_LEVELS or n in PRIMARY_METHODS]
        if unknown:
            raise ValueError(f"not step-up methods (gateway.assurance): {unknown}")
        self.authorizer = authorizer
        self.sessions = sessions
        self.pages = pages
        self.csrf = csrf
        self.factors = sorted(factors, key=lambda f: level_rank(METHOD_LEVELS[f.name]))

    def plan(self, identity: Identity, target: int) -> list[StepUpFactor]:
        """The factors to do, in order, from the identity's level up to ``target``: each
        one must raise the level. [] if unreachable (then the RP hears
        ``unmet_authentication_requirements`` at once)."""
        steps: list[StepUpFactor] = []
        amr, level = identity.amr, identity.level
        for factor in self.factors:
            if level >= target:
                break
            reached = level_rank(level_of((*amr, factor.name), identity.verified_level))
            if reached > level and factor.available(identity):
                steps.append(factor)
                amr, level = (*amr, factor.name), reached
        return steps if level >= target else []

    async def show(self, request: Request) -> Response:
        if "r" not in request.query_params and "next" in request.query_params:
            return await self.start_for(request)
        pending = await self.authorizer.find_pending(request.query_params.get("r"))
        step = await self._next_step(request, pending)
        if isinstance(step, Response):
            return step
        session, client, steps, target = step
        return await self._render(request, pending, session, client, steps, target)

    async def submit(self, request: Request) -> Response:
        form = await request.form()
        self.csrf.check(request, form.get(FIELD))
        pending = await self.authorizer.find_pending(str(form.get("r") or ""))
        step = await self._next_step(request, pending)
        if isinstance(step, Response):
            return step
        session, client, steps, target = step
        factor = steps[0]
        if form.get("factor") != factor.name:
            # A page from an earlier step (back button, second tab): show the current one.
            return RedirectResponse(f"/stepup?r={pending.id}", status_code=303)
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        who = {"subject": session.identity.subject, "client": _client_id(client),
               "sid": session.sid, "factor": factor.name}
        try:
            await factor.verify(session, fields)
        except LockedOut as exc:
            audit_event("stepup", "locked", **who, retry_after=exc.retry_after)
            return await self._render(request, pending, session, client, steps, target,
                                      error=str(exc), status=429)
        except LoginError as exc:
            audit_event("stepup", "failure", **who)
            return await self._render(request, pending, session, client, steps, target,
                                      error=str(exc), status=401)
        before = session.identity
        amr = before.amr if factor.name in before.amr else (*before.amr, factor.name)
        identity = before.with_auth(acr=level_of(amr, before.verified_level), amr=amr,
                                    auth_time=before.auth_time)  # the password's time
        response = RedirectResponse(f"/stepup?r={pending.id}", status_code=303)
        await self.sessions.elevate(session, identity, response)
        audit_event("stepup", "success", **who, acr_before=before.acr, acr=identity.acr)
        return response

    async def _next_step(
        self, request: Request, pending: Pending
    ) -> Response | tuple[Session, Client | None, list[StepUpFactor], int]:
        """Where this request stands: a redirect (login, resume, RP error) or what to ask.

        A parked deep link (``next``: the proxy asking for a system's ``min_acr``) has no
        client: its level is in its ``acr_values`` and success returns to the link.
        """
        client = None if pending.next else self.authorizer.client_for(pending.pairs)
        session = await self.sessions.load(request)
        if session is None or (client is not None and await self.authorizer.blocker(
                session, client, pending.pairs, pending) == "login"):
            # No factor stands in for the password a fresh login (prompt=login, max_age) asks.
            return RedirectResponse(f"/login?r={pending.id}", status_code=303)
        target = (requested_level(pending.pairs) if client is None
                  else self.authorizer.required_level(client, pending.pairs))
        if session.identity.level >= target:
            if pending.next is not None:
                await self.authorizer.store.destroy(Kind.PARKED_REQUEST, pending.id)
                return RedirectResponse(pending.next, status_code=303)
            return RedirectResponse(f"/authorize/resume?r={pending.id}", status_code=303)
        steps = self.plan(session.identity, target)
        if not steps:
            return await self._unmet(pending, session, client, LEVELS[target - 1])
        return session, client, steps, target

    async def _unmet(self, pending: Pending, session: Session, client: Client | None,
                     needed: str) -> Response:
        """No factor reaches ``needed``: the RP hears so, a person gets a page."""
        identity = session.identity
        verified = identity.verified_level
        audit_event("stepup", "denied", subject=identity.subject, client=_client_id(client),
                    sid=session.sid, reason="no factor reaches the level", acr=identity.acr,
                    verified=verified, needed=needed)
        unverified = level_rank(verified) < level_rank(needed)
        if client is not None:
            return await self.authorizer.fail(
                pending, "unmet_authentication_requirements",
                f"The account is verified only to {verified or 'no level'}; the request "
                f"needs {needed}." if unverified
                else f"No step-up factor available here reaches {needed}.")
        if unverified:
            raise PageError("无法完成认证", f"该业务需要 {needed} {LEVEL_NAMES.get(needed, '')}，"
                            f"您的账户目前核验到 {verified or '（无）'} "
                            f"{LEVEL_NAMES.get(verified, '')}。请先完成更高等级的身份核验"
                            "（如到政务服务大厅或通过政务服务 App 办理）后再试。", status=403)
        raise PageError("无法完成认证", f"该业务需要 {needed} 认证，"
                        "本平台目前无法为您提供所需的认证方式。", status=403)

    async def start_for(self, request: Request) -> Response:
        """``/stepup?next=…&acr=L3``: a deep link needs a higher level; park it, then ask."""
        level = request.query_params.get("acr", "")
        if level_rank(level) == 0:
            raise PageError("认证请求有误", "缺少或无法识别所需的认证等级。")
        pending_id = await self.authorizer.park_next(request.query_params.get("next", ""),
                                                     pairs=[("acr_values", level)])
        return RedirectResponse(f"/stepup?r={pending_id}", status_code=303)

    async def _render(self, request: Request, pending: Pending, session: Session,
                      client: Client | None, steps: list[StepUpFactor], target: int, *,
                      error: str = "", status: int = 200) -> Response:
        factor = steps[0]
        context = await factor.begin(session)
        target_acr = LEVELS[target - 1]
        csrf = self.csrf.token(request)
        context.update({
            "action": "/stepup",
            "request_id": pending.id,
            "csrf_token": csrf,
            "factor": factor.name,
            "client_name": client.config.client_name if client else "湖南政务服务",
            "reason": f"该事项需要 {target_acr} {LEVEL_NAMES.get(target_acr, '')}",
            "current_acr": session.identity.acr,
            "current_name": LEVEL_NAMES.get(session.identity.acr, ""),
            "steps_left": len(steps),
            "error": error,
        })
        response = self.pages.render(factor.template, context, status=status)
        self.csrf.set_cookie(response, csrf)
        return response


def _client_id(client: Client | None) -> str | None:
    return client.client_id if client is not None else None

