"""``make demo`` (``python -m demo``): the gateway, the three demo RPs, two legacy
systems and the mini-program's side (mock WeChat and Alipay, the verification service,
the page that plays the mini-program) in one process.

Ten uvicorn servers share one event loop. uvicorn's own signal capture is per server and
chains badly when several run at once, so this module owns SIGINT/SIGTERM and asks every
server to stop together (a second Ctrl+C forces it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
import uvicorn
from starlette.applications import Starlette

from connectors.cas import CasConfig
from connectors.signed_header import SignedHeaderConfig
from demo import DEMO_ARRIVALS, DEMO_LEGACY_SYSTEMS, DEMO_SECRETS
from demo.legacy import create_cas_app, create_signed_header_app
from demo.miniprogram import miniprogram_app
from demo.miniprogram_client import CLIENT_ID as MINIAPP
from demo.platforms import demo_platforms
from demo.rp import LEVEL_NAMES, create_rp_app
from demo.verification import demo_verification
from gateway.config import ClientConfig, Config
from gateway.login.directory import load_entries
from gateway.login.stepup import LEVEL_NAMES as STEP_UP_NAMES
from gateway.privacy import mask_name
from gateway.server import uvicorn_config

__all__ = ["DEMO_ARRIVALS", "demo_banner", "demo_config", "demo_legacy_apps",
           "demo_miniprogram", "demo_rp_apps", "rp_base_url", "run_demo"]

DEMO_PASSWORD = "Roam@2026"  # every demo account's; printed on purpose (fictional people)
CALLBACK_PATH = "/callback"


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def demo_config(config: Config, *, gateway_port: int, rp_ports: Mapping[str, int]) -> Config:
    """A copy of ``config`` with the issuer and the named clients' URIs on other ports.

    Tests use it to run the whole demo on free ports. Every redirect, post-logout and
    back-channel logout URI of a client in ``rp_ports`` moves to that client's port; other
    clients are untouched.
    """
    unknown = sorted(set(rp_ports) - {c.client_id for c in config.clients})
    if unknown:
        raise ValueError(f"demo_config: no such clients: {unknown}")
    gateway = config.settings.gateway.model_copy(
        update={"issuer": _with_port(config.issuer, gateway_port), "port": gateway_port})
    settings = config.settings.model_copy(update={"gateway": gateway})

    def moved(client: ClientConfig) -> ClientConfig:
        port = rp_ports.get(client.client_id)
        if port is None:
            return client
        return client.model_copy(update={
            "redirect_uris": tuple(_with_port(u, port) for u in client.redirect_uris),
            "post_logout_redirect_uris": tuple(
                _with_port(u, port) for u in client.post_logout_redirect_uris),
            "backchannel_logout_uri": (
                _with_port(client.backchannel_logout_uri, port)
                if client.backchannel_logout_uri else None),
            "initiate_login_uri": (
                _with_port(client.initiate_login_uri, port)
                if client.initiate_login_uri else None),
        })

    return config.revised(settings=settings, clients=tuple(moved(c) for c in config.clients))


def rp_base_url(client: ClientConfig) -> str:
    """The RP's own origin, from its first redirect URI (which must end in /callback)."""
    first = client.redirect_uris[0]
    if not first.endswith(CALLBACK_PATH):
        raise ValueError(f"{client.client_id}: first redirect URI {first!r} must end in "
                         f"{CALLBACK_PATH} for the demo RP")
    return first[: -len(CALLBACK_PATH)]


def _demo_clients(config: Config) -> list[ClientConfig]:
    clients = [config.client(client_id) for client_id in DEMO_SECRETS]
    missing = [cid for cid, c in zip(DEMO_SECRETS, clients, strict=True) if c is None]
    if missing:
        raise ValueError(f"{config.source}: demo clients missing: {missing}")
    return [c for c in clients if c is not None]


def _required_acr(client: ClientConfig) -> str | None:
    """The level the gateway holds the client's sessions to (the highest it registered)."""
    return max(client.default_acr_values, default=None)


def demo_rp_apps(config: Config) -> dict[str, tuple[str, Starlette]]:
    """client_id -> (base URL, RP app) for each demo client in ``config``."""
    apps: dict[str, tuple[str, Starlette]] = {}
    for client in _demo_clients(config):
        base_url = rp_base_url(client)
        apps[client.client_id] = (base_url, create_rp_app(
            title=client.client_name,
            issuer=config.issuer,
            client_id=client.client_id,
            client_secret=DEMO_SECRETS[client.client_id],
            base_url=base_url,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            scope=" ".join(s for s in ("openid", "profile", "region") if s in client.scopes),
            required_acr=_required_acr(client),
        ))
    return apps


