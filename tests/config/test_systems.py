"""The systems registry: the shipped file loads; every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.base import RelyingParty
from connectors.oidc import OidcConfig
from gateway.config import ServiceItem, SystemConfig, Systems, load_systems
from gateway.regions import RegionDirectory
from tests.support.cli import roam
from tests.support.gateway import REPO
from tests.test_cli import with_shipped_files

SHIPPED = REPO / "config" / "systems.toml"


@pytest.fixture(scope="module")
def regions() -> RegionDirectory:
    return RegionDirectory.load()


def test_shipped_file_loads_without_problems(regions: RegionDirectory) -> None:
    systems, problems = load_systems(SHIPPED, regions=regions)
    assert problems == []
    assert {s.id for s in systems} >= {"hunan-province", "changsha-zwfw", "xiangtan-gjj"}
    xiangtan = systems.get("xiangtan-gjj")
    assert xiangtan is not None
    assert (xiangtan.region, xiangtan.min_acr) == ("430300", "L3")
    assert isinstance(systems.connector_config("xiangtan-gjj"), OidcConfig)
    assert systems.connector_config("xiangtan-gjj").client_id == "xiangtan-gov"  # type: ignore[attr-defined]
    province = systems.get("hunan-province")
    assert province is not None
    assert {item.code for item in systems.items()} == set(province.items)


def test_shipped_oidc_systems_are_registered_clients(regions: RegionDirectory) -> None:
    import tomllib

    clients = tomllib.loads((REPO / "config" / "clients.toml").read_text("utf-8"))
    ids = {c["client_id"] for c in clients["client"]}
    _, problems = load_systems(SHIPPED, regions=regions, client_ids=ids)
    assert problems == []


def test_lookups(regions: RegionDirectory) -> None:
    systems, _ = load_systems(SHIPPED, regions=regions)
    assert [s.id for s in systems.handling("430000-GJJ-001")] == ["hunan-province",
                                                                  "xiangtan-gjj"]
    assert [s.id for s in systems.at("430104", "430000-BDC-001")] == ["yuelu-bdc"]
    assert systems.handling("NOPE") == []
    assert systems.get("nope") is None
    item = systems.item("430000-SB-001")
    assert item is not None
    assert item.name == "社会保险参保查询"


BAD = """
surprise = 1

[[item]]
code = "A-1"
name = "甲"

[[item]]
code = "A-1"
name = "甲again"

[[item]]
code = "bad code!"
name = "乙"

[[system]]
id = "good"
name = "好"
region = "430000"
level = "province"
instances = ["https://good.example.gov.cn"]
connector = "signed-header"
connector_settings = { secret = "a-signed-header-secret-of-32-chars-at-least" }
items = ["A-1"]

[[system]]
id = "good"
name = "重复"
region = "430100"
level = "prefecture"
instances = ["https://dup.example.gov.cn"]
connector = "cas"
items = ["A-1"]

[[system]]
id = "wrong-level"
name = "层级错"
region = "430104"
level = "prefecture"
instances = ["https://x.example.gov.cn"]
connector = "cas"
items = ["A-1", "NO-SUCH"]

[[system]]
id = "nowhere"
name = "无此地"
region = "439999"
level = "county"
instances = ["http://example.gov.cn", "ftp://x"]
connector = "oidc"
items = ["A-1"]
min_acr = "L9"
colour = "red"
timeout = 0

[[system]]
id = "old-code"
name = "旧代码"
region = "432121"
level = "county"
instances = ["https://old.example.gov.cn"]
connector = "cas"
connector_settings = { services = ["https://old.example.gov.cn/"] }
items = ["A-1"]

[[system]]
id = "clash"
name = "同地同事项"
region = "430000"
level = "province"
instances = ["https://clash.example.gov.cn"]
connector = "cas"
items = ["A-1"]
connector_settings = { bad = true }
"""


def test_all_problems_at_once_with_file_and_key(
    tmp_path: Path, regions: RegionDirectory
) -> None:
    path = tmp_path / "systems.toml"
    path.write_text(BAD, encoding="utf-8")
    systems, problems = load_systems(path, regions=regions)
    text = "\n".join(problems)
    assert all(p.startswith(f"{path}: ") for p in problems)
    expected = [
        "surprise: unknown key",
        "item[1].code: duplicate 'A-1'",
        "item[2].code:",
        "system[1].id: duplicate 'good' (also system[0])",
        "system[2].level: 430104 (岳麓区) is a county, not a prefecture",
        "system[2].items.1: 'NO-SUCH' is not in the [[item]] catalogue",
        "system[3].instances:",  # plain http off loopback, ftp
        "system[3].min_acr:",
        "system[3].colour:",
        "system[3].timeout:",
        "system[4].region: 432121 (湘潭县) is a historical code",
        "system[5].items.0: 'A-1' at 430000 is already handled by 'good'",
        "system[5].connector_settings: bad: Extra inputs are not permitted",
        "system[5].connector_settings: services: Field required",
    ]
    for fragment in expected:
        assert fragment in text, fragment
    assert [s.id for s in systems] == ["good"]


def test_unknown_region_and_oidc_without_client(
    tmp_path: Path, regions: RegionDirectory
) -> None:
    path = tmp_path / "systems.toml"
    path.write_text(
        '[[item]]\ncode = "A-1"\nname = "甲"\n\n[[system]]\nid = "nowhere"\nname = "无"\n'
        'region = "439999"\nlevel = "county"\ninstances = ["https://x.example.gov.cn"]\n'
        'connector = "oidc"\nitems = ["A-1"]\n',
        encoding="utf-8",
    )
    systems, problems = load_systems(path, regions=regions, client_ids={"other"})
    assert problems == [
        f"{path}: system[0].region: 439999 is not a Hunan region code",
        f"{path}: system[0].connector_settings: client_id: Field required",
    ]
    assert len(systems) == 0


RELYING_PARTY = """
[[item]]
code = "A-1"
name = "甲"

