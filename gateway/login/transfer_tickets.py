"""One-time transfer tickets (无感切换): a client's token becomes one browser session.

A client allowed to (``transfer_tickets`` in clients.toml) asks with its access token for a
ticket to one target; the web-view it opens carries the ticket to ``/sso/transfer``. The
record holds only references — the grant and the access token (its ``jti``) it was
minted with, the client that asked, the subject and the target — never the identity
itself: the session made on arrival takes the identity from the grant then, so a logout
or revocation in between is seen. The ticket is random (256 bits), lives at most
``[login] transfer_ttl`` seconds (≤ 60) and is used up by the store's atomic ``consume``:
one winner however many browsers or processes race, and a second use is a replay.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ids import new_id
from gateway.store.base import Kind, Store

__all__ = ["MAX_TTL", "Ticket", "TransferTickets"]

MAX_TTL = 60
"""A ticket never lives longer than this (seconds), whatever the config says."""


@dataclass(frozen=True)
class Ticket:
    """What a ticket was minted for."""

    grant_id: str
    client_id: str
    subject: str
    target: str
    token_id: str = ""  # the access token's jti: revoking the token also stops its tickets
    token_sub: str = ""  # the access token's sub (its client's view): "" as ``subject``

    def token_claims(self) -> dict[str, str]:
        """The claims of the token it was minted with that say whether that token is still
        good (``ActiveTokens.grant_of_access_token``)."""
        claims = {"gid": self.grant_id, "sub": self.token_sub or self.subject,
                  "client_id": self.client_id}
        return {**claims, "jti": self.token_id} if self.token_id else claims


class TransferTickets:
    def __init__(self, store: Store, *, ttl: int = MAX_TTL) -> None:
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"a transfer ticket lives 1..{MAX_TTL} s, not {ttl}")
        self.store = store
        self.ttl = ttl

    async def mint(self, ticket: Ticket) -> str:
        """A fresh ticket for ``ticket``'s grant, client and target."""
        value = new_id(32)
        await self.store.upsert(Kind.TRANSFER_TICKET, value, {
            "grant": ticket.grant_id, "client_id": ticket.client_id,
            "subject": ticket.subject, "target": ticket.target, "jti": ticket.token_id,
            "sub": ticket.token_sub},
            self.ttl)
        return value

    async def take(self, value: str) -> Ticket | None:
        """The ticket, used up now; None if unknown, expired or already used (a replay)."""
        if not 32 <= len(value) <= 64 or not all(c.isascii() and (c.isalnum() or c in "-_")
                                                 for c in value):
            return None
        found = await self.store.consume(Kind.TRANSFER_TICKET, value)
        if found is None or not found[1]:
            return None
        data = found[0]
        return Ticket(grant_id=str(data["grant"]), client_id=str(data["client_id"]),
                      subject=str(data["subject"]), target=str(data["target"]),
                      token_id=str(data.get("jti", "")), token_sub=str(data.get("sub", "")))
