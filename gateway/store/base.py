"""The store protocol, shaped after node-oidc-provider's adapter.

Every record is a JSON-able mapping under ``(kind, id)`` with a TTL in seconds. A record
whose payload has a ``grant_id`` belongs to that grant, and ``revoke_by_grant`` removes
all of them at once (codes, refresh tokens, access-token ids of one authorization).

A record may also carry a *version*: an opaque string that ``advance`` replaces by
compare-and-swap, remembering the last ``VERSION_HISTORY`` versions it replaced. Rotating
refresh tokens is that: the grant's version is its current token's digest, so one atomic
call on one key both checks a token and retires it, and a retired one is recognised.
An advance may leave a *memo* for a short while (``reuse_for``): whoever presents the
version it just replaced again in that time gets the memo back (``"repeated"``) instead
of ``"retired"`` — the refresh-token reuse grace window, which makes a rotation safe to
repeat when its answer was lost.

``swap`` is the other way to change a versioned record: optimistic concurrency. A writer
reads the record and its version (``find_versioned``), computes the next payload, and
writes it only if the version is still the one it read; a loser reads again. Records
several processes update — an instance's shared health, a probe lease — change that way.

A kind may instead hold *counters* (``incr``): an integer per ``(kind, id)`` that lives
for a fixed window from its first increment. Lockouts and throttles count with it, so any
number of concurrent requests and gateway processes see one exact count. A kind holds
records or counters, never both; ``find`` of a counter is None, ``destroy`` removes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from gateway.errors import StoreError

__all__ = [
    "VERSION_HISTORY",
    "Advance",
    "Advanced",
    "Counted",
    "Kind",
    "Store",
    "Versioned",
    "check_delta",
    "check_kind",
    "check_reuse",
    "check_ttl",
    "check_version",
    "dump_payload",
    "grant_of",
    "load_payload",
]

VERSION_HISTORY = 16
"""How many replaced versions a record remembers (newest first)."""


Advance = Literal["advanced", "repeated", "retired", "unknown"]
"""What ``advance`` found: the expected version (now replaced); the version the last
advance replaced, presented again within its ``reuse_for`` (nothing changed); one it had
replaced before; or neither."""


class Advanced(NamedTuple):
    """What ``advance`` answers for a live record."""

    payload: dict[str, Any]
    outcome: Advance
    memo: str = ""  # ``"repeated"``: the memo the advance that replaced the version left


class Kind(StrEnum):
    """Every kind of record the gateway keeps (the values are the stored names: keep them)."""

    SESSION = "session"  # a browser session (gateway.sessions)
    SESSION_LINK = "session_rp"  # one RP authorization made in a session, for logout
    PARKED_REQUEST = "authz_request"  # an /authorize request or deep link waiting for a login
    PARKED_LOGIN = "authz_login"  # the login (sid, auth_time) made for a parked request
    CODE = "code"  # an authorization code
    GRANT = "grant"  # one authorization; its version is the current refresh token's digest
    PERSON = "person"  # a person's claims, named by grants that outlive their session
    REVOKED_ACCESS_TOKEN = "revoked_at"  # a revoked access token's jti, until it expires
    BACKCHANNEL_DELIVERY = "bcl_delivery"  # a back-channel logout delivery and its outcome
    LOGIN_FAILURES = "login_failures"  # counter: password attempts on an account, per window
    LOGIN_SOURCE_FAILURES = "login_source"  # counter: failed logins from one client address
    STEPUP_CODE = "stepup_otp"  # a step-up SMS code's digest, for one session
    STEPUP_TRIES = "stepup_tries"  # counter: SMS codes a person submitted, per window
    STEPUP_SENDS = "stepup_sends"  # counter: SMS codes sent to a person, per window
    STEPUP_SMS_OUTBOX = "stepup_sms_outbox"  # the simulated phone of the demo SMS factor
    STEPUP_FACE = "stepup_face"  # a simulated face check's one-time challenge
    CAS_TICKET = "cas_st"  # a CAS service ticket (ST-…)
    CAS_LOGIN = "cas_login"  # a /cas/login sent to the login page (renew: a primary login)
    SYSTEM_TICKET = "sys_ticket"  # a one-time ticket for a ``ticket`` system
    HANDOVER_CODE = "host_handover"  # a one-time code giving a system's host a session
    HOST_SESSION = "host_session"  # a browser's session on a proxied system's own host
    CHANNEL_BINDING = "channel_binding"  # a channel identity bound to a citizen, group bind:<sub>
    CHANNEL_UNION = "channel_union"  # the same, under a WeChat unionid (every app of it)
    CHANNEL_SUBJECT = "channel_subject"  # an unbound channel's own sub → its identity
    BIND_TRIES = "bind_tries"  # counter: binding attempts of one channel identity, per window
    BIND_ID_TRIES = "bind_id_tries"  # counter: binding attempts naming one ID number
    BIND_FACE = "bind_face"  # a face check started for a binding, by its verification id
    TRANSFER_TICKET = "sso_transfer"  # a one-time ticket into a web-view (无感切换)
    CHANNEL_CODE = "channel_code"  # counter: uses of a mini-program platform code (digest)
    CHANNEL_ACCOUNT = "channel_account"  # a channel identity's subject and its keys
    CHANNEL_TOKEN = "channel_token"  # a platform app access token (stable_token), shared
    CHANNEL_TOKEN_LEASE = "channel_token_lease"  # counter: who refreshes that token now
    CLIENT_ASSERTION = "client_jwt"  # counter: uses of a client assertion (client and jti)
    DPOP_PROOF = "dpop_jti"  # counter: uses of one DPoP proof (key thumbprint and jti)
    DPOP_NONCE = "dpop_nonce"  # a DPoP nonce the gateway handed out
    OPS_SESSION = "ops_session"  # an operator's console session (gateway/ops)
    OPS_FAILURES = "ops_failures"  # counter: an operator's login attempts, per window
    OPS_TOTP = "ops_totp"  # counter: uses of one operator's TOTP time step
    HEALTH_STATE = "health_state"  # an instance's shared health (swap), gateway.health
    HEALTH_CHECK = "health_check"  # an instance's last active probe and its run of results
    HEALTH_LEASE = "health_lease"  # which process probes an instance now (swap, TTL ≈ interval)
    HEALTH_FAILURES = "health_fails"  # counter: failed proxied requests to an instance in a row
    HEALTH_TRIAL = "health_trial"  # counter: the one trial request to a half-open instance
    CLIENT = "client"  # a client that registered itself (RFC 7591), gateway.oidc
    CLIENT_CHANGES = "client_changes"  # counter: changes to registered clients, polled
    REGISTRATION_INVITE = "reg_invite"  # an initial access token's digest → its region, uses
    REGISTRATION_INVITE_USES = "reg_invite_uses"  # counter: registrations one invite made


def check_ttl(ttl: object) -> int:
    """Refuse a TTL that would make a record immortal or already dead."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"ttl must be a positive int (seconds), got {ttl!r}")
    return ttl


