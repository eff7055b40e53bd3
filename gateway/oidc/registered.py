"""A client that registered itself (RFC 7591), as the store keeps it.

The record holds the metadata as the client last sent it and, apart, what operators
approved (scopes, claims, the highest level). The client the gateway serves is the
metadata cut down to the approval (:meth:`RegisteredClient.config`), so a client asking
for more than it was approved for keeps working with what it has while the rest waits
for review, and one never approved (pending, rejected) is no client at all.

Secrets are the gateway's (never the client's choice), kept as SHA-256 digests: the
current one and, for ``secret_overlap`` seconds after a rotation, the one before.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gateway.config import ClientConfig
from gateway.digests import secret_digest, secret_matches
from gateway.identity import SCOPE_CLAIMS, level_rank

__all__ = ["Decision", "RegisteredClient", "Status", "StoredSecret", "requested_claims"]

Status = Literal["active", "pending", "rejected", "suspended"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StoredSecret(_Frozen):
    digest: str  # SHA-256 hex of the secret
    not_after: int = 0  # epoch seconds after which it no longer works; 0: no end


class Decision(_Frozen):
    """One step of the client's review: who, when, what and why."""

    at: int
    by: str  # an operator's name, "policy" for the automatic approval, "client" for a request
    decision: Literal["requested", "approved", "narrowed", "rejected", "auto", "suspended",
                      "resumed", "token"]
    reason: str = ""
    scopes: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()
    level: str = ""


