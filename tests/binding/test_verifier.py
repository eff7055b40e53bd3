"""The demo verifier: the directory's people, nobody else."""

from __future__ import annotations

from gateway.binding.verifier import (
    DemoVerifier,
    FaceResult,
    NoVerifier,
    Refusal,
    VerifiedPerson,
)
from tests.binding.conftest import LI, ZHANG


async def test_the_demo_verifier_knows_the_directorys_people() -> None:
    verifier = DemoVerifier([ZHANG])
    person = await verifier.verify_real_name(ZHANG[0], ZHANG[1].lower())
    assert person == VerifiedPerson(ZHANG[1], ZHANG[0])
    assert await verifier.verify_real_name(LI[0], ZHANG[1]) == Refusal("mismatch")
    assert isinstance(person, VerifiedPerson)
    started = await verifier.start_face(person)
    assert isinstance(started, str)
    assert await verifier.face_result(started) == FaceResult("passed", ZHANG[1])
    assert await verifier.face_result("never-started") == FaceResult("unknown")


async def test_without_a_verifier_nothing_is_ever_verified() -> None:
    verifier = NoVerifier()
    assert await verifier.verify_real_name(*ZHANG) == Refusal("unavailable")
    assert await verifier.start_face(VerifiedPerson(ZHANG[1], ZHANG[0])) == Refusal(
        "unavailable")
    assert await verifier.face_result("x") == FaceResult("unknown")
