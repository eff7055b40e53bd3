"""Precise arrival (精准到达): which system serves a service item in a region.

``resolve`` picks the system and instance for an item in a region, walking up county →
prefecture → province past systems with no usable instance (:mod:`gateway.health`);
``go`` is ``/go/{item}`` and the 事项 page, sending a person to the chosen system. The
systems themselves are configuration (:mod:`gateway.config.systems`).
"""

from gateway.routing.go import GoPages
from gateway.routing.resolve import (
    Chooser,
    NoRoute,
    Resolution,
    Resolver,
    RoundRobin,
    RouteError,
    Skipped,
    UnknownItem,
    UnknownRegion,
    routing_table,
)

__all__ = [
    "Chooser",
    "GoPages",
    "NoRoute",
    "Resolution",
    "Resolver",
    "RoundRobin",
    "RouteError",
    "Skipped",
    "UnknownItem",
    "UnknownRegion",
    "routing_table",
]
