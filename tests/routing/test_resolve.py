"""Route resolution: county → prefecture → province, failover, and the error cases."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.config import ServiceItem, SystemConfig, Systems, load_systems
from gateway.health import Availability
from gateway.regions import RegionDirectory
from gateway.routing.resolve import (
    NoRoute,
    Resolver,
    RoundRobin,
    UnknownItem,
    UnknownRegion,
    routing_table,
)
from tests.support.gateway import REPO

GJJ, SB, BDC = "430000-GJJ-001", "430000-SB-001", "430000-BDC-001"


@pytest.fixture(scope="module")
def regions() -> RegionDirectory:
    return RegionDirectory.load()


@pytest.fixture(scope="module")
def demo(regions: RegionDirectory) -> Systems:
    systems, problems = load_systems(REPO / "config" / "systems.toml", regions=regions)
    assert problems == []
    return systems


class Down:
    """Health: the listed (system, instance) pairs are down (or ``as_`` another
    availability); everything else is up."""

    def __init__(self, *down: tuple[str, str], as_: Availability = "down") -> None:
        self.down = set(down)
        self.as_ = as_

    def availability(self, system_id: str, instance: str) -> Availability:
        return self.as_ if (system_id, instance) in self.down else "up"


def first(system_id: str, instances: Sequence[str]) -> str:
    return instances[0]


def test_county_with_its_own_system(demo: Systems, regions: RegionDirectory) -> None:
    found = Resolver(demo, regions).resolve(BDC, "430104")  # 岳麓区 legacy system
    assert found.system.id == "yuelu-bdc"
    assert found.instance == "http://127.0.0.1:8011"
    assert (found.region, found.walked, found.fallback) == ("430104", ("430104",), False)


def test_county_without_falls_back_to_its_prefecture(
    demo: Systems, regions: RegionDirectory
) -> None:
    found = Resolver(demo, regions).resolve(BDC, "430102")  # 芙蓉区 → 长沙市
    assert found.system.id == "changsha-zwfw"
    assert (found.region, found.walked, found.fallback) == ("430100", ("430102", "430100"),
                                                            True)
    found = Resolver(demo, regions).resolve(GJJ, "430321")  # 湘潭县 → 湘潭市, L3
    assert (found.system.id, found.system.min_acr) == ("xiangtan-gjj", "L3")


def test_prefecture_itself_without_a_system_goes_to_the_province(
    demo: Systems, regions: RegionDirectory
) -> None:
    found = Resolver(demo, regions).resolve(GJJ, "430100")  # 长沙市 has no 公积金 system
    assert found.system.id == "hunan-province"
    assert (found.region, found.walked, found.fallback) == ("430000", ("430100", "430000"),
                                                            True)
    found = Resolver(demo, regions).resolve(SB, "430000")
    assert (found.system.id, found.fallback) == ("hunan-province", False)


def _pair(regions: RegionDirectory, health: Down | None = None) -> Resolver:
    items = [ServiceItem(code="X-1", name="测试事项")]
    systems = Systems(
        [
            SystemConfig(id="province", name="省", region="430000", level="province",
                         instances=("https://p.example.gov.cn",), connector="cas",
                         items=("X-1",)),
            SystemConfig(id="city", name="市", region="430100", level="prefecture",
                         instances=("https://c1.example.gov.cn", "https://c2.example.gov.cn"),
                         connector="cas", items=("X-1",)),
            SystemConfig(id="county", name="区", region="430104", level="county",
                         instances=("https://k.example.gov.cn",), connector="cas",
                         items=("X-1",)),
        ],
        items,
    )
    return Resolver(systems, regions, health or Down(), choose=first)


def test_unhealthy_county_system_fails_over_upwards(regions: RegionDirectory) -> None:
    resolver = _pair(regions, Down(("county", "https://k.example.gov.cn")))
    found = resolver.resolve("X-1", "430104")
    assert (found.system.id, found.region, found.fallback) == ("city", "430100", True)
    assert found.walked == ("430104", "430100")
    assert found.instance == "https://c1.example.gov.cn"
    assert [(s.system.id, s.why) for s in found.skipped] == [("county", "暂时无法访问")]


def test_a_drained_system_is_skipped_for_maintenance(regions: RegionDirectory) -> None:
    resolver = _pair(regions, Down(("county", "https://k.example.gov.cn"), as_="drained"))
    found = resolver.resolve("X-1", "430104")
    assert found.system.id == "city"
    assert [(s.system.id, s.why) for s in found.skipped] == [("county", "正在维护")]


def test_a_half_open_instance_is_used_only_when_nothing_is_up(regions: RegionDirectory) -> None:
    trial = _pair(regions, Down(("city", "https://c1.example.gov.cn"), as_="trial"))
    trial.choose = RoundRobin()
    chosen = {trial.resolve("X-1", "430102").instance for _ in range(4)}
    assert chosen == {"https://c2.example.gov.cn"}
    only_trial = _pair(regions, Down(("county", "https://k.example.gov.cn"), as_="trial"))
    found = only_trial.resolve("X-1", "430104")
    assert (found.system.id, found.skipped) == ("county", ())


def test_an_ordinary_fallback_skips_nothing(regions: RegionDirectory) -> None:
    found = _pair(regions).resolve("X-1", "430102")  # 芙蓉区 has no system of its own
    assert (found.system.id, found.fallback, found.skipped) == ("city", True, ())


def test_no_route_names_what_was_skipped(regions: RegionDirectory) -> None:
    resolver = _pair(regions, Down(("county", "https://k.example.gov.cn"),
                                   ("city", "https://c1.example.gov.cn"),
                                   ("city", "https://c2.example.gov.cn"),
                                   ("province", "https://p.example.gov.cn")))
    with pytest.raises(NoRoute) as caught:
        resolver.resolve("X-1", "430104")
    assert [s.system.id for s in caught.value.skipped] == ["county", "city", "province"]


def test_healthy_second_instance_is_chosen_over_an_unhealthy_first(
    regions: RegionDirectory,
) -> None:
    resolver = _pair(regions, Down(("county", "https://k.example.gov.cn"),
                                   ("city", "https://c1.example.gov.cn")))
    found = resolver.resolve("X-1", "430104")
    assert (found.system.id, found.instance) == ("city", "https://c2.example.gov.cn")
    everything_down = Down(("county", "https://k.example.gov.cn"),
                           ("city", "https://c1.example.gov.cn"),
                           ("city", "https://c2.example.gov.cn"))
    found = _pair(regions, everything_down).resolve("X-1", "430104")
    assert (found.system.id, found.walked) == ("province", ("430104", "430100", "430000"))


def test_round_robin_spreads_over_healthy_instances(regions: RegionDirectory) -> None:
    resolver = _pair(regions)
    resolver.choose = RoundRobin()
    chosen = [resolver.resolve("X-1", "430102").instance for _ in range(4)]
    assert chosen == ["https://c1.example.gov.cn", "https://c2.example.gov.cn"] * 2


def test_unknown_item_suggests_close_items(demo: Systems, regions: RegionDirectory) -> None:
    with pytest.raises(UnknownItem) as caught:
        Resolver(demo, regions).resolve("430000-GJJ-002", "430104")
    assert caught.value.item == "430000-GJJ-002"
    codes = [i.code for i in caught.value.suggestions]
    assert codes[0] == GJJ
    assert len(codes) <= 5
    with pytest.raises(UnknownItem) as caught:
        Resolver(demo, regions).resolve("公积金", "430104")  # a name, not a code
    assert [i.code for i in caught.value.suggestions] == [GJJ]


def test_unknown_region_suggests_current_regions(
    demo: Systems, regions: RegionDirectory
) -> None:
    with pytest.raises(UnknownRegion) as caught:
        Resolver(demo, regions).resolve(GJJ, "439999")
    assert caught.value.region == "439999"
    assert [r.code for r in caught.value.suggestions] == [r.code for r in regions.prefectures()]
    with pytest.raises(UnknownRegion) as caught:
        Resolver(demo, regions).resolve(GJJ, "430199")  # not a code, but 长沙市's prefix
    suggested = {r.code for r in caught.value.suggestions}
    assert {"430100", "430104"} <= suggested
    assert all(code.startswith("4301") for code in suggested)


def test_no_route_anywhere_up_the_chain_lists_nearby(regions: RegionDirectory) -> None:
    items = [ServiceItem(code="X-1", name="测试事项")]
    systems = Systems(
        [
            SystemConfig(id="yuelu", name="岳麓", region="430104", level="county",
                         instances=("https://y.example.gov.cn",), connector="cas",
                         items=("X-1",)),
            SystemConfig(id="yueyang", name="岳阳", region="430600", level="prefecture",
                         instances=("https://yy.example.gov.cn",), connector="cas",
                         items=("X-1",)),
        ],
        items,
    )
    with pytest.raises(NoRoute) as caught:
        Resolver(systems, regions).resolve("X-1", "430102")  # 芙蓉区: sibling has one
    error = caught.value
    assert (error.item, error.region, error.walked) == ("X-1", "430102",
                                                        ("430102", "430100", "430000"))
    assert [(r.code, s.id) for r, s in error.nearby] == [("430104", "yuelu"),
                                                         ("430600", "yueyang")]


def test_historical_code_resolves_through_its_current_ancestor(
    demo: Systems, regions: RegionDirectory
) -> None:
    resolver = Resolver(demo, regions)
    found = resolver.resolve(SB, "430122")  # 望城县 (to 2010) under 长沙市
    assert (found.system.id, found.walked) == ("changsha-zwfw", ("430100",))
    found = resolver.resolve(GJJ, "432121")  # 湘潭县 of 湘潭地区 (to 1982): no current parent
    assert (found.system.id, found.walked) == ("hunan-province", ("430000",))


def test_historical_code_resolves_through_a_known_successor(
    demo: Systems, regions: RegionDirectory
) -> None:
    resolver = Resolver(demo, regions, successors={"432121": "430321"})  # → today's 湘潭县
    found = resolver.resolve(GJJ, "432121")
    assert (found.system.id, found.walked) == ("xiangtan-gjj", ("430321", "430300"))


def test_routing_table_covers_every_item_without_gaps(
    demo: Systems, regions: RegionDirectory
) -> None:
    table = routing_table(demo, regions)
    for item in demo.items():
        assert f"{item.code} {item.name}" in table
    for system in demo:
        assert system.id in table
    assert "no route" not in table
    assert table.count("every division routed (136)") == len(demo.items())
    # it knows nothing of health, and says so
    assert "instance health is not considered here (`roam routes status`" in table


def test_routing_table_lists_divisions_without_a_route(regions: RegionDirectory) -> None:
    systems = Systems(
        [SystemConfig(id="changsha", name="长沙", region="430100", level="prefecture",
                      instances=("https://c.example.gov.cn",), connector="cas",
                      items=("X-1",))],
        [ServiceItem(code="X-1", name="测试事项")],
    )
    table = routing_table(systems, regions)
    assert "no route (126): " in table  # 136 divisions minus 长沙市 and its 9 counties
    assert "430300 湘潭市" in table