def demo_legacy_apps(config: Config) -> dict[str, tuple[str, Starlette]]:
    """system id -> (base URL, legacy app) for each demo legacy system of the systems file.

    The base URL is the system's first instance; the signed-header app gets the secret the
    gateway signs with (the system's connector settings), the CAS app the gateway's issuer.
    """
    systems = config.systems
    apps: dict[str, tuple[str, Starlette]] = {}
    for system_id, connector in DEMO_LEGACY_SYSTEMS.items():
        system = systems.get(system_id)
        if system is None or system.connector != connector:
            raise ValueError(f"{config.source}: demo legacy system {system_id!r} with "
                             f"connector {connector!r} missing from the systems file")
        base_url = system.instances[0].rstrip("/")
        if connector == "signed-header":
            settings = SignedHeaderConfig.model_validate(system.connector_settings)
            app = create_signed_header_app(title=system.name,
                                           secret=settings.resolved_secret(),
                                           window=settings.window)
        else:
            services = CasConfig.model_validate(system.connector_settings).services
            if f"{base_url}/" not in services:
                raise ValueError(f"{system_id}: {base_url}/ must be one of its cas services")
            app = create_cas_app(title=system.name, gateway_url=config.issuer,
                                 base_url=base_url)
        apps[system_id] = (base_url, app)
    return apps


def demo_miniprogram(config: Config, key_dir: Path) -> tuple[
        Config, dict[str, str], list[tuple[Starlette, int]]]:
    """The mini-program's side of the demo: ``config`` with both channels on mock platforms
    (demo.platforms, Alipay's keys made in ``key_dir``) and binding on the verification
    service (demo.verification), the environment the gateway then needs (their fictional
    secrets), and the apps with their ports: the mocks, the service, and the page that
    plays the mini-program on the port of ``hunan-miniapp``'s redirect URI."""
    config, env, apps = demo_platforms(config, key_dir)
    config, verification_env, verification = demo_verification(config)
    client = config.client(MINIAPP)
    if client is None:
        raise ValueError(f"{config.source}: demo client {MINIAPP!r} missing")
    page = (miniprogram_app(config), _port_of(rp_base_url(client)))
    return config, {**env, **verification_env}, [*apps, verification, page]


def _miniprogram_lines(config: Config) -> list[str]:
    """The banner's mini-program part: the page, and what it runs against."""
    client = config.client(MINIAPP)
    if client is None:
        return []
    lines = ["小程序（在浏览器中模拟微信 / 支付宝小程序）/ the mini-program, played in a browser:",
             f"  {rp_base_url(client)}/",
             "  登录（无密码）→ 实名绑定 L2 → 人脸核验 L3 → 一次性链接打开城市服务（无感切换）",
             "  log in with a platform code → bind by real name (L2) and face (L3) →",
             "  open a city system through a one-time URL, logged in (seamless switching)"]
    wechat, alipay = config.settings.channels.wechat, config.settings.channels.alipay
    if wechat is not None and alipay is not None:
        lines.append(f"  模拟微信 / mock WeChat: {wechat.base_url}   "
                     f"模拟支付宝 / mock Alipay: {alipay.gateway_url}")
        lines.append(f"  code=$(curl -s -XPOST {wechat.base_url}/mock/login "
                     "-d '{\"openid\":\"o-demo-zhang\"}' | jq -r .code)")
        lines.append(f"  curl -s {config.issuer}/token -d client_id={MINIAPP} "
                     "-d grant_type=urn:roam:params:oauth:grant-type:channel-code "
                     "-d channel=wechat -d \"code=$code\"")
    binding = config.settings.binding
    if binding.verifier == "http":
        lines.append("  实名/人脸核验服务（模拟）/ verification service (mock): "
                     + binding.base_url)
    return lines


