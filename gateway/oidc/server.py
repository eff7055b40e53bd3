"""authlib's authorization server, wired to Roam's clients, store and token minter.

authlib runs inline on the event loop; the store I/O it needs happens around it
(``gateway.oidc.work``). A code is *found* first, checked by authlib, then consumed
atomically before authlib issues anything — never authlib's look-up-then-delete. A
refresh token describes itself, so authlib checks it with no store call, and one atomic
swap on its grant (``gateway.oidc.refresh``) then proves it current and retires it. Bad
input changes nothing; the loser of a race, or a replay, revokes the whole grant.

A code's grant record is written, pending, with the code; its redemption only *replaces*
that record (``Store.replace``), so a revocation that comes between consuming the code
and writing the grant — a replay handled by another process — is never undone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from gateway.audit import audit_event
from gateway.channels import ChannelError, ChannelLogin
from gateway.config import Systems, TokensSection
from gateway.identity import SCOPE_CLAIMS, Identity
from gateway.oidc.bridge import HttpRequest, Reply
from gateway.oidc.channel_grant import CHANNEL_GRANT, ChannelCodeGrant
from gateway.oidc.client_assertions import ClientAssertions
from gateway.oidc.client_grants import ClientGrants
from gateway.oidc.clients import Client, ClientRegistry
from gateway.oidc.codes import StoredCode
from gateway.oidc.dpop import DPoPError, DPoPProofs
from gateway.oidc.grant import Grant
from gateway.oidc.grant_types import (
    PENDING_GRACE,
    CodeGrant,
    IdTokens,
    OpenIDCodeExtension,
    RefreshGrant,
    S256Only,
)
from gateway.oidc.minter import TokenMinter
from gateway.oidc.refresh import PresentedToken, RefreshTokens, token_digest
from gateway.oidc.token_exchange import TOKEN_EXCHANGE, SubjectTokens, TokenExchangeGrant
from gateway.store.base import Kind, Store

__all__ = ["RoamAuthorizationServer", "channel_refusal", "claimed_client_id", "pending_grant"]


class RoamAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        *,
        clients: ClientRegistry,
        store: Store,
        minter: TokenMinter,
        refresh: RefreshTokens,
        ttl: TokensSection,
        channels: ChannelLogin | None = None,
        systems: Systems | None = None,
        dpop: DPoPProofs | None = None,
        assertions: ClientAssertions | None = None,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPE_CLAIMS))
        self.clients = clients
        self.store = store
        self.refresh = refresh
        self.minter = minter
        self.ttl = ttl
        self.channels = channels
        self.systems = systems or Systems((), ())
        self.dpop = dpop or DPoPProofs(store)
        self.assertions = assertions  # private_key_jwt; None: refused (invalid_client)
        self.register_client_auth_method("private_key_jwt", _asserted_client)
        self.people = refresh.active.people
        self.client_grants = ClientGrants(store, refresh.active.sessions, code_ttl=ttl.code_ttl,
                                          grace=PENDING_GRACE)
        self.subjects = SubjectTokens(keys=minter.keys, issuer=minter.issuer,
                                      active=refresh.active)
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256Only(required=True), OpenIDCodeExtension(minter)])
        self.register_grant(RefreshGrant, [IdTokens(minter)])
        self.register_grant(TokenExchangeGrant)
        if channels is not None and channels.names:
            self.register_grant(ChannelCodeGrant, [IdTokens(minter)])

    @property
    def code_ttl(self) -> int:
        """How long an authorization code lives (``[tokens] code_ttl``; the grants ask)."""
        return self.ttl.code_ttl

    @property
    def refresh_token_ttl(self) -> int:
        """How long a grant (and its refresh tokens) may live."""
        return self.ttl.refresh_token_ttl

    @property
    def grant_types(self) -> list[str]:
        """What discovery advertises as ``grant_types_supported``."""
        names = ["authorization_code", "refresh_token", TOKEN_EXCHANGE]
        if self.channels is not None and self.channels.names:
            names.append(CHANNEL_GRANT)
        return names

    # What the HTTP layer calls -------------------------------------------------------------

    async def token_response(self, request: HttpRequest) -> Reply:
        """authlib's ``create_token_response``, with the store's single-use step between
        its checking the request and its issuing the tokens."""
        await self.clients.ensure(claimed_client_id(request))
        refused = await self._check_dpop(request)
        if refused is not None:
            return refused
        refused = await self._authenticate_assertion(request)
        if refused is not None:
            return refused
        refused = await self._read_for_token(request)
        if refused is not None:
            return refused
        try:
            grant = self.get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            return self._error(request, error)
        try:
            grant.validate_token_request()
            refused = await self._use_up(request)
            if refused is not None:
                return refused
            reply: Reply = self.handle_response(*grant.create_token_response())
        except OAuth2Error as error:
            return self._error(request, error)
        if reply.status < 400 and not await self._write_grant(request):
            # Revoked between our consuming the code and now: a replay (or a logout) got
            # there first. What was minted is dropped, never sent.
            return self._refuse(request, "The grant has expired or was revoked.")
        return await self._finish(request, reply)

    async def authorization_response(self, request: HttpRequest, end_user: Grant,
                                     grant: Any) -> Reply:
        reply: Reply = self.create_authorization_response(request, grant_user=end_user,
                                                          grant=grant)
        return await self._finish(request, reply)

    async def endpoint_response(self, name: str, request: HttpRequest,
                                read: Callable[[HttpRequest], Awaitable[None]]) -> Reply:
        """Revocation, introspection: ``read`` fills ``request.work`` before authlib runs
        (and a client's ``private_key_jwt`` assertion is checked, as at /token)."""
        await self.clients.ensure(claimed_client_id(request))
        refused = await self._authenticate_assertion(request)
        if refused is not None:
            return refused
        await read(request)
        reply: Reply = self.create_endpoint_response(name, request)
        return await self._finish(request, reply)

    # Around authlib --------------------------------------------------------------------------

    async def _check_dpop(self, request: HttpRequest) -> Reply | None:
        """RFC 9449 at /token: a proof when the client needs one or sends one; its key's
        thumbprint goes to ``request.work.jkt``, to which the tokens will be bound. A
        request with neither costs one header and one client look-up."""
        proofs = request.headers.getlist("dpop") if "dpop" in request.headers else []
        client = self.clients.get(claimed_client_id(request))
        required = client is not None and client.config.dpop_bound_access_tokens
        if not proofs and not required:
            return None
        try:
            request.work.jkt = await self.dpop.check(
                proofs, method="POST", url=request.uri,
                nonce=client is not None and client.config.dpop_nonce)
        except DPoPError as error:
            headers = [("DPoP-Nonce", error.nonce)] if error.nonce else []
            return Reply(400, {"error": error.error, "error_description": error.description},
                         headers)
        return None

    async def _authenticate_assertion(self, request: HttpRequest) -> Reply | None:
        """A ``private_key_jwt`` assertion, checked before authlib (its keys may need
        fetching); authlib's method then names the client it proved. A refusal is
        ``invalid_client`` (RFC 6749 §5.2), 401."""
        if not ClientAssertions.present(request.form):
            return None
        client = (await self.assertions.authenticate(request.form)
                  if self.assertions is not None else None)
        if client is None:
            return Reply(401, {"error": "invalid_client",
                               "error_description": "The client assertion is not valid."})
        request.work.assertion_client = client
        return None

    async def _read_for_token(self, request: HttpRequest) -> Reply | None:
        """Read what authlib will look up; a channel code is redeemed with its platform
        here (the only I/O a channel login needs), and a refusal answered at once."""
        form, work = request.form, request.work
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code" and (code := form.get("code")):
            data = await self.store.find(Kind.CODE, code)
            if data is not None:
                work.codes[code] = StoredCode.from_dict(code, data)
        elif grant_type == "refresh_token" and (token := form.get("refresh_token")):
            presented, touch = await self.refresh.present(token)
            if presented is not None:
                work.refresh_tokens[token] = presented
            if touch is not None:  # an RP refreshing counts as activity, once it succeeds
                work.then.append(touch)
        elif grant_type == TOKEN_EXCHANGE and (subject := form.get("subject_token")):
            work.found["subject_token"] = await self.subjects.read(subject)
        elif grant_type == CHANNEL_GRANT and self.channels is not None:
            # Only a client that authenticates and may use the grant gets a code redeemed;
            # for any other, authlib answers invalid_client / unauthorized_client.
            basic_id, basic_secret = extract_basic_authorization(request.headers)
            client = self.clients.get(form.get("client_id") or basic_id)
            secret = form.get("client_secret") or basic_secret or ""
            if client is None or not client.check_grant_type(CHANNEL_GRANT) or (
                    not client.public and not client.check_client_secret(secret)):
                return None
            try:  # nor for a scope authlib will refuse: a refused request spends no code
                self.validate_requested_scope(form.get("scope"))
            except InvalidScopeError:
                return None
            try:
                work.channel_identity = await self.channels.log_in(
                    form.get("channel") or "", form.get("code") or "",
                    form.get("phone_code") or "")
            except ChannelError as error:
                return channel_refusal(error)
        return None

    async def _use_up(self, request: HttpRequest) -> Reply | None:
        """Consume the code or swap the refresh token; a refusal if that fails. A channel
        code was used up already, reserved before the platform saw it."""
        if request.work.channel_identity is not None:
            return None
        if request.form.get("grant_type") == TOKEN_EXCHANGE:
            return None  # nothing single use: the subject token stays good
        code: StoredCode | None = request.authorization_code
        if code is not None:
            used = await self.store.consume(Kind.CODE, code.code)
            if used is None:
                return self._refuse(request, "The grant has expired or was revoked.")
            if not used[1]:
                # A replay: whoever holds the other copy may be an attacker. End the grant.
                await self.store.revoke_by_grant(code.grant.grant_id)
                audit_event("grant.revoke", "success", subject=code.grant.identity.subject,
                            client=code.grant.client_id, sid=code.grant.sid,
                            reason="authorization code used twice")
                return self._refuse(request,
                                    "This grant was already used; its tokens are revoked.")
            return None
        presented: PresentedToken | None = request.refresh_token
        if presented is None:  # pragma: no cover - validation set one or raised
            return self._refuse(request, "No refresh token.")
        bound = presented.description.jkt
        if bound is not None and bound != request.work.jkt:
            # Checked before the swap: a thief without the key cannot retire the token.
            return self._refuse(request, "The refresh token is bound to another DPoP key.")
        work = request.work
        rotated = await self.refresh.rotate(presented, self.refresh.next_token(presented))
        if rotated is None or rotated.outcome == "unknown":
            return self._refuse(request, "The refresh token is invalid, expired or revoked.")
        grant = rotated.grant
        if rotated.outcome == "retired":
            # A replay past the reuse window: another copy exists. End the grant.
            await self.store.revoke_by_grant(grant.grant_id)
            audit_event("grant.revoke", "success", subject=grant.identity.subject,
                        client=grant.client_id, sid=grant.sid,
                        reason="refresh token used twice")
            return self._refuse(request, "This refresh token was already used; "
                                         "its grant is revoked.")
        # "repeated": used again within the reuse window (a retry whose answer was lost,
        # or a concurrent copy): the token its first use got, not a revocation
        work.next_refresh_token = rotated.next_token
        work.reused = rotated.outcome == "repeated"
        work.refreshed = grant
        return None

    async def _write_grant(self, request: HttpRequest) -> bool:
        """A code's redemption: its grant record replaces the pending one, atomically,
        only if that is still there. A replay's revocation removes the record whichever
        process it runs in, so it either happens first (then this fails and nothing is
        sent) or removes the record written here (then every token of the grant fails)."""
        created, issued = request.work.created, request.work.issued
        if created is None and issued is None:
            return True
        grant, version = created or issued  # type: ignore[misc]
        ttl = grant.expires_at - int(time.time())
        if ttl <= 0:  # its session ended before the code was redeemed
            return False
        keep = None
        if not grant.ends_with_session:  # the claims, once, where it can find them later
            if issued is not None:  # a code's: its claims are its session's
                session = await self.refresh.active.sessions.find(grant.sid or "")
                if session is None or session.identity.subject != grant.identity.subject:
                    return False  # logged out since: the grant was revoked with it
                grant = replace(grant, identity=grant.identity.with_personal_data(
                    session.identity))
            grant = replace(grant, person=self.people.ref(grant.identity))
            keep = self.people.keep(grant.identity, grant.person)
        if created is not None:
            write: Awaitable[object] = self.store.upsert(
                Kind.GRANT, grant.grant_id, grant.record(), ttl, version=version)
        else:
            write = self.store.replace(Kind.GRANT, grant.grant_id, grant.record(), ttl,
                                       version=version)
        results = await asyncio.gather(write, *([keep] if keep is not None else []))
        return results[0] is not False

    async def _finish(self, request: HttpRequest, reply: Reply) -> Reply:
        """Write what authlib decided, once its answer is a success."""
        if reply.status < 400:
            for job in request.work.then:
                await job()
        return reply

    def _refuse(self, request: HttpRequest, description: str) -> Reply:
        return self._error(request, InvalidGrantError(description))

    def _error(self, request: HttpRequest, error: OAuth2Error) -> Reply:
        reply: Reply = self.handle_error_response(request, error)
        return reply

    # authlib's framework hooks ------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def create_oauth2_request(self, request: HttpRequest) -> HttpRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("Roam has no JSON endpoints through authlib yet")

    def handle_response(self, status: int, body: Any, headers: Any) -> Reply:
        return Reply(status, body, list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's signals are unused: Roam audits at the HTTP layer."""

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Grant | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        if user is None:  # pragma: no cover - both grants always pass the grant
            raise InvalidGrantError("No grant to issue tokens for.")
        return self.tokens_for(user, client, scope or "")

    def tokens_for(self, grant: Grant, client: Client, scope: str, *,
                   jkt: str | None = None) -> dict[str, Any]:
        """The access token part of an answer; bound to a DPoP key if ``jkt``. The refresh
        token, if any, is added by the grant (``RefreshTokensOfRoam``)."""
        return {
            "token_type": "DPoP" if jkt else "Bearer",
            "access_token": self.minter.access_token(grant, client, scope, jkt=jkt),
            "expires_in": self.minter.access_token_ttl,
            "scope": scope,
        }

    def save_token(self, token: dict[str, Any], request: HttpRequest) -> None:
        """A code's first redemption issues the grant: the record access tokens are checked
        against, naming the current refresh token (a refresh swapped it already). Written
        over the pending record by ``_write_grant`` before the answer leaves."""
        if request.authorization_code is None:
            return
        grant: Grant = request.user
        expires_at = int(time.time()) + self.ttl.refresh_token_ttl
        if grant.ends_with_session and grant.until:
            expires_at = min(expires_at, grant.until)  # it cannot outlive its session
        grant = replace(grant, expires_at=expires_at)
        request.user = grant
        refresh_token = token.get("refresh_token")
        request.work.issued = grant, token_digest(refresh_token) if refresh_token else ""


def _asserted_client(query_client: Callable[[str], Client | None],
                     request: HttpRequest) -> Client | None:
    """authlib's ``private_key_jwt`` method: the client the assertion proved, if any."""
    return request.work.assertion_client


def claimed_client_id(request: HttpRequest) -> str | None:
    """The client a token request says it is (authlib authenticates it later)."""
    client_id = request.form.get("client_id")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        text = credentials.strip()
        try:
            decoded = base64.b64decode(text + "=" * (-len(text) % 4)).decode()
        except (ValueError, binascii.Error):  # UnicodeError is a ValueError
            return None
        client_id = decoded.partition(":")[0]
        client_id = unquote_plus(client_id)
    return client_id


def pending_grant(identity: Identity, client_id: str, sid: str | None, until: int) -> Grant:
    """The "user" handed to authlib at /authorize (``until``: the session's absolute end);
    the grant's id is found with the code (``gateway.oidc.client_grants``)."""
    return Grant(grant_id="", client_id=client_id, identity=identity, scope="", sid=sid,
                 until=until)


def channel_refusal(error: ChannelError) -> Reply:
    """A platform's refusal in RFC 6749 §5.2's shape; busy: 503 with ``Retry-After``."""
    body = {"error": error.outcome, "error_description": error.description}
    if error.outcome == "temporarily_unavailable":
        return Reply(503, body, [("Retry-After", str(error.retry_after or 5))])
    return Reply(500 if error.outcome == "server_error" else 400, body)