class RegisteredClient(_Frozen):
    client_id: str
    metadata: dict[str, Any]  # what the client registered (RFC 7591 names), normalised
    status: Status
    region: str  # GB/T 2260 code of the invitation that let it register
    approved_scopes: tuple[str, ...] = ()
    approved_claims: tuple[str, ...] = ()
    approved_level: str = ""  # the highest default_acr_values approved ("": none above L1)
    secrets: tuple[StoredSecret, ...] = ()
    access_digest: str = ""  # SHA-256 of the current registration access token
    issued_at: int
    updated_at: int
    decisions: tuple[Decision, ...] = ()
    # counts the changes of what the client asks for and what it was granted (not a token
    # rotation): what an operator's decision names as the request it saw
    revision: int = 0

    def requested(self, metadata: dict[str, Any]) -> RegisteredClient:
        """The client asking anew (RFC 7592 PUT)."""
        return self.model_copy(update={"metadata": metadata, "revision": self.revision + 1})

    # --- what the client asked for ----------------------------------------------------------

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(str(self.metadata.get("scope", "openid")).split())

    @property
    def claims(self) -> tuple[str, ...]:
        return requested_claims(self.metadata)

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("default_acr_values") or ())

    @property
    def level(self) -> str:
        """The highest level the client asks for ("" if none)."""
        return max(self.levels, key=level_rank, default="")

    @property
    def waiting(self) -> bool:
        """Whether an operator's decision is awaited: pending, or active asking for more."""
        return self.status == "pending" or (self.status == "active" and bool(self.awaiting()))

    def asking_only(self, scopes: Iterable[str], claims: Iterable[str], level: str
                    ) -> dict[str, Any]:
        """The metadata asking for no more than these scopes, claims and level (what a
        decision leaves asked: nothing waits after it)."""
        scopes, claims = set(scopes), set(claims)
        return {**self.metadata, "scope": " ".join(s for s in self.scopes if s in scopes),
                "claims": [c for c in self.claims if c in claims],
                "default_acr_values": [v for v in self.levels
                                       if level_rank(v) <= level_rank(level or "L1")]}

    def awaiting(self) -> dict[str, tuple[str, ...]]:
        """What the client asked for beyond its approval (empty: nothing waits)."""
        waiting = {
            "scopes": tuple(s for s in self.scopes if s not in self.approved_scopes),
            "claims": tuple(c for c in self.claims if c not in self.approved_claims),
            "levels": tuple(v for v in self.levels
                            if level_rank(v) > level_rank(self.approved_level or "L1")),
        }
        return {k: v for k, v in waiting.items() if v}

    # --- what the gateway serves ------------------------------------------------------------

    def config(self) -> ClientConfig | None:
        """The client the gateway serves now: the metadata within its approval; None
        unless the client is active."""
        if self.status != "active":
            return None
        meta = self.metadata
        method = str(meta.get("token_endpoint_auth_method", "client_secret_basic"))
        ceiling = level_rank(self.approved_level or "L1")
        current = self.current_secret
        return ClientConfig.model_validate({
            "client_id": self.client_id,
            "client_name": meta["client_name"],
            "public": method == "none",
            "client_secret_sha256": current.digest if current else None,
            "redirect_uris": meta.get("redirect_uris", ()),
            "post_logout_redirect_uris": meta.get("post_logout_redirect_uris", ()),
            "scopes": ("openid", *(s for s in self.scopes
                                   if s in self.approved_scopes and s != "openid")),
            "claims": tuple(c for c in self.claims if c in self.approved_claims),
            "token_endpoint_auth_method": method,
            "id_token_signed_response_alg": meta.get("id_token_signed_response_alg", "RS256"),
            "access_token_signed_response_alg": meta.get("access_token_signed_response_alg"),
            "grant_types": meta.get("grant_types", ("authorization_code", "refresh_token")),
            "backchannel_logout_uri": meta.get("backchannel_logout_uri"),
            "backchannel_logout_session_required": meta.get(
                "backchannel_logout_session_required", True),
            "default_acr_values": tuple(v for v in self.levels if level_rank(v) <= ceiling),
            "initiate_login_uri": meta.get("initiate_login_uri"),
            "jwks": meta.get("jwks"),
            "jwks_uri": meta.get("jwks_uri"),
            "subject_type": meta.get("subject_type", "public"),
            "sector_identifier_uri": meta.get("sector_identifier_uri"),
        })

    @property
    def current_secret(self) -> StoredSecret | None:
        return next((s for s in self.secrets if not s.not_after), None)

    def with_secret(self, digest: str, *, previous_until: int) -> RegisteredClient:
        """A new current secret; the one it replaces works until ``previous_until``."""
        current = self.current_secret
        kept = (StoredSecret(digest=current.digest, not_after=previous_until),) \
            if current else ()
        return self.model_copy(update={"secrets": (StoredSecret(digest=digest), *kept)})

    def with_access_token(self, token: str) -> RegisteredClient:
        """The record knowing only the digest of a new registration access token (shown
        once, by the caller); the one before stops working."""
        return self.model_copy(update={"access_digest": secret_digest(token),
                                       "updated_at": int(time.time())})

    def secret_digests(self, now: float | None = None) -> tuple[str, ...]:
        """The digests a presented secret may match now: current, and the overlap's (the
        one rule: the client the gateway serves asks here too)."""
        now = time.time() if now is None else now
        return tuple(s.digest for s in self.secrets if not s.not_after or now < s.not_after)

    def secret_matches(self, secret: str) -> bool:
        """Whether ``secret`` is one of this client's now (constant time)."""
        return any(secret_matches(digest, secret) for digest in self.secret_digests())

    def decided(self, decision: Decision, **changes: Any) -> RegisteredClient:
        return self.model_copy(update={
            **changes, "decisions": (*self.decisions, decision)[-50:],
            "updated_at": decision.at, "revision": self.revision + 1})


def requested_claims(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The claims a registration asks for: its ``claims`` list (a Roam extension: the
    least a system needs), else every claim of its scopes."""
    listed = metadata.get("claims")
    if isinstance(listed, (list, tuple)):
        return tuple(str(c) for c in listed)
    scopes = str(metadata.get("scope", "openid")).split()
    return tuple(dict.fromkeys(c for s in scopes for c in SCOPE_CLAIMS.get(s, ())))

