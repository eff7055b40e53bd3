"""Operators' review of registered clients (最小必要): what is approved at once, what waits.

``[registration] auto_approve = "basic"`` approves at once every scope and every claim
outside ``sensitive_claims`` and levels up to ``max_auto_level``; what else a client asks
waits for an operator. A new client waiting for anything is *pending* and can do nothing
(the registry does not have it); an active client that later asks for more keeps what it
was approved for while the rest waits. An operator approves (all or part: narrowing) or
rejects — in the CLI (``roam clients pending|approve|reject``) or the console — and every
decision is kept on the client with who made it, when and why, and audited.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from gateway.audit import audit_event
from gateway.config import RegistrationSection
from gateway.digests import secret_digest
from gateway.identity import level_rank
from gateway.oidc.client_directory import ClientDirectory, Stored
from gateway.oidc.invites import Invites
from gateway.oidc.registered import Decision, RegisteredClient, Status

__all__ = ["ApprovalPolicy", "ClientReview", "ReviewRaced", "ReviewRefused"]

MAX_REASON = 200
TRIES = 3  # reads of a record that another write keeps changing, before giving up


class ReviewRefused(ValueError):
    """No such client, nothing to decide, or a decision that does not fit (a ValueError:
    the console, which knows nothing of this package, reports its message)."""


class ReviewRaced(ReviewRefused):
    """Other writes kept changing the client's record: nothing was decided; try again."""


class ApprovalPolicy:
    def __init__(self, section: RegistrationSection) -> None:
        self.auto = section.auto_approve == "basic"
        self.sensitive = frozenset(section.sensitive_claims)
        self.max_level = section.max_auto_level

    def extended(self, record: RegisteredClient) -> RegisteredClient:
        """``record`` with what the policy approves by itself added to its approval."""
        if not self.auto:
            return record
        levels = [v for v in record.levels if level_rank(v) <= level_rank(self.max_level)]
        level = max([record.approved_level or "", *levels], key=lambda v: level_rank(v or "L0"))
        return record.model_copy(update={
            "approved_scopes": _union(record.approved_scopes, record.scopes),
            "approved_claims": _union(record.approved_claims,
                                      (c for c in record.claims if c not in self.sensitive)),
            "approved_level": level})

    def updated(self, record: RegisteredClient) -> RegisteredClient:
        """A client's new request (RFC 7592 PUT): what the policy approves by itself is
        added; a pending client now asking for nothing that waits becomes active (a
        rejected or suspended one stays as it is)."""
        record = self.extended(record)
        if record.status == "pending" and self.auto and not record.awaiting():
            return record.decided(Decision(at=int(time.time()), by="policy", decision="auto"),
                                  status="active")
        return record

    def registered(self, record: RegisteredClient) -> RegisteredClient:
        """A new registration: active if nothing waits, else pending."""
        record = self.extended(record)
        now = int(time.time())
        if record.awaiting():
            return record.decided(Decision(at=now, by="client", decision="requested"),
                                  status="pending")
        return record.decided(Decision(at=now, by="policy", decision="auto"), status="active")


