"""Route resolution: which system, and which of its instances, serves an item in a region.

For a region the resolver tries the systems registered exactly at that code, then at each
ancestor (county → prefecture → province). A system with no usable instance
(:func:`gateway.health.usable`: up and in rotation, else half-open) counts as absent, so
an unhealthy or drained county system falls back to its city's (failover), and the
:class:`Resolution` names what was skipped and why, for the page that tells the citizen.
Among a system's usable instances the load is spread round-robin (per system), or by a
``choose`` callable passed in (tests pass a deterministic one).

**Historical codes** (an old ID number's area code, e.g. ``432121`` 湘潭县 of the former
湘潭地区) are resolved through ``successors``, a mapping from historical to current code
that the caller may pass; :class:`~gateway.regions.RegionDirectory` holds no successor data
today, so without it the walk starts at the historical code's nearest *current* ancestor in
its chain of the time (``430122`` 望城县 → ``430100`` 长沙市; ``432121`` → ``432100``
湘潭地区, not current → ``430000`` 湖南省). The province always exists, so a historical code
never fails as unknown.

Failures are exceptions carrying what the Chinese error page lists: :class:`UnknownItem`
(close catalogue matches), :class:`UnknownRegion` (current regions sharing the prefix) and
:class:`NoRoute` (systems handling the item nearby).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config import ServiceItem, SystemConfig, Systems
from gateway.errors import RoamError
from gateway.health import AlwaysUp, Health, unavailable_because, usable
from gateway.regions import Region, RegionDirectory

__all__ = [
    "Chooser",
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

MAX_SUGGESTIONS = 5
MAX_NEARBY = 10

#: ``choose(system_id, healthy_instances) -> instance``; instances are never empty.
Chooser = Callable[[str, Sequence[str]], str]


class RoundRobin:
    """Spread requests over a system's healthy instances in turn, per system."""

    def __init__(self) -> None:
        self._counters: dict[str, Iterator[int]] = {}

    def __call__(self, system_id: str, instances: Sequence[str]) -> str:
        counter = self._counters.setdefault(system_id, itertools.count())
        return instances[next(counter) % len(instances)]


class RouteError(RoamError):
    """No system can be chosen; the subclasses carry what the error page lists."""


class UnknownItem(RouteError):
    """The catalogue has no such item; ``suggestions`` are close matches."""

    def __init__(self, item: str, suggestions: list[ServiceItem]) -> None:
        super().__init__(f"unknown service item {item!r}")
        self.item = item
        self.suggestions = suggestions


class UnknownRegion(RouteError):
    """Hunan has (and had) no such region code; ``suggestions`` are current regions near it."""

    def __init__(self, region: str, suggestions: list[Region]) -> None:
        super().__init__(f"unknown region {region!r}")
        self.region = region
        self.suggestions = suggestions


@dataclass(frozen=True)
class Skipped:
    """A system that handles the item on the way, passed over: none of its instances
    could be used. ``why`` is for the citizen (正在维护, 暂时无法访问)."""

    system: SystemConfig
    why: str


class NoRoute(RouteError):
    """No usable system handles the item anywhere up the chain from the region.

    ``walked`` are the codes tried, nearest first; ``nearby`` are systems handling the
    item elsewhere (same prefecture first), with the region each is registered at;
    ``skipped`` those on the way that are down or drained.
    """

    def __init__(
        self,
        item: str,
        region: str,
        walked: tuple[str, ...],
        nearby: list[tuple[Region, SystemConfig]],
        skipped: tuple[Skipped, ...] = (),
    ) -> None:
        super().__init__(f"no system handles {item!r} for {region} (tried {', '.join(walked)})")
        self.item = item
        self.region = region
        self.walked = walked
        self.nearby = nearby
        self.skipped = skipped


@dataclass(frozen=True)
class Resolution:
    """Where to send the person: the system, its chosen instance, and how it was found."""

    system: SystemConfig
    instance: str  # the chosen base URL
    region: str  # the division whose system answered
    walked: tuple[str, ...]  # the codes tried, nearest (county) first
    fallback: bool  # the answer came from above the first code tried
    skipped: tuple[Skipped, ...] = ()  # systems passed over for their health, nearest first


