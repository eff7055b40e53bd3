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
"""

from __future__ import annotations

from types import MappingProxyType as _Frozen

__all__ = ["DEMO_LEGACY_SYSTEMS", "DEMO_SECRETS"]

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
