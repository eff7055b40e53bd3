"""The connector registry: type name -> config class, extended through entry points.

The built-ins (``signed-header``, ``jwt-assertion``, ``cas``, ``ticket``, ``oidc``) are
registered in code. Third parties publish a config class in the entry-point group
``roam.connectors``::

    [project.entry-points."roam.connectors"]
    example-header = "roam_example_connector:ExampleConfig"

``load_entry_points()`` (the config loader calls it) registers every one of them;
``parse_connector(type_name, settings)`` validates a system's connector settings and
reports every problem by key, ready for the systems config loader to prefix with its
file and system.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from connectors.base import ConnectorConfig
from gateway.errors import ConfigError

__all__ = [
    "ENTRY_POINT_GROUP",
    "Registry",
    "UnknownConnectorType",
    "config_class",
    "default_registry",
    "known_types",
    "load_entry_points",
    "parse_connector",
    "register",
]

ENTRY_POINT_GROUP = "roam.connectors"


class UnknownConnectorType(ValueError):
    """No connector type of that name is registered; the message lists the known ones."""


class Registry:
    """Maps connector type names to their config classes (pydantic, ``extra="forbid"``)."""

    def __init__(self) -> None:
        self._types: dict[str, type[BaseModel]] = {}

    def register(self, type_name: str, config_cls: type[Any]) -> None:
        """Add a type. Registering the same class again is a no-op; another class under
        a taken name is refused, so a plug-in cannot replace a built-in."""
        if not type_name or type_name != type_name.strip():
            raise ValueError(f"bad connector type name {type_name!r}")
        if not (isinstance(config_cls, type) and issubclass(config_cls, BaseModel)):
            raise TypeError(f"connector type {type_name!r}: {config_cls!r} is not a pydantic model")
        if config_cls.model_config.get("extra") != "forbid":
            raise TypeError(f"connector type {type_name!r}: {config_cls.__name__} must set "
                            "model_config extra='forbid' so misspelt settings fail loudly")
        if not callable(getattr(config_cls, "open", None)):
            raise TypeError(f"connector type {type_name!r}: {config_cls.__name__} has no open()")
        existing = self._types.get(type_name)
        if existing is not None and existing is not config_cls:
            raise ValueError(f"connector type {type_name!r} is already registered "
                             f"as {existing.__module__}.{existing.__qualname__}")
        self._types[type_name] = config_cls

    def known_types(self) -> list[str]:
        return sorted(self._types)

    def config_class(self, type_name: str) -> type[BaseModel]:
        try:
            return self._types[type_name]
        except KeyError:
            known = ", ".join(self.known_types()) or "none"
            raise UnknownConnectorType(
                f"unknown connector type {type_name!r}; known types: {known}") from None

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every config class named in the entry-point ``group``.

        Returns the type names found. Every entry point that cannot be loaded or
        registered is reported, all at once, as a ``ConfigError``.
        """
        found: list[str] = []
        problems: list[str] = []
        for point in entry_points(group=group):
            try:
                self.register(point.name, point.load())
            except Exception as error:  # a broken plug-in must not hide the others
                problems.append(f"connector plug-in {point.name!r} ({point.value}): {error}")
            else:
                found.append(point.name)
        if problems:
            raise ConfigError(problems)
        return found

    def parse_connector(self, type_name: str, settings: Mapping[str, Any]) -> ConnectorConfig:
        """Validate ``settings`` for ``type_name``; every problem names its key."""
        try:
            cls = self.config_class(type_name)
        except UnknownConnectorType as error:
            raise ConfigError([f"type: {error}"]) from None
        try:
            model = cls.model_validate(dict(settings))
        except ValidationError as error:
            raise ConfigError(_problems(error)) from None
        return cast(ConnectorConfig, model)


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {message}" if key else message)
    return problems


def _builtins() -> Registry:
    from connectors.cas import CasConfig
    from connectors.jwt_assertion import JwtAssertionConfig
    from connectors.oidc import OidcConfig
    from connectors.signed_header import SignedHeaderConfig
    from connectors.ticket import TicketConfig

    registry = Registry()
    registry.register("signed-header", SignedHeaderConfig)
    registry.register("jwt-assertion", JwtAssertionConfig)
    registry.register("cas", CasConfig)
    registry.register("ticket", TicketConfig)
    registry.register("oidc", OidcConfig)
    return registry


#: The registry the gateway uses; the module functions below work on it.
default_registry = _builtins()


def register(type_name: str, config_cls: type[Any]) -> None:
    default_registry.register(type_name, config_cls)


def config_class(type_name: str) -> type[BaseModel]:
    return default_registry.config_class(type_name)


def known_types() -> list[str]:
    return default_registry.known_types()


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    return default_registry.load_entry_points(group)


def parse_connector(type_name: str, settings: Mapping[str, Any]) -> ConnectorConfig:
    return default_registry.parse_connector(type_name, settings)
