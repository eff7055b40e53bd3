"""/channel/bind and /channel/bind/face end to end: gateway on Redis, HTTP verifier,
the real mock verification service."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from gateway.binding.identity import ChannelIdentity
from gateway.identifiers import resident_id_check_char
from tests.binding.conftest import LI, ZHANG, Running, scan
from tests.support.audit import kept
from tests.support.dpop import DPoPSigner
from tests.support.gateway import audit_file

WECHAT = ChannelIdentity("wechat", "wx-demo-app", "o-wechat-1", "u-union-1")
ALIPAY = ChannelIdentity("alipay", "2021000000000001", "2088000000000001")


async def post(running: Running, path: str, token: str, **body: str) -> httpx.Response:
    return await send(f"{running.url}{path}", body, {"Authorization": f"Bearer {token}"})


async def send(url: str, body: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, json=body, headers=headers)


async def test_real_name_then_face_binds_at_l2_then_l3(
        running: Running, verification_url: str, caplog: pytest.LogCaptureFixture) -> None:
    token = await running.channel_token(WECHAT)
    caplog.set_level(logging.INFO, logger="roam.audit")
    bound = await post(running, "/channel/bind", token, name=ZHANG[0], id_number=ZHANG[1])
    assert bound.status_code == 200, bound.text
    assert bound.json()["sub"] == "c-0001"
    assert bound.json()["verified_level"] == "L2"
    assert await running.bindings().resolve(WECHAT) == ("c-0001", "L2")

    verification_id = bound.json()["verification_id"]
    pending = await post(running, "/channel/bind/face", token, verification_id=verification_id)
    assert pending.json()["error"] == "authorization_pending"
    await scan(verification_url, verification_id, "passed")
    raised = await post(running, "/channel/bind/face", token, verification_id=verification_id)
    assert raised.status_code == 200, raised.text
    assert raised.json() == {"sub": "c-0001", "verified_level": "L3"}
    assert await running.bindings().resolve(WECHAT) == ("c-0001", "L3")
    # the verification id is single use
    again = await post(running, "/channel/bind/face", token, verification_id=verification_id)
    assert again.json()["error"] == "invalid_grant"
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    trail = audit_file(urlsplit(running.url).port or 0)
    assert kept(trail, "binding.face", "success")  # the last step reached the trail...
    text += trail.read_text("utf-8")
    assert ZHANG[1] not in text  # ...and neither it nor a log line holds the number
    assert ZHANG[0] not in text
    assert "430***********0016" in text


async def test_a_failed_or_claimed_face_check_never_raises_the_level(
        running: Running, verification_url: str) -> None:
    token = await running.channel_token(WECHAT)
    bound = (await post(running, "/channel/bind", token, name=ZHANG[0],
                        id_number=ZHANG[1])).json()
    # the client claiming success counts for nothing: the gateway asks the service
    claimed = await send(f"{running.url}/channel/bind/face",
                         {"verification_id": bound["verification_id"], "status": "passed"},
                         {"Authorization": f"Bearer {token}"})
    assert claimed.json()["error"] == "authorization_pending"
    await scan(verification_url, bound["verification_id"], "failed")
    failed = await post(running, "/channel/bind/face", token,
                        verification_id=bound["verification_id"])
    assert failed.status_code == 403
    assert failed.json()["error"] == "access_denied"
    made_up = await post(running, "/channel/bind/face", token, verification_id="made-up")
    assert made_up.json()["error"] == "invalid_grant"
    assert await running.bindings().resolve(WECHAT) == ("c-0001", "L2")


async def test_another_identitys_face_check_is_refused(running: Running,
                                                       verification_url: str) -> None:
    mine = await running.channel_token(WECHAT)
    theirs = await running.channel_token(ALIPAY)
    bound = (await post(running, "/channel/bind", mine, name=ZHANG[0],
                        id_number=ZHANG[1])).json()
    await scan(verification_url, bound["verification_id"], "passed")
    stolen = await post(running, "/channel/bind/face", theirs,
                        verification_id=bound["verification_id"])
    assert stolen.json()["error"] == "invalid_grant"
    assert await running.bindings().resolve(ALIPAY) == (ALIPAY.subject, "L1")


async def test_wechat_and_alipay_of_one_person_end_at_the_same_subject(
        running: Running) -> None:
    for identity in (WECHAT, ALIPAY):
        token = await running.channel_token(identity)
        answer = await post(running, "/channel/bind", token, name=ZHANG[0], id_number=ZHANG[1])
        assert answer.json()["sub"] == "c-0001"
    assert {b.identity.channel for b in await running.bindings().of_subject("c-0001")} == {
        "wechat", "alipay"}
    # another WeChat app of the same unionid is the same citizen without binding again
    other_app = ChannelIdentity("wechat", "wx-other-app", "o-other", WECHAT.unionid)
    assert await running.bindings().resolve(other_app) == ("c-0001", "L2")


@pytest.mark.parametrize(("name", "number", "status", "error", "says"), [
    (ZHANG[0], "430102199001010017", 400, "invalid_request", "校验码错误"),
    (ZHANG[0], "430102199002300016", 400, "invalid_request", "出生日期"),
    (ZHANG[0], "990102199001010016", 400, "invalid_request", "地址码"),
    (LI[0], ZHANG[1], 403, "access_denied", "不一致"),
    ("赵六", "430105198001010010", 403, "access_denied", "未找到"),
])
async def test_bad_input_is_refused_and_changes_nothing(
        running: Running, name: str, number: str, status: int, error: str,
        says: str) -> None:
    token = await running.channel_token(WECHAT)
    answer = await post(running, "/channel/bind", token, name=name, id_number=number)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error
    assert says in answer.json()["error_description"]
    assert await running.bindings().resolve(WECHAT) == (WECHAT.subject, "L1")


async def test_no_token_or_a_bad_token_is_a_bearer_error(running: Running) -> None:
    missing = await send(f"{running.url}/channel/bind", {"name": "x", "id_number": "y"}, {})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    forged = await post(running, "/channel/bind", "not.a.token", name=ZHANG[0],
                        id_number=ZHANG[1])
    assert forged.status_code == 401
    assert forged.json()["error"] == "invalid_token"


async def test_a_dpop_bound_token_is_no_bearer_token_here(running: Running) -> None:
    bound = await running.channel_token(WECHAT, jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    answer = await post(running, "/channel/bind", bound, name=ZHANG[0], id_number=ZHANG[1])
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"
    assert await running.bindings().resolve(WECHAT) == (WECHAT.subject, "L1")


async def test_attempts_are_limited_per_channel_identity(running: Running) -> None:
    token = await running.channel_token(WECHAT)
    statuses = [(await post(running, "/channel/bind", token, name="王二",
                     id_number=(ZHANG, LI)[n % 2][1])).status_code for n in range(5)]
    assert statuses == [403, 403, 403, 403, 429]  # max_attempts = 4 in the fixture
    # the right answer now is refused too, unchecked, until the window ends
    late = await post(running, "/channel/bind", token, name=ZHANG[0], id_number=ZHANG[1])
    assert late.status_code == 429
    assert int(late.headers["retry-after"]) > 0
    assert await running.bindings().resolve(WECHAT) == (WECHAT.subject, "L1")


async def test_attempts_are_limited_per_id_number_across_identities(running: Running) -> None:
    statuses = []
    for n in range(4):
        token = await running.channel_token(ChannelIdentity("wechat", "wx-demo-app", f"o-{n}"))
        statuses.append((await post(running, "/channel/bind", token, name=LI[0],
                                    id_number=ZHANG[1])).status_code)
    assert statuses == [403, 403, 403, 429]  # max_id_attempts = 3 in the fixture


async def test_concurrent_attempts_get_no_more_than_the_limit(running: Running) -> None:
    token = await running.channel_token(WECHAT)
    answers = await asyncio.gather(*(
        post(running, "/channel/bind", token, name="王二", id_number=(ZHANG, LI)[n % 2][1])
        for n in range(8)))
    assert sorted(a.status_code for a in answers) == [403] * 4 + [429] * 4


async def test_a_face_result_raises_the_level_once_however_many_race(
        running: Running, verification_url: str) -> None:
    token = await running.channel_token(WECHAT)
    bound = (await post(running, "/channel/bind", token, name=ZHANG[0],
                        id_number=ZHANG[1])).json()
    await scan(verification_url, bound["verification_id"], "passed")
    answers = await asyncio.gather(*(
        post(running, "/channel/bind/face", token, verification_id=bound["verification_id"])
        for _ in range(3)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400]


async def test_a_bound_citizens_token_steps_its_binding_up_to_l3(
        running: Running, verification_url: str) -> None:
    """After binding, the mini-program logs in again as the citizen; that token still
    names the WeChat identity, so the face check raises *this* binding."""
    first = await running.channel_token(WECHAT)
    await post(running, "/channel/bind", first, name=ZHANG[0], id_number=ZHANG[1])
    citizen = await running.channel_token(WECHAT)  # sub c-0001 now
    again = await post(running, "/channel/bind", citizen, name=ZHANG[0], id_number=ZHANG[1])
    assert again.status_code == 200, again.text
    assert again.json()["verified_level"] == "L2"
    await scan(verification_url, again.json()["verification_id"], "passed")
    raised = await post(running, "/channel/bind/face", citizen,
                        verification_id=again.json()["verification_id"])
    assert raised.json() == {"sub": "c-0001", "verified_level": "L3"}
    assert await running.bindings().resolve(WECHAT) == ("c-0001", "L3")
    assert await running.bindings().resolve(ALIPAY) == (ALIPAY.subject, "L1")


async def test_a_dpop_bound_token_binds_with_a_proof_of_its_key(running: Running) -> None:
    signer = DPoPSigner()
    token = await running.channel_token(WECHAT, jkt=signer.jkt)
    url = f"{running.url}/channel/bind"
    body = {"name": ZHANG[0], "id_number": ZHANG[1]}
    thief = await send(url, body, {"Authorization": f"DPoP {token}", "DPoP": DPoPSigner().proof(
        "POST", url, access_token=token)})
    assert thief.status_code == 401
    assert thief.json()["error"] == "invalid_dpop_proof"
    assert await running.bindings().resolve(WECHAT) == (WECHAT.subject, "L1")
    answer = await send(url, body, {"Authorization": f"DPoP {token}",
                                    "DPoP": signer.proof("POST", url, access_token=token)})
    assert answer.status_code == 200, answer.text
    assert await running.bindings().resolve(WECHAT) == ("c-0001", "L2")


async def test_a_city_systems_token_cannot_bind_even_with_a_channel_identity_in_it(
        running: Running) -> None:
    """A session that came from the mini-program (transfer) gives a city system tokens
    whose grant still names the channel identity: that system must not re-bind it."""
    token = await running.channel_token(WECHAT, client_id="changsha-gov")
    answer = await post(running, "/channel/bind", token, name=ZHANG[0], id_number=ZHANG[1])
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"
    assert await running.bindings().resolve(WECHAT) == (WECHAT.subject, "L1")


async def test_an_area_code_that_never_existed_in_hunan_is_refused(running: Running) -> None:
    first17 = "43019919900101001"  # 430199: no such county, now or before
    number = first17 + resident_id_check_char(first17)
    token = await running.channel_token(WECHAT)
    answer = await post(running, "/channel/bind", token, name=ZHANG[0], id_number=number)
    assert answer.status_code == 400
    assert "地址码不存在" in answer.json()["error_description"]


async def test_no_store_key_reveals_an_id_number_to_someone_trying_numbers(
        running: Running, redis_url: str, redis_prefix: str) -> None:
    """The per-ID-number counter is keyed by an HMAC under the gateway's secret: neither
    the number nor any unkeyed hash of it is in Redis."""
    token = await running.channel_token(WECHAT)
    await post(running, "/channel/bind", token, name=LI[0], id_number=ZHANG[1])
    client = redis.Redis.from_url(redis_url)
    try:
        keys = " ".join(k.decode() for k in client.scan_iter(f"{redis_prefix}*"))
    finally:
        client.close()
    for candidate in (ZHANG[1], hashlib.sha256(ZHANG[1].encode()).hexdigest(),
                      hashlib.sha256(("roam-bind\x1f" + ZHANG[1]).encode()).hexdigest()):
        assert candidate not in keys
    digest = running.gateway.digests.of("bind-id", ZHANG[1])
    assert digest in keys
