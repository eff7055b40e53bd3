"""``/register``: dynamic client registration (RFC 7591) and its management (RFC 7592).

- ``POST /register`` with an operator's initial access token (``Authorization: Bearer``,
  :mod:`gateway.oidc.invites`): the metadata is checked (:mod:`gateway.oidc.registration`),
  the client gets an id, a secret the gateway made (``client_secret_basic``/``post``), a
  registration access token and the URL to manage itself; ``201``. It is active at once,
  or pending until an operator approves it (:mod:`gateway.oidc.client_review`).
- ``GET``, ``PUT``, ``DELETE /register/{client_id}`` with the registration access token:
  read, replace (every field the request leaves out goes back to its default), delete.
  Every use answers with a new registration access token and retires the one used — a
  compare-and-swap on the client's record, so one token serves one call, however many
  processes race with it.
- ``POST /register/{client_id}/secret`` (a Roam extension, as Keycloak's "regenerate
  secret"): a new secret; the old one keeps working for ``secret_overlap`` seconds.

Errors: ``401`` ``invalid_token`` (RFC 6750) for a missing or wrong token — also for a
client that does not exist (RFC 7592 §2.1) — and the RFC 7591 §3.2.2 codes with ``400``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.audit import audit_event
from gateway.digests import secret_digest, secret_matches
from gateway.errors import ProtocolError
from gateway.oidc.bearer import bearer_error
from gateway.oidc.client_directory import ClientDirectory, Stored
from gateway.oidc.client_review import ApprovalPolicy
from gateway.oidc.invites import Invites
from gateway.oidc.registered import RegisteredClient, StoredSecret
from gateway.oidc.registration import (
    MetadataRules,
    RegistrationRefused,
    check_reachable,
    read_metadata,
)
from gateway.outbound import OutboundPolicy

__all__ = ["RegistrationDeps", "RegistrationEndpoint"]

MAX_BODY = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{3,64}$")
_FIXED = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
          "client_id_issued_at")

log = logging.getLogger("roam.registration")


@dataclass(frozen=True)
class RegistrationDeps:
    directory: ClientDirectory
    invites: Invites
    policy: ApprovalPolicy
    rules: MetadataRules
    outbound: OutboundPolicy
    http: httpx.AsyncClient
    secret_overlap: int


class RegistrationEndpoint:
    def __init__(self, deps: RegistrationDeps, *, issuer: str) -> None:
        self.deps = deps
        self.issuer = issuer

    # --- RFC 7591 --------------------------------------------------------------------------

    async def register(self, request: Request) -> Response:
        token = _bearer(request)
        invite = await self.deps.invites.find(token) if token else None
        if invite is None:
            audit_event("client.register", "denied", reason="initial access token")
            raise _unauthorised(token, "A valid initial access token is required.")
        meta = await self._metadata(request)
        if not await self.deps.invites.take(invite):
            raise bearer_error("invalid_token", "The initial access token is used up.")
        now = int(time.time())
        client_id = "rp-" + secrets.token_urlsafe(16)
        secret = _new_secret(meta)
        access = secrets.token_urlsafe(32)
        record = self.deps.policy.registered(RegisteredClient(
            client_id=client_id, metadata=meta, status="pending", region=invite.region,
            secrets=(StoredSecret(digest=secret_digest(secret)),) if secret else (),
            access_digest=secret_digest(access), issued_at=now, updated_at=now))
        try:
            await self.deps.directory.create(record)
        except BaseException:
            await self.deps.invites.give_back(invite)
            raise
        audit_event("client.register", "success", client=client_id, region=invite.region,
                    invite=invite.id[:12], status=record.status)
        log.info("client registered", extra={"client_id": client_id, "status": record.status})
        return self._answer(record, access, secret=secret, status=201)

    # --- RFC 7592 --------------------------------------------------------------------------

    async def read(self, request: Request) -> Response:
        stored = await self._authorised(request)
        access, updated = _rotated(stored.client)
        await self._save(updated, stored)
        return self._answer(updated, access)

    async def update(self, request: Request) -> Response:
        stored = await self._authorised(request)
        body = await _json_object(request)
        record = stored.client
        if body.get("client_id") != record.client_id:
            raise _refused("invalid_client_metadata", "client_id must be this client's")
        fixed = [name for name in _FIXED if name in body]
        if fixed:
            raise _refused("invalid_client_metadata", f"{fixed} may not be sent")
        presented = body.get("client_secret")
        if presented is not None and not (isinstance(presented, str)
                                          and record.secret_matches(presented)):
            raise _refused("invalid_client_metadata", "client_secret is not this client's")
        meta = await self._checked({k: v for k, v in body.items()
                                    if k not in ("client_id", "client_secret")},
                                   "client.update", record.client_id)
        if (meta["token_endpoint_auth_method"] in ("none", "private_key_jwt")) != (
                not record.current_secret):
            raise _refused("invalid_client_metadata",
                           "token_endpoint_auth_method cannot change between a secret and "
                           "none or keys: register a new client")
        access, updated = _rotated(record)
        updated = self.deps.policy.updated(updated.requested(meta))
        await self._save(updated, stored)
        audit_event("client.update", "success", client=record.client_id,
                    awaiting=sorted(updated.awaiting()))
        return self._answer(updated, access)

    async def delete(self, request: Request) -> Response:
        stored = await self._authorised(request)
        if not await self.deps.directory.delete(stored.client.client_id, stored.version):
            raise bearer_error("invalid_token", "The registration access token was used.")
        audit_event("client.delete", "success", client=stored.client.client_id)
        return Response(status_code=204, headers=_NO_STORE)

    async def rotate_secret(self, request: Request) -> Response:
        stored = await self._authorised(request)
        record = stored.client
        if record.current_secret is None:
            raise _refused("invalid_client_metadata", "this client authenticates without a "
                           "secret")
        secret = secrets.token_urlsafe(32)
        ends = int(time.time()) + self.deps.secret_overlap
        access, updated = _rotated(record)
        updated = updated.with_secret(secret_digest(secret), previous_until=ends)
        await self._save(updated, stored)
        audit_event("client.secret.rotate", "success", client=record.client_id,
                    overlap=self.deps.secret_overlap)
        return JSONResponse({"client_id": record.client_id, "client_secret": secret,
                             "client_secret_expires_at": 0,
                             "previous_secret_expires_at": ends,
                             "registration_access_token": access,
                             "registration_client_uri": self._uri(record.client_id)},
                            headers=_NO_STORE)

    # --- parts -------------------------------------------------------------------------------

    async def _metadata(self, request: Request) -> dict[str, Any]:
        return await self._checked(await _json_object(request), "client.register")

    async def _checked(self, body: dict[str, Any], action: str,
                       client_id: str | None = None) -> dict[str, Any]:
        try:
            meta = read_metadata(body, self.deps.rules)
            await check_reachable(meta, self.deps.outbound, self.deps.http)
        except RegistrationRefused as refused:
            audit_event(action, "failure", client=client_id, reason=refused.error)
            raise _refused(refused.error, refused.description) from None
        return meta

    async def _authorised(self, request: Request) -> Stored:
        """The client whose registration access token this request carries, or 401."""
        client_id = request.path_params.get("client_id", "")
        token = _bearer(request)
        shaped = bool(_CLIENT_ID.match(client_id))
        stored = await self.deps.directory.load(client_id) if token and shaped else None
        if stored is None or not secret_matches(stored.client.access_digest, token):
            audit_event("client.manage", "denied", client=client_id if shaped else None)
            raise _unauthorised(token, "The registration access token is not valid for "
                                "this client.")
        return stored

    async def _save(self, updated: RegisteredClient, stored: Stored) -> None:
        if not await self.deps.directory.save(updated, stored.version):
            raise bearer_error("invalid_token", "The registration access token was used.")

    def _uri(self, client_id: str) -> str:
        return f"{self.issuer}/register/{client_id}"

    def _answer(self, record: RegisteredClient, access: str, *, secret: str = "",
                status: int = 200) -> JSONResponse:
        body: dict[str, Any] = {**record.metadata, "client_id": record.client_id,
                                "client_id_issued_at": record.issued_at,
                                "registration_access_token": access,
                                "registration_client_uri": self._uri(record.client_id),
                                "roam_status": record.status,
                                "roam_awaiting_approval": record.awaiting()}
        if record.current_secret is not None:
            body["client_secret_expires_at"] = 0
        if secret:
            body["client_secret"] = secret
        return JSONResponse(body, status_code=status, headers=_NO_STORE)


def _unauthorised(token: str, description: str) -> ProtocolError:
    """``401``: with ``error="invalid_token"`` in the challenge for a token that is wrong,
    without an error code for a request that sent none (RFC 6750 §3.1)."""
    if token:
        return bearer_error("invalid_token", description)
    return ProtocolError("invalid_token", description, status=401,
                         headers={"WWW-Authenticate": 'Bearer realm="roam"'})


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def _json_object(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise _refused("invalid_client_metadata", "the body must be application/json")
    received = bytearray()
    async for chunk in request.stream():  # read no further than the limit
        received += chunk
        if len(received) > MAX_BODY:
            raise _refused("invalid_client_metadata", "the body is too large")
    body = bytes(received)
    try:
        value = orjson.loads(body)
    except ValueError:
        raise _refused("invalid_client_metadata", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise _refused("invalid_client_metadata", "the body must be a JSON object")
    return value


def _refused(error: str, description: str) -> ProtocolError:
    return ProtocolError(error, description, status=400, headers=dict(_NO_STORE))


def _new_secret(meta: dict[str, Any]) -> str:
    method = meta["token_endpoint_auth_method"]
    return "" if method in ("none", "private_key_jwt") else secrets.token_urlsafe(32)


def _rotated(record: RegisteredClient) -> tuple[str, RegisteredClient]:
    """A new registration access token, and the record that knows it."""
    access = secrets.token_urlsafe(32)
    return access, record.with_access_token(access)
