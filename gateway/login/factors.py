"""The demo's step-up factors: an SMS code and a face check, both simulated.

The demo directory has no SMS gateway and no liveness vendor, so both are simulations,
labelled 演示 on their pages: the SMS code is shown in a demo box (the simulated phone),
and the face check is a button. Their server side is real: one-time, expiring,
single-use under concurrency (``Store.consume``), with limits per person
(``login.lockout``). Which level each reaches is ``gateway.assurance``'s to say.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.attempts import Attempts
from gateway.errors import LockedOut, LoginError, PageError
from gateway.identity import Identity
from gateway.login.stepup import StepUpFactor
from gateway.privacy import mask_phone
from gateway.sessions import Session
from gateway.store.base import Kind, Store

__all__ = ["SimulatedFace", "SimulatedSms", "simulated_factors"]

log = logging.getLogger("roam.stepup")

_OTP = re.compile(r"[0-9]{6}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class SimulatedSms:
    """An SMS one-time code (amr ``sms``) whose "SMS gateway" is the page itself.

    The ``stepup_otp/<sid>`` record holds only the code's SHA-256 and its expiry, so a
    store dump yields no usable code. The simulated phone is a second record,
    ``stepup_sms_outbox/<sid>``: what a real SMS gateway would deliver, shown in the
    page's 演示环境 box on every render (a wrong try or a reload must not lose the code).
    A real SMS factor would send instead and keep no outbox.

    The limits are the person's, not the session's, so a new login buys nothing: each
    submitted code first takes a slot of the person's window (``max_failures`` per
    ``lock_seconds``, ``Kind.STEPUP_TRIES``); once they are spent the live code is void
    and none is checked or sent until the window ends. Each code sent takes a slot of
    ``max_sends`` per ``send_window`` (``Kind.STEPUP_SENDS``): a phone cannot be flooded.
    Verification consumes the code atomically, so of two concurrent submissions only one
    is compared; a wrong answer puts it back.
    """

    name = "sms"
    template = "stepup_sms.html"

    def available(self, identity: Identity) -> bool:
        return bool(identity.claims.get("phone_number"))

    def __init__(self, store: Store, *, ttl: int = 300, max_failures: int = 5,
                 lock_seconds: int = 60, max_sends: int = 10, send_window: int = 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.tries = Attempts(store, Kind.STEPUP_TRIES, limit=max_failures, window=lock_seconds)
        self.sends = Attempts(store, Kind.STEPUP_SENDS, limit=max_sends, window=send_window)
        self.clock = clock

    async def begin(self, session: Session) -> dict[str, Any]:
        phone = session.identity.claims.get("phone_number")
        if not isinstance(phone, str) or not phone:
            raise PageError("无法发送验证码",
                            "您的账户未登记手机号码，无法通过短信验证码完成核验。")
        person = session.identity.subject
        tries = await self.tries.current(person)
        wait = tries.retry_after if tries.last else 0
        code = ""
        if not wait:
            record = await self.store.find(Kind.STEPUP_CODE, session.sid)
            code = await self._delivered(session.sid, record) or ""
            if not code:
                sent = await self.sends.reserve(person)
                if sent.refused:
                    wait = sent.retry_after
                else:
                    code = await self._send(session.sid, phone)
        return {
            "masked_phone": mask_phone(phone),
            "demo_code": code,
            "ttl_minutes": max(1, self.ttl // 60),
            "locked_seconds": wait,
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

    async def _send(self, sid: str, phone: str) -> str:
        code = f"{secrets.randbelow(1_000_000):06d}"
        payload = {"code_sha256": _sha256(code), "expires": int(self.clock()) + self.ttl}
        await self.store.upsert(Kind.STEPUP_CODE, sid, payload, self.ttl)
        await self.store.upsert(Kind.STEPUP_SMS_OUTBOX, sid, {"code": code}, self.ttl)
        log.info("stepup sms sent (simulated)", extra={"sid": sid, "phone": mask_phone(phone)})
        return code

    async def _void(self, sid: str) -> None:
        await self.store.destroy(Kind.STEPUP_CODE, sid)
        await self.store.destroy(Kind.STEPUP_SMS_OUTBOX, sid)

    async def verify(self, session: Session, form: Mapping[str, str]) -> None:
        answer = form.get("otp", "").strip()
        if not _OTP.fullmatch(answer):
            raise LoginError("请输入 6 位数字验证码。")
        sid, person = session.sid, session.identity.subject
        slot = await self.tries.reserve(person)
        if slot.refused:
            await self._void(sid)
            raise LockedOut(self._locked_message(slot.retry_after), slot.retry_after)
        got = await self.store.consume(Kind.STEPUP_CODE, sid)
        if got is None:
            raise LoginError("验证码已过期或已使用，请使用新发送的验证码。")
        payload, first_use = got
        if not first_use or "code_sha256" not in payload:
            raise LoginError("该验证码已提交，请勿重复提交。")
        if hmac.compare_digest(_sha256(answer), str(payload["code_sha256"])):
            await self._void(sid)
            await self.tries.reset(person)
            return
        if slot.last:
            await self._void(sid)
            raise LockedOut(self._locked_message(slot.retry_after), slot.retry_after)
        remaining = int(payload.get("expires", 0)) - int(self.clock())
        if remaining <= 0:
            await self._void(sid)
            raise LoginError("验证码已过期，请使用新发送的验证码。")
        await self.store.upsert(Kind.STEPUP_CODE, sid, payload, remaining)  # unconsumed again
        raise LoginError(f"验证码错误，还可以尝试 {slot.left} 次。")

    @staticmethod
    def _locked_message(seconds: int) -> str:
        return f"验证码错误次数过多，该验证码已作废。请 {seconds} 秒后刷新页面获取新的验证码。"


class SimulatedFace:
    """A face (liveness) check (amr ``face``), simulated: no camera, a button.

    ``begin`` issues a one-time challenge bound to the session; the POST must return it,
    and verification consumes it, so a replayed or cross-session POST cannot pass. A real
    liveness vendor would hand its own result token in place of the challenge.
    """

    name = "face"
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
                      lock_seconds: int = 60, max_sends: int = 10,
                      send_window: int = 3600) -> list[StepUpFactor]:
    """The demo directory's factors: an SMS code and a face check (``[login] stepup_*``)."""
    return [SimulatedSms(store, ttl=ttl, max_failures=max_failures, lock_seconds=lock_seconds,
                         max_sends=max_sends, send_window=send_window),
            SimulatedFace(store, ttl=ttl)]