def check_delta(by: object) -> int:
    """An increment is a plain int (``True`` is not 1 here)."""
    if isinstance(by, bool) or not isinstance(by, int):
        raise ValueError(f"by must be an int, got {by!r}")
    return by


def check_kind(kind: str) -> str:
    """Kinds are program constants; a ``:`` or brace would make Redis keys ambiguous."""
    if not kind or any(c in kind for c in ":{}"):
        raise ValueError(f"kind must be a non-empty name without ':', '{{' or '}}', got {kind!r}")
    return kind


def check_version(version: str, *, empty_ok: bool = False) -> str:
    """Versions are opaque strings; newline separates them in Redis's history field."""
    if not isinstance(version, str) or "\n" in version or not (version or empty_ok):
        raise ValueError("a version must be a non-empty string without newlines")
    return version


MAX_REUSE = 3600.0
"""The longest ``reuse_for`` an advance may ask (seconds)."""


def check_reuse(memo: str, reuse_for: float) -> None:
    """A memo is a string (kept only with a positive ``reuse_for``, at most an hour)."""
    if not isinstance(memo, str) or len(memo) > 4096:
        raise ValueError("a memo must be a string of at most 4096 characters")
    if not 0 <= reuse_for <= MAX_REUSE:  # NaN fails this too
        raise ValueError(f"reuse_for must be between 0 and {MAX_REUSE:.0f} seconds")


def grant_of(payload: Mapping[str, Any]) -> str | None:
    """The grant a payload belongs to; only a non-empty string counts, in both stores."""
    grant_id = payload.get("grant_id")
    return grant_id if isinstance(grant_id, str) and grant_id else None


def dump_payload(payload: Mapping[str, Any]) -> str:
    """Compact UTF-8 JSON, so both stores accept and refuse exactly the same payloads
    (``TypeError`` for what JSON cannot hold; orjson: every session is read per request)."""
    return orjson.dumps(payload).decode()