@dataclass
class Resolver:
    """Resolve ``(item, region)`` to a :class:`Resolution`; see the module docstring."""

    systems: Systems
    regions: RegionDirectory
    health: Health = field(default_factory=AlwaysUp)
    choose: Chooser = field(default_factory=RoundRobin)
    successors: Mapping[str, str] = field(default_factory=dict)  # historical -> current

    def resolve(self, item: str, region: str) -> Resolution:
        """The system and instance for ``item`` in ``region``; raise a :class:`RouteError`."""
        if self.systems.item(item) is None:
            raise UnknownItem(item, suggest_items(self.systems, item))
        chain = self.chain(region)
        walked: list[str] = []
        skipped: list[Skipped] = []
        for code in chain:
            walked.append(code)
            for system in self.systems.at(code, item):
                pool = usable(self.health, system)
                if not pool:
                    skipped.append(Skipped(system, unavailable_because(self.health, system)))
                    continue
                return Resolution(
                    system=system,
                    instance=self.choose(system.id, pool),
                    region=code,
                    walked=tuple(walked),
                    fallback=code != chain[0],
                    skipped=tuple(skipped),
                )
        raise NoRoute(item, region, tuple(walked), self.nearby(item, chain[0]), tuple(skipped))

    def chain(self, region: str) -> list[str]:
        """The current codes to try for ``region``, nearest first, ending at the province."""
        found = self.regions.get(region)
        if found is None:
            raise UnknownRegion(region, suggest_regions(self.regions, region))
        if not found.current:
            successor = self.regions.get(self.successors.get(region, ""))
            if successor is not None and successor.current:
                found = successor
        chain = [found, *self.regions.ancestors(found.code)]
        return [r.code for r in chain if r.current]

    def nearby(self, item: str, region: str) -> list[tuple[Region, SystemConfig]]:
        """Systems handling ``item`` anywhere, those in ``region``'s prefecture first."""
        prefix = region[:4]
        found: list[tuple[Region, SystemConfig]] = []
        for system in self.systems.handling(item):
            at = self.regions.get(system.region)
            if at is not None:
                found.append((at, system))
        found.sort(key=lambda pair: (pair[0].code[:4] != prefix, pair[0].code))
        return found[:MAX_NEARBY]


def suggest_items(systems: Systems, query: str) -> list[ServiceItem]:
    """Up to five catalogue items close to ``query``: by name, code prefix, or spelling."""
    needle = query.strip().upper()
    scored: list[tuple[float, str, ServiceItem]] = []
    for item in systems.items():
        code = item.code.upper()
        score = 0.0
        if needle and (needle in item.name or item.name in query):
            score = 100.0
        prefix = len(_common_prefix(code, needle))
        if prefix >= 3:
            score = max(score, float(prefix))
        ratio = difflib.SequenceMatcher(None, code, needle).ratio()
        if ratio >= 0.6:
            score = max(score, ratio)
        if score > 0:
            scored.append((-score, item.code, item))
    scored.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in scored[:MAX_SUGGESTIONS]]


def suggest_regions(regions: RegionDirectory, query: str) -> list[Region]:
    """Current regions near an unknown ``query``: same name, then same prefix.

    Falls back to the current prefecture-level divisions (14, all of them) when nothing
    shares the first four digits.
    """
    query = query.strip()
    current = [r for r in regions if r.current]
    by_name = [r for r in current if query and (query in r.name or r.name in query)]
    if by_name:
        return by_name[:MAX_SUGGESTIONS]
    same_prefix = [r for r in current if len(query) >= 4 and r.code.startswith(query[:4])]
    if same_prefix:
        return same_prefix
    return regions.prefectures()


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return a[:n]


def _first(system_id: str, instances: Sequence[str]) -> str:
    return instances[0]


def routing_table(systems: Systems, regions: RegionDirectory) -> str:
    """The text ``roam routes check`` prints: systems, then per item who serves whom.

    Every current prefecture- and county-level division is resolved as configured: the
    instances' health is not known here, and the text says so (``roam routes status``
    shows it). Per item: each system handling it, the region it serves directly, how many
    divisions fall back to it, and every division with no route at all.
    """
    resolver = Resolver(systems, regions, choose=_first)
    lines = [f"{len(systems)} systems, {len(systems.items())} items "
             f"(regions {regions.data_version or '?'})",
             "routes as configured: instance health is not considered here "
             "(`roam routes status` shows it)", "", "systems:"]
    width = max((len(s.id) for s in systems), default=0)
    for system in systems:
        at = regions.get(system.region)
        lines.append(f"  {system.id.ljust(width)}  {system.region} "
                     f"{at.name if at else '?'}  {system.connector}  {system.min_acr}  "
                     f"{system.name}  [{', '.join(system.instances)}]"
                     + (f"  hosts: {', '.join(system.hosts)}" if system.hosts else ""))
    divisions = [*regions.prefectures(), *regions.counties()]
    for item in systems.items():
        fallback: dict[str, int] = {}
        missing: list[Region] = []
        for division in divisions:
            try:
                found = resolver.resolve(item.code, division.code)
            except NoRoute:
                missing.append(division)
                continue
            if found.fallback:
                fallback[found.system.id] = fallback.get(found.system.id, 0) + 1
        lines += ["", f"{item.code} {item.name}"]
        for system in systems.handling(item.code):
            at = regions.get(system.region)
            name = at.name if at else "?"
            lines.append(f"  {system.id.ljust(width)}  directly {system.region} {name}; "
                         f"fallback for {fallback.get(system.id, 0)} divisions")
        if missing:
            lines.append(f"  no route ({len(missing)}): "
                         + ", ".join(f"{r.code} {r.name}" for r in missing))
        else:
            lines.append(f"  every division routed ({len(divisions)})")
    return "\n".join(lines) + "\n"
