"""One authorization: who, for which client, in which session, with what scope.

authlib calls this its "user"; Roam keeps in it everything a later token needs, so the
token endpoint never has to look the person up again — except the person's claims
(name, ID and phone numbers): :meth:`Grant.record` keeps those out of the store's grant
record, and whoever needs them reads them from the session, or the person record of a
grant that outlives its session (``gateway.oidc.people``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from gateway.identity import Identity

__all__ = ["Grant"]


@dataclass(frozen=True)
class Grant:
    grant_id: str
    client_id: str
    identity: Identity
    scope: str
    sid: str | None = None  # the public session id (the ``sid`` claim), never the cookie
    nonce: str | None = None
    expires_at: int = 0  # epoch seconds after which no refresh token of this grant is valid
    offline: bool = False  # offline_access: the grant outlives the session (not its logout)
    until: int = 0  # the session's absolute end (epoch s): a grant not offline ends with it
    person: str = ""  # the person record with its claims (offline or sessionless grants)

    @property
    def issued(self) -> bool:
        """Whether a code redemption issued it; until then it is pending (``expires_at`` 0)."""
        return self.expires_at > 0

    def get_user_id(self) -> str:  # authlib asks users for this
        return self.identity.subject

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()

    @property
    def ends_with_session(self) -> bool:
        """Whether the grant's life is its session's (not offline, and made in one)."""
        return bool(self.sid) and not self.offline

    def record(self) -> dict[str, Any]:
        """The stored grant: everything but the person's claims."""
        return replace(self, identity=self.identity.without_personal_data()).to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id,
            "client_id": self.client_id,
            "identity": self.identity.to_dict(),
            "scope": self.scope,
            "sid": self.sid,
            "nonce": self.nonce,
            "expires_at": self.expires_at,
            "offline": self.offline,
            "until": self.until,
            "person": self.person,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Grant:
        return cls(
            grant_id=str(data["grant_id"]),
            client_id=str(data["client_id"]),
            identity=Identity.from_dict(data["identity"]),
            scope=str(data["scope"]),
            sid=data.get("sid"),
            nonce=data.get("nonce"),
            expires_at=int(data.get("expires_at", 0)),
            offline=bool(data.get("offline", False)),
            until=int(data.get("until", 0)),
            person=str(data.get("person", "")),
        )
