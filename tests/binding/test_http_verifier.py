"""The HTTP adapter against the real mock verification service, over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.binding.http_verifier import HttpVerifier
from gateway.binding.verifier import FaceResult, Refusal, VerifiedPerson
from tests.binding.conftest import CREDENTIAL, LI, ZHANG, scan
from tests.support.redis_server import unused_port


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_match_mismatch_and_face(http: httpx.AsyncClient, verification_url: str) -> None:
    verifier = HttpVerifier(http, base_url=verification_url, credential=CREDENTIAL)
    person = await verifier.verify_real_name(*ZHANG)
    assert person == VerifiedPerson(ZHANG[1], ZHANG[0])
    assert await verifier.verify_real_name(LI[0], ZHANG[1]) == Refusal("mismatch")
    assert isinstance(person, VerifiedPerson)
    started = await verifier.start_face(person)
    assert isinstance(started, str)
    assert (await verifier.face_result(started)).status == "pending"
    await scan(verification_url, started, "passed")
    assert await verifier.face_result(started) == FaceResult("passed", ZHANG[1])
    assert (await verifier.face_result("unknown-id")).status == "unknown"


async def test_a_wrong_credential_or_no_service_is_unavailable_never_a_pass(
        http: httpx.AsyncClient, verification_url: str) -> None:
    wrong = HttpVerifier(http, base_url=verification_url, credential="wrong")
    assert await wrong.verify_real_name(*ZHANG) == Refusal("unavailable")
    gone = HttpVerifier(http, base_url=f"http://127.0.0.1:{unused_port()}",
                        credential=CREDENTIAL)
    assert await gone.verify_real_name(*ZHANG) == Refusal("unavailable")
    assert (await gone.face_result("x")).status == "unknown"

