"""Precise arrival (精准到达): which system serves a service item in a region.

``resolve`` picks the system and instance for an item in a region, walking up county →
prefecture → province past unhealthy instances; ``go`` is ``/go/{item}`` and the 事项
page, sending a person to the chosen system. The systems themselves are configuration
(:mod:`gateway.config.systems`).
"""

from gateway.routing.go import GoPages
from gateway.routing.resolve import (
    AlwaysHealthy,
    Chooser,
    Health,
    NoRoute,
    Resolution,
    Resolver,
    RoundRobin,
    RouteError,
    UnknownItem,
    UnknownRegion,
    routing_table,
)

__all__ = [
    "AlwaysHealthy",
    "Chooser",
    "GoPages",
    "Health",
    "NoRoute",
    "Resolution",
    "Resolver",
    "RoundRobin",
    "RouteError",
    "UnknownItem",
    "UnknownRegion",
    "routing_table",
]
