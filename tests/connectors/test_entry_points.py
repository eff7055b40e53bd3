"""A third-party connector found through the real ``importlib.metadata`` entry points.

The package source ships in ``tests/connectors/thirdparty/``; the test lays it out with a
``dist-info`` (as ``pip install`` would) in a temporary directory on ``sys.path``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from connectors import registry
from connectors.base import ConnectorContext, Outgoing, PresentsIdentity, Route
from connectors.registry import ENTRY_POINT_GROUP, Registry
from connectors.signed_header import SignedHeaderConfig
from gateway.errors import ConfigError
from gateway.identity import Identity, PersonKind
from gateway.keys import KeyRing

PACKAGE = Path(__file__).parent / "thirdparty" / "roam_example_connector"
MODULE = "roam_example_connector"


def install(site: Path, entry_points: str, *, name: str = "roam_example_connector") -> None:
    """Lay out an installed distribution: the package plus its dist-info."""
    if not (site / MODULE).exists():
        shutil.copytree(PACKAGE, site / MODULE)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return tmp_path


def identity() -> Identity:
    return Identity(subject="u-1001", kind=PersonKind.NATURAL, acr="L2", amr=("pwd",),
                    auth_time=0, region="430102")


def test_third_party_connector_is_found_and_routes(site: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    install(site, f"[{ENTRY_POINT_GROUP}]\nexample-header = {MODULE}:ExampleConfig\n")
    fresh = Registry()
    monkeypatch.setattr(registry, "default_registry", fresh)
    fresh.register("signed-header", SignedHeaderConfig)

    assert "example-header" in registry.load_entry_points()
    assert "example-header" in registry.known_types()

    cfg = registry.parse_connector("example-header", {"header": "X-Example-User"})
    connector = cfg.open(ConnectorContext(keys=KeyRing.ephemeral(("ES256",)),
                                          issuer="http://gw"))
    assert connector.type_name == "example-header"
    assert isinstance(connector, PresentsIdentity)
    out = Outgoing("GET", "/case?id=1", [("X-Example-User", "forged"), ("Accept", "*/*")])
    connector.present(identity(), out, Route("sys", "示例系统", "http://127.0.0.1:1"), now=0)
    assert out.headers == [("Accept", "*/*"), ("X-Example-User", "u-1001")]

    with pytest.raises(ConfigError) as caught:
        registry.parse_connector("example-header", {"heder": "x"})
    assert caught.value.problems == ["heder: Extra inputs are not permitted"]


def test_broken_and_hijacking_plugins_are_reported(site: Path) -> None:
    install(site, f"[{ENTRY_POINT_GROUP}]\n"
                  f"example-header = {MODULE}:ExampleConfig\n"
                  f"missing = {MODULE}:NoSuchConfig\n"
                  f"signed-header = {MODULE}:ExampleConfig\n")
    fresh = Registry()
    fresh.register("signed-header", SignedHeaderConfig)
    with pytest.raises(ConfigError) as caught:
        fresh.load_entry_points()
    problems = caught.value.problems
    assert len(problems) == 2
    assert any("'missing'" in p for p in problems)
    assert any("'signed-header'" in p and "already registered" in p for p in problems)
    # the good plug-in is registered all the same; the built-in is not replaced
    assert fresh.config_class("example-header").__name__ == "ExampleConfig"
    assert fresh.config_class("signed-header") is SignedHeaderConfig


def test_nothing_installed_finds_nothing_new() -> None:
    fresh = Registry()
    assert "example-header" not in fresh.load_entry_points()
