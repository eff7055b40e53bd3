"""``roam``: run the gateway, and look after keys, clients, routes, sessions and config.

``roam routes status|drain|undrain`` work on the running gateways' shared health
(:mod:`gateway.health`) through the store the config names, without a gateway.

The demo is not part of the gateway: ``make demo`` (``python -m demo``) runs it.

A bad configuration prints every problem (file and key) and exits with status 2, with
no traceback: operators read the message, not a stack.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config, load_config
from gateway.errors import ConfigError, KeyError_, StoreError
from gateway.logs import configure_logging
from gateway.oidc.clients import secret_digest
from gateway.store.memory import MemoryStore

if TYPE_CHECKING:
    from gateway.health import SharedHealth
    from gateway.store import Store

__all__ = ["main", "parser"]

DEFAULT_CONFIG = "config/roam.toml"


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway import access_log
    from gateway.app import create_app
    from gateway.proxy.dispatch import HeadLimits
    from gateway.server import uvicorn_config

    config = _config(args)
    app = create_app(config)
    gw = config.settings.gateway
    access_log.install()  # query strings can hold tickets: never logged
    uvicorn.Server(uvicorn_config(app, host=gw.host, port=gw.port,
                                  limits=HeadLimits.of(gw),
                                  trusted_proxies=gw.trusted_proxies)).run()
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    """Every file (main, clients, systems, identity source, keys, the metrics token),
    checked without an app: what would stop ``roam serve`` stops here, with every problem
    at once."""
    from connectors.base import ConnectorContext
    from gateway.metrics.endpoint import metrics_token
    from gateway.metrics.recorder import multiprocess_problems
    from gateway.wiring import (
        key_problems,
        load_keys,
        open_connectors,
        open_digests,
        open_operators,
        open_source,
    )

    config = _config(args)  # the main, clients and systems files, and the rules across them
    keys = load_keys(config)
    problems = key_problems(config, keys)
    if config.settings.metrics.enabled:
        problems.extend(multiprocess_problems(os.environ))
        try:
            metrics_token(config)  # its file, if it names one
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    # secrets named by environment variable must be there
    open_connectors(config.systems, ConnectorContext(keys=keys, issuer=config.issuer),
                    path_mode=config.settings.proxy.path_mode)
    open_source(config, MemoryStore())  # the identity source's own file
    open_digests(config)  # the gateway's secret, where it must be shared
    open_operators(config)  # the console's accounts
    print(f"{config.source}: OK ({len(config.clients)} clients, {len(config.systems)} systems, "
          f"store {config.settings.store.backend}, issuer {config.issuer})")
    return 0


def cmd_clients_list(args: argparse.Namespace) -> int:
    config = _config(args)
    rows = [("client_id", "name", "type", "auth", "alg", "scopes")]
    for c in config.clients:
        kind = "public" if c.public else "confidential"
        kind = "resource-server" if c.resource_server else kind
        rows.append((c.client_id, c.client_name, kind,
                     c.token_endpoint_auth_method, c.id_token_signed_response_alg,
                     " ".join(c.scopes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def cmd_clients_secret(args: argparse.Namespace) -> int:
    secret = secrets.token_urlsafe(32)
    print(f"client secret (give it to the RP, store it nowhere else): {secret}")
    print(f'client_secret_sha256 = "{secret_digest(secret)}"')
    return 0


def cmd_ops_operator(args: argparse.Namespace) -> int:
    """A new operator's entry for the operators file, and the TOTP secret to enrol in an
    authenticator app (an ``otpauth://`` URI, which apps read from a QR code)."""
    import getpass

    from argon2 import PasswordHasher

    from gateway.ops.operators import new_totp_secret

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(
        f"password for {args.name}: ")
    if len(password) < 12:
        print("the password must have at least 12 characters", file=sys.stderr)
        return 2
    secret = new_totp_secret()
    uri = f"otpauth://totp/Roam:{args.name}?secret={secret}&issuer=Roam&digits=6&period=30"
    print(f"# enrol in the operator's authenticator app (then forget it): {uri}")
    print("[[operator]]")
    print(f'name = "{args.name}"')
    print(f'role = "{args.role}"')
    print(f'password_hash = "{PasswordHasher().hash(password)}"')
    print(f'totp_secret = "{secret}"')
    return 0


def cmd_routes_check(args: argparse.Namespace) -> int:
    from gateway.routing.resolve import routing_table

    config = _config(args)  # the loader checks the systems file with the rest
    print(routing_table(config.systems, config.regions), end="")
    return 0


def _shared_store(config: Config, command: str) -> None:
    if config.settings.store.backend != "redis":
        raise ConfigError([f"{config.source}: store.backend: a 'memory' store lives inside "
                           f"the gateway process; `roam routes {command}` needs the shared "
                           "'redis' store"])


def _open_health(config: Config) -> tuple[Store, SharedHealth]:
    from gateway.health import SharedHealth
    from gateway.store import open_store

    store = config.settings.store
    opened = open_store(store.backend, redis_url=store.redis_url, prefix=store.prefix)
    return opened, SharedHealth(opened, config.systems)


def cmd_routes_status(args: argparse.Namespace) -> int:
    """Every instance's health as the running gateways share it."""
    config = _config(args)
    _shared_store(config, "status")
    return asyncio.run(_routes_status(config))


async def _routes_status(config: Config) -> int:
    from gateway.config import rules_for
    from gateway.health import status_table

    store, shared = _open_health(config)
    try:
        rows = await shared.status()
    finally:
        await store.close()
    rules = {system.id: rules_for(config.settings.health, system.health)
             for system in config.systems}
    where = f"the redis store (prefix {config.settings.store.prefix!r})"  # no URL: a password
    print(status_table(rows, rules, where=where, now=time.time()), end="")
    return 0


def cmd_routes_drain(args: argparse.Namespace) -> int:
    """Take an instance out of rotation (``drain``) or put it back (``undrain``)."""
    config = _config(args)
    _shared_store(config, args.action)
    return asyncio.run(_routes_drain(config, args))


async def _routes_drain(config: Config, args: argparse.Namespace) -> int:
    from gateway.health import UnknownInstance

    store, shared = _open_health(config)
    by = args.by or f"cli:{_user()}"
    try:
        change = shared.drain if args.action == "drain" else shared.undrain
        state = await change(args.system, args.instance, by=by, reason=args.reason)
    except UnknownInstance as exc:
        print(f"roam routes {args.action}: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    where = "out of rotation" if state.drained else "in rotation"
    print(f"{state.system} {state.instance}: {where} (health {state.state.replace('_', '-')})")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        return str(os.getuid())


def cmd_keys_generate(args: argparse.Namespace) -> int:
    from gateway.keys import generate_key_file

    if args.dir:
        directory = Path(args.dir)
    else:
        config = _config(args)
        if not config.settings.gateway.key_dir:
            raise ConfigError([f"{config.source}: gateway.key_dir: not set; pass --dir"])
        directory = config.path(config.settings.gateway.key_dir)
    path = generate_key_file(directory, args.alg)
    print(f"wrote {args.alg} key {path} (mode 0600)")
    return 0


def cmd_sessions_revoke(args: argparse.Namespace) -> int:
    """Log a person out everywhere: every session, every grant, every RP told."""
    config = _config(args)
    problems = []
    if config.settings.store.backend != "redis":
        problems.append(f"{config.source}: store.backend: sessions of a 'memory' store live "
                        "inside the gateway process; revoking needs the shared 'redis' store")
    if not config.settings.gateway.key_dir:
        problems.append(f"{config.source}: gateway.key_dir: logout tokens must be signed "
                        "with the gateway's own keys; ephemeral keys cannot be shared")
    if problems:
        raise ConfigError(problems)
    return asyncio.run(_revoke_subject(config, args.subject))


async def _revoke_subject(config: Config, subject: str) -> int:
    from gateway.wiring import build_gateway

    gateway = build_gateway(config)
    async with gateway.running():
        found = await gateway.sessions.sessions_of(subject)
        delivered = failed = 0
        for session in found:
            for delivery in await gateway.logout.end(session, reason="operator", wait=True):
                if delivery.status == "delivered":
                    delivered += 1
                else:
                    failed += 1
                    print(f"  back-channel logout to {delivery.client_id}: {delivery.status} "
                          f"after {delivery.attempts} attempts ({delivery.last_error})")
        print(f"subject {subject}: {len(found)} session(s) ended, back-channel logout "
              f"delivered {delivered}, not delivered {failed}")
        return 0 if failed == 0 else 1


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="roam", description="Roam single sign-on gateway")
    top.add_argument("--config", default=os.environ.get("ROAM_CONFIG", DEFAULT_CONFIG),
                     help=f"main config file (default: $ROAM_CONFIG or {DEFAULT_CONFIG})")
    sub = top.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the gateway").set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True)
    config.add_parser("check", help="validate every file; exit 2 on problems").set_defaults(
        func=cmd_config_check)

    clients = sub.add_parser("clients", help="relying parties").add_subparsers(
        dest="action", required=True)
    clients.add_parser("list", help="list registered clients").set_defaults(
        func=cmd_clients_list)
    clients.add_parser("secret", help="make a new client secret and its digest").set_defaults(
        func=cmd_clients_secret)

    routes = sub.add_parser("routes", help="service routing (精准到达)").add_subparsers(
        dest="action", required=True)
    routes.add_parser("check", help="validate config/systems.toml and print the routing "
                                    "table as configured").set_defaults(func=cmd_routes_check)
    routes.add_parser("status", help="every instance's health, from the running gateways' "
                                     "shared store").set_defaults(func=cmd_routes_status)
    for action, text in (("drain", "take an instance out of rotation"),
                         ("undrain", "put an instance back into rotation")):
        change = routes.add_parser(action, help=text)
        change.add_argument("system", help="the system's id in systems.toml")
        change.add_argument("instance", help="its instance: the URL, or its position (1, 2…)")
        change.add_argument("--reason", default="", help="why, for the audit trail")
        change.add_argument("--by", default="", help="who (default: cli:<login name>)")
        change.set_defaults(func=cmd_routes_drain)

    ops = sub.add_parser("ops", help="the operators' console").add_subparsers(
        dest="action", required=True)
    operator = ops.add_parser("operator", help="make an operator's entry for the operators "
                                               "file (password hash and a new TOTP secret)")
    operator.add_argument("name", help="the operator's account name (ASCII, e.g. ops-zhang)")
    operator.add_argument("--role", choices=["viewer", "operator"], default="viewer")
    operator.add_argument("--password-stdin", action="store_true",
                          help="read the password from the first line of stdin")
    operator.set_defaults(func=cmd_ops_operator)

    sessions = sub.add_parser("sessions", help="gateway sessions").add_subparsers(
        dest="action", required=True)
    revoke = sessions.add_parser(
        "revoke", help="log a subject out everywhere (sessions, tokens, back-channel logout)")
    revoke.add_argument("--subject", required=True, help="the subject id (sub)")
    revoke.set_defaults(func=cmd_sessions_revoke)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True)
    generate = keys.add_parser("generate", help="write a new private key (PEM, 0600)")
    generate.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    generate.add_argument("--dir", help="key directory (default: gateway.key_dir)")
    generate.set_defaults(func=cmd_keys_generate)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging(logging.INFO)  # JSON lines on stderr, for every command and serving
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print("configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except KeyError_ as exc:
        print(f"key problem: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:  # the shared store did not answer (its URL is never shown)
        print(f"store problem: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
