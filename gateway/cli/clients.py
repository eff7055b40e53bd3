"""``roam clients …``: relying parties — the static ones of clients.toml, and those that
registered themselves (RFC 7591) through an operator's invitation.

``invite``, ``pending``, ``approve``, ``reject``, ``rotate-secret``, ``export``,
``import`` and ``list`` (its registered part) work on the running gateways' shared store,
so they need the ``redis`` backend; every change is audited with the operator's name.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.audit import audit_event
from gateway.cli.common import _config, _operator
from gateway.config import Config
from gateway.digests import secret_digest
from gateway.errors import ConfigError
from gateway.oidc.client_backup import BackupError, read_backup, restore, write_backup
from gateway.oidc.client_directory import ClientDirectory
from gateway.oidc.client_review import ClientReview, ReviewRaced, ReviewRefused
from gateway.oidc.clients import ClientRegistry
from gateway.oidc.invites import Invites
from gateway.oidc.registered import RegisteredClient
from gateway.store.base import Store

__all__ = ["add_client_commands"]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> int:
    found = _DURATION.match(text.strip())
    if not found or int(found.group(1)) <= 0:
        raise argparse.ArgumentTypeError("a duration such as 30m, 12h or 7d")
    return int(found.group(1)) * _UNITS[found.group(2)]


def _region(text: str) -> str:
    """A GB/T 2260 division: 2, 4 or 6 digits (43, 4301, 430102) → its 6-digit code."""
    if not re.fullmatch(r"\d{2}|\d{4}|\d{6}", text):
        raise argparse.ArgumentTypeError("a GB/T 2260 code: 43, 4301 or 430102")
    return text.ljust(6, "0")


def _shared(config: Config, command: str) -> None:
    if config.settings.store.backend != "redis":
        raise ConfigError([f"{config.source}: store.backend: a 'memory' store lives inside "
                           f"the gateway process; `roam clients {command}` needs the shared "
                           "'redis' store"])


def _run(config: Config, work: Callable[[Store], Awaitable[int]], *,
         audited: bool = False) -> int:
    """``work`` on the shared store; ``audited``: with the audit trail open, so the events
    it records are written before the command returns."""
    from gateway.audit import open_trail
    from gateway.wiring.parts import configured_store

    async def run() -> int:
        store = configured_store(config)
        try:
            if not audited:
                return await work(store)
            async with open_trail(config).running():
                return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _directory(store: Store, config: Config) -> ClientDirectory:
    return ClientDirectory(store, ClientRegistry(config.clients))


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def cmd_list(args: argparse.Namespace) -> int:
    config = _config(args)
    rows: list[tuple[str, ...]] = [("client_id", "name", "type", "auth", "alg", "scopes")]
    for c in config.clients:
        kind = "public" if c.public else "confidential"
        kind = "resource-server" if c.resource_server else kind
        rows.append((c.client_id, c.client_name, kind,
                     c.token_endpoint_auth_method, c.id_token_signed_response_alg,
                     " ".join(c.scopes)))
    _table(rows)
    if config.settings.store.backend != "redis":
        return 0

    async def registered(store: Store) -> int:
        records = await _directory(store, config).every()
        if records:
            print()
            _table([("registered", "name", "status", "region", "auth", "scope"),
                    *((r.client_id, str(r.metadata.get("client_name", "")), r.status,
                       r.region, str(r.metadata.get("token_endpoint_auth_method", "")),
                       str(r.metadata.get("scope", ""))) for r in records)])
        return 0

    return _run(config, registered)


def cmd_secret(args: argparse.Namespace) -> int:
    secret = secrets.token_urlsafe(32)
    print(f"client secret (give it to the RP, store it nowhere else): {secret}")
    print(f'client_secret_sha256 = "{secret_digest(secret)}"')
    return 0


def cmd_invite(args: argparse.Namespace) -> int:
    config = _config(args)
    _shared(config, "invite")
    by = _operator()

    async def invite(store: Store) -> int:
        try:
            token, made = await Invites(store).issue(args.region, expires_in=args.expires,
                                                     uses=args.uses, by=by)
        except ValueError as error:
            print(f"roam clients invite: {error}", file=sys.stderr)
            return 2
        audit_event("operator.clients.invite", "success", subject=by, region=made.region,
                    uses=made.uses, invite=made.id[:12], expires_at=made.expires_at)
        until = time.strftime("%Y-%m-%d %H:%M", time.localtime(made.expires_at))
        print(f"initial access token for the systems of {made.region} (shown once):")
        print(token)
        print(f"registrations: {made.uses}; until {until}")
        return 0

    return _run(config, invite, audited=True)


def _describe(record: RegisteredClient) -> str:
    awaiting = record.awaiting()
    meta = record.metadata
    lines = [f"{record.client_id}  {meta.get('client_name', '')}  [{record.status}]  "
             f"region {record.region}",
             f"  redirect_uris: {' '.join(meta.get('redirect_uris', []))}",
             f"  asks: scope {meta.get('scope', '')}; claims {', '.join(record.claims) or '-'}"
             f"; levels {', '.join(record.levels) or '-'}"]
    if awaiting:
        lines.append("  waiting for approval: " + "; ".join(
            f"{k} {', '.join(v)}" for k, v in awaiting.items()))
    return "\n".join(lines)


def cmd_pending(args: argparse.Namespace) -> int:
    config = _config(args)
    _shared(config, "pending")

    async def pending(store: Store) -> int:
        waiting = await ClientReview(_directory(store, config)).waiting()
        if not waiting:
            print("no registration waits for a decision")
        for record in waiting:
            print(_describe(record))
        return 0

    return _run(config, pending)


def _decide(args: argparse.Namespace, action: str) -> int:
    config = _config(args)
    _shared(config, action)
    by = args.by or f"cli:{_operator()}"

    def listed(value: str | None) -> list[str] | None:
        return None if value is None else [v for v in re.split(r"[,\s]+", value) if v]

    async def decide(store: Store) -> int:
        review = ClientReview(_directory(store, config))
        who = {"by": by, "reason": args.reason}
        try:
            if action == "approve":
                record = await review.approve(args.client_id, scopes=listed(args.scopes),
                                              claims=listed(args.claims), level=args.level,
                                              **who)
            elif action == "token":
                token, record = await review.new_access_token(args.client_id, **who)
                print(f"registration access token (give it to the RP; shown once): {token}")
            elif action == "delete":
                await review.delete(args.client_id, **who)
                print(f"{args.client_id}: deleted")
                return 0
            else:
                record = await {"reject": review.reject, "suspend": review.suspend,
                                "resume": review.resume}[action](args.client_id, **who)
        except ReviewRefused as refused:
            print(f"roam clients {action}: {refused}", file=sys.stderr)
            return 2
        print(_describe(record))
        return 0

    return _run(config, decide, audited=True)


def cmd_decide(args: argparse.Namespace) -> int:
    return _decide(args, args.action)


def cmd_rotate_secret(args: argparse.Namespace) -> int:
    """A new secret for a registered client, made by the gateway; the old one keeps
    working for the overlap. The new secret is printed once."""
    config = _config(args)
    _shared(config, "rotate-secret")
    overlap = config.settings.registration.secret_overlap if args.overlap is None \
        else args.overlap
    by = _operator()

    async def rotate(store: Store) -> int:
        review = ClientReview(_directory(store, config))
        try:
            secret, ends = await review.rotate_secret(args.client_id, by=by, overlap=overlap)
        except ReviewRefused as refused:
            print(f"roam clients rotate-secret: {refused}", file=sys.stderr)
            return 1 if isinstance(refused, ReviewRaced) else 2
        print(f"new client secret (give it to the RP; shown once): {secret}")
        print(f"the previous secret works until "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ends))}")
        return 0

    return _run(config, rotate, audited=True)


def cmd_export(args: argparse.Namespace) -> int:
    """Every registered client to a file (digests, never secrets), for ``import``."""
    config = _config(args)
    _shared(config, "export")
    by = _operator()

    async def export(store: Store) -> int:
        records = await _directory(store, config).every()
        try:
            write_backup(Path(args.out), records)
        except OSError as error:
            print(f"roam clients export: {args.out}: {error.strerror or error}",
                  file=sys.stderr)
            return 1
        audit_event("operator.clients.export", "success", subject=by, count=len(records))
        print(f"{len(records)} registered clients written to {args.out}")
        return 0

    return _run(config, export, audited=True)


def cmd_import(args: argparse.Namespace) -> int:
    """Registered clients back from an export: the ones the store lacks (``--replace``:
    every one). The whole file is checked before anything is written."""
    config = _config(args)
    _shared(config, "import")
    try:
        records = read_backup(Path(args.file))
    except BackupError as error:
        print(f"roam clients import: {error}", file=sys.stderr)
        return 2
    by = _operator()

    async def restore_all(store: Store) -> int:
        done = await restore(_directory(store, config), records, replace=args.replace)
        for client_id in done.created:
            audit_event("client.import", "success", subject=by, client=client_id,
                        replaced=False)
        for client_id in done.replaced:
            audit_event("client.import", "success", subject=by, client=client_id,
                        replaced=True)
        print(f"restored {len(done.created)}, replaced {len(done.replaced)}, "
              f"kept as stored {len(done.kept)}")
        for client_id in done.kept:
            print(f"  kept: {client_id}")
        return 0

    return _run(config, restore_all, audited=True)


def add_client_commands(sub: Any) -> None:
    """``roam clients …`` under the top parser's subcommands."""
    clients = sub.add_parser("clients", help="relying parties").add_subparsers(
        dest="action", required=True)
    clients.add_parser("list", help="list clients: clients.toml's, then registered ones"
                       ).set_defaults(func=cmd_list)
    clients.add_parser("secret", help="make a new client secret and its digest "
                       "(for clients.toml)").set_defaults(func=cmd_secret)
    invite = clients.add_parser("invite", help="an initial access token for the systems of "
                                               "a city or county to register (RFC 7591)")
    invite.add_argument("--region", type=_region, required=True,
                        help="GB/T 2260 code of the city or county (4301 or 430102)")
    invite.add_argument("--expires", type=_duration, default=7 * 86400,
                        help="how long it lasts (30m, 12h, 7d; default 7d)")
    invite.add_argument("--uses", type=int, default=1,
                        help="how many clients it may register (default 1)")
    invite.set_defaults(func=cmd_invite)
    clients.add_parser("pending", help="registrations waiting for an operator's decision"
                       ).set_defaults(func=cmd_pending)
    for action, text in (
            ("approve", "approve a registration (or only part of it)"),
            ("reject", "refuse a registration or its request for more"),
            ("suspend", "stop an active registered client everywhere (its tokens too)"),
            ("resume", "bring a suspended client back"),
            ("token", "a new registration access token for a client that lost its own"),
            ("delete", "remove a registered client")):
        decide = clients.add_parser(action, help=text)
        decide.add_argument("client_id")
        decide.add_argument("--reason", required=True, help="why, kept with the decision")
        decide.add_argument("--by", default="", help="who (default: cli:<login name>)")
        if action == "approve":
            decide.add_argument("--scopes", help="approve only these scopes (comma-separated)")
            decide.add_argument("--claims", help="approve only these claims (comma-separated)")
            decide.add_argument("--level", choices=["L1", "L2", "L3", "L4"],
                                help="the highest level approved")
        decide.set_defaults(func=cmd_decide)
    rotate = clients.add_parser("rotate-secret", help="a new secret for a registered "
                                                      "client; the old one works for the "
                                                      "overlap")
    rotate.add_argument("client_id")
    rotate.add_argument("--overlap", type=_duration, default=None,
                        help="how long the old secret keeps working (default: "
                             "registration.secret_overlap)")
    rotate.set_defaults(func=cmd_rotate_secret)
    export = clients.add_parser("export", help="every registered client to a file "
                                               "(secret digests only), for import")
    export.add_argument("--out", required=True, help="the file to write (mode 0600)")
    export.set_defaults(func=cmd_export)
    restore_ = clients.add_parser("import", help="registered clients back from an export: "
                                                 "those the store lacks")
    restore_.add_argument("file", help="a file `roam clients export` wrote")
    restore_.add_argument("--replace", action="store_true",
                          help="overwrite clients the store has too")
    restore_.set_defaults(func=cmd_import)
