"""Ending a session everywhere: revoke its grants, forget it, tell every RP.

Every way out — RP-initiated logout, 我的登录's "log out everywhere", a new login by
someone else in the same browser, and the operator's ``roam sessions revoke`` — comes
through ``SessionLogout.end`` so none of them skips back-channel logout.
"""

from __future__ import annotations

from gateway.audit import audit_event
from gateway.background import Background
from gateway.metrics.recorder import Metrics
from gateway.oidc.active import ActiveTokens
from gateway.oidc.backchannel import BackchannelLogout
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.delivery import Delivery
from gateway.sessions import Session, SessionManager

__all__ = ["SessionLogout"]


class SessionLogout:
    def __init__(self, *, sessions: SessionManager, active: ActiveTokens,
                 clients: ClientRegistry, backchannel: BackchannelLogout,
                 background: Background | None, metrics: Metrics | None = None) -> None:
        self.sessions = sessions
        self.active = active
        self.clients = clients
        self.backchannel = backchannel
        self.background = background
        self.metrics = metrics or Metrics()

    async def end(self, session: Session, *, reason: str,
                  wait: bool = False) -> list[Delivery]:
        """Log the session out of the gateway and of every RP it was used with.

        With ``wait`` (the CLI) the back-channel deliveries are awaited, retries included;
        otherwise they are recorded in the store (so any gateway process finishes them if
        this one stops) and run in the background, and this returns.
        """
        links = await self.sessions.links(session.sid)
        for link in links:
            await self.active.revoke_grant(link.grant_id)
        await self.sessions.destroy(session.sid)
        self.metrics.logout(reason)
        seen: dict[str, Client] = {}
        for link in links:
            client = self.clients.get(link.client_id)
            if client is not None and client.config.backchannel_logout_uri:
                seen.setdefault(client.client_id, client)
        # each RP hears of the person by the sub it was told (gateway.oidc.subjects)
        subject = session.identity.subject
        targets = [(client, self.active.subjects.of(client.config, subject), session.sid)
                   for client in seen.values()]
        audit_event("logout", "success", subject=session.identity.subject, sid=session.sid,
                    reason=reason, rps=len({link.client_id for link in links}),
                    grants_revoked=len(links), backchannel=len(targets))
        if not targets:
            return []
        if wait or self.background is None:
            return await self.backchannel.deliver_all(targets)
        await self.backchannel.start(self.background.group, targets)  # recorded first
        return []
