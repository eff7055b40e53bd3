"""The store I/O of one authlib call, done on the event loop around it.

authlib's server core is synchronous. Rather than hop to a worker thread and back for
every store call — measured at about 1.3 ms of CPU per refresh grant, most of the gap to
the floor (docs/performance.md) — what authlib will look up is read *before* it runs,
and what it decides is written *after*; single-use things are used up *between* its
checking a token request and its issuing the tokens (``RoamAuthorizationServer``).
authlib itself then runs inline: with no I/O left it is pure computation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.identity import Identity
    from gateway.oidc.client_grants import LinkAhead
    from gateway.oidc.clients import Client
    from gateway.oidc.codes import StoredCode
    from gateway.oidc.grant import Grant
    from gateway.oidc.refresh import PresentedToken

__all__ = ["StoreWork"]


@dataclass
class StoreWork:
    # read before authlib runs
    codes: dict[str, StoredCode] = field(default_factory=dict)
    refresh_tokens: dict[str, PresentedToken] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)  # revocation / introspection
    channel_identity: Identity | None = None  # who the platform said a channel code is
    # a refresh: the token that replaces the presented one, and the grant the swap proved
    next_refresh_token: str | None = None
    refreshed: Grant | None = None
    reused: bool = False  # the token came again within the reuse window
    # a code's redemption: the grant record (and its version) that replaces the pending
    # one, written before anything is sent and only if no revocation removed it
    issued: tuple[Grant, str] | None = None
    # a channel login: a new grant record (and its version), written before anything is sent
    created: tuple[Grant, str] | None = None
    # DPoP (RFC 9449): the thumbprint of the key the proof at /token was signed with
    jkt: str | None = None
    # private_key_jwt: the client its assertion proved (checked before authlib runs)
    assertion_client: Client | None = None
    # /authorize: the client's link in the session, read with the session
    link_ahead: LinkAhead | None = None
    # decided by authlib, done after it
    then: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
