"""The binding records: channel identity → citizen subject and verified level, and back.

``channel_binding/<identity key>`` holds ``{subject, level, identity, bound_at}`` in the
group ``bind:<subject>`` (the store's grant index), so a person's bindings are listed
and removed without a read-modify-write index. A WeChat identity with a unionid is also
written under ``channel_union/<union key>``: every app of that account resolves to the
same citizen. WeChat and Alipay identities of one person meet at the citizen subject the
verified ID number belongs to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.binding.identity import ChannelIdentity
from gateway.store.base import Kind, Store

__all__ = ["BOUND_LEVELS", "Binding", "Bindings", "binding_group"]

BOUND_LEVELS = ("L2", "L3")
UNBOUND_LEVEL = "L1"


def binding_group(subject: str) -> str:
    return f"bind:{subject}"


@dataclass(frozen=True)
class Binding:
    identity: ChannelIdentity
    subject: str
    level: str
    bound_at: int

    @property
    def key(self) -> str:
        return self.identity.key


def _binding(data: dict[str, Any]) -> Binding:
    return Binding(ChannelIdentity.from_dict(data["identity"]), str(data["subject"]),
                   str(data["level"]), int(data.get("bound_at", 0)))


class Bindings:
    """``citizen_of`` maps a normalised ID number to the citizen's ``sub`` in the identity
    source (None: no such account), so a binding ends at the same ``sub`` as that
    person's browser login."""

    def __init__(self, store: Store, *, ttl: int,
                 citizen_of: Callable[[str], str | None],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.citizen_of = citizen_of
        self.clock = clock

    async def resolve(self, identity: ChannelIdentity) -> tuple[str, str]:
        """``(subject, verified_level)`` for a channel login: a bound identity (or one
        sharing a bound unionid) is its citizen at the bound level; an unbound one is the
        channel's own pseudonymous subject at L1. Either way the identity is remembered
        under its own subject, so the bind API can find the identity behind a token."""
        await self.store.upsert(Kind.CHANNEL_SUBJECT, identity.subject, identity.to_dict(),
                                self.ttl)
        found = await self.find(identity)
        if found is not None:
            return found.subject, found.level
        return identity.subject, UNBOUND_LEVEL

    async def find(self, identity: ChannelIdentity) -> Binding | None:
        data = await self.store.find(Kind.CHANNEL_BINDING, identity.key)
        if data is None and identity.union_key:
            data = await self.store.find(Kind.CHANNEL_UNION, identity.union_key)
        return None if data is None else _binding(data)

    async def identity_of(self, channel_subject: str) -> ChannelIdentity | None:
        """The channel identity whose own (unbound) subject this is."""
        data = await self.store.find(Kind.CHANNEL_SUBJECT, channel_subject)
        return None if data is None else ChannelIdentity.from_dict(data)

    async def bind(self, identity: ChannelIdentity, subject: str, level: str) -> Binding:
        """Bind (or re-bind) ``identity`` to ``subject`` at ``level``; a level already
        reached for the same subject is kept (an L2 re-binding never lowers L3)."""
        if level not in BOUND_LEVELS:
            raise ValueError(f"a binding is L2 or L3, not {level!r}")
        current = await self.find(identity)
        if current is not None and current.subject == subject and current.level > level:
            level = current.level
        if current is not None and current.subject != subject:
            await self.remove(current.subject, current.key)
        binding = Binding(identity, subject, level, int(self.clock()))
        payload = {"grant_id": binding_group(subject), "subject": subject, "level": level,
                   "identity": identity.to_dict(), "bound_at": binding.bound_at}
        await self.store.upsert(Kind.CHANNEL_BINDING, identity.key, payload, self.ttl)
        if identity.union_key:
            await self.store.upsert(Kind.CHANNEL_UNION, identity.union_key, payload, self.ttl)
        return binding

    async def of_subject(self, subject: str) -> list[Binding]:
        """A citizen's bindings, oldest first (我的登录)."""
        found = await self.store.find_by_grant(binding_group(subject))
        bindings = [_binding(data) for kind, _, data in found if kind == Kind.CHANNEL_BINDING]
        return sorted(bindings, key=lambda b: (b.bound_at, b.key))

    async def remove(self, subject: str, key: str) -> Binding | None:
        """Remove the binding ``key`` if it is ``subject``'s (else nothing changes)."""
        data = await self.store.find(Kind.CHANNEL_BINDING, key)
        if data is None or data.get("subject") != subject:
            return None
        binding = _binding(data)
        await self.store.destroy(Kind.CHANNEL_BINDING, key)
        union_key = binding.identity.union_key
        if union_key:
            union = await self.store.find(Kind.CHANNEL_UNION, union_key)
            if union is not None and union.get("subject") == subject:
                await self.store.destroy(Kind.CHANNEL_UNION, union_key)
        return binding
