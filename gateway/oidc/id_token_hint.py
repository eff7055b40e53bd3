"""What ``/logout`` accepts as an ``id_token_hint``: an ID token of ours, for a client.

Every JWT the gateway signs verifies against the same keys: ID tokens, access tokens
(``at+jwt``), logout tokens (``logout+jwt``) and the assertions the ``jwt-assertion``
connector hands legacy systems. A signature alone therefore says nothing about the kind,
and any of them in a legacy system's log must not log a person out. A hint counts only
if it is an ID token as the minter makes them: ``typ`` ``JWT`` (which rules out the access
and logout tokens), this issuer, a ``sub``, and ``aud`` one registered client (``azp``,
when present, the same). Assertions carry ``typ`` ``JWT`` too — legacy verifiers expect
it — and are told apart by ``aud``: a system's audience is never a client id (checked
when the config loads) and ``azp`` is a claim an assertion may not carry.

``exp`` is not checked: RP-Initiated Logout 1.0 §2 asks the OP to accept an expired ID
token as a hint. Its ``sid`` is compared with the browser's session by the caller.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import TokenError
from gateway.keys import KeyRing
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.minter import ID_TOKEN_TYP

__all__ = ["IdTokenHints"]


class IdTokenHints:
    def __init__(self, *, keys: KeyRing, issuer: str, clients: ClientRegistry) -> None:
        self.keys = keys
        self.issuer = issuer
        self.clients = clients

    def claims(self, token: str) -> dict[str, Any] | None:
        """The hint's claims if it is an ID token of ours for a registered client; None if
        it is a token of ours of another kind (or for no client). ``TokenError`` if it is
        not ours at all: forged, malformed, unknown key, or another issuer."""
        header, claims = self.keys.verify(token)
        if claims.get("iss") != self.issuer:
            raise TokenError("the token was not issued here")
        if not _is_id_token_typ(header.get("typ")) or not isinstance(claims.get("sub"), str):
            return None
        return claims if self.client_of(claims) is not None else None

    def client_of(self, claims: dict[str, Any]) -> Client | None:
        """The registered client an ID token was issued to: its one ``aud`` (a list
        is refused: this issuer never makes one), which ``azp`` must repeat if present."""
        aud = claims.get("aud")
        if not isinstance(aud, str) or claims.get("azp", aud) != aud:
            return None
        return self.clients.get(aud)


def _is_id_token_typ(typ: object) -> bool:
    """RFC 7515 §4.1.9: media types compare case-insensitively, "application/" optional."""
    return isinstance(typ, str) and typ.lower().removeprefix("application/") == (
        ID_TOKEN_TYP.lower())
