"""The verifier a binding asks: is this name and ID number one real person (L2), and
did the face check started for them pass (L3)?

Pluggable: :class:`DemoVerifier` (the demo directory's people) and
:class:`gateway.binding.http_verifier.HttpVerifier` (an authoritative service). A face
result is always fetched from the verifier by its id; what a client says never counts.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.identifiers import normalise_resident_id

__all__ = [
    "DemoVerifier",
    "FaceResult",
    "FaceStatus",
    "NoVerifier",
    "Refusal",
    "VerifiedPerson",
    "Verifier",
]

FaceStatus = Literal["passed", "failed", "pending", "unknown"]


@dataclass(frozen=True)
class VerifiedPerson:
    """The verifier confirmed that this name and ID number belong together."""

    id_number: str = field(repr=False)
    name: str = field(repr=False)


@dataclass(frozen=True)
class Refusal:
    """The verifier said no: ``reason`` is ``mismatch`` or ``unavailable``."""

    reason: Literal["mismatch", "unavailable"]


@dataclass(frozen=True)
class FaceResult:
    status: FaceStatus
    id_number: str = field(default="", repr=False)  # whose face the check was for


class Verifier(Protocol):
    async def verify_real_name(self, name: str, id_number: str) -> VerifiedPerson | Refusal:
        """Name and normalised ID number checked against the authoritative register."""

    async def start_face(self, person: VerifiedPerson) -> str | Refusal:
        """A face check for ``person``: its verification id, which the client's face scan
        uses and :meth:`face_result` is later asked about."""

    async def face_result(self, verification_id: str) -> FaceResult:
        """The outcome of that face check, from the verifier itself."""


class DemoVerifier:
    """Accepts exactly the demo directory's people; its simulated face checks pass once
    started (demo only: there is no face)."""

    def __init__(self, people: Iterable[tuple[str, str]]) -> None:
        """``people``: (name, ID number) pairs, e.g. from the TOML directory."""
        self._people = {normalise_resident_id(number): name for name, number in people}
        self._started: dict[str, str] = {}

    async def verify_real_name(self, name: str, id_number: str) -> VerifiedPerson | Refusal:
        number = normalise_resident_id(id_number)
        if self._people.get(number) != name.strip():
            return Refusal("mismatch")
        return VerifiedPerson(number, name.strip())

    async def start_face(self, person: VerifiedPerson) -> str | Refusal:
        verification_id = secrets.token_urlsafe(16)
        self._started[verification_id] = person.id_number
        return verification_id

    async def face_result(self, verification_id: str) -> FaceResult:
        number = self._started.get(verification_id)
        return FaceResult("passed", number) if number else FaceResult("unknown")


class NoVerifier:
    """No verifier configured (a non-loopback issuer without ``[binding] verifier``):
    every binding is refused as unavailable, nothing is ever verified."""

    async def verify_real_name(self, name: str, id_number: str) -> VerifiedPerson | Refusal:
        return Refusal("unavailable")

    async def start_face(self, person: VerifiedPerson) -> str | Refusal:
        return Refusal("unavailable")

    async def face_result(self, verification_id: str) -> FaceResult:
        return FaceResult("unknown")
