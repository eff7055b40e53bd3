"""Loading a whole configuration: the main file, the clients and systems files it names,
the environment, and the rules that span them.

Every problem is reported at once, each naming its file and key, so an operator fixes a
bad config in one pass; ``roam`` turns the ``ConfigError`` into exit status 2 without a
traceback. A :class:`Config` is only ever made whole and checked: :meth:`Config.revised`
(a copy with other settings or clients, as the demo and the tests make) checks it again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.config.clients import ClientConfig, load_clients
from gateway.config.files import problems_of, read_toml
from gateway.config.health import rule_problems, rules_for
from gateway.config.settings import Settings, apply_env
from gateway.config.systems import Systems, load_systems
from gateway.errors import ConfigError
from gateway.regions import RegionDirectory
from gateway.urls import is_loopback_host, is_loopback_http

__all__ = ["Config", "load_config"]

DEFAULT_SOURCE = "toml-directory"
"""The identity source a loopback (demo) issuer gets when ``[login] source`` is not set."""


class Config(BaseModel):
    """Everything the gateway needs, resolved and validated."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    clients: tuple[ClientConfig, ...]
    systems: Systems
    regions: RegionDirectory
    base_dir: Path  # relative paths in the files are resolved against this
    source: str = "<defaults>"

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def issuer(self) -> str:
        return self.settings.gateway.issuer

    @property
    def identity_source(self) -> str:
        """``[login] source``, or the TOML directory for a loopback (demo) issuer."""
        return self.settings.login.source or DEFAULT_SOURCE

    @property
    def signing_algs(self) -> set[str]:
        """Every algorithm the gateway signs with: the clients' ID tokens, access tokens."""
        default = self.settings.tokens.access_token_alg
        return {default} | {alg for c in self.clients for alg in (
            c.id_token_signed_response_alg, c.access_token_alg(default))}

    def client(self, client_id: str) -> ClientConfig | None:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        return None

    def revised(self, *, settings: Settings | None = None,
                clients: tuple[ClientConfig, ...] | None = None) -> Config:
        """This configuration with other settings or clients, checked again as a whole
        (the systems file is read again: it may be another file, or judged differently)."""
        config, problems = _assemble(settings or self.settings,
                                     self.clients if clients is None else clients,
                                     self.base_dir, self.source, self.regions)
        if problems:
            raise ConfigError(problems)
        return config


def _audience_problems(config: Config) -> list[str]:
    """Token exchange audiences must be systems of the systems file read with them. Checked
    when the files are loaded (start-up, ``roam config check``); a config ``revised`` with
    another systems file leaves a dangling one to ``/token``, which refuses it."""
    return [f"{config.source}: clients file: client {client.client_id!r}: "
            f"token_exchange_audiences: {name!r} is not a system of the systems file"
            for client in config.clients for name in client.token_exchange_audiences
            if config.systems.get(name) is None]


def load_config(path: Path | str, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the main file and the files it names; raise ConfigError with all problems."""
    path = Path(path)
    env = os.environ if env is None else env
    problems: list[str] = []
    data = read_toml(path, problems)
    problems.extend(_secrets_in_file(data, path))
    from_env = apply_env(data, env, problems)
    settings = Settings()
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_of(str(path), exc, env_keys=from_env))
        settings = _named_files(settings, data)  # read the other files as named anyway
    clients = load_clients(_under(path.parent, settings.gateway.clients_file), problems)
    config, found = _assemble(settings, clients, path.parent, str(path))
    problems.extend(found)
    problems.extend(_audience_problems(config))
    if problems:
        raise ConfigError(problems)
    return config


def _assemble(settings: Settings, clients: tuple[ClientConfig, ...], base_dir: Path,
              source: str, regions: RegionDirectory | None = None
              ) -> tuple[Config, list[str]]:
    """The systems file read against ``settings`` and ``clients``, and the rules that span
    files; the config and every problem found."""
    problems: list[str] = []
    regions = regions or RegionDirectory.load()
    systems = Systems((), ())
    systems_file = settings.routing.systems_file
    if systems_file:  # empty: routing switched off, no systems
        systems, found = load_systems(
            _under(base_dir, systems_file), regions=regions,
            client_ids={c.client_id for c in clients},
            cookie_domain=settings.session.cookie_domain,
            gateway_host=urlsplit(settings.gateway.issuer).hostname)
        problems.extend(found)
        problems.extend(_health_problems(systems, settings, _under(base_dir, systems_file)))
    config = Config(settings=settings, clients=clients, systems=systems, regions=regions,
                    base_dir=base_dir, source=source)
    loopback = is_loopback_http(settings.gateway.issuer)
    if settings.gateway.key_dir == "" and not loopback:
        problems.append(
            f"{source}: gateway.key_dir: required unless the issuer is plain http on loopback "
            "(ephemeral keys would change on every restart)")
    if settings.login.source is None and not loopback:
        problems.append(
            f"{source}: login.source: name the identity source (e.g. \"{DEFAULT_SOURCE}\"); "
            "only a plain-http loopback issuer (the demo) gets one by default")
    if settings.login.simulated_step_up and not is_loopback_host(settings.gateway.issuer):
        problems.append(
            f"{source}: login.simulated_step_up: the demo's factors (an SMS code shown on the "
            "page, a face check that is a button) prove nothing; only a loopback issuer "
            "(127.0.0.0/8, ::1, localhost, *.localhost) may use them")
    if settings.binding.verifier == "demo" and not is_loopback_host(settings.gateway.issuer):
        problems.append(
            f"{source}: binding.verifier: the demo verifier (the directory's people, face "
            "checks that always pass) proves nothing; only a loopback issuer may use it")
    if config.identity_source == "toml-directory":
        directory = config.path(settings.login.directory_file)
        if not directory.is_file():
            problems.append(f"{source}: login.directory_file: {directory} not found")
    return config, problems


def _health_problems(systems: Systems, settings: Settings, where: Path) -> list[str]:
    """Each system's health rules, merged with ``[health]``, must hold together (a probe
    timeout an override set may not fit the interval the main file set, or the reverse)."""
    return [f"{where}: system {system.id!r}: health: {problem}"
            for system in systems if system.health is not None
            for problem in rule_problems(rules_for(settings.health, system.health))]


def _named_files(defaults: Settings, data: Mapping[str, Any]) -> Settings:
    """``defaults`` with the clients and systems files the raw tables name, where they are
    strings: a bad key elsewhere must not hide the problems of those files."""
    gateway, routing = data.get("gateway"), data.get("routing")
    update: dict[str, Any] = {}
    if isinstance(gateway, dict) and isinstance(gateway.get("clients_file"), str):
        update["gateway"] = defaults.gateway.model_copy(
            update={"clients_file": gateway["clients_file"]})
    if isinstance(routing, dict) and isinstance(routing.get("systems_file"), str):
        update["routing"] = defaults.routing.model_copy(
            update={"systems_file": routing["systems_file"]})
    return defaults.model_copy(update=update)


def _secrets_in_file(data: dict[str, Any], path: Path) -> list[str]:
    """Secrets that may come only from the environment or a file of their own, written in
    the main file anyway: each is one problem (and dropped, so nothing else trips on it)."""
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and metrics.pop("token", None) is not None:
        return [f"{path}: metrics.token: a secret is never written in this file: set "
                "ROAM_METRICS_TOKEN in the environment or metrics.token_file"]
    return []


def _under(base_dir: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else base_dir / path
