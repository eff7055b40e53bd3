"""The demo's pieces on free ports, as ``make demo`` wires them.

``demo_systems_file`` moves the shipped systems file's demo systems to other ports, so a
test never meets a demo someone is running on the fixed ones. ``miniprogram_demo`` (a
module-scoped fixture, registered in tests/conftest.py) runs the mini-program's side of
the demo: the gateway with mock WeChat and Alipay and the verification service its
binding asks over HTTP (verifier ``http``), the page that plays the mini-program, the demo
RP 长沙 and the province's legacy system behind the proxy on its own host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from demo.run import demo_config, demo_legacy_apps, demo_miniprogram, demo_rp_apps
from gateway.app import create_app
from gateway.config import load_config
from gateway.urls import origin_on
from tests.support.gateway import REPO, with_systems
from tests.support.servers import free_port, serve


def demo_systems_file(directory: Path, ports: Mapping[str, int]) -> Path:
    """config/systems.toml written into ``directory`` with each named system's instance
    (``http://127.0.0.1:<port>``) on the port given."""
    shipped = load_config(REPO / "config" / "roam.toml", env={}).systems
    text = (REPO / "config" / "systems.toml").read_text("utf-8")
    for system_id, port in ports.items():
        system = shipped.get(system_id)
        if system is None:
            raise ValueError(f"no demo system {system_id!r}")
        old = system.instances[0].rstrip("/")
        text = text.replace(f'"{old}"', f'"http://127.0.0.1:{port}"')
        text = text.replace(f'"{old}/"', f'"http://127.0.0.1:{port}/"')  # a CAS service
    path = directory / "systems.toml"
    path.write_text(text, "utf-8")
    return path


@dataclass(frozen=True)
class MiniProgramDemo:
    gateway: str
    page: str  # the mini-program page
    rp: str  # 长沙市政务服务 (changsha-gov)
    rp_l3: str  # 湘潭市住房公积金 (xiangtan-gov), which requires L3
    province: str  # the proxied system's own origin (hunan-province.localhost)
    verification_calls: list[str]  # the paths the verification service was asked for
    platforms: dict[str, str]  # the mocks' URLs, as the page's backend takes them


@pytest.fixture(scope="module")
def miniprogram_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniProgramDemo]:
    tmp = tmp_path_factory.mktemp("miniprogram")
    gateway_port, province_port = free_port(), free_port()
    ports = {"changsha-gov": free_port(), "xiangtan-gov": free_port(),
             "hunan-miniapp": free_port()}
    shipped = load_config(REPO / "config" / "roam.toml", env={})
    config = with_systems(demo_config(shipped, gateway_port=gateway_port, rp_ports=ports),
                          demo_systems_file(tmp, {"hunan-province": province_port}))
    config, env, apps = demo_miniprogram(config, tmp)
    assert config.settings.binding.verifier == "http"  # binding asks the service over HTTP
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        gateway_app = create_app(config)
    wechat, alipay = config.settings.channels.wechat, config.settings.channels.alipay
    assert wechat is not None
    assert alipay is not None
    platforms = {"wechat_url": wechat.base_url,
                 "alipay_url": alipay.gateway_url.removesuffix("/gateway.do"),
                 "verification_url": config.settings.binding.base_url}
    calls = next(app.state.calls for app, _ in apps if hasattr(app.state, "calls"))
    with contextlib.ExitStack() as running:
        for app, port in apps:
            running.enter_context(serve(app, port))
        rps = demo_rp_apps(config)
        rp = running.enter_context(serve(rps["changsha-gov"][1], ports["changsha-gov"]))
        rp_l3 = running.enter_context(serve(rps["xiangtan-gov"][1], ports["xiangtan-gov"]))
        running.enter_context(serve(demo_legacy_apps(config)["hunan-province"][1],
                                    province_port))
        gateway = running.enter_context(serve(gateway_app, gateway_port))
        yield MiniProgramDemo(gateway, f"http://127.0.0.1:{ports['hunan-miniapp']}", rp, rp_l3,
                              origin_on(gateway, "hunan-province.localhost"), calls,
                              platforms)
