"""The demo: the gateway plus three real relying parties (长沙, 岳阳, 湘潭) on loopback.

``make demo`` (``python -m demo``) runs it so a person can watch single sign-on happen in a
browser: log in at one city's system, open the next and arrive logged in, open 湘潭's
housing fund (it requires L3) and step up with a face check without logging in again,
then log out at one system and watch the others learn of it through back-channel logout.
The RPs are real OIDC clients (authlib's Starlette integration), so the demo also proves
the gateway interoperates. It is not part of the gateway: the wheel does not ship it, and
its extra dependency is the ``demo`` extra (``pip install -e ".[demo]"``).

Two legacy systems run beside them (``demo.legacy``): the provincial platform
behind the ``signed-header`` connector (reached through the gateway's proxy) and 岳麓区's
property register, a CAS client of the gateway. ``/go/<item>?region=…`` (精准到达) takes a
person to the right one of all these systems by region; the banner lists example links.

The mini-program's side runs too: mock WeChat and Alipay (``demo.platforms``), the
real-name and face verification service the gateway's binding asks (``demo.verification``),
and a page that plays the mini-program (``demo.miniprogram``): log in with a platform
code, bind by real name and face, then open a city system through a one-time URL.
"""

from __future__ import annotations

import socket as _socket
from types import MappingProxyType as _Frozen

__all__ = ["DEMO_ARRIVALS", "DEMO_LEGACY_SYSTEMS", "DEMO_SECRETS", "free_port"]

#: Client secrets of the demo RPs. Only their SHA-256 digests are in config/clients.toml;
#: they are public on purpose (the demo prints them) and must never be reused.
DEMO_SECRETS: _Frozen[str, str] = _Frozen({
    "changsha-gov": "changsha-demo-secret-4f1c2a",
    "yueyang-gov": "yueyang-demo-secret-9b7e3d",
    "xiangtan-gov": "xiangtan-demo-secret-e35596",
})

#: The legacy systems of config/systems.toml that ``make demo`` runs, and their connectors.
DEMO_LEGACY_SYSTEMS: _Frozen[str, str] = _Frozen({
    "hunan-province": "signed-header",
    "yuelu-bdc": "cas",
})

#: 事项 links the banner (and README) offer: (item, region, what it is, where it arrives).
DEMO_ARRIVALS: tuple[tuple[str, str, str, str], ...] = (
    ("430000-BDC-001", "430104", "不动产登记查询 · 长沙市岳麓区",
     "岳麓区不动产登记（旧系统，CAS）"),
    ("430000-BDC-001", "430702", "不动产登记查询 · 常德市武陵区",
     "湖南省政务服务平台（旧系统，签名请求头，经网关代理）"),
    ("430000-SB-001", "430602", "社会保险参保查询 · 岳阳市岳阳楼区", "岳阳市政务服务（OIDC）"),
    ("430000-GJJ-001", "430302", "住房公积金提取 · 湘潭市雨湖区",
     "湘潭市住房公积金（OIDC，需 L3 实人认证）"),
)


def free_port() -> int:
    """A loopback port nothing listens on now: for the demo's services without a fixed
    port of their own (the mock platforms and the verification service)."""
    with _socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