class ClientReview:
    def __init__(self, directory: ClientDirectory, invites: Invites | None = None) -> None:
        self.directory = directory
        self.invites = invites

    async def listing(self) -> list[dict[str, Any]]:
        """Every registered client, those waiting for a decision first (JSON-ready: the
        console's page and API)."""
        records = await self.directory.every()
        records.sort(key=lambda r: (not r.waiting, -r.updated_at))
        return [_view(r) for r in records]

    async def invite(self, region: str, *, expires_in: int, uses: int, by: str) -> str:
        """An initial access token for the systems of ``region`` (shown once)."""
        if self.invites is None:
            raise ReviewRefused("invitations are not offered here")
        token, made = await self.invites.issue(region, expires_in=expires_in, uses=uses, by=by)
        audit_event("operator.clients.invite", "success", subject=by, region=region,
                    uses=uses, invite=made.id[:12], expires_at=made.expires_at)
        return token

    async def waiting(self) -> list[RegisteredClient]:
        """Clients pending, and active ones with a request beyond their approval."""
        return [r for r in await self.directory.every() if r.waiting]

    async def approve(self, client_id: str, *, by: str, reason: str,
                      scopes: Iterable[str] | None = None, claims: Iterable[str] | None = None,
                      level: str | None = None, seen: int | None = None) -> RegisteredClient:
        """Approve what the client asks, or only the part named (narrowing). ``seen``: the
        record's ``revision`` the operator looked at — a client that changed its request
        since is not approved unseen. A suspended client is resumed, never approved."""

        def approved(record: RegisteredClient) -> RegisteredClient:
            if record.status not in ("pending", "active"):
                raise ReviewRefused(f"the client is {record.status}: "
                                    + ("it must register again" if record.status == "rejected"
                                       else "resume it first"))
            if seen is not None and record.revision != seen:
                raise ReviewRefused("the client changed its request since it was shown: "
                                    "look again")
            want_scopes = record.scopes if scopes is None else ("openid", *scopes)
            want_claims = record.claims if claims is None else tuple(claims)
            want_level = record.level if level is None else level
            beyond = [x for x in (*want_scopes, *want_claims)
                      if x not in record.scopes and x not in record.claims]
            if beyond or (want_level and want_level not in ("L1", "L2", "L3", "L4")):
                raise ReviewRefused(f"not asked for by the client: {beyond or [want_level]}")
            approved_scopes = tuple(s for s in record.scopes if s in want_scopes)
            approved_claims = tuple(c for c in record.claims if c in want_claims)
            narrowed = (set(approved_scopes) != set(record.scopes)
                        or set(approved_claims) != set(record.claims)
                        or level_rank(want_level or "L1") < level_rank(record.level or "L1"))
            decision = Decision(at=int(time.time()), by=by, reason=reason,
                                decision="narrowed" if narrowed else "approved",
                                scopes=approved_scopes, claims=approved_claims,
                                level=want_level or "")
            # what was narrowed away is no longer asked: nothing waits after a decision
            return record.decided(
                decision, status="active",
                metadata=record.asking_only(approved_scopes, approved_claims, want_level),
                approved_scopes=approved_scopes, approved_claims=approved_claims,
                approved_level=want_level or "")

        updated = await self._change(client_id, approved, by=by, reason=reason)
        audit_event("client.approve", "success", subject=by, client=client_id,
                    decision=updated.decisions[-1].decision, reason=reason)
        return updated

    async def reject(self, client_id: str, *, by: str, reason: str) -> RegisteredClient:
        """Refuse a pending client (it stays unable to do anything), or an active client's
        request for more (it keeps what it was approved for, and asks for no more)."""

        def rejected(record: RegisteredClient) -> RegisteredClient:
            decision = Decision(at=int(time.time()), by=by, reason=reason, decision="rejected")
            if record.status != "active":
                return record.decided(decision, status="rejected")
            if not record.awaiting():
                raise ReviewRefused("nothing of this client waits for a decision")
            return record.decided(decision, metadata=record.asking_only(
                record.approved_scopes, record.approved_claims, record.approved_level))

        updated = await self._change(client_id, rejected, by=by, reason=reason)
        audit_event("client.reject", "success", subject=by, client=client_id, reason=reason)
        return updated

    async def suspend(self, client_id: str, *, by: str, reason: str) -> RegisteredClient:
        """Stop an active client at once in every process: it cannot authenticate, its
        tokens are no longer active; :meth:`resume` brings it back as it was."""
        return await self._set_status(client_id, by=by, reason=reason, expected="active",
                                      to="suspended", decision="suspended")

    async def resume(self, client_id: str, *, by: str, reason: str) -> RegisteredClient:
        return await self._set_status(client_id, by=by, reason=reason, expected="suspended",
                                      to="active", decision="resumed")

    async def new_access_token(self, client_id: str, *, by: str, reason: str
                               ) -> tuple[str, RegisteredClient]:
        """A new registration access token for a client that lost its own (the old one
        stops working); shown once."""
        token = secrets.token_urlsafe(32)

        def reissued(record: RegisteredClient) -> RegisteredClient:
            return record.with_access_token(token).decided(
                Decision(at=int(time.time()), by=by, reason=reason, decision="token"))

        updated = await self._change(client_id, reissued, by=by, reason=reason)
        audit_event("client.token", "success", subject=by, client=client_id, reason=reason)
        return token, updated

    async def rotate_secret(self, client_id: str, *, by: str, overlap: int
                            ) -> tuple[str, int]:
        """A new secret, made here (shown once), and when the previous one stops working."""
        secret, ends = secrets.token_urlsafe(32), int(time.time()) + overlap

        def rotated(record: RegisteredClient) -> RegisteredClient:
            if record.current_secret is None:
                raise ReviewRefused("this client has no secret")
            return record.with_secret(secret_digest(secret), previous_until=ends)

        await self._change(client_id, rotated, by=by, reason=None)
        audit_event("client.secret.rotate", "success", subject=by, client=client_id,
                    overlap=overlap)
        return secret, ends

    async def delete(self, client_id: str, *, by: str, reason: str) -> None:
        """Remove a registered client (its tokens stop being active everywhere)."""
        _check(by, reason)
        for _ in range(TRIES):
            stored = await self._stored(client_id)
            if await self.directory.delete(client_id, stored.version):
                audit_event("client.delete", "success", subject=by, client=client_id,
                            reason=reason)
                return
        raise ReviewRaced("the client changed meanwhile; try again")

    async def _set_status(self, client_id: str, *, by: str, reason: str, expected: str,
                          to: Status, decision: Literal["suspended", "resumed"]
                          ) -> RegisteredClient:
        def moved(record: RegisteredClient) -> RegisteredClient:
            if record.status != expected:
                raise ReviewRefused(f"the client is {record.status}, not {expected}")
            return record.decided(
                Decision(at=int(time.time()), by=by, reason=reason, decision=decision),
                status=to)

        updated = await self._change(client_id, moved, by=by, reason=reason)
        action = "client.suspend" if decision == "suspended" else "client.resume"
        audit_event(action, "success", subject=by, client=client_id, reason=reason)
        return updated

    async def _change(self, client_id: str,
                      change: Callable[[RegisteredClient], RegisteredClient], *,
                      by: str, reason: str | None) -> RegisteredClient:
        """Write ``change`` of the client's record over the version it was made from,
        reading again if another write came first (``ReviewRefused`` after ``TRIES``)."""
        _check(by, reason)
        for _ in range(TRIES):
            stored = await self._stored(client_id)
            updated = change(stored.client)
            if await self.directory.save(updated, stored.version):
                return updated
        raise ReviewRaced("the client changed meanwhile; try again")

    async def _stored(self, client_id: str) -> Stored:
        stored = await self.directory.load(client_id)
        if stored is None:
            raise ReviewRefused(f"no registered client {client_id!r}")
        return stored


def _check(by: str, reason: str | None) -> None:
    """Who decides is named; and why, unless ``reason`` is None (a routine rotation)."""
    if not by or len(by) > 64:
        raise ReviewRefused("who decides must be named")
    if reason is not None and (not reason.strip() or len(reason) > MAX_REASON):
        raise ReviewRefused(f"a reason of 1 to {MAX_REASON} characters is required")


def _view(record: RegisteredClient) -> dict[str, Any]:
    meta = record.metadata
    return {"client_id": record.client_id, "client_name": meta.get("client_name", ""),
            "status": record.status, "region": record.region,
            "redirect_uris": list(meta.get("redirect_uris", [])),
            "scopes": list(record.scopes), "claims": list(record.claims),
            "levels": list(record.levels), "awaiting": record.awaiting(),
            "waiting": record.waiting,
            "contacts": list(meta.get("contacts", [])),
            "updated_at": time.strftime("%Y-%m-%d %H:%M:%S",
                                        time.localtime(record.updated_at)),
            "version": record.revision,  # what a decision names as seen
            "decisions": [d.model_dump() for d in record.decisions[-5:]]}


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))
