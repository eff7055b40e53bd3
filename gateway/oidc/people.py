"""A person's claims, kept once instead of in every grant.

A grant keeps who and how (``sub``, ``acr``, ``amr``, ``auth_time``) but not the claims —
name, ID and phone numbers (``Grant.record``). A grant that ends with its session reads
them from the session, which every login writes anyway. A grant that outlives its
session — ``offline_access``, or a mini-program login, which has none — names a *person
record*: the claims under a keyed digest of themselves and their subject, so one set of
claims is one record however many grants name it, written without reading first, and
its key says nothing to someone who can list the store's keys. It lives as long as a
grant can (``[tokens] refresh_token_ttl``), every write starting that time again.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from gateway.digests import KeyedDigests
from gateway.identity import Identity
from gateway.oidc.grant import Grant
from gateway.sessions import Session
from gateway.store.base import Kind, Store

__all__ = ["People"]


class People:
    def __init__(self, store: Store, digests: KeyedDigests, *, ttl: int) -> None:
        self.store = store
        self.digests = digests
        self.ttl = ttl

    def ref(self, identity: Identity) -> str:
        """The person record's id for these claims of this subject."""
        body = orjson.dumps({"sub": identity.subject, "claims": identity.claims,
                             "agent": identity.agent}, option=orjson.OPT_SORT_KEYS)
        return self.digests.of("person", body.decode())

    async def keep(self, identity: Identity, ref: str) -> None:
        """Write the record ``ref`` names (the same payload for the same ref)."""
        await self.store.upsert(Kind.PERSON, ref,
                                {"sub": identity.subject, "claims": identity.claims,
                                 "agent": identity.agent}, self.ttl)

    async def fill(self, grant: Grant, session: Session | None) -> Grant:
        """The grant with its person's claims: from ``session`` (the one it ends with,
        looked up already) or from its person record; as stored if neither has them."""
        if session is not None and session.identity.subject == grant.identity.subject:
            source = session.identity
        elif grant.person:
            found = await self.store.find(Kind.PERSON, grant.person)
            if found is None or found.get("sub") != grant.identity.subject:
                return grant
            claims, agent = found.get("claims"), found.get("agent")
            source = replace(grant.identity, claims=claims if isinstance(claims, dict) else {},
                             agent=agent if isinstance(agent, dict) else None)
        else:
            return grant
        return replace(grant, identity=grant.identity.with_personal_data(source))
