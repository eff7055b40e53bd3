"""``POST /channel/bind`` (real name → L2) and ``POST /channel/bind/face`` (face → L3).

The caller is the mini-program with the access token of a channel login (a bearer token,
or a DPoP-bound one with its proof: :class:`gateway.oidc.bearer.BearerTokens`), of a
client allowed the channel grant. The token's grant names the channel identity (its own
subject, ``channel_sub``), bound or not, so a citizen's token can step its binding up to
L3. Errors are RFC 6750/6749 JSON with Chinese descriptions. Attempts are counted per
channel identity and per ID number before the verifier is asked (the store's atomic
``incr``; the ID number only as an HMAC under the gateway's secret, never a plain hash
anyone could reverse by trying numbers), and audited on ``roam.audit`` without the name
or the unmasked ID number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.attempts import Attempts
from gateway.audit import audit_event
from gateway.binding.bindings import Bindings
from gateway.binding.identity import ChannelIdentity
from gateway.binding.verifier import Refusal, Verifier
from gateway.channels.login import CHANNEL_SUBJECT
from gateway.digests import KeyedDigests
from gateway.errors import ProtocolError
from gateway.identifiers import normalise_resident_id, validate_resident_id
from gateway.oidc.bearer import BearerTokens
from gateway.oidc.channel_grant import CHANNEL_GRANT
from gateway.privacy import mask_id_number
from gateway.store.base import Kind, Store

__all__ = ["BindEndpoints", "BindLimits"]

MAX_NAME = 64


@dataclass(frozen=True)
class BindLimits:
    max_attempts: int = 5  # per channel identity per window
    window: int = 3600
    max_id_attempts: int = 5  # naming one ID number, from any channel, per window
    id_window: int = 86400
    face_ttl: int = 600  # a started face check, seconds


def _error(error: str, description: str, status: int = 400,
           headers: dict[str, str] | None = None) -> ProtocolError:
    return ProtocolError(error, description, status=status, headers=headers or {})


def _not_a_channel_token() -> ProtocolError:
    return _error("insufficient_scope", "该令牌不是小程序渠道登录的令牌", 403,
                  {"WWW-Authenticate": 'Bearer realm="roam", error="insufficient_scope"'})


class BindEndpoints:
    def __init__(self, *, bindings: Bindings, verifier: Verifier, store: Store,
                 bearer: BearerTokens, digests: KeyedDigests,
                 known_area: Callable[[str], bool], limits: BindLimits) -> None:
        self.bindings = bindings
        self.verifier = verifier
        self.store = store
        self.bearer = bearer
        self.digests = digests
        self.known_area = known_area
        self.limits = limits
        self._tries = Attempts(store, Kind.BIND_TRIES, limit=limits.max_attempts,
                               window=limits.window)
        self._id_tries = Attempts(store, Kind.BIND_ID_TRIES, limit=limits.max_id_attempts,
                                  window=limits.id_window)

    async def _identity(self, request: Request) -> ChannelIdentity:
        """The channel identity behind the request's token (module docstring)."""
        _, client, grant = await self.bearer.check(request)
        channel_subject = grant.identity.claims.get(CHANNEL_SUBJECT)
        if not client.check_grant_type(CHANNEL_GRANT) or not isinstance(channel_subject, str):
            raise _not_a_channel_token()
        identity = await self.bindings.identity_of(channel_subject)
        if identity is None:
            raise _not_a_channel_token()
        return identity

    def _id_digest(self, number: str) -> str:
        return self.digests.of("bind-id", number)

    async def _fields(self, request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = await request.json()
            except ValueError:
                raise _error("invalid_request", "请求体不是有效的 JSON") from None
            if not isinstance(data, dict):
                raise _error("invalid_request", "请求体必须是 JSON 对象")
            return data
        return dict(await request.form())

    @staticmethod
    async def _slot(attempts: Attempts, key: str, what: str,
                    identity: ChannelIdentity) -> None:
        """Take a numbered slot before the work (gateway/attempts.py)."""
        slot = await attempts.reserve(key)
        if slot.refused:
            audit_event("binding.bind", "denied", subject=identity.subject,
                        channel=identity.channel, reason="too many attempts", limit=what)
            raise _error("temporarily_unavailable", "实名核验尝试次数过多，请稍后再试", 429,
                         {"Retry-After": str(slot.retry_after)})

    async def bind(self, request: Request) -> Response:
        """Name and ID number → the verifier → an L2 binding, and a face check started
        (its ``verification_id`` is returned for the client's face scan)."""
        identity = await self._identity(request)
        fields = await self._fields(request)
        name, number = fields.get("name"), fields.get("id_number")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise _error("invalid_request", "请填写姓名")
        if not isinstance(number, str):
            raise _error("invalid_request", "请填写身份证号码")
        try:
            validate_resident_id(number, known_area=self.known_area)
        except ValueError as exc:
            raise _error("invalid_request", "身份证号码无效：" + str(exc).split(" / ")[0]) from None
        number, name = normalise_resident_id(number), name.strip()
        await self._slot(self._tries, identity.key, "channel", identity)
        await self._slot(self._id_tries, self._id_digest(number), "id_number", identity)
        masked = mask_id_number(number)
        result = await self.verifier.verify_real_name(name, number)
        if isinstance(result, Refusal):
            audit_event("binding.bind", "error" if result.reason == "unavailable" else "failure",
                        subject=identity.subject, channel=identity.channel, id_number=masked,
                        reason=f"verifier: {result.reason}")
            if result.reason == "unavailable":
                raise _error("temporarily_unavailable", "实名核验服务暂时不可用，请稍后再试", 503,
                             {"Retry-After": "30"})
            raise _error("access_denied", "姓名与身份证号码不一致，实名核验未通过", 403)
        subject = self.bindings.citizen_of(number)
        if subject is None:
            audit_event("binding.bind", "failure", subject=identity.subject,
                        channel=identity.channel, id_number=masked,
                        reason="no citizen account")
            raise _error("access_denied", "未找到该居民的统一身份账户", 403)
        binding = await self.bindings.bind(identity, subject, "L2")
        body: dict[str, Any] = {"sub": subject, "verified_level": binding.level}
        started = await self.verifier.start_face(result)
        if isinstance(started, str):
            await self.store.upsert(Kind.BIND_FACE, started, {
                "key": identity.key, "subject": subject, "id": self._id_digest(number)},
                self.limits.face_ttl)
            body["verification_id"] = started
        audit_event("binding.bind", "success", subject=subject, channel=identity.channel,
                    channel_sub=identity.subject, id_number=masked, level=binding.level)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def face(self, request: Request) -> Response:
        """A face check's result, fetched from the verifier by its id → L3."""
        identity = await self._identity(request)
        verification_id = (await self._fields(request)).get("verification_id")
        if not isinstance(verification_id, str) or not verification_id:
            raise _error("invalid_request", "缺少 verification_id")
        pending = await self.store.find(Kind.BIND_FACE, verification_id)
        if pending is None or pending.get("key") != identity.key:
            raise _error("invalid_grant", "人脸核验不存在或已过期，请重新核验")
        await self._slot(self._tries, identity.key, "channel", identity)
        result = await self.verifier.face_result(verification_id)
        if result.status == "pending":
            raise _error("authorization_pending", "人脸核验尚未完成")
        if result.status == "unknown":
            raise _error("temporarily_unavailable", "人脸核验服务暂时不可用，请稍后再试", 503,
                         {"Retry-After": "30"})
        used = await self.store.consume(Kind.BIND_FACE, verification_id)
        if used is None or not used[1]:  # single use, however many race
            raise _error("invalid_grant", "人脸核验结果已使用，请重新核验")
        whose = self._id_digest(normalise_resident_id(result.id_number))
        passed = result.status == "passed" and whose == pending.get("id")
        subject = str(pending["subject"])
        if not passed:
            audit_event("binding.face", "failure", subject=subject, channel=identity.channel,
                        channel_sub=identity.subject, status=result.status)
            raise _error("access_denied", "人脸核验未通过", 403)
        binding = await self.bindings.bind(identity, subject, "L3")
        audit_event("binding.face", "success", subject=subject, channel=identity.channel,
                    channel_sub=identity.subject, level=binding.level)
        return JSONResponse({"sub": subject, "verified_level": binding.level},
                            headers={"Cache-Control": "no-store"})
