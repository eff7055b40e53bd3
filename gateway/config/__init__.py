"""Configuration: TOML files under ``config/`` with ``ROAM_*`` environment overrides.

``load_config`` reads the main file (``settings``), the clients file (``clients``) and the
systems file (``systems``) and checks them together (``load``); ``files`` holds what they
share, ``health`` the health-check rules both files set. docs/configuration.md documents every key.
"""

from gateway.config.clients import Alg, AuthMethod, ClientConfig, load_clients
from gateway.config.files import ClaimNames, Strict, problems_of, read_toml
from gateway.config.health import HealthRules, HealthSection, rule_problems, rules_for
from gateway.config.load import Config, load_config
from gateway.config.registration import RegistrationSection
from gateway.config.settings import (
    AlipayChannel,
    AuditSection,
    BindingSection,
    ChannelsSection,
    GatewaySection,
    KeysSection,
    LegacySection,
    LoginSection,
    MetricsSection,
    OpsSection,
    OutboundSection,
    ProxySection,
    RoutingSection,
    SessionSection,
    Settings,
    StoreSection,
    TokensSection,
    WeChatChannel,
    apply_env,
    check_metrics_token,
)
from gateway.config.systems import (
    Acr,
    ServiceItem,
    SystemConfig,
    Systems,
    load_systems,
    route_of,
)

__all__ = [
    "Acr",
    "Alg",
    "AlipayChannel",
    "AuditSection",
    "AuthMethod",
    "BindingSection",
    "ChannelsSection",
    "ClaimNames",
    "ClientConfig",
    "Config",
    "GatewaySection",
    "HealthRules",
    "HealthSection",
    "KeysSection",
    "LegacySection",
    "LoginSection",
    "MetricsSection",
    "OpsSection",
    "OutboundSection",
    "ProxySection",
    "RegistrationSection",
    "RoutingSection",
    "ServiceItem",
    "SessionSection",
    "Settings",
    "StoreSection",
    "Strict",
    "SystemConfig",
    "Systems",
    "TokensSection",
    "WeChatChannel",
    "apply_env",
    "check_metrics_token",
    "load_clients",
    "load_config",
    "load_systems",
    "problems_of",
    "read_toml",
    "route_of",
    "rule_problems",
    "rules_for",
]
