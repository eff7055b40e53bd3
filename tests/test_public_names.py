"""Public surfaces are declared: every package's ``__all__`` is exactly what it exports
(as httpx's ``test_exported_members``), every module's ``__all__`` names what it defines,
and a third-party connector needs nothing but the ``connectors`` package."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.gateway import REPO

ROOTS = ("gateway", "connectors", "demo")


def _dotted(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


PACKAGES = sorted(_dotted(init) for root in ROOTS for init in (REPO / root).rglob("__init__.py"))
MODULES = sorted(_dotted(path) for root in ROOTS for path in (REPO / root).rglob("*.py")
                 if path.name != "__init__.py")


def _exported(package: ModuleType) -> list[str]:
    """What a package's namespace offers: its public names, not its own submodules (which
    importing them adds) and not ``annotations`` (a ``__future__`` feature)."""
    names = []
    for name, value in vars(package).items():
        if name.startswith("_") and name != "__version__":
            continue
        if isinstance(value, ModuleType) and value.__name__.startswith(package.__name__ + "."):
            continue
        if name == "annotations" and type(value).__name__ == "_Feature":
            continue
        names.append(name)
    return sorted(names)


def test_every_package_is_checked() -> None:
    assert {"gateway", "gateway.config", "gateway.legacy", "gateway.proxy", "gateway.oidc",
            "connectors", "demo"} <= set(PACKAGES)


@pytest.mark.parametrize("name", PACKAGES)
def test_a_package_declares_exactly_what_it_exports(name: str) -> None:
    package = importlib.import_module(name)
    declared = getattr(package, "__all__", None)
    assert declared is not None, f"{name} has no __all__"
    assert sorted(declared) == _exported(package)
    assert len(set(declared)) == len(declared)


@pytest.mark.parametrize("name", MODULES)
def test_a_module_declares_what_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    assert declared is not None, f"{name} has no __all__"
    missing = [item for item in declared if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ names what it does not have"


def test_a_third_party_connector_imports_only_the_connectors_package() -> None:
    plugin = REPO / "tests" / "connectors" / "thirdparty" / "roam_example_connector"
    ours: set[str] = set()
    for path in plugin.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                ours.add(node.module)
            elif isinstance(node, ast.Import):
                ours.update(alias.name for alias in node.names)
    assert {m for m in ours if m.split(".")[0] in ROOTS} == {"connectors"}
