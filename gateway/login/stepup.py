"""Step-up authentication: raise a live session's assurance level without a new login.

When ``/authorize`` finds a session whose level (acr) is below what the request needs, it
parks the request and sends the browser to ``/stepup?r=…``. Here the person is asked only
for the missing factor — never the password again — one factor at a time, lowest level
first (an L1 session asked for L3 does the SMS code, then the face check). Each success
keeps the session and its ``sid`` (RPs keep recognising it), rotates the cookie secret,
raises ``acr``, appends the factor to ``amr`` (RFC 8176) and sets ``auth_time``; when the
level is reached the browser goes on to ``/authorize/resume``. A level no factor can
reach (L4 needs a certificate or the counter) goes back to the RP as
``unmet_authentication_requirements`` (OpenID Connect Core 1.0 §3.1.2.6).

The demo directory has no SMS gateway and no liveness vendor, so both factors here are
simulations, labelled 演示 on their pages: the SMS code is shown in a demo box (the
simulated phone), and the face check is a button. Their server side is real: one-time,
expiring, single-use under concurrency (``Store.consume``), with a try limit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.csrf import FIELD, Csrf
from gateway.errors import LockedOut, LoginError, PageError
from gateway.identity import LEVELS, Identity, level_rank
from gateway.oidc.authorize import Authorizer, Pending, requested_level
from gateway.oidc.clients import Client
from gateway.pages import Pages
from gateway.privacy import mask_phone
from gateway.sessions import Session, SessionManager
from gateway.store.base import Kind, Store

__all__ = [
    "LEVEL_NAMES",
    "SimulatedFace",
    "SimulatedSms",
    "StepUpFactor",
    "StepUpPages",
    "simulated_factors",
]

log = logging.getLogger("roam.stepup")
audit = logging.getLogger("roam.audit")

LEVEL_NAMES = {"L1": "账户认证", "L2": "实名认证", "L3": "实人认证", "L4": "证照认证"}

_OTP = re.compile(r"[0-9]{6}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class StepUpFactor(Protocol):
    """One extra factor that raises a session to ``level``."""

    name: str  # the RFC 8176 ``amr`` value it adds ("sms", "face")
    level: str  # the level it raises the session to ("L2", "L3")
    template: str  # its page, rendered with the context ``begin`` returns

    def available(self, identity: Identity) -> bool:
        """Whether this person can do the factor at all (a phone to text, a photo to match)."""

    async def begin(self, session: Session) -> dict[str, Any]:
        """Prepare the factor (send a code, issue a challenge); the page's context."""

    async def verify(self, session: Session, form: Mapping[str, str]) -> None:
        """Return on success; raise ``LoginError`` (Chinese, shown) or ``LockedOut``."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SimulatedSms:
    """An SMS one-time code (L2, amr ``sms``) whose "SMS gateway" is the page itself.

    The ``stepup_otp/<sid>`` record holds only the code's SHA-256, the wrong tries and the
    expiry, so a store dump yields no usable code. The simulated phone is a second record,
    ``stepup_sms_outbox/<sid>``: what a real SMS gateway would deliver, shown in the
    page's 演示环境 box on every render (a wrong try or a reload must not lose the code).
    A real SMS factor would send instead and keep no outbox.

    Verification consumes the record atomically, so of two concurrent submissions only
    one is checked; a wrong answer puts the record back with one more try counted. After
    ``max_failures`` wrong tries the code is destroyed and, for ``lock_seconds``, no new
    one is sent, so codes cannot be cycled at request speed.
    """

    name = "sms"
    level = "L2"
    template = "stepup_sms.html"

    def available(self, identity: Identity) -> bool:
        return bool(identity.claims.get("phone_number"))

    def __init__(self, store: Store, *, ttl: int = 300, max_failures: int = 5,
                 lock_seconds: int = 60, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self.clock = clock

    async def begin(self, session: Session) -> dict[str, Any]:
        phone = session.identity.claims.get("phone_number")
        if not isinstance(phone, str) or not phone:
            raise PageError("无法发送验证码",
                            "您的账户未登记手机号码，无法通过短信验证码完成核验。")
        now = int(self.clock())
        record = await self.store.find(Kind.STEPUP_CODE, session.sid)
        locked_for = int(record.get("locked_until", 0)) - now if record else 0
        code = ""
        if locked_for <= 0:
            code = await self._delivered(session.sid, record) or await self._send(
                session.sid, phone, now)
        return {
            "masked_phone": mask_phone(phone),
            "demo_code": code,
            "ttl_minutes": max(1, self.ttl // 60),
            "locked_seconds": max(0, locked_for),
        }

    async def _delivered(self, sid: str, record: dict[str, Any] | None) -> str | None:
        """The live code from the simulated phone, if it matches the live record."""
        if record is None or "code_sha256" not in record:
            return None
        outbox = await self.store.find(Kind.STEPUP_SMS_OUTBOX, sid)
        code = str(outbox.get("code", "")) if outbox else ""
        # Two racing first visits may each send: show a code only if it is the live one.
        if code and hmac.compare_digest(_sha256(code), str(record["code_sha256"])):
            return code
        return None

    async def _send(self, sid: str, phone: str, now: int) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        payload = {"code_sha256": _sha256(code), "attempts": 0, "expires": now + self.ttl}
        await self.store.upsert(Kind.STEPUP_CODE, sid, payload, self.ttl)
        await self.store.upsert(Kind.STEPUP_SMS_OUTBOX, sid, {"code": code}, self.ttl)
        log.info("stepup sms sent (simulated) sid=%s phone=%s", sid, mask_phone(phone))
        return code

    async def verify(self, session: Session, form: Mapping[str, str]) -> None:
        answer = form.get("otp", "").strip()
        if not _OTP.fullmatch(answer):
            raise LoginError("请输入 6 位数字验证码。")
        sid = session.sid
        got = await self.store.consume(Kind.STEPUP_CODE, sid)
        if got is None:
            raise LoginError("验证码已过期或已使用，请使用新发送的验证码。")
        payload, first_use = got
        now = int(self.clock())
        locked_for = int(payload.get("locked_until", 0)) - now
        if locked_for > 0:
            raise LockedOut(self._locked_message(locked_for), locked_for)
        if not first_use or "code_sha256" not in payload:
            raise LoginError("该验证码已提交，请勿重复提交。")
        if hmac.compare_digest(_sha256(answer), str(payload["code_sha256"])):
            await self.store.destroy(Kind.STEPUP_CODE, sid)
            await self.store.destroy(Kind.STEPUP_SMS_OUTBOX, sid)
            return
        attempts = int(payload.get("attempts", 0)) + 1
        if attempts >= self.max_failures:
            await self.store.destroy(Kind.STEPUP_SMS_OUTBOX, sid)
            await self.store.upsert(Kind.STEPUP_CODE, sid,
                                    {"locked_until": now + self.lock_seconds}, self.lock_seconds)
            raise LockedOut(self._locked_message(self.lock_seconds), self.lock_seconds)
        remaining = int(payload.get("expires", 0)) - now
        if remaining <= 0:
            await self.store.destroy(Kind.STEPUP_CODE, sid)
            raise LoginError("验证码已过期，请使用新发送的验证码。")
        await self.store.upsert(Kind.STEPUP_CODE, sid, {**payload, "attempts": attempts}, remaining)
        raise LoginError(f"验证码错误，还可以尝试 {self.max_failures - attempts} 次。")

    @staticmethod
    def _locked_message(seconds: int) -> str:
        return f"验证码错误次数过多，该验证码已作废。请 {seconds} 秒后刷新页面获取新的验证码。"


class SimulatedFace:
    """A face (liveness) check (L3, amr ``face``), simulated: no camera, a button.

    ``begin`` issues a one-time challenge bound to the session; the POST must return it,
    and verification consumes it, so a replayed or cross-session POST cannot pass. A real
    liveness vendor would hand its own result token in place of the challenge.
    """

    name = "face"
    level = "L3"
    template = "stepup_face.html"

    def available(self, identity: Identity) -> bool:
        # a liveness check compares the face with the real-name record: L2 data needed
        return bool(identity.claims.get("id_number") and identity.claims.get("name"))

    def __init__(self, store: Store, *, ttl: int = 300) -> None:
        self.store = store
        self.ttl = ttl

    async def begin(self, session: Session) -> dict[str, Any]:
        challenge = secrets.token_urlsafe(24)
        await self.store.upsert(Kind.STEPUP_FACE, challenge, {"sid": session.sid}, self.ttl)
        return {"challenge": challenge}

    async def verify(self, session: Session, form: Mapping[str, str]) -> None:
        challenge = form.get("challenge", "")
        valid = _CHALLENGE.fullmatch(challenge) is not None
        issued = await self.store.find(Kind.STEPUP_FACE, challenge) if valid else None
        # Check the owner before consuming, so another session cannot burn the challenge.
        if issued is None or issued.get("sid") != session.sid:
            raise LoginError("本次核验已失效或已使用，请重新开始核验。")
        got = await self.store.consume(Kind.STEPUP_FACE, challenge)
        if got is None or not got[1]:
            raise LoginError("本次核验已失效或已使用，请重新开始核验。")


def simulated_factors(store: Store, *, ttl: int = 300, max_failures: int = 5,
                      lock_seconds: int = 60) -> list[StepUpFactor]:
    """The demo directory's factors: SMS code to L2, face check to L3 (``[login]
    stepup_ttl``, ``stepup_max_failures``, ``stepup_lock_seconds``)."""
    return [SimulatedSms(store, ttl=ttl, max_failures=max_failures, lock_seconds=lock_seconds),
            SimulatedFace(store, ttl=ttl)]


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
        unknown = [f.level for f in factors if not level_rank(f.level)]
        if unknown:
            raise ValueError(f"step-up factors with unknown levels: {unknown}")
        self.authorizer = authorizer
        self.sessions = sessions
        self.pages = pages
        self.csrf = csrf
        self.factors = sorted(factors, key=lambda f: level_rank(f.level))

    def plan(self, identity: Identity, target: int) -> list[StepUpFactor]:
        """The factors to do, in order, from the identity's level up to ``target``; [] if
        unreachable (then the RP hears ``unmet_authentication_requirements`` at once)."""
        steps: list[StepUpFactor] = []
        level = identity.level
        for factor in self.factors:
            rank = level_rank(factor.level)
            if level < rank and level < target and factor.available(identity):
                steps.append(factor)
                level = rank
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
        who = f"sub={session.identity.subject} sid={session.sid} factor={factor.name}"
        try:
            await factor.verify(session, fields)
        except LockedOut as exc:
            audit.warning("stepup locked %s client=%s retry_after=%s", who, _client_id(client),
                          exc.retry_after)
            return await self._render(request, pending, session, client, steps, target,
                                      error=str(exc), status=429)
        except LoginError as exc:
            audit.info("stepup failed %s client=%s", who, _client_id(client))
            return await self._render(request, pending, session, client, steps, target,
                                      error=str(exc), status=401)
        amr = session.identity.amr
        if factor.name not in amr:
            amr = (*amr, factor.name)
        identity = session.identity.with_auth(acr=factor.level, amr=amr,
                                              auth_time=int(self.sessions.clock()))
        response = RedirectResponse(f"/stepup?r={pending.id}", status_code=303)
        await self.sessions.elevate(session, identity, response)
        audit.info("stepup ok %s acr=%s->%s client=%s", who, session.identity.acr,
                   factor.level, _client_id(client))
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
        if session is None:
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
            audit.info("stepup unmet sub=%s sid=%s acr=%s target=%s client=%s",
                       session.identity.subject, session.sid, session.identity.acr,
                       LEVELS[target - 1], client.client_id if client else "-")
            if client is None:
                raise PageError("无法完成认证", f"该业务需要 {LEVELS[target - 1]} 认证，"
                                "本平台目前无法为您提供所需的认证方式。", status=403)
            return await self.authorizer.fail(
                pending, "unmet_authentication_requirements",
                f"No step-up factor available here reaches {LEVELS[target - 1]}.")
        return session, client, steps, target

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


def _client_id(client: Client | None) -> str:
    return client.client_id if client is not None else "-"

