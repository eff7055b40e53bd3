"""The systems file (``config/systems.toml``): which city/county system handles which
service item (事项), and how the gateway reaches it.

It holds ``[[item]]`` tables (the catalogue of service items, so pages can show names) and
``[[system]]`` tables, one per city/county system::

    [[item]]
    code = "430000-GJJ-001"
    name = "住房公积金提取"

    [[system]]
    id = "xiangtan-gov"
    name = "湘潭市住房公积金"
    region = "430300"            # a current Hunan GB/T 2260 code ...
    level = "prefecture"         # ... and its level
    instances = ["https://gjj.xiangtan.gov.cn"]
    connector = "oidc"           # a type of the connectors registry
    connector_settings = { client_id = "xiangtan-gov" }
    items = ["430000-GJJ-001"]
    min_acr = "L3"
    health = { path = "/healthz", interval = 5 }   # [health] in roam.toml for the rest

:func:`load_systems` reports every problem at once, each naming the file and key
(``config/systems.toml: system[2].region: ...``). Each system's connector settings are
validated by the connectors registry once, here; the parsed settings travel with the
registry (:meth:`Systems.connector_config`) so the gateway opens them without checking again.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from connectors.base import ConnectorConfig, RelyingParty, Route
from connectors.registry import load_entry_points, parse_connector
from gateway.config.files import ClaimNames, Strict, problems_of, read_toml
from gateway.config.health import HealthRules
from gateway.errors import ConfigError
from gateway.regions import Level, RegionDirectory
from gateway.urls import HOST_NAME, is_loopback_http, within_domain

__all__ = [
    "Acr",
    "ServiceItem",
    "SystemConfig",
    "Systems",
    "load_systems",
    "route_of",
]

Acr = Literal["L1", "L2", "L3", "L4"]

_ITEM_CODE = r"^[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?$"


class ServiceItem(Strict):
    """One service item (事项) of the catalogue, e.g. ``430000-GJJ-001`` 住房公积金提取."""

    code: str = Field(pattern=_ITEM_CODE)
    name: str = Field(min_length=1)


def _check_instance(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback_http(value):
        raise ValueError(f"{value!r} uses plain http on a non-loopback host")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must have no query or fragment (it is a base URL)")
    return value


class SystemConfig(Strict):
    """One city/county system and how the gateway reaches it."""

    id: str = Field(pattern=r"^[a-z0-9-]{3,64}$")
    name: str = Field(min_length=1)
    region: str = Field(pattern=r"^[0-9]{6}$")
    level: Level
    instances: tuple[str, ...] = Field(min_length=1)
    connector: str = Field(pattern=r"^[a-z0-9][a-z0-9._\-]{0,63}$")
    connector_settings: dict[str, Any] = Field(default_factory=dict)
    items: tuple[str, ...] = Field(min_length=1)
    min_acr: Acr = "L1"
    claims: ClaimNames = ()  # claims released to it
    privileged: bool = False  # may see unmasked ID and phone numbers
    timeout: float = Field(default=30.0, gt=0, le=600)  # proxy: connect and each read
    hosts: tuple[str, ...] = ()  # host names the gateway serves this system on
    health: HealthRules | None = None  # keys set here override [health] for this system
    # OIDC Core §8 for connectors: "pairwise" presents a sub of the system's sector alone
    subject_type: Literal["public", "pairwise"] = "public"
    sector: str = Field(default="", pattern=r"^([a-z0-9.-]{1,253})?$")  # "": hosts[0] or id

    @property
    def subject_sector(self) -> str:
        """The sector whose ``sub`` the system sees (with ``subject_type`` pairwise)."""
        return self.sector or (self.hosts[0] if self.hosts else self.id)

    @field_validator("instances")
    @classmethod
    def _instances(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            _check_instance(url)
        if len(set(value)) != len(value):
            raise ValueError("an instance is listed twice")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if len(host) > 253 or not re.match(HOST_NAME, host):
                raise ValueError(f"{host!r} is not a lower-case DNS host name (no port)")
        if len(set(value)) != len(value):
            raise ValueError("a host is listed twice")
        return value

    @field_validator("items")
    @classmethod
    def _items(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("an item is listed twice")
        return value


class Systems:
    """The registry: systems by id, by item and by region, and the item catalogue."""

    def __init__(self, systems: Iterable[SystemConfig], items: Iterable[ServiceItem],
                 connectors: Mapping[str, ConnectorConfig] | None = None) -> None:
        self._by_id: dict[str, SystemConfig] = {}
        for system in systems:
            if system.id in self._by_id:
                raise ValueError(f"system {system.id!r} appears twice")
            self._by_id[system.id] = system
        self._by_host: dict[str, SystemConfig] = {}
        for system in self._by_id.values():
            for host in system.hosts:
                if host in self._by_host:
                    raise ValueError(f"host {host!r} is served for two systems")
                self._by_host[host] = system
        self._items = {item.code: item for item in items}
        self._handling: dict[str, list[SystemConfig]] = {code: [] for code in self._items}
        for system in self._by_id.values():
            for code in system.items:
                if code not in self._items:
                    raise ValueError(f"system {system.id!r}: item {code!r} is not in the catalogue")
                self._handling[code].append(system)
        self._connectors = dict(connectors or {})

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[SystemConfig]:
        return iter(self._by_id.values())

    def get(self, system_id: str) -> SystemConfig | None:
        return self._by_id.get(system_id)

    def connector_config(self, system_id: str) -> ConnectorConfig:
        """The system's connector settings, parsed by the registry (once: the loader's
        parse is kept; a registry built by hand parses on first ask, ``ConfigError``)."""
        found = self._connectors.get(system_id)
        if found is None:
            system = self._by_id[system_id]
            found = self._connectors[system_id] = parse_connector(system.connector,
                                                                  system.connector_settings)
        return found

    def by_host(self) -> dict[str, str]:
        """Host name → id of the system served on it."""
        return {host: system.id for host, system in self._by_host.items()}

    def item(self, code: str) -> ServiceItem | None:
        """The catalogue entry for ``code``; None if the catalogue has no such item."""
        return self._items.get(code)

    def items(self) -> list[ServiceItem]:
        """The catalogue, in file order."""
        return list(self._items.values())

    def handling(self, item: str) -> list[SystemConfig]:
        """Every system that handles ``item``, anywhere in the province, in file order."""
        return list(self._handling.get(item, ()))

    def at(self, region: str, item: str) -> list[SystemConfig]:
        """The systems registered exactly at ``region`` that handle ``item``."""
        return [s for s in self._handling.get(item, ()) if s.region == region]


def _tables(path: Path, data: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        problems.append(f"{path}: {key}: expected [[{key}]] tables")
        return []
    return raw


def route_of(system: SystemConfig, instance: str) -> Route:
    """What a connector is told about the system a person goes to, at one instance."""
    return Route(system_id=system.id, system_name=system.name, base_url=instance,
                 claims=frozenset(system.claims), privileged=system.privileged)


def load_systems(
    path: Path,
    *,
    regions: RegionDirectory,
    client_ids: Collection[str] | None = None,
    cookie_domain: str | None = None,
    gateway_host: str | None = None,
) -> tuple[Systems, list[str]]:
    """Read a systems file; return the registry of the valid systems and every problem.

    Each problem names the file and key. Connector types and settings are checked by the
    connectors registry (entry-point plug-ins included); ``client_ids``, when given, are
    the registered clients a relying-party system's ``client_id`` must be one of, and
    which no other system's ``id`` may equal. The caller decides what problems mean
    (``load_config`` raises ``ConfigError``); the registry returned never holds an
    invalid system.

    A system's ``hosts`` must lie outside ``cookie_domain`` (``[session] cookie_domain``:
    the issuer's session cookie must never reach a system's pages; a system's host gets a
    session of its own, handed over by the issuer) and must not be ``gateway_host``
    itself; a relying party is never served on the gateway's hosts (it runs on its own).
    """
    problems: list[str] = []
    try:
        load_entry_points()  # third-party connector types (entry-point group roam.connectors)
    except ConfigError as error:
        problems.extend(error.problems)
    data = read_toml(path, problems)
    for key in sorted(set(data) - {"item", "system"}):
        problems.append(f"{path}: {key}: unknown key (expected [[item]] and [[system]] tables)")

    items: dict[str, ServiceItem] = {}
    for index, raw in enumerate(_tables(path, data, "item", problems)):
        where = f"item[{index}]"
        try:
            item = ServiceItem.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_of(str(path), exc, f"{where}."))
            continue
        if item.code in items:
            problems.append(f"{path}: {where}.code: duplicate {item.code!r}")
            continue
        items[item.code] = item

    systems: list[SystemConfig] = []
    connectors: dict[str, ConnectorConfig] = {}
    first_index: dict[str, int] = {}
    claimed: dict[tuple[str, str], str] = {}  # (region, item) -> system id
    host_owner: dict[str, str] = {}  # host -> system id
    for index, raw in enumerate(_tables(path, data, "system", problems)):
        where = f"system[{index}]"
        try:
            system = SystemConfig.model_validate(raw)
        except ValidationError as exc:
            problems.extend(problems_of(str(path), exc, f"{where}."))
            continue
        found: list[str] = []
        if system.id in first_index:
            found.append(f"{path}: {where}.id: duplicate {system.id!r} "
                         f"(also system[{first_index[system.id]}])")
        region = regions.get(system.region)
        if region is None:
            found.append(f"{path}: {where}.region: {system.region} is not a Hunan region code")
        elif not region.current:
            found.append(f"{path}: {where}.region: {system.region} ({region.name}) is a "
                         "historical code; register systems at current codes")
        elif region.level != system.level:
            found.append(f"{path}: {where}.level: {system.region} ({region.name}) is a "
                         f"{region.level}, not a {system.level}")
        for i, code in enumerate(system.items):
            if code not in items:
                found.append(f"{path}: {where}.items.{i}: {code!r} is not in the [[item]] "
                             "catalogue")
                continue
            other = claimed.get((system.region, code))
            if other is not None and other != system.id:
                found.append(f"{path}: {where}.items.{i}: {code!r} at {system.region} is "
                             f"already handled by {other!r}; one system per item and region "
                             "(list more instances for redundancy)")
        found.extend(_host_problems(system, f"{path}: {where}.hosts", host_owner,
                                    cookie_domain, gateway_host))
        connector: ConnectorConfig | None = None
        try:
            connector = parse_connector(system.connector, system.connector_settings)
        except ConfigError as error:
            for msg in error.problems:
                if msg.startswith("type: "):  # the type itself, not one of its settings
                    found.append(f"{path}: {where}.connector: {msg.removeprefix('type: ')}")
                else:
                    found.append(f"{path}: {where}.connector_settings: {msg}")
        found.extend(_id_clash(system, f"{path}: {where}.id", client_ids))
        if isinstance(connector, RelyingParty):
            if client_ids is not None and connector.client_id not in client_ids:
                found.append(f"{path}: {where}.connector_settings.client_id: "
                             f"{connector.client_id!r} is not a registered client")
            if system.hosts:
                found.append(f"{path}: {where}.hosts: only for proxied systems; a relying "
                             "party runs on its own host")
        first_index.setdefault(system.id, index)
        if found:
            problems.extend(found)
            continue
        for code in system.items:
            claimed[(system.region, code)] = system.id
        host_owner.update(dict.fromkeys(system.hosts, system.id))
        systems.append(system)
        if connector is not None:
            connectors[system.id] = connector
    return Systems(systems, items.values(), connectors), problems


def _id_clash(system: SystemConfig, where: str,
              client_ids: Collection[str] | None) -> list[str]:
    """A system's id is the audience of what the gateway signs for it (a jwt-assertion's
    ``aud``): were it a client's id, such a token would pass for that client's ID token
    (a logout hint). So no system id names a client, not even its own relying party's."""
    if client_ids is None or system.id not in client_ids:
        return []
    return [f"{where}: {system.id!r} is also a registered client's id; a system id must "
            "never name a client"]


def _host_problems(system: SystemConfig, where: str, taken: Mapping[str, str],
                   cookie_domain: str | None, gateway_host: str | None) -> list[str]:
    problems = []
    for host in system.hosts:
        if host in taken:
            problems.append(f"{where}: {host!r} is already served for {taken[host]!r}")
        if host == gateway_host:
            problems.append(f"{where}: {host!r} is the gateway's own host")
        if cookie_domain is not None and within_domain(host, cookie_domain):
            problems.append(f"{where}: {host!r} is within [session] cookie_domain "
                            f"{cookie_domain!r}: the gateway's session cookie would reach "
                            "the system's pages (leave cookie_domain unset: a system's host "
                            "gets a session of its own by the hand-over hop)")
    return problems
