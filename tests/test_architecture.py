"""docs/architecture.md's layers, enforced: no module imports a layer above its own.

Every import counts — at the top, inside a function, under ``TYPE_CHECKING`` — because a
lazy import that points up is still a dependency that points up.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gateway import REPO

# Lowest first. A module belongs to the first entry whose prefix it matches.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("gateway", "gateway.errors", "gateway.ids", "gateway.urls",
                    "gateway.identity", "gateway.identifiers", "gateway.privacy",
                    "gateway.regions", "gateway.memo", "gateway.keys", "gateway.keyfiles",
                    "gateway.key_rotation",
                    "gateway.logs", "gateway.addresses", "gateway.attempts",
                    "gateway.store", "gateway.data")),
    ("connectors", ("connectors",)),
    ("config", ("gateway.config",)),
    ("services", ("gateway.sessions", "gateway.host_sessions", "gateway.cookies",
                  "gateway.csrf", "gateway.pages", "gateway.background", "gateway.outbound",
                  "gateway.channels", "gateway.metrics", "gateway.health", "gateway.audit")),
    ("features", ("gateway.oidc", "gateway.login", "gateway.legacy", "gateway.routing",
                  "gateway.proxy", "gateway.binding", "gateway.ops")),
    ("assembly", ("gateway.wiring", "gateway.app", "gateway.cli", "gateway.server",
                  "gateway.access_log", "gateway.workers")),
    ("demo", ("demo",)),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

# Within a layer, which packages may import which (anything not listed: itself only).
NEIGHBOURS: dict[str, set[str]] = {
    "gateway.login": {"gateway.oidc", "gateway.binding"},
    "gateway.binding": {"gateway.oidc"},
    "gateway.routing": {"gateway.legacy"},
    "gateway.proxy": {"gateway.legacy", "gateway.routing"},
    "gateway.app": {"gateway.wiring"},
    "gateway.cli": {"gateway.app", "gateway.wiring", "gateway.server", "gateway.access_log",
                    "gateway.workers"},
}
FOUNDATION_AND_CONNECTORS_ARE_OPEN = {"foundation", "connectors", "config", "services"}


def layer_of(module: str) -> str:
    best = ""
    found = ""
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, found = prefix, name
    assert found, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return found


def unit_of(module: str) -> str:
    """The package (or top-level module) a module belongs to, for the neighbour rules."""
    for _, prefixes in LAYERS:
        for prefix in sorted(prefixes, key=len, reverse=True):
            if prefix != "gateway" and (module == prefix or module.startswith(prefix + ".")):
                return prefix
    return module


def modules() -> dict[str, Path]:
    found = {}
    for root in ("gateway", "connectors", "demo"):
        for path in (REPO / root).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module of ours that ``path`` imports, anywhere in it."""
    ours = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            ours.add(node.module)
        elif isinstance(node, ast.Import):
            ours.update(alias.name for alias in node.names)
    return {m for m in ours if m.split(".")[0] in ("gateway", "connectors", "demo")}


def allowed(importer: str, imported: str) -> bool:
    low, high = layer_of(imported), layer_of(importer)
    if RANK[low] < RANK[high]:
        return True
    if RANK[low] > RANK[high]:
        return False
    if high in FOUNDATION_AND_CONNECTORS_ARE_OPEN or high == "demo":
        return True
    mine, theirs = unit_of(importer), unit_of(imported)
    return mine == theirs or theirs in NEIGHBOURS.get(mine, set())


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_points_up(module: str) -> None:
    wrong = sorted(m for m in imports(MODULES[module]) if not allowed(module, m))
    assert wrong == [], f"{module} ({layer_of(module)}) imports above its layer: {wrong}"


def test_the_rules_catch_what_they_forbid() -> None:
    """The checker itself: each of these would be a layering mistake."""
    assert not allowed("gateway.sessions", "gateway.oidc.grant")  # services → features
    assert not allowed("connectors.cas", "gateway.config")  # connectors → config
    assert not allowed("gateway.oidc.server", "gateway.login.pages")  # oidc → login
    assert not allowed("gateway.routing.go", "gateway.proxy.proxy")  # routing → proxy
    assert not allowed("gateway.config.load", "gateway.wiring")  # config → assembly
    assert not allowed("gateway.app", "demo.run")  # nothing imports the demo
    assert allowed("gateway.proxy.proxy", "gateway.legacy.access")
    assert allowed("demo.run", "gateway.app")


def test_every_module_is_in_a_layer_the_map_names() -> None:
    text = (REPO / "docs" / "architecture.md").read_text("utf-8")
    for _name, prefixes in LAYERS:
        for prefix in prefixes:
            if prefix in ("gateway",):
                continue
            shown = prefix.replace(".", "/").removeprefix("gateway/")
            assert shown.split("/")[-1] in text, f"docs/architecture.md does not show {prefix}"
    assert {layer_of(m) for m in MODULES} == set(RANK)


def test_every_module_imports_on_its_own() -> None:
    """No import cycle hides behind the order modules happen to be imported in: each one
    is imported first, in a fresh module table (one interpreter per share of the modules,
    ours dropped between; the shares run at once, one per CPU)."""
    names = sorted(MODULES)
    shares = max(1, min(4, os.cpu_count() or 1))
    runs = [subprocess.Popen([sys.executable, "-c", _IMPORT_EACH.format(names=names[i::shares])],  # noqa: S603
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(shares)]
    results = [(run.communicate(timeout=120), run.returncode) for run in runs]
    for (out, err), returncode in results:
        assert returncode == 0, err
        assert out.strip() == ""


_IMPORT_EACH = """
import importlib, sys
failed = []
for name in {names!r}:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ("gateway", "connectors", "demo")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{{name}}: {{type(error).__name__}}: {{error}}")
print("\\n".join(failed))
"""