def load_payload(text: str | bytes) -> dict[str, Any]:
    """A stored payload from its JSON text (``find_text``); ``StoreError`` if it is not a
    JSON object (a store holding something this gateway did not write)."""
    try:
        payload = orjson.loads(text)
    except ValueError:  # orjson's JSONDecodeError, bad UTF-8 included
        raise StoreError("the store returned a record that is not JSON") from None
    if not isinstance(payload, dict):
        raise StoreError("the store returned a record that is not a JSON object")
    return payload


class Counted(NamedTuple):
    """A counter after ``incr``: its value and the whole seconds until its window ends."""

    value: int
    expires_in: int  # 0 when there is no counter (``incr`` with ``by`` <= 0 of a missing one)


class Versioned(NamedTuple):
    payload: dict[str, Any]
    version: str  # "" when the record was written without one
    previous: tuple[str, ...]  # the versions ``advance`` replaced, newest first


class Store(Protocol):
    async def upsert(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                     version: str = "") -> None:
        """Create or replace a record that expires after ``ttl`` seconds (``ttl`` > 0).

        Replacing forgets everything of the old record: consumed flag, version, history.
        """

    async def find(self, kind: str, id: str) -> dict[str, Any] | None:
        """The record's payload, or None if absent or expired."""

    async def find_text(self, kind: str, id: str) -> str | bytes | None:
        """The record's payload as stored (compact JSON), or None: for a caller that keeps
        decoded payloads by their text (the session read on every proxied request)."""

    async def consume(self, kind: str, id: str) -> tuple[dict[str, Any], bool] | None:
        """Mark a record used, atomically.

        Returns ``(payload, first_use)``, where ``first_use`` is True for exactly one caller
        however many race; None if the record is absent or expired. A consumed record stays
        (with its TTL) so replays can be detected.
        """

    async def find_versioned(self, kind: str, id: str) -> Versioned | None:
        """As ``find``, with the record's version and the versions it replaced."""

    async def advance(self, kind: str, id: str, expected: str, new: str, *,
                      memo: str = "", reuse_for: float = 0) -> Advanced | None:
        """Replace the version with ``new`` if it is ``expected``, atomically; and the payload.

        ``"advanced"`` for exactly one caller however many race with the same ``expected``
        (which then heads the history). With ``reuse_for`` > 0 that advance also keeps
        ``memo`` for ``reuse_for`` seconds: until then, ``expected`` presented again is
        ``"repeated"`` with that memo, and nothing changes (so the same call, sent twice,
        answers alike). Otherwise ``"retired"`` if ``expected`` is in the history;
        ``"unknown"`` if not; None if the record is absent or expired. Only an advance
        changes anything, and never the payload or the TTL.
        """

    async def replace(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                      version: str = "") -> bool:
        """As ``upsert``, but only over a live record, atomically: False, and nothing
        written, if the record is absent or expired (destroyed or revoked meanwhile).

        A record made in advance and replaced later can thus never be brought back by a
        writer that lost a race with its removal (a code's grant: ``gateway.oidc.server``).
        """

    async def swap(self, kind: str, id: str, payload: Mapping[str, Any], ttl: int, *,
                   expected: str | None, version: str) -> bool:
        """As ``upsert`` with ``version``, but only if the record's version is ``expected``
        (``None``: only if there is no live record), atomically; False, and nothing
        written, otherwise. However many race with one ``expected``, one wins.
        """

    async def incr(self, kind: str, id: str, ttl: int, *, by: int = 1) -> Counted:
        """Add ``by`` to a counter, atomically, and return it with the seconds it has left.

        The first increment creates the counter (from 0) with ``ttl``; later ones never
        extend it, so a counter counts over one fixed window and then starts again. However
        many callers race, in however many processes, each sees a distinct value. A ``by``
        of 0 or less never creates a counter: on a missing one it returns ``(0, 0)``, so
        ``by=0`` reads a counter and a negative ``by`` gives back what an earlier call took.
        """

    async def destroy(self, kind: str, id: str) -> None:
        """Remove a record or a counter; absent is fine."""

    async def find_by_grant(self, grant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """``(kind, id, payload)`` of every live record of this grant, in no set order.

        The grant index doubles as a small secondary index (a session's RPs, a subject's
        sessions): records join it by carrying ``grant_id``.
        """

    async def revoke_by_grant(self, grant_id: str) -> int:
        """Remove every record whose payload carried this ``grant_id``; returns how many."""

    async def forget(self, grant_id: str, kind: str, id: str) -> None:
        """Take the record out of the grant's index, whatever it holds now: for a record
        rewritten without the grant (or removed) that will never join it again, so the
        index stays as small as what still belongs to it. Absent is fine."""

    async def close(self) -> None:
        """Release connections."""