[[system]]
id = "city-portal"
name = "市系统"
region = "430100"
level = "prefecture"
instances = ["https://rp.example.gov.cn"]
connector = "oidc"
connector_settings = {{ client_id = "{client}" }}
items = ["A-1"]
{hosts}
"""


def test_a_relying_party_is_a_registered_client_on_its_own_host(
    tmp_path: Path, regions: RegionDirectory
) -> None:
    """The ``oidc`` type is a capability (``RelyingParty``), not a name the loader knows."""
    path = tmp_path / "systems.toml"
    path.write_text(RELYING_PARTY.format(client="city-rp", hosts=""), encoding="utf-8")
    systems, problems = load_systems(path, regions=regions, client_ids={"city-rp"})
    assert (problems, [s.id for s in systems]) == ([], ["city-portal"])
    assert isinstance(systems.connector_config("city-portal"), RelyingParty)

    _, problems = load_systems(path, regions=regions, client_ids={"another"})
    assert problems == [f"{path}: system[0].connector_settings.client_id: 'city-rp' is not "
                        "a registered client"]

    path.write_text(RELYING_PARTY.format(client="city-rp", hosts='hosts = ["rp.sso.test"]'),
                    encoding="utf-8")
    _, problems = load_systems(path, regions=regions, client_ids={"city-rp"})
    assert problems == [f"{path}: system[0].hosts: only for proxied systems; a relying party "
                        "runs on its own host"]


def test_missing_and_broken_files(tmp_path: Path, regions: RegionDirectory) -> None:
    _, problems = load_systems(tmp_path / "absent.toml", regions=regions)
    assert problems == [f"{tmp_path / 'absent.toml'}: file not found"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[[system]\n", encoding="utf-8")
    _, problems = load_systems(broken, regions=regions)
    assert len(problems) == 1
    assert "not valid TOML" in problems[0]


def test_registry_refuses_inconsistent_input() -> None:
    system = SystemConfig(id="abc", name="甲", region="430000", level="province",
                          instances=("https://a.example.gov.cn",), connector="cas",
                          items=("A-1",))
    with pytest.raises(ValueError, match="not in the catalogue"):
        Systems([system], [])
    with pytest.raises(ValueError, match="twice"):
        Systems([system, system], [ServiceItem(code="A-1", name="甲")])


PROXIED = """
[[item]]
code = "A-1"
name = "甲"

[[system]]
id = "{id}"
name = "旧系统"
region = "430100"
level = "prefecture"
instances = ["http://127.0.0.1:9"]
connector = "{connector}"
connector_settings = {settings}
items = ["A-1"]
"""


@pytest.mark.parametrize("connector", ["jwt-assertion", "signed-header", "cas", "ticket",
                                       "oidc"])
def test_a_system_id_never_names_a_client(tmp_path: Path, regions: RegionDirectory,
                                          connector: str) -> None:
    """A system's id is the ``aud`` of what the gateway signs for it: as a client's id, a
    jwt-assertion captured by that system would pass for the client's ID token."""
    path = tmp_path / "systems.toml"
    settings = '{ client_id = "x-1" }' if connector == "oidc" else "{}"
    path.write_text(PROXIED.format(id="city-app", connector=connector, settings=settings),
                    encoding="utf-8")
    systems, problems = load_systems(path, regions=regions, client_ids={"city-app", "x-1"})
    assert f"{path}: system[0].id: 'city-app' is also a registered client's id; a system id " \
           "must never name a client" in problems
    assert systems.get("city-app") is None


def test_not_even_a_relying_party_carries_its_own_clients_id(tmp_path: Path,
                                                             regions: RegionDirectory) -> None:
    path = tmp_path / "systems.toml"
    path.write_text(PROXIED.format(id="city-rp", connector="oidc",
                                   settings='{ client_id = "city-rp" }'), encoding="utf-8")
    _, problems = load_systems(path, regions=regions, client_ids={"city-rp"})
    assert problems == [f"{path}: system[0].id: 'city-rp' is also a registered client's id; "
                        "a system id must never name a client"]
    path.write_text(PROXIED.format(id="city-portal", connector="oidc",
                                   settings='{ client_id = "city-rp" }'), encoding="utf-8")
    assert load_systems(path, regions=regions, client_ids={"city-rp"})[1] == []


def test_config_check_refuses_a_system_named_like_a_client(tmp_path: Path) -> None:
    main = with_shipped_files((REPO / "config" / "roam.toml").read_text("utf-8"))
    main = main.replace(f'systems_file = "{REPO / "config" / "systems"}.toml"',
                        'systems_file = "systems.toml"')
    (tmp_path / "roam.toml").write_text(main, "utf-8")
    systems = tmp_path / "systems.toml"
    systems.write_text(PROXIED.format(id="hunan-data-api", connector="jwt-assertion",
                                      settings="{}"), encoding="utf-8")
    result = roam("--config", str(tmp_path / "roam.toml"), "config", "check")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{systems}: system[0].id: 'hunan-data-api' is also a registered client's id" \
        in result.stderr
