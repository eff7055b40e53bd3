"""``roam``: run the gateway, and look after keys, clients, routes, sessions, config and
the audit trail.

``roam routes status|drain|undrain`` work on the running gateways' shared health
(:mod:`gateway.health`) through the store the config names, without a gateway.

The demo is not part of the gateway: ``make demo`` (``python -m demo``) runs it.

A bad configuration prints every problem (file and key) and exits with status 2, with
no traceback: operators read the message, not a stack. What an operator changes here
(sessions revoked, keys made) is written to the audit trail with their user name.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.audit import (
    Outcome,
    audit_event,
    audit_problems,
    open_sink,
    verify_trail,
)
from gateway.cli.clients import add_client_commands
from gateway.cli.common import DEFAULT_CONFIG, _audited, _config, _operator, _user
from gateway.config import Config
from gateway.errors import AuditError, ConfigError, KeyError_, StoreError
from gateway.logs import configure_logging
from gateway.store.memory import MemoryStore

if TYPE_CHECKING:
    from gateway.health import SharedHealth
    from gateway.store import Store

__all__ = ["main", "parser"]

MAX_WORKERS = 64


def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    import uvicorn
    from prometheus_client.multiprocess import mark_process_dead

    from gateway import access_log
    from gateway.app import create_app
    from gateway.metrics.recorder import MULTIPROC_ENV
    from gateway.proxy.dispatch import HeadLimits
    from gateway.server import freeze_startup_objects, uvicorn_config
    from gateway.workers import Supervisor, bind_socket, clear_metric_files, process_problems

    config = _config(args)
    gw = config.settings.gateway
    workers = args.workers or gw.workers
    problems = process_problems(config, workers, os.environ)
    if problems:
        raise ConfigError(problems)
    access_log.install()  # query strings can hold tickets: never logged

    def serve(sockets: list[socket.socket] | None = None) -> None:
        app = create_app(config)  # in each worker: its own pool, trail and prober
        freeze_startup_objects()
        uvicorn.Server(uvicorn_config(app, host=gw.host, port=gw.port,
                                      limits=HeadLimits.of(gw),
                                      trusted_proxies=gw.trusted_proxies,
                                      https=config.issuer.startswith("https://"))).run(sockets)

    if workers == 1:
        serve()
        return 0
    files = os.environ.get(MULTIPROC_ENV) if config.settings.metrics.enabled else None
    if files:
        clear_metric_files(files)  # a new worker must not meet an old one's counts

    def gone(pid: int) -> None:
        if files:
            mark_process_dead(pid, files)  # type: ignore[no-untyped-call]

    return Supervisor(workers, bind_socket(gw.host, gw.port), lambda sock: serve([sock]),
                      on_death=gone).run()


def cmd_config_check(args: argparse.Namespace) -> int:
    """Every file (main, clients, systems, identity source, keys, the metrics token, the
    audit trail's directory or connection string), checked without an app: what would
    stop ``roam serve`` stops here, with every problem at once."""
    from connectors.base import ConnectorContext
    from gateway.metrics.endpoint import metrics_token
    from gateway.metrics.recorder import multiprocess_problems
    from gateway.oidc.registration import statement_keys
    from gateway.wiring.parts import (
        key_problems,
        load_keys,
        open_connectors,
        open_digests,
        open_operators,
        open_source,
    )
    from gateway.workers import process_problems

    config = _config(args)  # the main, clients and systems files, and the rules across them
    keys = load_keys(config)
    problems = key_problems(config, keys)
    workers = args.workers or config.settings.gateway.workers
    problems.extend(process_problems(config, workers, os.environ))
    if config.settings.metrics.enabled:
        problems.extend(multiprocess_problems(os.environ))
        try:
            metrics_token(config)  # its file, if it names one
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems.extend(audit_problems(config))  # the audit file's directory, the DSN's syntax
    try:
        statement_keys(config)
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


def cmd_ops_operator(args: argparse.Namespace) -> int:
    """A new operator's entry for the operators file, and the TOTP secret to enrol in an
    authenticator app (an ``otpauth://`` URI, which apps read from a QR code)."""

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
    from gateway.wiring.parts import configured_store

    opened = configured_store(config)
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
    try:
        config = _config(args)
    except ConfigError:
        return 0  # bootstrapping with --dir before there is a config: nothing to audit to
    _audited(config, lambda: audit_event("operator.keys.generate", "success",
                                         operator=_operator(), alg=args.alg, file=path.name))
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    """The next key, published now and signing after ``[keys] publish_ahead``; keys
    retired by now deleted (gateway/key_rotation.py)."""
    from gateway.key_rotation import rotate

    config = _config(args)
    if not config.settings.gateway.key_dir:
        raise ConfigError([f"{config.source}: gateway.key_dir: not set: ephemeral keys "
                           "cannot be rotated"])
    schedule = config.settings.keys  # a bad key file: KeyError_, nothing written (exit 2)
    done = rotate(config.path(config.settings.gateway.key_dir), args.alg,
                  publish_ahead=schedule.publish_ahead, retire_after=schedule.retire_after)
    signs = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(done.signs_from))
    print(f"wrote {args.alg} key {done.added} (mode 0600): published by every gateway "
          f"within {schedule.reload_interval} s, signing from {signs}; the key it replaces "
          f"stays published {schedule.retire_after} s more")
    for path in done.deleted:
        print(f"deleted retired key {path}")
    _audited(config, lambda: audit_event(
        "operator.keys.rotate", "success", operator=_operator(), alg=args.alg,
        file=done.added.name, signs_from=int(done.signs_from),
        deleted=",".join(p.name for p in done.deleted)))
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
        audit_event("operator.sessions.revoke", "success" if failed == 0 else "failure",
                    subject=subject, operator=_operator(), sessions=len(found),
                    delivered=delivered, not_delivered=failed)
        return 0 if failed == 0 else 1


def _since(value: str) -> datetime:
    """``2026-01-01`` or an ISO 8601 time; without an offset, this machine's local time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date or time: {value!r} (e.g. 2026-01-01 or 2026-01-01T08:00+08:00)"
        ) from None
    return (moment.astimezone() if moment.tzinfo is None else moment).astimezone(UTC)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the whole trail: exit 0 if every event is in place, 1 naming the first one
    that is not, 2 if the trail cannot be read."""
    config = _config(args)
    sink = open_sink(config)
    try:
        verdict = asyncio.run(verify_trail(sink))
    except AuditError as error:
        print(f"audit problem: {error}", file=sys.stderr)
        return 2
    first = verdict.anchor.seq + 1
    if verdict.ok:
        span = f"seq {first}..{verdict.last.seq}" if verdict.count else "no events"
        pruned = f", pruned up to seq {verdict.anchor.seq}" if verdict.anchor.seq else ""
        print(f"audit trail OK: {verdict.count} events ({span}{pruned}) in {sink.name}; "
              f"head hash {verdict.last.hash}")
    else:
        print(f"audit trail BROKEN: {verdict.problem}", file=sys.stderr)
        print(f"  {verdict.count} events before it verified (from seq {first}) in {sink.name}",
              file=sys.stderr)
    outcome: Outcome = "success" if verdict.ok else "failure"
    _audited(config, lambda: audit_event(
        "operator.audit.verify", outcome, operator=_operator(), events=verdict.count,
        problem=str(verdict.problem) if verdict.problem else None))
    return 0 if verdict.ok else 1


async def _export(config: Config, since: datetime, out: Path | None) -> int:
    import orjson

    sink = open_sink(config)
    count = 0
    stream = open(out, "ab") if out is not None else sys.stdout.buffer  # noqa: SIM115, ASYNC230
    try:
        async with sink.snapshot(since=since) as snapshot:
            async for link in snapshot.links:
                stream.write(orjson.dumps(link.to_json()) + b"\n")
                count += 1
    finally:
        stream.flush()
        if out is not None:
            stream.close()
        await sink.close()
    return count


def cmd_audit_export(args: argparse.Namespace) -> int:
    """Events since a time, as JSON lines (one stored event each, its ``seq`` and hashes
    included) for a SIEM: on stdout, or appended to ``--output``."""
    config = _config(args)
    out = Path(args.output) if args.output else None
    try:
        count = asyncio.run(_export(config, args.since, out))
    except AuditError as error:
        print(f"audit problem: {error}", file=sys.stderr)
        return 2
    print(f"exported {count} events since {args.since.isoformat()}", file=sys.stderr)
    _audited(config, lambda: audit_event("operator.audit.export", "success",
                                         operator=_operator(), events=count,
                                         since=args.since.isoformat()))
    return 0


def _workers(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"a number of processes from 1 to {MAX_WORKERS}")
    return count


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="roam", description="Roam single sign-on gateway")
    top.add_argument("--config", default=os.environ.get("ROAM_CONFIG", DEFAULT_CONFIG),
                     help=f"main config file (default: $ROAM_CONFIG or {DEFAULT_CONFIG})")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--workers", type=_workers, default=None,
                       help="worker processes on one port (default: gateway.workers); "
                            "more than 1 needs redis, a key directory, the secret and "
                            "$PROMETHEUS_MULTIPROC_DIR")
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True)
    check = config.add_parser("check", help="validate every file; exit 2 on problems")
    check.add_argument("--workers", type=_workers, default=None,
                       help="check for this many workers (default: gateway.workers)")
    check.set_defaults(func=cmd_config_check)

    add_client_commands(sub)

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

    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="action", required=True)
    audit.add_parser("verify", help="check the hash chain; exit 1 naming the first bad "
                                    "event").set_defaults(func=cmd_audit_verify)
    export = audit.add_parser("export", help="events since a time, as JSON lines (SIEM)")
    export.add_argument("--since", required=True, type=_since,
                        help="a date or ISO 8601 time (local time without an offset)")
    export.add_argument("--output", help="append to this file instead of stdout")
    export.set_defaults(func=cmd_audit_export)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True)
    generate = keys.add_parser("generate", help="write a new private key (PEM, 0600)")
    generate.add_argument("--alg", choices=["RS256", "ES256"], default="RS256")
    generate.add_argument("--dir", help="key directory (default: gateway.key_dir)")
    generate.set_defaults(func=cmd_keys_generate)
    rotate = keys.add_parser("rotate", help="add the next key on [keys]' schedule; delete "
                                            "retired ones")
    rotate.add_argument("--alg", choices=["RS256", "ES256"], required=True)
    rotate.set_defaults(func=cmd_keys_rotate)
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