def demo_banner(config: Config, *, accounts: int = 3) -> str:
    """What to open and whom to log in as, in Chinese and English.

    The phone numbers are printed in full: the accounts are fictional and a person has to
    type them. One account per assurance level, lowest first, up to ``accounts``.
    """
    entries = load_entries(config.path(config.settings.login.directory_file))
    by_level: dict[str, list[str]] = {}
    for entry in entries:
        level = entry.verified_level  # how far the account was verified
        if entry.kind.value == "natural" and level not in by_level:
            name = mask_name(str(entry.claims.get("name", "")))
            by_level[level] = [entry.phone, level, LEVEL_NAMES.get(level, ""), name]
    shown = [by_level[level] for level in sorted(by_level)][:accounts]
    lines = ["", "Roam 演示 / demo", "=" * 40, "打开 / open:"]
    for index, client in enumerate(_demo_clients(config)):
        label = f"RP {chr(ord('A') + index)}"
        lines.append(f"  {label}  {client.client_name} ({client.client_id}): "
                     f"{rp_base_url(client)}/")
        required = _required_acr(client)
        if required:
            meaning = STEP_UP_NAMES.get(required, "")
            lines.append(f"        需要 {required} {meaning}（已登录时升级认证，无需重新登录）"
                         f" / requires {required}: step-up, not a new login")
    lines.append("精准到达（事项 → 按地区到达办理系统）/ precise arrival, by item and region:")
    lines.append(f"  事项列表 / all items: {config.issuer}/items?region=430104")
    for item, region, what, where in DEMO_ARRIVALS:
        lines.append(f"  {what} → {where}")
        lines.append(f"        {config.issuer}/go/{item}?region={region}")
    discovery = f"{config.issuer}/.well-known/openid-configuration"
    lines.append(f"  网关发现文档 / gateway discovery: {discovery}")
    lines.append("演示账号（虚构）/ demo accounts (fictional):")
    for phone, level, meaning, name in shown:
        lines.append(f"  {phone}  {level} {meaning}  {name}")
    lines.append(f"  密码 / password: {DEMO_PASSWORD}")
    lines.append(f"  我的登录 / my logins: {config.issuer}/my/logins")
    lines += _miniprogram_lines(config)
    lines.append("提示：先在 RP A 登录，再打开 RP B，无需再次登录；")
    lines.append("      打开 RP C 时只需做一次人脸核验（演示），无需重新登录；")
    lines.append("      在 RP B 点“退出登录”，再刷新 RP A：它已通过后台通道得知退出。")
    lines.append("      小程序页：登录 → 实名绑定 → 扫脸 → 获取一次性链接，在无痕窗口打开，"
                 "即已登录长沙市政务服务。")
    lines.append("Hint: log in at RP A, then open RP B: no second login.")
    lines.append("      RP C needs L3: a (simulated) face check steps the session up.")
    lines.append("      Log out at RP B, reload RP A: the back channel has told it.")
    lines.append("      Mini-program page: log in, bind, face scan, get a one-time link and")
    lines.append("      open it in a private window: you are logged in at RP A.")
    lines.append("按 Ctrl+C 停止 / press Ctrl+C to stop.")
    lines.append("")
    return "\n".join(lines)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``run_demo``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_demo(config: Config, *, host: str = "127.0.0.1",
                   stop: anyio.Event | None = None) -> None:
    """Serve the gateway, demo RPs and legacy systems until Ctrl+C, SIGTERM or ``stop``."""
    from gateway.app import create_app  # the app factory pulls in the whole gateway

    with tempfile.TemporaryDirectory(prefix="roam-demo-alipay-") as key_dir:
        config, env, channel_apps = demo_miniprogram(config, Path(key_dir))
        for name, value in env.items():
            os.environ[name] = value  # the demo's own process: the mocks' fictional secrets
        gateway = create_app(config)  # the channels read their keys, the verifier its secret
    apps: list[tuple[Starlette, int]] = [(gateway, _port_of(config.issuer))]
    apps += channel_apps
    apps += [(app, _port_of(base)) for base, app in demo_rp_apps(config).values()]
    apps += [(app, _port_of(base)) for base, app in demo_legacy_apps(config).values()]
    servers = [
        _Server(uvicorn_config(app, host=host, port=port, log_level="warning"))
        for app, port in apps
    ]
    print(demo_banner(config), flush=True)

    def stop_all(force: bool = False) -> None:
        for server in servers:
            server.should_exit = True
            server.force_exit = server.force_exit or force

    async def watch_signals() -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop_all(force=all(s.should_exit for s in servers))

    async def watch_event(event: anyio.Event) -> None:
        await event.wait()
        stop_all()

    failed: list[int] = []

    async def serve(server: uvicorn.Server) -> None:
        try:
            await server.serve()
        except SystemExit as exc:  # uvicorn exits when it cannot bind; it logged why
            failed.append(exc.code if isinstance(exc.code, int) else 1)
        finally:
            stop_all()  # one server ending ends the demo: a partial demo only confuses

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        if stop is not None:
            tg.start_soon(watch_event, stop)
        async with anyio.create_task_group() as serving:
            for server in servers:
                serving.start_soon(serve, server)
        tg.cancel_scope.cancel()
    if failed:
        raise SystemExit(failed[0])
