"""Authorization codes as authlib's code grant wants to see them (store records).

A code is not in its grant's index: revoking the grant removes the grant's record, and
a redemption only replaces a live one (``gateway.oidc.server``), so a code of a revoked
grant is refused without being found. Indexed, every code of a grant reused by its
client (``gateway.oidc.client_grants``) would stay in the index as long as the grant.
Its grant is as the grant's record keeps it, without the person's claims
(``gateway.oidc.people``). Refresh tokens have no record of their own:
``gateway.oidc.refresh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.oidc.grant import Grant

__all__ = ["StoredCode"]


@dataclass(frozen=True)
class StoredCode:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    grant: Grant

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.grant.nonce

    def get_auth_time(self) -> int:
        return self.grant.identity.auth_time

    def get_acr(self) -> str:
        return self.grant.identity.acr

    def get_amr(self) -> list[str]:
        return list(self.grant.identity.amr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "grant": self.grant.record(),
        }

    @classmethod
    def from_dict(cls, code: str, data: dict[str, Any]) -> StoredCode:
        return cls(
            code=code,
            client_id=data["client_id"],
            redirect_uri=data["redirect_uri"],
            scope=data["scope"],
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            grant=Grant.from_dict(data["grant"]),
        )
