"""The canonical identity every source maps into and every RP gets a projection of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from gateway.privacy import mask_claims, release_claims

__all__ = ["KNOWN_CLAIMS", "LEVELS", "SCOPE_CLAIMS", "Identity", "PersonKind", "level_rank"]


class PersonKind(StrEnum):
    """自然人 or 法人 (a legal person acts through a natural person, the 经办人)."""

    NATURAL = "natural"
    LEGAL = "legal"


LEVELS = ("L1", "L2", "L3", "L4")

#: Scopes Roam knows, and the claims each one may release (then cut to the client's list).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("verified_level",),  # how far the account was proofed (gateway.assurance)
    "profile": ("name", "gender", "birthdate"),
    "phone": ("phone_number", "phone_number_verified"),
    "id_card": ("id_number",),
    "region": ("region",),
    "legal_person": ("uscc", "org_name", "agent"),
    "offline_access": (),
}
KNOWN_CLAIMS = frozenset(c for claims in SCOPE_CLAIMS.values() for c in claims)
"""Every claim some scope can release: systems and clients may only register these."""


def level_rank(acr: str) -> int:
    """``"L3"`` -> 3; unknown values rank 0 so they never satisfy a requirement."""
    try:
        return LEVELS.index(acr) + 1
    except ValueError:
        return 0


@dataclass(frozen=True, repr=False)
class Identity:
    """Who the user is and how sure we are.

    ``claims`` holds OIDC standard claim names (``name``, ``phone_number``, ...) plus
    Roam's own (``id_number`` for the resident ID, ``uscc`` for a legal person).
    """

    subject: str
    kind: PersonKind
    acr: str  # "L1".."L4": what this authentication reached, "" for none
    amr: tuple[str, ...]  # RFC 8176 method references, e.g. ("pwd",)
    auth_time: int  # epoch seconds of the authentication
    region: str  # GB/T 2260 six-digit code
    claims: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] | None = None  # 经办人 claims when kind is LEGAL

    # ``acr`` is the level of this authentication (gateway.assurance.level_of); the level
    # the account itself was verified to is the ``verified_level`` claim.

    def __repr__(self) -> str:
        # Identities end up in logs and tracebacks: never print personal data unmasked.
        return (f"Identity(subject={self.subject!r}, kind={self.kind.value!r}, acr={self.acr!r}, "
                f"region={self.region!r}, claims={mask_claims(self.claims)!r})")

    @property
    def level(self) -> int:
        return level_rank(self.acr)

    def release(self, names: Iterable[str], *, privileged: bool) -> dict[str, Any]:
        """The claims ``names`` (``region`` and ``agent`` among them) as a system or client
        may receive them: :func:`gateway.privacy.release_claims`, the one rule for every
        release path (masking, and no claim that would complete a masked identifier)."""
        available = {**self.claims, "region": self.region}
        if self.agent is not None:
            available["agent"] = self.agent
        return release_claims(available, names, privileged=privileged)

    @property
    def verified_level(self) -> str:
        """How far the account was proofed ("L1".."L4"); "" if the source did not say."""
        value = self.claims.get("verified_level")
        return value if isinstance(value, str) and level_rank(value) else ""

    def without_personal_data(self) -> Identity:
        """Who and how, without the claims: what a grant keeps (its claims are kept once,
        with the session or the person, ``gateway.oidc.people``)."""
        return replace(self, claims={}, agent=None)

    def with_personal_data(self, other: Identity) -> Identity:
        """This authentication with ``other``'s claims (the same person's, kept apart)."""
        return replace(self, claims=dict(other.claims), agent=other.agent)

    def with_auth(self, *, acr: str, amr: tuple[str, ...], auth_time: int) -> Identity:
        return replace(self, acr=acr, amr=amr, auth_time=auth_time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "kind": self.kind.value,
            "acr": self.acr,
            "amr": list(self.amr),
            "auth_time": self.auth_time,
            "region": self.region,
            "claims": dict(self.claims),
            "agent": self.agent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Identity:
        return cls(
            subject=str(data["subject"]),
            kind=PersonKind(data["kind"]),
            acr=str(data["acr"]),
            amr=tuple(data.get("amr", ())),
            auth_time=int(data["auth_time"]),
            region=str(data["region"]),
            claims=dict(data.get("claims", {})),
            agent=data.get("agent"),
        )
